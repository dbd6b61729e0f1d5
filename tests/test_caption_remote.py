"""Notebook 06's trainings as jobs (helpers.caption.remote): rehearsed here under the SDK's own torchrun
driver (train_on="local-job"), and as SageMaker jobs against moto with this machine standing in for the
training instances (train_on="job"). Either way the models that come back are the ones 06 trains in the
notebook at the same config, and the requests ask for spot capacity and S3 checkpoints."""

from __future__ import annotations

import json

import boto3
import pytest
import torch
from aws_support import BUCKET, REGION, ROLE, aws_env, moto_server  # noqa: F401

from helpers.aws import training
from helpers.caption import remote, variants

KNOBS = dict(epochs=2, max_steps=3, seed=0, dataset="flickr8k", encoder=None, compare_encoders=None)
SETTINGS = remote.JobSettings(instance_type="ml.g4dn.12xlarge", instance_count=2, max_run_hours=2)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """06's config, dataset and feature cache for a few steps of the smoke captioner."""
    from helpers.caption.config import CaptionConfig
    from helpers.caption.features import cached_features

    cfg = CaptionConfig.for_preset("smoke", str(tmp_path_factory.mktemp("run") / "smoke"), **KNOBS)
    paths = cfg.paths.ensure()
    dataset = cfg.load_data()
    names = sorted(n for split in dataset.splits.values() for n in split)
    cache = cached_features(
        paths.captions / "features", cfg.encoder, names, dataset.image_path, progress=False
    )
    return cfg, dataset, cache


@pytest.fixture(scope="module")
def in_notebook(smoke):
    """Both variants trained the notebook's way, in this process (their own folder)."""
    import dataclasses

    from helpers.caption.tokenizer import gpt2_tokenizer

    cfg, dataset, cache = smoke
    out = cfg.paths.root.parent / "in-notebook"
    trained = {}
    for variant in remote.VARIANTS:
        blind = variant == "blind"
        model, history = variants.train_variant(
            cfg, cache, dataset, gpt2_tokenizer(), blind=blind, out=out / variant
        )
        trained[variant] = (model, history)
    assert dataclasses.asdict(cfg.train)["max_steps"] == 3
    return trained


def assert_same(got: dict, want: dict) -> None:
    for variant in remote.VARIANTS:
        (model, history), (ref, ref_history) = got[variant], want[variant]
        a, b = model.state_dict(), ref.state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key].cpu(), b[key].cpu(), atol=1e-5), (variant, key)
        assert history["val_loss"].tolist() == pytest.approx(ref_history["val_loss"].tolist(), abs=1e-4)


def test_job_data_is_the_dataset_06_read(smoke, tmp_path):
    """The data channel (captions and splits, no images) reads back to the same splits, order and captions."""
    from helpers.caption.job import export_dataset, load_job_data

    cfg, dataset, _ = smoke
    folder = export_dataset(dataset, tmp_path / "data").parent
    assert not any(p.suffix == ".jpg" for p in folder.rglob("*"))
    back = load_job_data(cfg, folder)
    assert back.splits == dataset.splits
    assert {n: back.normalized[n] for n in back.captions} == {n: dataset.normalized[n] for n in back.captions}


def test_local_job_trains_what_the_notebook_trains(smoke, in_notebook, capsys):
    cfg, dataset, cache = smoke
    got = remote.train_as_jobs(cfg, KNOBS, cache, dataset, "local-job", SETTINGS)
    assert_same(got, in_notebook)
    captions = cfg.paths.captions
    for variant in remote.VARIANTS:
        request = json.loads((captions / "jobs" / f"{variant}-request.json").read_text())
        assert request["EnableManagedSpotTraining"] is True
        assert request["ResourceConfig"]["InstanceCount"] == 2
        assert request["CheckpointConfig"]["S3Uri"].endswith(f"/checkpoints/caption-smoke-{variant}")
        assert request["HyperParameters"]["blind"] == json.dumps(variant == "blind")
        assert {"data", "features"} <= {c["ChannelName"] for c in request["InputDataConfig"]}
    assert "[dry run] sagemaker.CreateTrainingJob" in capsys.readouterr().out  # shown, not sent
    record = json.loads((captions / "job.json").read_text())
    assert record["status"] == "Completed" and record["job_name"].startswith("caption-smoke-model-")
    assert (captions / "model" / "captioner.json").is_file()
    assert (captions / "blind-model" / "captioner.json").is_file()
    assert set(remote.job_summary(cfg.paths.root).index) == set(remote.VARIANTS)


