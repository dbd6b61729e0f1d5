"""A local moto server standing in for AWS (S3, SageMaker), and helpers shared by the AWS tests.

moto runs as a real HTTP server on 127.0.0.1 so that separate processes (papermill kernels) reach it too;
`aws_env` points boto3 at it with fake credentials. A test module imports both fixtures
(``from aws_support import aws_env, moto_server  # noqa: F401``) and applies `aws_env` to every test
with ``pytestmark = pytest.mark.usefixtures("aws_env")``.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REGION = "us-east-1"
BUCKET = "caption-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/service-role/CaptionWorkbenchExecution"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the whole session; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def moto_api(url: str, path: str, doc: dict | None = None) -> None:
    """POST to moto's control API (reset state, queue endpoint results)."""
    data = json.dumps(doc or {}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{url}{path}", data=data, method="POST"), timeout=10
    ).close()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Fresh moto state, fake credentials and every AWS variable pointing at the server (kernels inherit)."""
    moto_api(moto_server, "/moto-api/reset")
    for name in ("AWS_PROFILE", "AWS_REGION", "CAPTION_ROLE_ARN", "CAPTION_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")  # no IAM policy simulation against moto
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    import boto3
    from sagemaker.core.telemetry import telemetry_logging

    # The SDK reports usage to an AWS URL outside botocore (and AWS_ENDPOINT_URL): not from tests.
    monkeypatch.setattr(telemetry_logging, "_send_telemetry_request", lambda *args, **kwargs: None)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return moto_server


def core_client(ctx):
    """The client sagemaker-core's resources (Model.get, Endpoint.get...) use for this context."""
    from sagemaker.core.utils.utils import SageMakerClient

    return SageMakerClient(session=ctx.boto_session, region_name=ctx.region).sagemaker_client


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fake_run(root: Path, classifier: str = "resnet") -> Path:
    """A run folder with the files packaging reads (placeholder model files, real layout)."""
    files = {
        "captions/model/weights.safetensors": b"w" * 300,
        "captions/model/config.json": b'{"prefix_length": 4}',
        f"models/{classifier}/model.keras": b"k" * 200,
        f"models/{classifier}/config.json": json.dumps({"label_names": ["apple", "bee", "castle"]}).encode(),
        f"models/{classifier}/checkpoints/epoch-1.keras": b"c" * 50,
        "models/vgg16/model.keras": b"v" * 10,
        "compare/best.json": json.dumps({"name": classifier, "model_dir": f"models/{classifier}"}).encode(),
        "notebooks/timings.json": b"{}",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root
