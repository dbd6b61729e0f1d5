"""Serve the trained captioner (and the best classifier's top-5) from a real-time SageMaker endpoint.

`deploy` packages the run's models with the handler (`helpers.aws.package`), uploads the archive with its
checksum, builds a SageMaker Model with the SDK's ModelBuilder for a PyTorch inference image, and deploys
it on the stated instance type. `invoke` sends an image, `cleanup` deletes the endpoint, its endpoint
config, its model and the uploaded archive. A real endpoint costs money while it exists: always clean up.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from helpers.aws.context import AwsContext
from helpers.aws.package import IMAGE, package_model
from helpers.aws.s3sync import split_s3_uri, upload_file
from helpers.aws.wheelhouse import serving_wheelhouse

#: Newest PyTorch inference image in the SDK's catalogue (its Python is 3.12); torch comes from the image.
#: The one record of it is helpers.aws.package.IMAGE, written into every archive's serving.json.
PYTORCH_VERSION, PY_VERSION = IMAGE["version"], IMAGE["py_version"]
#: CPU instance: enough for one captioner request at a time. ml.g4dn.xlarge gives a T4.
DEFAULT_INSTANCE = "ml.m5.xlarge"
#: TorchServe's own body limit (its default, 6,553,500 bytes, is close to the handler's): above it TorchServe
#: resets the connection with no answer at all. Set well over the handler's limit
#: (helpers.serving.Limits.max_request_bytes, 6,000,000, SageMaker's own cap on a real-time request), so
#: every body SageMaker lets through reaches the handler, which answers an oversized one with its JSON 413.
SERVER_MAX_REQUEST_BYTES = 8 * 2**20
#: Seconds TorchServe waits for one answer: SageMaker's own limit for a real-time invocation (60 s), so a
#: request cannot outlive the call that sent it; the handler's limits keep the slowest request under it.
RESPONSE_TIMEOUT_S = 60
#: TorchServe workers (each loads every model). Its default is one per vCPU, each using every core: on an
#: ml.m5.xlarge 4 copies of the models and 16 threads on 4 vCPUs. One worker with all cores gave the lowest
#: latency and half the memory of two single-thread workers, which gained 29 % throughput only under 4
#: concurrent clients (benchmarks/serving_load.py, full shapes, docs/serving.md). More load: more instances.
SERVER_WORKERS = 1
#: ContainerStartupHealthCheckTimeoutInSeconds: from container start to the first /ping 200 (archive
#: download, the offline pip install from its wheels, model load). Measured here on 2 cores for the smoke
#: package (docs/serving.md); 600 s leaves room for a full-size archive's download and load.
STARTUP_HEALTH_CHECK_S = 600
#: Environment of the serving container: where the handler is, and no model-hub calls from inside it.
CONTAINER_ENV = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "HF_HUB_OFFLINE": "1",  # the tokenizer ships inside the archive
    "KERAS_BACKEND": "torch",  # the classifier runs on Keras' torch backend: the image has no TensorFlow
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TS_MAX_REQUEST_SIZE": str(SERVER_MAX_REQUEST_BYTES),  # TorchServe's setting (enable_envvars_config)
    "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(RESPONSE_TIMEOUT_S),  # the toolkit's default_response_timeout
    "SAGEMAKER_MODEL_SERVER_WORKERS": str(SERVER_WORKERS),
}


@dataclass
class Deployment:
    """One endpoint: the endpoint, its endpoint config and its model share `name`."""

    name: str
    model_data: str  # s3:// URI of model.tar.gz
    image_uri: str
    instance_type: str
    region: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def endpoint_name(prefix: str = "caption-workbench") -> str:
    """A fresh name (at most 63 characters: letters, digits, hyphens)."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"[:63]


def pytorch_image(region: str, instance_type: str) -> str:
    """The PyTorch inference image for this region and instance type (CPU or GPU build)."""
    from sagemaker.core import image_uris

    return image_uris.retrieve(
        framework="pytorch",
        region=region,
        version=PYTORCH_VERSION,
        py_version=PY_VERSION,
        instance_type=instance_type,
        image_scope="inference",
    )


