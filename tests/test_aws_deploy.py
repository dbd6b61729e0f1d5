"""The model archive, and endpoint deploy/invoke/cleanup with the SDK's ModelBuilder against moto.

moto serves S3, CreateModel, CreateEndpointConfig, CreateEndpoint, InvokeEndpoint and the deletes.
sagemaker-core's Model.get/Endpoint.get reject moto's describe responses (empty VpcConfig and
DataCaptureConfig fail pydantic validation), so those calls, on sagemaker-core's own client, are answered
by botocore's Stubber, which also asserts their exact requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from aws_support import BUCKET, REGION, ROLE, aws_env, core_client, fake_run, moto_api, moto_server, now  # noqa: F401
from botocore.stub import Stubber
from matplotlib import cbook

from helpers.aws import cleanup, connect, deploy, invoke, package_model
from helpers.aws.endpoint import CONTAINER_ENV, STARTUP_HEALTH_CHECK_S
from helpers.aws.package import SERVING_PACKAGES
from helpers.config import project_root
from helpers.serving import handle

pytestmark = pytest.mark.usefixtures("aws_env")  # fresh moto state and AWS variables per test
NAME = "caption-test-endpoint"
PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
WHEEL = "six-1.17.0-py2.py3-none-any.whl"


@pytest.fixture(autouse=True)
def wheelhouse(tmp_path, monkeypatch) -> Path:
    """deploy's wheelhouse, one placeholder wheel: the real 3.12 one is built and installed (dry run) by
    tests/test_platform.py, and its download is not what these tests are about."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    (folder / WHEEL).write_bytes(b"PK placeholder")
    monkeypatch.setattr("helpers.aws.endpoint.serving_wheelhouse", lambda: folder)
    return folder


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_archive_layout_and_reproducibility(tmp_path):
    run = fake_run(tmp_path / "run")
    first = package_model(run, tmp_path / "a/model.tar.gz")
    second = package_model(run, tmp_path / "b/model.tar.gz")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    files = members(first)
    assert files["captioner/weights.safetensors"] == b"w" * 300
    assert files["classifier/model.keras"] == b"k" * 200
    assert not any("checkpoints" in name or name.startswith("classifier/../") for name in files)
    assert not any("vgg16" in name or "__pycache__" in name for name in files)
    meta = json.loads(files["serving.json"])
    assert meta["classifier"] == "resnet" and meta["captioner"] == "captions/model"
    assert json.loads(files["classifier/config.json"])["label_names"] == ["apple", "bee", "castle"]
    assert "code/helpers/serving.py" in files and "code/helpers/data/images.py" in files
    pins = files["code/requirements.txt"].decode().split()
    assert [p.split("==")[0] for p in pins] == list(SERVING_PACKAGES)
    assert set(pins) <= set((project_root() / "requirements.txt").read_text().split())  # the same pins


def test_packaged_entry_point_imports_the_packaged_handler(tmp_path):
    """code/inference.py runs from the unpacked archive alone (what the inference image does)."""
    archive = package_model(fake_run(tmp_path / "run"), tmp_path / "model.tar.gz", classifier=None)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    assert not (tmp_path / "model/classifier").exists()
    probe = "import inference, helpers; print(helpers.__file__); print(inference.transform_fn.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path / "model/code", capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(tmp_path / "model/code/helpers/__init__.py"), "helpers.serving"]


def test_missing_inputs_are_named(tmp_path):
    run = fake_run(tmp_path / "run")
    (run / "compare/best.json").write_text('{"name": "mobilenet", "model_dir": "models/mobilenet"}')
    with pytest.raises(FileNotFoundError, match="mobilenet"):
        package_model(run, tmp_path / "m.tar.gz")
    with pytest.raises(FileNotFoundError, match="06-flickr-gpt2-finetune"):
        package_model(tmp_path / "empty", tmp_path / "m.tar.gz")


def described_endpoint(status: str) -> dict:
    """A DescribeEndpoint response of the shape sagemaker-core validates."""
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{NAME}"
    return {
        "EndpointName": NAME,
        "EndpointArn": arn,
        "EndpointConfigName": NAME,
        "EndpointStatus": status,
        "CreationTime": now(),
        "LastModifiedTime": now(),
    }


