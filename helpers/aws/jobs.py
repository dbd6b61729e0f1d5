"""Run one notebook as a SageMaker Notebook Job on a bigger instance (a NotebookJobStep in a Pipeline).

This is how a long run moves off the notebook instance, e.g. 06 on an ml.g5.12xlarge. The job runs in the
SageMaker Distribution image; an initialization script builds this project's Python 3.11 environment
from environment.yml there, installs `helpers` and registers the ``caption-workbench`` kernel the
notebooks declare. With `pull_from`, it first downloads a run folder from S3 (the inputs of a later
notebook, e.g. 01's data for 02). Inside the job ``$CAPTION_RUNS_DIR`` is /opt/ml/model, so the run
folder comes back as the job's ``model.tar.gz`` under the step's S3 output prefix.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import KERNEL_NAME
from helpers.aws.context import AwsContext
from helpers.config import project_root

#: SageMaker Distribution release (the image catalogue of the SDK); GPU or CPU build by instance type.
DISTRIBUTION_VERSION = "3.2.0"
DEFAULT_INSTANCE = "ml.g4dn.xlarge"
JOB_RUNS_DIR = "/opt/ml/model"  # uploaded by SageMaker as model.tar.gz when the job ends
PROJECT_FILES = ("helpers", "pyproject.toml", "requirements.txt", "environment.yml", "README.md")

INIT_SCRIPT = """#!/bin/bash
# Sourced before the notebook runs: build the project's environment and register its Jupyter kernel.
caption_workbench_setup() (
    set -euo pipefail
    work="${{CAPTION_JOB_WORK:-/tmp/caption-workbench}}" # a writable copy of the project
    rm -rf "$work"
    cp -r "${{SM_EXECUTION_INPUT_PATH:?}}/project" "$work"
    if command -v micromamba >/dev/null; then
        micromamba create --yes --prefix "$work/env" --file "$work/environment.yml"
    else
        conda env create --prefix "$work/env" --file "$work/environment.yml"
    fi
    py="$work/env/bin/python"
    "$py" -m pip install --no-deps "$work"
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        "$py" -m pip install "{tf_cuda}"
    fi
    "$py" -m ipykernel install --user --name {kernel} --display-name "Python 3.11 ({kernel})"
    if [ -n "${{CAPTION_PULL_S3_URI:-}}" ]; then
        "$py" -m helpers.aws pull --s3 "$CAPTION_PULL_S3_URI" --run-dir "$CAPTION_PULL_RUN_DIR"
    fi
)
caption_workbench_setup
"""


@dataclass
class NotebookJob:
    """A started (or, in a dry run, described) notebook job."""

    pipeline_name: str
    execution_arn: str | None
    output_prefix: str  # s3:// prefix the step writes under (per execution id)
    definition: str  # the pipeline definition JSON sent to CreatePipeline
    execution: Any = None  # sagemaker PipelineExecution: .describe(), .wait()


def tensorflow_cuda_pin(requirements: Path) -> str:
    """'tensorflow[and-cuda]==X' with X the tensorflow pin of requirements.txt."""
    match = re.search(r"^tensorflow==(\S+)", requirements.read_text(), flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{requirements} has no tensorflow== pin")
    return f"tensorflow[and-cuda]=={match.group(1)}"


def stage_project(dest: Path) -> tuple[Path, Path]:
    """Copy what the job needs to install the project into `dest`; returns (project dir, init script)."""
    root = project_root()
    if root is None:
        raise FileNotFoundError("notebook jobs need the checkout: install with `pip install -e .`")
    project = dest / "project"
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, project / name)
    script = dest / "init-caption-workbench.sh"
    script.write_text(
        INIT_SCRIPT.format(tf_cuda=tensorflow_cuda_pin(root / "requirements.txt"), kernel=KERNEL_NAME)
    )
    return project, script


def distribution_image(region: str, instance_type: str) -> str:
    """The SageMaker Distribution image for the region, GPU build on GPU instances."""
    from sagemaker.core import image_uris

    return image_uris.retrieve(
        framework="sagemaker-distribution",
        region=region,
        version=DISTRIBUTION_VERSION,
        instance_type=instance_type,
        image_scope="inference",
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9-]+", "-", text).strip("-")


def _check_parameters(parameters: dict[str, str]) -> dict[str, str]:
    """Notebook-job parameters reach the notebook as strings, so only strings are accepted here."""
    bad = {k: v for k, v in parameters.items() if not isinstance(v, str)}
    if bad:
        raise TypeError(f"notebook job parameters must be strings (the service passes strings): {bad}")
    return dict(parameters)


def notebook_job(
    ctx: AwsContext,
    notebook: str | os.PathLike,
    parameters: dict[str, str] | None = None,
    instance_type: str = DEFAULT_INSTANCE,
    pull_from: str | None = None,
    volume_gb: int = 100,
    max_runtime_h: float = 24,
    start: bool = True,
) -> NotebookJob:
    """Create (or update) a one-step pipeline that runs `notebook`, and start it."""
    from sagemaker.mlops.workflow.notebook_job_step import NotebookJobStep
    from sagemaker.mlops.workflow.pipeline import Pipeline

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} not found")
    params = _check_parameters(parameters or {})
    env = {"CAPTION_RUNS_DIR": JOB_RUNS_DIR}
    if pull_from:  # the preset's run folder inside the job: /opt/ml/model/<preset>
        env.update(
            CAPTION_PULL_S3_URI=pull_from,
            CAPTION_PULL_RUN_DIR=f"{JOB_RUNS_DIR}/{params.get('preset', 'smoke')}",
        )
    stem = _slug(notebook.stem)
    pipeline_name, root_uri = f"caption-workbench-{stem}", ctx.s3_uri("jobs")
    with tempfile.TemporaryDirectory() as tmp:
        project, script = stage_project(Path(tmp))
        step = NotebookJobStep(
            name=stem,
            notebook_job_name=f"caption-{stem}",
            input_notebook=str(notebook),
            image_uri=distribution_image(ctx.region, instance_type),
            kernel_name=KERNEL_NAME,
            role=ctx.role,
            s3_root_uri=root_uri,
            parameters=params,
            environment_variables=env,
            initialization_script=str(script),
            additional_dependencies=[str(project)],
            instance_type=instance_type,
            volume_size=volume_gb,
            max_runtime_in_seconds=int(max_runtime_h * 3600),
        )
        pipeline = Pipeline(name=pipeline_name, steps=[step], sagemaker_session=ctx.sagemaker_session)
        # compiling the definition uploads the notebook, the script and the project to S3
        pipeline.upsert(role_arn=ctx.role, description=f"Run {notebook.name} as a notebook job")
    definition = pipeline.describe()["PipelineDefinition"]
    execution = pipeline.start() if start else None
    arn = execution.arn if execution is not None else None
    print(f"pipeline {pipeline_name}: {instance_type}, execution {arn}", flush=True)
    return NotebookJob(pipeline_name, arn, f"{root_uri}/{pipeline_name}", definition, execution)