def archive_image(archive: str | os.PathLike) -> dict[str, str] | None:
    """The inference image a model.tar.gz was built for (its serving.json), or None if it names none."""
    import tarfile

    from helpers.serving import SERVING_JSON

    with tarfile.open(archive) as tar:
        try:
            meta = json.load(tar.extractfile(SERVING_JSON))
        except KeyError:
            raise ValueError(
                f"{archive} has no {SERVING_JSON}: not an archive from helpers.aws.package_model"
            ) from None
    return meta.get("image")


def check_archive(archive: str | os.PathLike) -> None:
    """Refuse an archive built for another inference image than the one `deploy` starts."""
    built_for = archive_image(archive)
    if built_for != IMAGE:
        raise ValueError(
            f"{archive} was built for the inference image {built_for}, but deploy starts {IMAGE}: its code "
            "and wheels were not tested there. Package the run again (helpers.aws.package_model)."
        )


def upload_model(
    ctx: AwsContext,
    run_dir: str | os.PathLike,
    name: str,
    classifier: str | None = "best",
    archive: str | os.PathLike | None = None,
    offline: bool = True,
) -> str:
    """Package the run's models (or take `archive`, checked) and upload the archive; returns its s3:// URI.

    `offline`: the archive carries the wheels of its requirements for the image's Python
    (helpers.aws.wheelhouse, cached), so the container installs nothing from the internet at start. With
    False it asks the package index at start (or the CodeArtifact repository named by CA_REPOSITORY_ARN).
    """
    uri = ctx.s3_uri("endpoints", name, "model.tar.gz")
    bucket, key = split_s3_uri(uri)
    if archive is not None:
        check_archive(archive)
        upload_file(ctx, Path(archive), bucket, key)
        return uri
    with tempfile.TemporaryDirectory() as tmp:
        wheels = serving_wheelhouse() if offline else None
        packaged = package_model(run_dir, Path(tmp) / "model.tar.gz", classifier, wheels=wheels)
        upload_file(ctx, packaged, bucket, key)
    return uri


def deploy(
    ctx: AwsContext,
    run_dir: str | os.PathLike,
    instance_type: str = DEFAULT_INSTANCE,
    name: str | None = None,
    classifier: str | None = "best",
    wait: bool = True,
    poll_s: int = 30,
    timeout_s: int = 3600,
    archive: str | os.PathLike | None = None,
    offline: bool = True,
    env: dict[str, str] | None = None,
) -> Deployment:
    """Package, upload, build with ModelBuilder and deploy; with `wait`, return once it is InService.

    `archive`: a model.tar.gz packaged earlier (e.g. with its wheelhouse) instead of packaging `run_dir`;
    refused when its serving.json names another inference image than the one deployed. `offline=False`
    leaves the wheels out (see `upload_model`); `env` adds to CONTAINER_ENV, e.g. ``{"CA_REPOSITORY_ARN":
    arn}`` for the toolkit to install from a CodeArtifact mirror at start (docs/serving.md).
    """
    from sagemaker.serve.model_builder import ModelBuilder

    name = name or endpoint_name()
    model_data = upload_model(ctx, run_dir, name, classifier, archive, offline)
    image = pytorch_image(ctx.region, instance_type)
    builder = ModelBuilder(
        s3_model_data_url=model_data,
        image_uri=image,
        role_arn=ctx.role,
        sagemaker_session=ctx.sagemaker_session,
        instance_type=instance_type,
        env_vars={**CONTAINER_ENV, **(env or {})},
        log_level=logging.WARNING,
    )
    builder.build(model_name=name)
    endpoint = builder.deploy(
        endpoint_name=name,
        initial_instance_count=1,
        instance_type=instance_type,
        wait=False,
        container_startup_health_check_timeout=STARTUP_HEALTH_CHECK_S,
    )
    if wait:
        endpoint.wait_for_status("InService", poll=poll_s, timeout=timeout_s)
    print(f"endpoint {name} on {instance_type} ({image})", flush=True)
    return Deployment(name, model_data, image, instance_type, ctx.region)


