"""Copy a run folder to and from S3, every file checked by SHA-256 on both ends.

`push` uploads each changed file with its SHA-256 in the object's metadata (``x-amz-meta-sha256``) and
S3's own SHA-256 upload checksum, then reads the object's metadata back and compares. `pull` downloads to
a temporary file, hashes it, compares with the metadata and only then renames it into place, so a
corrupted or partial download never replaces a good file. Unchanged files (same size and SHA-256) are
skipped both ways.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from helpers.artifacts import sha256_file
from helpers.aws.context import AwsContext

SHA_KEY = "sha256"  # object metadata key: x-amz-meta-sha256
#: Never synced: atomic-write temp files, caches and editor state.
SKIP_PARTS = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")


class ChecksumMismatch(RuntimeError):
    """A transferred file's SHA-256 differs from its source's."""


@dataclass
class SyncReport:
    """What a push or pull did (relative paths) and how many bytes moved."""

    transferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes: int = 0
    dry_run: bool = False  # nothing was copied: `transferred` is what a real run would copy

    def __str__(self) -> str:
        done = "to copy (dry run)" if self.dry_run else "copied"
        return (
            f"{len(self.transferred)} files ({self.bytes / 1e6:.1f} MB) {done}, {len(self.skipped)} unchanged"
        )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b/' -> ('bucket', 'a/b'); anything else is a clear error."""
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"expected s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def _key(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def local_files(root: Path) -> dict[str, Path]:
    """Relative POSIX path -> file for every file worth syncing under `root`."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part in SKIP_PARTS for part in rel.parts) or (
            path.name.startswith(".") and path.suffix == ".tmp"
        ):
            continue
        files[rel.as_posix()] = path
    return files


def list_objects(ctx: AwsContext, s3_uri: str) -> dict[str, int]:
    """Relative key -> size (bytes) of every object under an S3 prefix."""
    bucket, prefix = split_s3_uri(s3_uri)
    found: dict[str, int] = {}
    pages = ctx.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=_key(prefix, ""))
    for page in pages:
        for obj in page.get("Contents", []):
            found[obj["Key"][len(_key(prefix, "")) :]] = int(obj["Size"])
    return found


def remote_sha256(ctx: AwsContext, bucket: str, key: str) -> str | None:
    """The SHA-256 recorded in an object's metadata by `push`, or None."""
    head = ctx.client("s3").head_object(Bucket=bucket, Key=key)
    return head.get("Metadata", {}).get(SHA_KEY)


def upload_file(ctx: AwsContext, path: Path, bucket: str, key: str, sha: str | None = None) -> str:
    """Upload one file with its SHA-256 and verify what S3 stored; returns the SHA-256."""
    sha = sha or sha256_file(path)
    extra = {"Metadata": {SHA_KEY: sha}, "ChecksumAlgorithm": "SHA256"}  # S3 rejects a corrupted body
    if ctx.dry_run is not None:
        size = path.stat().st_size
        ctx.dry_run.record("s3", "PutObject", {"Bucket": bucket, "Key": key, "ContentLength": size, **extra})
        return sha
    ctx.client("s3").upload_file(str(path), bucket, key, ExtraArgs=extra)
    stored = remote_sha256(ctx, bucket, key)
    if stored != sha:
        raise ChecksumMismatch(f"s3://{bucket}/{key}: stored SHA-256 {stored} != local {sha} ({path})")
    return sha


def push(ctx: AwsContext, run_dir: str | os.PathLike, s3_uri: str | None = None) -> SyncReport:
    """Upload a run folder (default destination: s3://<bucket>/caption-workbench/runs/<folder name>)."""
    root = Path(run_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"run folder {root} does not exist")
    s3_uri = s3_uri or ctx.s3_uri("runs", root.name)
    bucket, prefix = split_s3_uri(s3_uri)
    remote = list_objects(ctx, s3_uri)
    report = SyncReport(dry_run=ctx.dry_run is not None)
    for rel, path in tqdm(local_files(root).items(), desc=f"push to {s3_uri}", unit="file"):
        sha, size = sha256_file(path), path.stat().st_size
        if remote.get(rel) == size and remote_sha256(ctx, bucket, _key(prefix, rel)) == sha:
            report.skipped.append(rel)
            continue
        upload_file(ctx, path, bucket, _key(prefix, rel), sha)
        report.transferred.append(rel)
        report.bytes += size
    print(f"push {root} -> {s3_uri}: {report}", flush=True)
    return report


def download_file(ctx: AwsContext, bucket: str, key: str, dest: Path) -> str:
    """Download one object, verify its SHA-256 against the metadata, then rename it into place."""
    expected = remote_sha256(ctx, bucket, key)
    if expected is None:
        raise ChecksumMismatch(
            f"s3://{bucket}/{key} has no {SHA_KEY} metadata (not uploaded by push): cannot verify it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        ctx.client("s3").download_file(bucket, key, tmp)
        got = sha256_file(tmp)
        if got != expected:
            raise ChecksumMismatch(f"s3://{bucket}/{key}: downloaded SHA-256 {got} != recorded {expected}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return expected


def pull(ctx: AwsContext, s3_uri: str, run_dir: str | os.PathLike) -> SyncReport:
    """Download everything under an S3 prefix into a run folder, skipping files that already match."""
    root = Path(run_dir).resolve()
    bucket, prefix = split_s3_uri(s3_uri)
    report = SyncReport(dry_run=ctx.dry_run is not None)
    for rel, size in tqdm(sorted(list_objects(ctx, s3_uri).items()), desc=f"pull from {s3_uri}", unit="file"):
        dest = root / rel
        if rel.startswith("/") or ".." in Path(rel).parts:  # a key must not write outside the run folder
            raise ValueError(f"refusing S3 key {_key(prefix, rel)!r}: it points outside {root}")
        unchanged = dest.is_file() and dest.stat().st_size == size
        if unchanged and sha256_file(dest) == remote_sha256(ctx, bucket, _key(prefix, rel)):
            report.skipped.append(rel)
            continue
        download_file(ctx, bucket, _key(prefix, rel), dest)
        report.transferred.append(rel)
        report.bytes += size
    print(f"pull {s3_uri} -> {root}: {report}", flush=True)
    return report