def stub_core_describes(ctx) -> Stubber:
    """Answer the describes sagemaker-core makes: the model once, the endpoint while it comes up."""
    stub = Stubber(core_client(ctx))
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model/{NAME}"
    model = {"ModelName": NAME, "ModelArn": arn, "CreationTime": now(), "ExecutionRoleArn": ROLE}
    stub.add_response("describe_model", model, {"ModelName": NAME})
    for status in ("Creating", "Creating", "InService"):  # Endpoint.get, then two polls
        stub.add_response("describe_endpoint", described_endpoint(status), {"EndpointName": NAME})
    stub.activate()
    return stub


class FixedPredictor:
    """Stands in for the models behind the endpoint."""

    def caption(self, images, decoding, detail):
        return ["a woman in a uniform" for _ in images]

    def top_k(self, images, k):
        return [[("woman", 0.8), ("man", 0.2)][:k] for _ in images]


def test_deploy_invoke_cleanup(tmp_path):
    ctx = connect(role=ROLE, bucket=BUCKET)
    stub = stub_core_describes(ctx)
    dep = deploy(ctx, fake_run(tmp_path / "run"), "ml.g4dn.xlarge", name=NAME, poll_s=0)
    stub.assert_no_pending_responses()  # waited through Creating until InService

    sm = boto3.client("sagemaker")
    container = sm.describe_model(ModelName=NAME)["PrimaryContainer"]
    assert container["Image"] == dep.image_uri
    assert "pytorch-inference:" in dep.image_uri and "-gpu-" in dep.image_uri  # GPU build for a g4dn
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/caption-workbench/endpoints/{NAME}/model.tar.gz"
    assert container["Environment"] == CONTAINER_ENV
    assert sm.describe_model(ModelName=NAME)["ExecutionRoleArn"] == ROLE
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=NAME)["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        NAME,
        "ml.g4dn.xlarge",
        1,
    )
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == STARTUP_HEALTH_CHECK_S
    assert sm.describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == NAME

    key = f"caption-workbench/endpoints/{NAME}/model.tar.gz"
    local = tmp_path / "downloaded.tar.gz"
    boto3.client("s3").download_file(BUCKET, key, str(local))
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=key)
    assert head["Metadata"]["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
    files = members(local)
    assert "code/inference.py" in files and f"code/wheels/{WHEEL}" in files  # offline by default
    assert files["code/requirements.txt"].decode().startswith("--no-index\n--find-links wheels\n")

    # The endpoint's answer is what the handler gives for this request (moto returns a queued body; its
    # server cannot take a binary body, so this request is JSON and the dry run checks the raw bytes one).
    body = json.dumps({"image": base64.b64encode(PHOTO.read_bytes()).decode(), "alternatives": True})
    status, expected = handle(body, "application/json", FixedPredictor())
    moto_api(
        os.environ["AWS_ENDPOINT_URL"],
        "/moto-api/static/sagemaker/endpoint-results",
        {"results": [{"Body": json.dumps(expected), "ContentType": "application/json"}]},
    )
    stub.add_response("describe_endpoint", described_endpoint("InService"), {"EndpointName": NAME})
    assert invoke(ctx, NAME, PHOTO, alternatives=True) == expected and status == 200
    stub.assert_no_pending_responses()

    deleted = cleanup(ctx, NAME)
    assert deleted[:3] == [f"endpoint {NAME}", f"endpoint config {NAME}", f"model {NAME}"]
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert "Contents" not in boto3.client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix="caption-workbench/endpoints"
    )
    assert cleanup(ctx, NAME) == [f"s3://{BUCKET}/{key}"]  # a second cleanup finds nothing left but is fine


