"""``python -m helpers.aws``: run-folder sync, endpoint deployment and notebook jobs from a shell.

Examples::

    python -m helpers.aws whoami
    python -m helpers.aws push --run-dir runs/full
    python -m helpers.aws --dry-run deploy --run-dir runs/full --instance-type ml.g4dn.xlarge
    python -m helpers.aws job notebooks/06-flickr-gpt2-finetune.ipynb -p preset=full \
        --instance-type ml.g5.2xlarge
"""

from __future__ import annotations

import argparse
import json
import sys

from helpers.aws import endpoint, jobs, s3sync
from helpers.aws.context import AwsConfigError, connect


def _params(pairs: list[str]) -> dict[str, str]:
    """['preset=full', ...] -> {'preset': 'full'} (notebook-job parameters are strings)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"expected key=value, got {pair!r}")
        out[key] = value
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.aws", description=__doc__.splitlines()[0])
    p.add_argument("--region", help="AWS region (default: $AWS_REGION/$AWS_DEFAULT_REGION, then AWS config)")
    p.add_argument("--role", help="execution role ARN (default: $CAPTION_ROLE_ARN, then the instance's role)")
    p.add_argument("--bucket", help="S3 bucket (default: $CAPTION_BUCKET, then the SageMaker default bucket)")
    p.add_argument("--dry-run", action="store_true", help="print every request, send none")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("whoami", help="show the resolved region, role and bucket")
    push = sub.add_parser("push", help="upload a run folder (SHA-256 checked)")
    push.add_argument("--run-dir", required=True)
    push.add_argument(
        "--s3", help="destination s3://bucket/prefix (default: <bucket>/caption-workbench/runs/<name>)"
    )
    pull = sub.add_parser("pull", help="download a run folder (SHA-256 checked)")
    pull.add_argument("--s3", required=True)
    pull.add_argument("--run-dir", required=True)
    ls = sub.add_parser("ls", help="list the files under an S3 prefix")
    ls.add_argument("--s3", required=True)
    dep = sub.add_parser("deploy", help="deploy the captioner (+ best classifier) as a real-time endpoint")
    dep.add_argument("--run-dir", required=True)
    dep.add_argument("--instance-type", default=endpoint.DEFAULT_INSTANCE)
    dep.add_argument("--name", help="endpoint name (default: caption-workbench-<time>)")
    dep.add_argument("--no-classifier", action="store_true", help="captions only")
    dep.add_argument("--no-wait", action="store_true", help="return before the endpoint is InService")
    dep.add_argument(
        "--no-wheels",
        action="store_true",
        help="leave the wheels out: the container pip-installs at start (internet or CA_REPOSITORY_ARN)",
    )
    inv = sub.add_parser("invoke", help="caption an image on an endpoint")
    inv.add_argument("--name", required=True)
    inv.add_argument("image")
    inv.add_argument("--decoding", choices=("greedy", "beam"))
    inv.add_argument("--alternatives", action="store_true")
    clean = sub.add_parser("cleanup", help="delete an endpoint, its config, model and archive")
    clean.add_argument("--name", required=True)
    job = sub.add_parser("job", help="run a notebook as a SageMaker Notebook Job")
    job.add_argument("notebook")
    job.add_argument("-p", "--param", action="append", default=[], help="notebook parameter key=value")
    job.add_argument("--instance-type", default=jobs.DEFAULT_INSTANCE)
    job.add_argument("--pull-from", help="s3:// run folder to download into the job first")
    job.add_argument("--no-start", action="store_true", help="create the pipeline without starting it")
    return p


def run(args: argparse.Namespace) -> object:
    """Do what `args` asks; returns something to print."""
    ctx = connect(args.region, args.role, args.bucket, dry_run=args.dry_run)
    if args.command == "whoami":
        _ = ctx.role, ctx.bucket  # resolve both, then show each with where it came from
        return ctx.describe()
    if args.command == "push":
        return s3sync.push(ctx, args.run_dir, args.s3)
    if args.command == "pull":
        return s3sync.pull(ctx, args.s3, args.run_dir)
    if args.command == "ls":
        return "\n".join(
            f"{size:>12}  {key}" for key, size in sorted(s3sync.list_objects(ctx, args.s3).items())
        )
    if args.command == "deploy":
        classifier = None if args.no_classifier else "best"
        dep = endpoint.deploy(
            ctx,
            args.run_dir,
            args.instance_type,
            args.name,
            classifier,
            wait=not args.no_wait,
            offline=not args.no_wheels,
        )
        return json.dumps(dep.to_json(), indent=2)
    if args.command == "invoke":
        options = {k: v for k, v in (("decoding", args.decoding), ("alternatives", args.alternatives)) if v}
        return json.dumps(endpoint.invoke(ctx, args.name, args.image, **options), indent=2)
    if args.command == "cleanup":
        return endpoint.cleanup(ctx, args.name)
    launched = jobs.notebook_job(
        ctx, args.notebook, _params(args.param), args.instance_type, args.pull_from, start=not args.no_start
    )
    return f"pipeline {launched.pipeline_name}: {launched.execution_arn}\noutput: {launched.output_prefix}"


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    args = parser().parse_args(argv)
    expected = (AwsConfigError, FileNotFoundError, ValueError, TypeError, s3sync.ChecksumMismatch)
    try:
        result = run(args)
    except (*expected, ClientError, BotoCoreError) as err:  # AWS said no, or no credentials: say so
        print(f"error: {err}", file=sys.stderr)
        return 1
    if isinstance(result, str):
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
