"""Run-folder sync against moto's S3: round trip, skipping unchanged files, checksums, dry run, CLI."""

from __future__ import annotations

import boto3
import pytest
from aws_support import BUCKET, aws_env, fake_run, moto_server  # noqa: F401

from helpers.artifacts import sha256_file
from helpers.aws import ChecksumMismatch, connect, list_objects, pull, push
from helpers.aws.__main__ import main as cli

pytestmark = pytest.mark.usefixtures("aws_env")  # fresh moto state and AWS variables per test

URI = f"s3://{BUCKET}/caption-workbench/runs/smoke"


def tree(root) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under root."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path):
    root = fake_run(tmp_path / "smoke")
    (root / "models/resnet/.history.csv.abc.tmp").write_bytes(b"half-written")  # an interrupted atomic write
    (root / "helpers_cache/__pycache__").mkdir(parents=True)
    (root / "helpers_cache/__pycache__/x.pyc").write_bytes(b"\0")
    return root


def test_push_pull_round_trip_with_checksums(run, tmp_path):
    ctx = connect(bucket=BUCKET)
    report = push(ctx, run)
    expected = {k: v for k, v in tree(run).items() if not k.endswith(".tmp") and "__pycache__" not in k}
    assert sorted(report.transferred) == sorted(expected) and report.skipped == []
    objects = list_objects(ctx, URI)
    assert sorted(objects) == sorted(expected)
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key="caption-workbench/runs/smoke/compare/best.json")
    assert head["Metadata"]["sha256"] == expected["compare/best.json"]

    copy = tmp_path / "copy"
    report = pull(ctx, URI, copy)
    assert tree(copy) == expected
    assert report.bytes == sum(objects.values())
    assert not list(copy.rglob("*.tmp"))  # downloads were renamed into place


def test_unchanged_files_are_skipped_both_ways(run, tmp_path):
    ctx = connect(bucket=BUCKET)
    push(ctx, run)
    (run / "compare/best.json").write_text('{"name": "vgg16"}')
    again = push(ctx, run)
    synced = len(tree(run)) - 2  # all but the temp file and the __pycache__ entry
    assert again.transferred == ["compare/best.json"] and len(again.skipped) == synced - 1
    copy = tmp_path / "copy"
    pull(ctx, URI, copy)
    (copy / "captions/model/config.json").write_text("{}")  # a local edit is replaced by the S3 copy
    again = pull(ctx, URI, copy)
    assert again.transferred == ["captions/model/config.json"] and len(again.skipped) == synced - 1
    assert sha256_file(copy / "captions/model/config.json") == sha256_file(run / "captions/model/config.json")


def test_corrupted_object_is_refused_and_the_local_file_kept(run, tmp_path):
    ctx = connect(bucket=BUCKET)
    push(ctx, run)
    key = "caption-workbench/runs/smoke/captions/model/config.json"
    recorded = boto3.client("s3").head_object(Bucket=BUCKET, Key=key)["Metadata"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=b'{"tampered": 1}', Metadata=recorded)
    copy = tmp_path / "copy"
    (copy / "captions/model").mkdir(parents=True)
    (copy / "captions/model/config.json").write_text("keep me")
    with pytest.raises(ChecksumMismatch, match="config.json"):
        pull(ctx, URI, copy)
    assert (copy / "captions/model/config.json").read_text() == "keep me"
    assert not list(copy.rglob("*.tmp"))


def test_objects_without_a_checksum_or_outside_the_folder_are_refused(tmp_path):
    ctx = connect(bucket=BUCKET)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="other/a.txt", Body=b"no metadata")
    with pytest.raises(ChecksumMismatch, match="no sha256"):
        pull(ctx, f"s3://{BUCKET}/other", tmp_path / "a")
    s3.put_object(Bucket=BUCKET, Key="evil/../../outside.txt", Body=b"x", Metadata={"sha256": "0" * 64})
    with pytest.raises(ValueError, match="outside"):
        pull(ctx, f"s3://{BUCKET}/evil", tmp_path / "b")
    assert not (tmp_path / "outside.txt").exists()


def test_dry_run_prints_the_uploads_and_sends_nothing(run, capsys):
    ctx = connect(bucket=BUCKET, dry_run=True)
    report = push(ctx, run, URI)
    assert len(report.transferred) == len(tree(run)) - 2  # not the temp file, not __pycache__
    puts = [c.params for c in ctx.dry_run.calls if c.operation == "PutObject"]
    assert {p["Key"] for p in puts} == {f"caption-workbench/runs/smoke/{rel}" for rel in report.transferred}
    assert all(p["ChecksumAlgorithm"] == "SHA256" and len(p["Metadata"]["sha256"]) == 64 for p in puts)
    assert ctx.dry_run.operations()[0] == "s3.ListObjectsV2"
    assert "[dry run] s3.PutObject" in capsys.readouterr().out
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


def test_command_line(run, tmp_path, capsys):
    assert cli(["--bucket", BUCKET, "push", "--run-dir", str(run)]) == 0
    assert cli(["ls", "--s3", URI]) == 0
    listing = capsys.readouterr().out
    assert "compare/best.json" in listing and "models/resnet/checkpoints/epoch-1.keras" in listing
    assert cli(["pull", "--s3", URI, "--run-dir", str(tmp_path / "copy")]) == 0
    assert tree(tmp_path / "copy")["compare/best.json"] == sha256_file(run / "compare/best.json")
    assert cli(["pull", "--s3", "not-a-uri", "--run-dir", str(tmp_path)]) == 1
    assert "expected s3://bucket/prefix" in capsys.readouterr().err
