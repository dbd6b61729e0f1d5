"""Where the AWS work happens: the region, the execution role and the S3 bucket, resolved once.

Each is taken from, in order: the argument, an environment variable, then what the SageMaker SDK finds
on a notebook instance (the region of the instance's AWS config, the role from the instance metadata
through DescribeNotebookInstance, the SDK's default bucket ``sagemaker-<region>-<account>``). Nothing
here is hard-coded to one account, region or bucket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from helpers.aws.dryrun import DryRun

REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")
ROLE_ENV = "CAPTION_ROLE_ARN"
BUCKET_ENV = "CAPTION_BUCKET"
#: Every S3 key this project writes starts with this prefix inside the bucket.
KEY_PREFIX = "caption-workbench"


class AwsConfigError(RuntimeError):
    """A region, role or bucket could not be found; the message says how to provide it."""


def resolve_region(region: str | None = None) -> tuple[str, str]:
    """(region, where it came from): argument, AWS_REGION/AWS_DEFAULT_REGION, then the AWS config."""
    if region:
        return region, "argument"
    for name in REGION_ENVS:
        if os.environ.get(name):
            return os.environ[name], f"${name}"
    import boto3

    found = boto3.Session().region_name  # ~/.aws/config, which SageMaker writes on a notebook instance
    if found:
        return found, "AWS config"
    raise AwsConfigError("no AWS region: pass region=..., or set AWS_DEFAULT_REGION (e.g. us-east-1)")


def telemetry_off_config() -> dict[str, Any]:
    """The user's SageMaker SDK defaults (config.yaml files) with the SDK's usage telemetry turned off."""
    from sagemaker.core.config.config import load_sagemaker_config

    config = load_sagemaker_config()
    config.setdefault("SchemaVersion", "1.0")
    modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
    modules["TelemetryOptOut"] = True
    return config


@dataclass
class AwsContext:
    """A boto3 session plus the lazily resolved role and bucket; `dry_run` records instead of sending."""

    boto_session: Any
    region: str
    dry_run: DryRun | None = None
    role_arn: str | None = None  # explicit role; otherwise resolved on first use
    bucket_name: str | None = None  # explicit bucket; otherwise resolved on first use
    sources: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """A boto3 client of this session (cached per service)."""
        if service not in self._clients:
            self._clients[service] = self.boto_session.client(service, region_name=self.region)
        return self._clients[service]

    @cached_property
    def sagemaker_session(self) -> Any:
        """The SDK's Session over the same boto3 session; a dry run also turns the SDK's telemetry off."""
        from sagemaker.core.helper.session_helper import Session

        # A bucket given by argument or environment becomes the SDK's default bucket too: the SDK asks for
        # its default bucket even where the caller passes explicit S3 URIs (NotebookJobStep does).
        bucket = self.bucket_name or os.environ.get(BUCKET_ENV) or None
        # The SDK's usage telemetry is a request outside botocore, so a dry run must turn it off. Only then:
        # with any config present the SDK re-validates it on every lookup (~5 s per deployment).
        config = telemetry_off_config() if self.dry_run is not None else None
        return Session(boto_session=self.boto_session, sagemaker_config=config, default_bucket=bucket)

    @cached_property
    def role(self) -> str:
        """Execution role ARN: argument, $CAPTION_ROLE_ARN, then the notebook instance's role (SDK)."""
        if self.role_arn:
            self.sources["role"] = "argument"
            return self.role_arn
        if os.environ.get(ROLE_ENV):
            self.sources["role"] = f"${ROLE_ENV}"
            return os.environ[ROLE_ENV]
        from sagemaker.core.helper.session_helper import get_execution_role

        try:
            arn = get_execution_role(self.sagemaker_session)
        except ValueError as err:  # the caller is a user, not a role: say how to give one
            raise AwsConfigError(
                f"{err}; pass role=... or set ${ROLE_ENV} to a SageMaker execution role ARN"
            ) from err
        self.sources["role"] = "SageMaker SDK (notebook instance metadata or caller identity)"
        return arn

    @cached_property
    def bucket(self) -> str:
        """S3 bucket: argument, $CAPTION_BUCKET, then the SDK's default bucket (created if missing)."""
        if self.bucket_name:
            self.sources["bucket"] = "argument"
            return self.bucket_name
        if os.environ.get(BUCKET_ENV):
            self.sources["bucket"] = f"${BUCKET_ENV}"
            return os.environ[BUCKET_ENV]
        self.sources["bucket"] = "SageMaker SDK default bucket"
        return self.sagemaker_session.default_bucket()

    def s3_uri(self, *parts: str) -> str:
        """s3://<bucket>/caption-workbench/<parts...>."""
        return "s3://" + "/".join([self.bucket, KEY_PREFIX, *(p.strip("/") for p in parts if p)])

    def describe(self) -> str:
        """One line per resolved setting and where it came from (role and bucket resolve on demand)."""
        lines = [f"region: {self.region} ({self.sources.get('region', '?')})"]
        for name in ("role", "bucket"):
            if name in self.__dict__:
                lines.append(f"{name}: {self.__dict__[name]} ({self.sources.get(name, '?')})")
        return "\n".join(lines)


def sdk_region_env(region: str) -> None:
    """Some SageMaker SDK modules build a boto3 client at import time and fail without a default region."""
    for name in REGION_ENVS:
        if os.environ.get(name):
            return
    os.environ["AWS_DEFAULT_REGION"] = region


def connect(
    region: str | None = None,
    role: str | None = None,
    bucket: str | None = None,
    dry_run: bool | DryRun = False,
) -> AwsContext:
    """An AwsContext; with `dry_run` every request is printed and answered locally, none is sent."""
    import boto3

    name, source = resolve_region(region)
    sdk_region_env(name)
    session = boto3.Session(region_name=name)
    if not dry_run and session.get_credentials() is None:
        raise AwsConfigError(
            "no AWS credentials: on a SageMaker notebook instance they come from its role; elsewhere run "
            "`aws configure`, set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or do a dry run (dry_run=True, --dry-run)"
        )
    recorder = (dry_run if isinstance(dry_run, DryRun) else DryRun()) if dry_run else None
    if recorder is not None:
        recorder.attach(session)  # before any client exists: clients copy the session's event hooks
    return AwsContext(session, name, recorder, role, bucket, {"region": source})