def test_dry_run_builds_every_request_and_sends_none(tmp_path, capsys):
    ctx = connect(role=ROLE, bucket=BUCKET, dry_run=True)
    dep = deploy(ctx, fake_run(tmp_path / "run"), name=NAME, poll_s=0)
    answer = invoke(ctx, NAME, PHOTO)
    cleanup(ctx, NAME)
    ops = [op for op in ctx.dry_run.operations() if not op.startswith(("sts.", "logs."))]
    assert ops == [
        "s3.PutObject",
        "sagemaker.CreateModel",
        "sagemaker.DescribeModel",
        "sagemaker.CreateEndpointConfig",
        "sagemaker.CreateEndpoint",
        "sagemaker.DescribeEndpoint",
        "sagemaker.DescribeEndpoint",
        "sagemaker.DescribeEndpoint",
        "sagemaker-runtime.InvokeEndpoint",
        "sagemaker.DescribeEndpoint",
        "sagemaker.DescribeEndpointConfig",
        "sagemaker.DeleteEndpoint",
        "sagemaker.DeleteEndpointConfig",
        "sagemaker.DeleteModel",
        "s3.DeleteObject",
    ]
    calls = {c.operation: c.params for c in ctx.dry_run.calls}
    assert calls["CreateModel"]["PrimaryContainer"]["ModelDataUrl"] == dep.model_data
    assert calls["CreateModel"]["PrimaryContainer"]["Image"].endswith("-cpu-py312")  # ml.m5.xlarge
    assert calls["CreateEndpointConfig"]["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    assert calls["InvokeEndpoint"]["Body"] == PHOTO.read_bytes()
    assert (calls["InvokeEndpoint"]["ContentType"], calls["InvokeEndpoint"]["Accept"]) == (
        "image/jpeg",
        "application/json",
    )
    assert answer == {"dry_run": True, "endpoint": NAME}
    assert "[dry run] sagemaker.CreateEndpoint " in capsys.readouterr().out
    assert boto3.client("sagemaker").list_models()["Models"] == []  # nothing reached moto
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


def test_command_line_reports_aws_errors(capsys):
    from helpers.aws.__main__ import main as cli

    assert cli(["--role", ROLE, "--bucket", BUCKET, "invoke", "--name", "no-such-endpoint", str(PHOTO)]) == 1
    assert "no-such-endpoint" in capsys.readouterr().err


def test_try_endpoint_deletes_everything_even_when_the_call_fails(tmp_path, monkeypatch):
    from helpers.aws import endpoint, try_endpoint

    ctx = connect(role=ROLE, bucket=BUCKET, dry_run=True)
    ctx.dry_run.echo = False
    dep, answer = try_endpoint(ctx, fake_run(tmp_path / "run"), PHOTO, "ml.g4dn.xlarge")
    assert answer == {"dry_run": True, "endpoint": dep.name} and dep.instance_type == "ml.g4dn.xlarge"
    ops = ctx.dry_run.operations()
    assert ops.index("sagemaker.CreateEndpoint") < ops.index("sagemaker-runtime.InvokeEndpoint")
    assert ops[-4:] == [
        "sagemaker.DeleteEndpoint",
        "sagemaker.DeleteEndpointConfig",
        "sagemaker.DeleteModel",
        "s3.DeleteObject",
    ]

    kept = connect(role=ROLE, bucket=BUCKET, dry_run=True)
    kept.dry_run.echo = False
    try_endpoint(kept, fake_run(tmp_path / "run3"), PHOTO, keep=True)
    assert not any(op.startswith("sagemaker.Delete") for op in kept.dry_run.operations())

    def broken(*args, **kwargs):
        raise RuntimeError("endpoint answered 500")

    monkeypatch.setattr(endpoint, "invoke", broken)
    ctx = connect(role=ROLE, bucket=BUCKET, dry_run=True)
    ctx.dry_run.echo = False
    with pytest.raises(RuntimeError, match="500"):
        try_endpoint(ctx, fake_run(tmp_path / "run2"), PHOTO)
    assert ctx.dry_run.operations()[-4:-2] == ["sagemaker.DeleteEndpoint", "sagemaker.DeleteEndpointConfig"]


def test_deploy_refuses_an_archive_built_for_another_image(tmp_path):
    from helpers.aws.package import IMAGE

    ctx = connect(role=ROLE, bucket=BUCKET, dry_run=True)
    ctx.dry_run.echo = False
    archive = package_model(fake_run(tmp_path / "run"), tmp_path / "model.tar.gz")
    assert json.loads(members(archive)["serving.json"])["image"] == IMAGE
    dep = deploy(ctx, tmp_path / "unused", name=NAME, poll_s=0, archive=archive)  # the archive as packaged
    assert ctx.dry_run.operations()[0] == "s3.PutObject" and dep.image_uri.endswith("-cpu-py312")

    old = tmp_path / "old"
    with tarfile.open(archive) as tar:
        tar.extractall(old, filter="data")
    meta = json.loads((old / "serving.json").read_text())
    (old / "serving.json").write_text(json.dumps({**meta, "image": {**IMAGE, "py_version": "py311"}}))
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        for path in sorted(old.iterdir()):
            tar.add(path, arcname=path.name)
    refused = connect(role=ROLE, bucket=BUCKET, dry_run=True)
    with pytest.raises(ValueError, match="built for the inference image .*py311"):
        deploy(refused, tmp_path / "unused", name=NAME, archive=tmp_path / "other.tar.gz")
    assert refused.dry_run.operations() == []  # refused before anything was uploaded
