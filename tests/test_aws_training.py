"""Training jobs: the CreateTrainingJob request ModelTrainer sends (to moto); a job's model coming back."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import boto3
import pytest
from aws_support import BUCKET, REGION, ROLE, aws_env, moto_server  # noqa: F401

from helpers.aws import training
from helpers.aws.context import connect

pytestmark = pytest.mark.usefixtures("aws_env")

SPEC = dict(
    instance_type="ml.g4dn.12xlarge",
    instance_count=2,
    gpus_per_instance=4,
    max_run_s=3600,
    max_wait_s=7200,
    hyperparameters={"epochs": 3, "batch-size": 64},
    channels={"data": f"s3://{BUCKET}/runs/r/data", "features": f"s3://{BUCKET}/runs/r/features"},
)


def captured_request(ctx) -> list[dict]:
    """CreateTrainingJob parameters exactly as the SDK builds them (the request still goes to moto)."""
    seen: list[dict] = []
    ctx.boto_session.events.register(
        "before-parameter-build.sagemaker.CreateTrainingJob", lambda params, **_: seen.append(dict(params))
    )
    return seen


def test_create_training_job_request(tmp_path):
    ctx = connect(region=REGION, role=ROLE, bucket=BUCKET)
    seen = captured_request(ctx)
    source = training.stage_source(tmp_path / "src")
    trainer = training.build_trainer(ctx, training.JobSpec(**SPEC), source, name="caption-r")
    trainer.train(wait=False, logs=False)
    (req,) = seen
    algo = req["AlgorithmSpecification"]
    assert algo["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.9.0-gpu-py312"
    )
    assert req["ResourceConfig"] == {
        "InstanceType": "ml.g4dn.12xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 50,
    }
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert req["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/caption-workbench/checkpoints/caption-r",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert req["HyperParameters"] == {"epochs": "3", "batch-size": "64"}
    assert req["RoleArn"] == ROLE
    uris = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert {k: uris[k] for k in SPEC["channels"]} == SPEC["channels"]
    assert {"code", "sm_drivers"} <= set(uris)
    assert algo["MetricDefinitions"] == [{"Name": k, "Regex": v} for k, v in training.METRICS.items()]
    s3 = boto3.client("s3", region_name=REGION)
    bucket, prefix = uris["sm_drivers"].removeprefix("s3://").split("/", 1)
    dist = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/distributed.json")["Body"].read())
    assert dist == {"process_count_per_node": 4, "smp": None}
    script = s3.get_object(Bucket=bucket, Key=f"{prefix}/sm_train.sh")["Body"].read().decode()
    assert "distributed_drivers/torchrun_driver.py" in script
    bucket, prefix = uris["code"].removeprefix("s3://").split("/", 1)
    keys = {
        o["Key"].removeprefix(prefix + "/")
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    }
    assert {training.ENTRY_SCRIPT, "requirements.txt", "helpers/caption/train.py"} <= keys


def test_metric_regexes_match_the_training_loop_line():
    import re

    line = "epoch 3/10: train 2.3456, val 2.5678 (41 s)"
    got = {k: float(re.search(v, line).group(1)) for k, v in training.METRICS.items()}
    assert got == {"train:loss": 2.3456, "val:loss": 2.5678}


def test_job_requirements_are_the_project_pins():
    reqs = training.job_requirements(Path(__file__).parents[1] / "requirements.txt")
    assert any(r.startswith("transformers==") for r in reqs) and not any(r.startswith("torch") for r in reqs)


def test_spot_wait_shorter_than_run_is_refused():
    with pytest.raises(ValueError, match="max_wait_s"):
        training.JobSpec(max_run_s=7200, max_wait_s=3600)


def tiny_captioner(folder: Path) -> Path:
    from helpers.caption.captioner import Captioner
    from helpers.caption.decode import DecodeConfig
    from helpers.caption.features import EncoderConfig, ImageEncoder
    from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner

    encoder = ImageEncoder.build(EncoderConfig(backbone="vgg16", weights=None, input_size=32, seed=0))
    gpt2 = dict(n_layer=1, n_head=2, n_embd=32, n_positions=32, bos_token_id=EOS_ID, eos_token_id=EOS_ID)
    model = build_captioner(PrefixConfig(feature_dim=encoder.feature_dim, prefix_length=2, gpt2=gpt2))
    return Captioner(encoder, model, DecodeConfig("greedy", max_new_tokens=4)).save(folder)


@pytest.fixture(scope="module")
def captioner_tarball(tmp_path_factory) -> Path:
    """A real (tiny) captioner folder packed the way SageMaker packs SM_MODEL_DIR."""
    root = tmp_path_factory.mktemp("job-model")
    model = tiny_captioner(root / "model")
    tarball = root / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:  # SageMaker tars SM_MODEL_DIR's contents at the top
        for path in sorted(model.iterdir()):
            tar.add(path, arcname=path.name)
    return tarball


def test_finished_job_model_comes_back_into_the_run_folder(tmp_path, captioner_tarball):
    import numpy as np

    from helpers.caption.captioner import Captioner

    model, tarball = captioner_tarball.parent / "model", captioner_tarball
    key = "caption-workbench/jobs/caption-r-1/output/model.tar.gz"
    boto3.client("s3", region_name=REGION).upload_file(str(tarball), BUCKET, key)
    run_dir = tmp_path / "run"
    (run_dir / "captions" / "model").mkdir(parents=True)
    (run_dir / "captions" / "model" / "stale.txt").write_text("old")
    ctx = connect(region=REGION, role=ROLE, bucket=BUCKET)
    got = training.fetch_model(ctx, f"s3://{BUCKET}/{key}", run_dir, {"job_name": "caption-r-1"})
    assert got == run_dir / "captions" / "model" and not (got / "stale.txt").exists()
    record = json.loads((run_dir / "captions" / "job.json").read_text())
    assert record == {"job_name": "caption-r-1", "model_s3_uri": f"s3://{BUCKET}/{key}"}
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert Captioner.load(got).caption_images([image]) == Captioner.load(model).caption_images([image])


def test_archive_without_a_captioner_is_refused_and_the_old_model_kept(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "junk.txt", arcname="junk.txt")
    old = tmp_path / "model"
    old.mkdir()
    (old / "captioner.json").write_text("{}")
    with pytest.raises(ValueError, match="no captioner.json"):
        training.unpack_model(tarball, old)
    assert (old / "captioner.json").is_file() and not (tmp_path / "model.partial").exists()


def test_launch_wait_and_bring_the_model_back(tmp_path, captioner_tarball):
    ctx = connect(region=REGION, role=ROLE, bucket=BUCKET)
    source = training.stage_source(tmp_path / "src")
    trainer = training.build_trainer(ctx, training.JobSpec(**SPEC), source, name="caption-r")
    job = training.launch(trainer)  # moto finishes a job at once; its model.tar.gz is put there below
    uri = job.model_artifacts.s3_model_artifacts
    assert uri == f"s3://{BUCKET}/caption-workbench/jobs/{job.training_job_name}/output/model.tar.gz"
    boto3.client("s3", region_name=REGION).upload_file(str(captioner_tarball), BUCKET, uri.split("/", 3)[3])
    model = training.fetch_model(ctx, uri, tmp_path / "run", training.job_record(job))
    record = json.loads((tmp_path / "run" / "captions" / "job.json").read_text())
    assert record["job_name"] == job.training_job_name and record["status"] == "Completed"
    assert record["instance_type"] == "ml.g4dn.12xlarge" and record["instance_count"] == 2
    assert (model / "captioner.json").is_file()
