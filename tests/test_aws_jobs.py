"""A notebook as a SageMaker Notebook Job: the pipeline moto receives, the staged inputs, the init script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import shell_stubs as stubs
from aws_support import BUCKET, ROLE, aws_env, moto_server  # noqa: F401

from helpers import KERNEL_NAME
from helpers.aws import connect, notebook_job
from helpers.aws.__main__ import main as cli
from helpers.config import project_root

pytestmark = pytest.mark.usefixtures("aws_env")  # fresh moto state and AWS variables per test
NOTEBOOK = project_root() / "notebooks/01-preprocess.ipynb"
PULL = f"s3://{BUCKET}/caption-workbench/runs/full"


def staged(args: dict, dest: Path) -> Path:
    """Download the job's input channel (what the job finds in $SM_EXECUTION_INPUT_PATH) to dest."""
    uri = args["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, prefix = uri[5:].split("/", 1)
    s3 = boto3.client("s3")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]:
        path = dest / obj["Key"][len(prefix) + 1 :]
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(path))
    return dest


def test_pipeline_with_one_notebook_job_step(tmp_path):
    ctx = connect(role=ROLE, bucket=BUCKET)
    job = notebook_job(ctx, NOTEBOOK, {"preset": "full", "epochs": "3"}, "ml.g5.2xlarge", pull_from=PULL)

    sm = boto3.client("sagemaker")
    described = sm.describe_pipeline(PipelineName="caption-workbench-01-preprocess")
    assert described["RoleArn"] == ROLE
    (step,) = json.loads(described["PipelineDefinition"])["Steps"]
    args = step["Arguments"]
    assert step["Type"] == "Training" and args["RoleArn"] == ROLE
    assert args["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    image = args["AlgorithmSpecification"]["TrainingImage"]
    assert "sagemaker-distribution" in image and image.endswith("-gpu") and ".us-east-1." in image
    assert args["HyperParameters"] == {"preset": "full", "epochs": "3"}
    env = args["Environment"]
    assert (env["SM_KERNEL_NAME"], env["SM_INPUT_NOTEBOOK_NAME"]) == (KERNEL_NAME, NOTEBOOK.name)
    assert (env["CAPTION_RUNS_DIR"], env["CAPTION_PULL_S3_URI"]) == ("/opt/ml/model", PULL)
    assert env["CAPTION_PULL_RUN_DIR"] == "/opt/ml/model/full"
    (execution,) = sm.list_pipeline_executions(PipelineName=job.pipeline_name)["PipelineExecutionSummaries"]
    assert execution["PipelineExecutionArn"] == job.execution_arn

    inputs = staged(args, tmp_path / "input")
    assert (inputs / NOTEBOOK.name).read_bytes() == NOTEBOOK.read_bytes()
    for name in ("helpers/aws/jobs.py", "pyproject.toml", "requirements.txt", "environment.yml", "README.md"):
        assert (inputs / "project" / name).is_file(), name
    assert not list(inputs.rglob("__pycache__"))
    script = inputs / env["SM_INIT_SCRIPT"]
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or "shellcheck"
    result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    run_init_script(inputs, env, tmp_path)


def run_init_script(inputs: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Source the init script as the job does, with stub micromamba and nvidia-smi (a GPU instance)."""
    bin_dir = stubs.install(tmp_path / "stubs", (), extra=("nvidia-smi",))
    stubs.write_exec(
        bin_dir / "micromamba",
        stubs.RECORD + 'mkdir -p "$4/bin" && cp "$STUB_DIR/templates/python" "$4/bin/python"\n',
    )
    log, work = tmp_path / "calls.log", tmp_path / "work"
    job_env = {k: env[k] for k in ("CAPTION_PULL_S3_URI", "CAPTION_PULL_RUN_DIR")}
    environment = stubs.stub_env(
        tmp_path / "stubs",
        log,
        tmp_path,
        SM_EXECUTION_INPUT_PATH=str(inputs),
        CAPTION_JOB_WORK=str(work),
        **job_env,
    )
    subprocess.run(["bash", "-c", f'source "{inputs / env["SM_INIT_SCRIPT"]}"'], env=environment, check=True)
    python = f"{work}/env/bin/python"
    pin = next(ln for ln in (work / "requirements.txt").read_text().split() if ln.startswith("tensorflow=="))
    assert [c.argv for c in stubs.read_calls(log) if c.command != "nvidia-smi"] == [
        (
            str(bin_dir / "micromamba"),
            "create",
            "--yes",
            "--prefix",
            f"{work}/env",
            "--file",
            f"{work}/environment.yml",
        ),
        (python, "-m", "pip", "install", "--no-deps", str(work)),
        (python, "-m", "pip", "install", pin.replace("tensorflow", "tensorflow[and-cuda]")),
        (
            python,
            "-m",
            "ipykernel",
            "install",
            "--user",
            "--name",
            KERNEL_NAME,
            "--display-name",
            f"Python 3.11 ({KERNEL_NAME})",
        ),
        (python, "-m", "helpers.aws", "pull", "--s3", PULL, "--run-dir", "/opt/ml/model/full"),
    ]
    assert (work / "helpers/__init__.py").is_file()


def test_parameters_must_be_strings():
    ctx = connect(role=ROLE, bucket=BUCKET)
    with pytest.raises(TypeError, match="strings"):
        notebook_job(ctx, NOTEBOOK, {"preset": "full", "epochs": 3})


def test_dry_run_on_the_command_line_sends_nothing(capsys):
    argv = ["--role", ROLE, "--bucket", BUCKET, "--dry-run", "job", str(NOTEBOOK), "-p", "preset=full"]
    assert cli([*argv, "--instance-type", "ml.m5.4xlarge"]) == 0
    out = capsys.readouterr().out
    assert (
        "[dry run] sagemaker.CreatePipeline " in out and "[dry run] sagemaker.StartPipelineExecution " in out
    )
    assert '\\"InstanceType\\": \\"ml.m5.4xlarge\\"' in out and "-cpu" in out  # a CPU image for an m5
    assert "execution arn:aws:sagemaker:us-east-1:000000000000:pipeline/" in out
    assert boto3.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)