def training_platform(ctx, source_root):
    """Stand-in for SageMaker's side: when moto accepts a CreateTrainingJob, run the job here under the
    SDK's driver from what the request names (its S3 channels pulled from moto, its hyperparameters) and
    put model.tar.gz and output.tar.gz where SageMaker would (<S3OutputPath>/<job>/output/)."""
    from helpers.aws import s3sync

    requests: list[dict] = []

    def on_created(**_):
        params = requests[-1]
        name = params["TrainingJobName"]
        root = source_root / name
        channels = {}
        for channel in params["InputDataConfig"]:
            if channel["ChannelName"] in ("data", "features"):
                local = root / "input" / "data" / channel["ChannelName"]
                s3sync.pull(ctx, channel["DataSource"]["S3DataSource"]["S3Uri"], local)
                channels[channel["ChannelName"]] = local
        source = training.stage_source(root / "code")
        hps = params["HyperParameters"]  # strings, as hyperparameters.json holds them
        ran = training.run_local(name, source, channels, hps, root / "opt-ml", echo=False)
        prefix = f"{params['OutputDataConfig']['S3OutputPath'].removeprefix(f's3://{BUCKET}/')}/{name}/output"
        s3 = boto3.client("s3", region_name=REGION)
        s3.upload_file(str(ran.model_tarball), BUCKET, f"{prefix}/model.tar.gz")
        s3.upload_file(str(ran.output_tarball), BUCKET, f"{prefix}/output.tar.gz")

    events = ctx.boto_session.events
    events.register(
        "before-parameter-build.sagemaker.CreateTrainingJob", lambda params, **_: requests.append(params)
    )
    events.register("after-call.sagemaker.CreateTrainingJob", on_created)


@pytest.mark.usefixtures("aws_env")
def test_jobs_on_sagemaker_come_back_into_the_run_folder(smoke, in_notebook, tmp_path, monkeypatch):
    from helpers.aws.context import connect

    cfg, dataset, cache = smoke
    monkeypatch.setattr(training, "check_requirements", lambda source: [])  # PyPI: tests/test_platform.py
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    ctx = connect(region=REGION, role=ROLE, bucket=BUCKET)
    training_platform(ctx, tmp_path)
    got = remote.train_as_jobs(cfg, KNOBS, cache, dataset, "job", SETTINGS, ctx=ctx)
    assert_same(got, in_notebook)
    sm = boto3.client("sagemaker", region_name=REGION)
    jobs = sm.list_training_jobs()["TrainingJobSummaries"]
    assert len(jobs) == 2
    for summary in jobs:
        job = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        assert job["EnableManagedSpotTraining"] is True
        assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
        assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    record = json.loads((cfg.paths.captions / "job.json").read_text())
    assert record["status"] == "Completed" and record["spot"] is True and record["instance_count"] == 2
    assert record["model_s3_uri"].endswith(f"{record['job_name']}/output/model.tar.gz")


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_06_trains_as_local_jobs_and_its_captioner_sees_the_pictures(tmp_path):
    """06 end to end with train_on="local-job" (the study skipped): the smoke learning bars hold for the
    captioner the jobs trained, and its records name the jobs."""
    from conftest import NO_AWS, environment, thread_share

    from helpers import artifacts
    from helpers.caption.config import SMOKE_BLEU_ABOVE_BLIND, SMOKE_BLEU_FLOOR
    from helpers.pipeline import run_series

    run_dir = tmp_path / "smoke"
    extra = {"train_on": "local-job", "compare_encoders": [], "job_instance_type": "ml.g4dn.xlarge"}
    with environment({**NO_AWS, **thread_share()}):
        run_series("smoke", str(run_dir), only="06", extra=extra)
    metrics = artifacts.read_json(run_dir / "captions" / "metrics.json")
    model, blind = metrics["model"]["Bleu_4"], metrics["blind"]["Bleu_4"]
    assert model >= SMOKE_BLEU_FLOOR and model - blind >= SMOKE_BLEU_ABOVE_BLIND, (model, blind)
    assert metrics["training"]["model"]["best_val_loss"] < metrics["training"]["blind"]["best_val_loss"]
    for variant in remote.VARIANTS:
        request = json.loads((run_dir / "captions" / "jobs" / f"{variant}-request.json").read_text())
        assert request["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
        assert request["EnableManagedSpotTraining"] is True
    assert artifacts.read_json(run_dir / "captions" / "job.json")["status"] == "Completed"
    assert (run_dir / "figures" / "06-training-curves.png").stat().st_size > 5_000
