"""All the SageMaker and S3 code of the project: settings, run-folder sync, endpoints, notebook jobs.

    ctx = connect()                      # region, role and bucket: arguments, env vars, instance metadata
    push(ctx, "runs/full")               # run folder -> s3://<bucket>/caption-workbench/runs/full
    dep = deploy(ctx, "runs/full")       # captioner + best classifier as a real-time endpoint
    invoke(ctx, dep.name, "photo.jpg")   # {"predictions": [{"caption": ..., "top_k": [...]}]}
    cleanup(ctx, dep.name)               # endpoint, endpoint config, model, uploaded archive
    try_endpoint(ctx, "runs/full", "photo.jpg")  # all three; the cleanup also runs when a step fails
    notebook_job(ctx, "notebooks/06-flickr-gpt2-finetune.ipynb", {"preset": "full"}, "ml.g5.2xlarge")

`connect(dry_run=True)` prints every request instead of sending it. The same commands exist on the
command line: ``python -m helpers.aws --help``. The SageMaker SDK is imported only when needed.
"""

from helpers.aws.context import AwsConfigError, AwsContext, connect
from helpers.aws.dryrun import DryRun
from helpers.aws.endpoint import Deployment, cleanup, deploy, invoke, try_endpoint
from helpers.aws.jobs import NotebookJob, notebook_job
from helpers.aws.package import package_model
from helpers.aws.s3sync import ChecksumMismatch, list_objects, pull, push

__all__ = [
    "AwsConfigError",
    "AwsContext",
    "ChecksumMismatch",
    "Deployment",
    "DryRun",
    "NotebookJob",
    "cleanup",
    "connect",
    "deploy",
    "invoke",
    "list_objects",
    "notebook_job",
    "package_model",
    "pull",
    "push",
    "try_endpoint",
]
