"""Region, role and bucket resolution: argument, then environment, then the notebook instance (moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_support import BUCKET, REGION, ROLE, aws_env, moto_server  # noqa: F401

from helpers.aws import AwsConfigError, connect
from helpers.aws.__main__ import main as cli
from helpers.aws.context import resolve_region

pytestmark = pytest.mark.usefixtures("aws_env")  # fresh moto state and AWS variables per test


def test_region_order(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve_region("ap-south-1") == ("ap-south-1", "argument")
    assert resolve_region() == ("eu-west-1", "$AWS_REGION")
    monkeypatch.delenv("AWS_REGION")
    assert resolve_region() == (REGION, "$AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-north-1\n")  # what SageMaker writes on a notebook instance
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert resolve_region() == ("eu-north-1", "AWS config")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing"))
    with pytest.raises(AwsConfigError, match="AWS_DEFAULT_REGION"):
        resolve_region()


def test_role_and_bucket_from_arguments_then_environment(monkeypatch, capsys):
    ctx = connect(role="arn:aws:iam::1:role/given", bucket="given-bucket")
    assert (ctx.role, ctx.bucket) == ("arn:aws:iam::1:role/given", "given-bucket")
    assert ctx.sources == {"region": "$AWS_DEFAULT_REGION", "role": "argument", "bucket": "argument"}
    monkeypatch.setenv("CAPTION_ROLE_ARN", ROLE)
    monkeypatch.setenv("CAPTION_BUCKET", BUCKET)
    ctx = connect()
    assert (ctx.role, ctx.bucket) == (ROLE, BUCKET)
    assert ctx.s3_uri("runs", "smoke") == f"s3://{BUCKET}/caption-workbench/runs/smoke"
    assert "$CAPTION_ROLE_ARN" in ctx.describe() and "$CAPTION_BUCKET" in ctx.describe()
    assert cli(["whoami"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"region: {REGION} ($AWS_DEFAULT_REGION)",
        f"role: {ROLE} ($CAPTION_ROLE_ARN)",
        f"bucket: {BUCKET} ($CAPTION_BUCKET)",
    ]


def test_role_from_notebook_instance_metadata(monkeypatch, tmp_path):
    """On a notebook instance the SDK reads the metadata file and asks DescribeNotebookInstance."""
    from sagemaker.core.helper import session_helper

    boto3.client("sagemaker").create_notebook_instance(
        NotebookInstanceName="caption-nb", InstanceType="ml.t3.medium", RoleArn=ROLE
    )
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"ResourceName": "caption-nb", "ResourceArn": "arn:x"}))
    monkeypatch.setattr(session_helper, "NOTEBOOK_METADATA_FILE", str(metadata))
    ctx = connect()
    assert ctx.role == ROLE
    assert "notebook instance" in ctx.sources["role"]


def test_default_bucket_is_the_sdks_in_a_dry_run():
    """The SDK's default bucket is sagemaker-<region>-<account>; a dry run shows the calls that find it."""
    ctx = connect(dry_run=True)
    ctx.dry_run.echo = False
    assert ctx.bucket == f"sagemaker-{REGION}-000000000000"
    assert ctx.sources["bucket"] == "SageMaker SDK default bucket"
    assert ctx.dry_run.operations()[0] == "sts.GetCallerIdentity"
    head = ctx.dry_run.calls[-1]  # the SDK checks that the bucket is the caller's own
    assert (head.operation, head.params["ExpectedBucketOwner"]) == ("HeadBucket", "000000000000")
    assert boto3.client("s3").list_buckets()["Buckets"][0]["Name"] == BUCKET  # nothing was sent


def test_role_from_caller_identity_in_a_dry_run():
    ctx = connect(dry_run=True)
    ctx.dry_run.echo = False
    assert ctx.role == "arn:aws:iam::000000000000:role/dry-run"
    assert ctx.dry_run.operations() == ["sts.GetCallerIdentity", "iam.GetRole"]


def test_a_user_identity_is_not_a_role():
    """Off a notebook instance, as an IAM user, the SDK finds no role: the error says how to give one."""
    from botocore.awsrequest import AWSResponse

    ctx = connect()
    identity = {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/alice", "UserId": "AIDA"}
    # The SDK asks STS at its public regional endpoint (not AWS_ENDPOINT_URL): answer it in process.
    ctx.boto_session.events.register(
        "before-call.sts.GetCallerIdentity", lambda **_: (AWSResponse("https://sts", 200, {}, None), identity)
    )
    with pytest.raises(AwsConfigError, match="not a role.*CAPTION_ROLE_ARN"):
        _ = ctx.role


def test_missing_credentials_are_named_before_any_request(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to fall back on here
    with pytest.raises(AwsConfigError, match="no AWS credentials.*aws configure"):
        connect()
    assert connect(dry_run=True).dry_run is not None  # a dry run sends nothing, so it needs none