def try_endpoint(
    ctx: AwsContext,
    run_dir: str | os.PathLike,
    image: bytes | str | os.PathLike,
    instance_type: str = DEFAULT_INSTANCE,
    classifier: str | None = "best",
    keep: bool = False,
    offline: bool = True,
    **options: Any,
) -> tuple[Deployment, dict[str, Any]]:
    """Deploy, caption `image` on the new endpoint, then delete it all unless `keep`, also when a step fails.

    What notebook 07 runs: an endpoint is billed while it exists, so a failed deployment or call must not
    leave one behind. Returns the deployment and the endpoint's answer.
    """
    name = endpoint_name()
    try:
        dep = deploy(ctx, run_dir, instance_type, name=name, classifier=classifier, offline=offline)
        return dep, invoke(ctx, name, image, **options)
    finally:
        if not keep:
            cleanup(ctx, name)


def request_body(image: bytes | str | os.PathLike, **options: Any) -> tuple[bytes, str]:
    """(body, content type): the raw image, or JSON with the image in base64 when options are given."""
    import base64

    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    if options:
        doc = {"image": base64.b64encode(data).decode(), **options}
        return json.dumps(doc).encode(), "application/json"
    return data, "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"


def invoke(ctx: AwsContext, name: str, image: bytes | str | os.PathLike, **options: Any) -> dict[str, Any]:
    """Caption one image (bytes or a path) on the endpoint; `options` as in the handler's JSON requests."""
    from sagemaker.core.resources import Endpoint

    body, content_type = request_body(image, **options)
    endpoint = Endpoint.get(endpoint_name=name, session=ctx.boto_session, region=ctx.region)
    response = endpoint.invoke(body=body, content_type=content_type, accept="application/json")
    return json.loads(response.body.read())


def _missing(err: Exception) -> bool:
    """SageMaker answers a delete or describe of something absent with a ValidationException."""
    from botocore.exceptions import ClientError

    return isinstance(err, ClientError) and err.response["Error"]["Code"] == "ValidationException"


def _resources(ctx: AwsContext, name: str) -> tuple[str, list[str]]:
    """(endpoint config, models) behind an endpoint; by name when the endpoint is already gone."""
    from botocore.exceptions import ClientError

    sm = ctx.client("sagemaker")
    try:
        config = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        variants = sm.describe_endpoint_config(EndpointConfigName=config).get("ProductionVariants", [])
    except ClientError as err:
        if not _missing(err):
            raise
        return name, [name]
    return config, [v["ModelName"] for v in variants] or [name]


def cleanup(ctx: AwsContext, name: str) -> list[str]:
    """Delete the endpoint, its endpoint config, its models and the uploaded archive; returns what went."""
    from botocore.exceptions import ClientError

    sm = ctx.client("sagemaker")
    config, models = _resources(ctx, name)
    steps = [("endpoint", sm.delete_endpoint, {"EndpointName": name})]
    steps.append(("endpoint config", sm.delete_endpoint_config, {"EndpointConfigName": config}))
    steps += [("model", sm.delete_model, {"ModelName": m}) for m in models]
    deleted = []
    for kind, delete, kwargs in steps:
        try:
            delete(**kwargs)
            deleted.append(f"{kind} {next(iter(kwargs.values()))}")
        except ClientError as err:
            if not _missing(err):  # already gone is fine; anything else (e.g. access denied) is not
                raise
    bucket, key = split_s3_uri(ctx.s3_uri("endpoints", name, "model.tar.gz"))
    ctx.client("s3").delete_object(Bucket=bucket, Key=key)
    deleted.append(f"s3://{bucket}/{key}")
    print("deleted: " + ", ".join(deleted), flush=True)
    return deleted
