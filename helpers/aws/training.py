"""Train the captioner as a SageMaker training job: ModelTrainer + Torchrun, managed spot, S3 checkpoints.

The job runs `python -m helpers.caption.job` under the SDK's own torchrun driver in the PyTorch training
image; the run folder's data reach it as input channels (uploaded with `helpers.aws.s3sync.push`), its
checkpoints live in /opt/ml/checkpoints (synced to S3 by SageMaker, so a reclaimed spot instance resumes),
and its SM_MODEL_DIR comes back as model.tar.gz, which `fetch_model` unpacks into run_dir/captions/model/.
"""

from __future__ import annotations

import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import artifacts
from helpers.aws import s3sync
from helpers.aws.context import AwsContext
from helpers.config import project_root

#: PyTorch training image of the SDK's catalogue (image_uri_config/pytorch.json). 2.9.0 on py312 is the
#: newest with Python 3.12: transformers 5.24 needs torch >= 2.6 and Python >= 3.11, and py312 is closer
#: to the notebook's 3.11 than 2.10.0's py313 (fewer pins without wheels). No image has torch 2.13.
TORCH_VERSION = "2.9.0"
PY_VERSION = "py312"
IMAGE_PYTHON = "3.12"
IMAGE_GLIBC = "2.35"  # the 2.9.0 training images are built on Ubuntu 22.04
CHECKPOINTS = "/opt/ml/checkpoints"  # SageMaker syncs this folder with CheckpointConfig.s3_uri
ENTRY_SCRIPT = "train_captioner.py"
ENTRY_CODE = (
    "from helpers.caption.job import main\n\nif __name__ == '__main__':\n    raise SystemExit(main())\n"
)
#: Packages the image lacks (torch and numpy come with it); resolved for py312 by the platform check.
JOB_REQUIREMENTS = ("transformers", "tokenizers", "safetensors", "pandas")
#: The training loop prints "epoch 3/10: train 2.3456, val 2.5678 (41 s)" (helpers.caption.train).
METRICS = {"train:loss": r"epoch \d+/\d+: train ([0-9.]+),", "val:loss": r", val ([0-9.]+) \("}


@dataclass
class JobSpec:
    """What to run and where: the knobs of notebook 09's parameters cell."""

    instance_type: str = "ml.g5.12xlarge"
    instance_count: int = 1
    gpus_per_instance: int = 4  # torchrun processes per node
    spot: bool = True
    max_run_s: int = 8 * 3600  # hard cap on training time (paid)
    max_wait_s: int = 12 * 3600  # spot: training time plus waiting for capacity; >= max_run_s
    volume_gb: int = 50
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # channel name -> s3:// prefix

    def __post_init__(self) -> None:
        if self.spot and self.max_wait_s < self.max_run_s:
            raise ValueError(f"max_wait_s ({self.max_wait_s}) must be >= max_run_s ({self.max_run_s})")
        if self.instance_count < 1 or self.gpus_per_instance < 1:
            raise ValueError("instance_count and gpus_per_instance must be >= 1")


def training_image(region: str, instance_type: str) -> str:
    """The pinned PyTorch training image (GPU build on GPU instances) for the region."""
    from sagemaker.core import image_uris

    return image_uris.retrieve(
        framework="pytorch",
        region=region,
        version=TORCH_VERSION,
        py_version=PY_VERSION,
        instance_type=instance_type,
        image_scope="training",
    )


def job_requirements(requirements: Path) -> list[str]:
    """The project's pins of JOB_REQUIREMENTS ("name==version" lines of requirements.txt)."""
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements.read_text(), flags=re.MULTILINE))
    pins = {k.lower(): v for k, v in pins.items()}
    missing = [name for name in JOB_REQUIREMENTS if name not in pins]
    if missing:
        raise ValueError(f"{requirements} pins none of {missing}")
    return [f"{name}=={pins[name]}" for name in JOB_REQUIREMENTS]


def stage_source(dest: Path) -> Path:
    """A source dir for the job: the helpers package, the entry script and requirements.txt."""
    root = project_root()
    if root is None:
        raise FileNotFoundError("training jobs need the checkout: install with `pip install -e .`")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root / "helpers", dest / "helpers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / ENTRY_SCRIPT).write_text(ENTRY_CODE)
    (dest / "requirements.txt").write_text("\n".join(job_requirements(root / "requirements.txt")) + "\n")
    return dest


def check_requirements(source_dir: Path) -> list[str]:
    """Resolve the staged requirements for the image's Python and glibc before paying for a job."""
    from helpers import platform_check

    return platform_check.resolve(source_dir / "requirements.txt", glibc=IMAGE_GLIBC, python=IMAGE_PYTHON)


def build_trainer(ctx: AwsContext, spec: JobSpec, source_dir: Path, name: str = "caption-train") -> Any:
    """A ModelTrainer for `spec` (nothing is sent until `.train()`)."""
    from sagemaker.train.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
    )
    from sagemaker.train.distributed import Torchrun
    from sagemaker.train.model_trainer import ModelTrainer

    stopping = StoppingCondition(max_runtime_in_seconds=spec.max_run_s)
    if spec.spot:
        stopping.max_wait_time_in_seconds = spec.max_wait_s
    trainer = ModelTrainer(
        sagemaker_session=ctx.sagemaker_session,
        role=ctx.role,
        base_job_name=name,
        training_image=training_image(ctx.region, spec.instance_type),
        source_code=SourceCode(
            source_dir=str(source_dir), entry_script=ENTRY_SCRIPT, requirements="requirements.txt"
        ),
        distributed=Torchrun(process_count_per_node=spec.gpus_per_instance),
        compute=Compute(
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
            volume_size_in_gb=spec.volume_gb,
            enable_managed_spot_training=spec.spot,
        ),
        stopping_condition=stopping,
        input_data_config=[InputData(channel_name=k, data_source=v) for k, v in spec.channels.items()],
        output_data_config=OutputDataConfig(s3_output_path=ctx.s3_uri("jobs")),
        checkpoint_config=CheckpointConfig(s3_uri=ctx.s3_uri("checkpoints", name), local_path=CHECKPOINTS),
        hyperparameters=dict(spec.hyperparameters),
    )
    return trainer.with_metric_definitions(metric_definitions())


def metric_definitions() -> list[Any]:
    """The loss lines of the training loop as console metrics."""
    from sagemaker.core.shapes import MetricDefinition

    return [MetricDefinition(name=k, regex=v) for k, v in METRICS.items()]


def upload_inputs(ctx: AwsContext, run_dir: Path, folders: dict[str, str]) -> dict[str, str]:
    """Push run_dir/<folder> for each channel; returns channel -> s3:// prefix."""
    channels = {}
    for channel, rel in folders.items():
        uri = ctx.s3_uri("runs", run_dir.name, rel)
        s3sync.push(ctx, run_dir / rel, uri)
        channels[channel] = uri
    return channels


def unpack_model(tarball: Path, model_dir: Path) -> Path:
    """Unpack a job's model.tar.gz into `model_dir` (replaced whole, only once the archive checked out)."""
    partial = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(partial, filter="data")  # rejects absolute paths and links out of the folder
    if not (partial / "captioner.json").is_file():
        shutil.rmtree(partial)
        raise ValueError(f"{tarball} holds no captioner.json: not a captioner folder")
    shutil.rmtree(model_dir, ignore_errors=True)
    partial.rename(model_dir)
    return model_dir


def fetch_model(
    ctx: AwsContext, model_s3_uri: str, run_dir: Path, record: dict[str, Any], variant: str = "model"
) -> Path:
    """Download the job's model.tar.gz into run_dir/captions/model/ (the blind twin's: captions/blind-model/)
    and write its record (captions/job.json; the blind twin's: captions/jobs/blind.json)."""
    bucket, key = s3sync.split_s3_uri(model_s3_uri)
    tarball = run_dir / "captions" / f"job-{variant}.tar.gz"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    # A job's model.tar.gz has no checksum metadata (s3sync.download_file needs it); tarfile checks it.
    ctx.client("s3").download_file(bucket, key, str(tarball))
    model_dir = unpack_model(tarball, run_dir / MODEL_DIRS[variant])
    tarball.unlink()
    artifacts.write_json(record_path(run_dir, variant), {**record, "model_s3_uri": model_s3_uri})
    return model_dir


def record_path(run_dir: Path, variant: str) -> Path:
    """A variant's job record: captions/job.json for the captioner, else captions/jobs/<variant>.json."""
    return run_dir / "captions" / ("job.json" if variant == "model" else f"jobs/{variant}.json")


def fetch_history(ctx: AwsContext, job: Any, run_dir: Path, variant: str = "model") -> Any:
    """The finished job's per-epoch losses, from its output.tar.gz (SageMaker packs SM_OUTPUT_DATA_DIR)."""
    output = _field(job, "output_data_config")
    uri = f"{output.s3_output_path.rstrip('/')}/{job.training_job_name}/output/output.tar.gz"
    bucket, key = s3sync.split_s3_uri(uri)
    tarball = run_dir / "captions" / f"job-{variant}-output.tar.gz"
    ctx.client("s3").download_file(bucket, key, str(tarball))
    history = read_history(tarball)
    tarball.unlink()
    return history


def launch(trainer: Any) -> Any:
    """Start the job, stream its logs until it ends; returns the finished sagemaker-core TrainingJob."""
    trainer.train(wait=True, logs=True)
    return trainer._latest_training_job  # the SDK keeps the job it started only here (no public getter)


def _field(job: Any, name: str) -> Any:
    """A TrainingJob field, None where the service left it out (sagemaker-core's Unassigned)."""
    from sagemaker.core.utils.utils import Unassigned

    value = getattr(job, name, None)
    return None if isinstance(value, Unassigned) else value


def job_record(job: Any) -> dict[str, Any]:
    """Name, status, instance, billable seconds and final metrics of a finished TrainingJob."""
    metrics = {m.metric_name: m.value for m in (_field(job, "final_metric_data_list") or [])}
    resources = _field(job, "resource_config")
    return {
        "job_name": job.training_job_name,
        "status": _field(job, "training_job_status"),
        "instance_type": resources and resources.instance_type,
        "instance_count": resources and resources.instance_count,
        "spot": _field(job, "enable_managed_spot_training"),
        "billable_seconds": _field(job, "billable_time_in_seconds"),
        "training_seconds": _field(job, "training_time_in_seconds"),
        "final_metrics": metrics,
    }


#: GPUs per instance of the types a captioner job is likely to name (torchrun processes per node).
GPUS = {
    "ml.g4dn.xlarge": 1,
    "ml.g4dn.2xlarge": 1,
    "ml.g4dn.12xlarge": 4,
    "ml.g4dn.metal": 8,
    "ml.g5.xlarge": 1,
    "ml.g5.2xlarge": 1,
    "ml.g5.12xlarge": 4,
    "ml.g5.48xlarge": 8,
    "ml.g6.xlarge": 1,
    "ml.g6.12xlarge": 4,
    "ml.g6.48xlarge": 8,
    "ml.p3.2xlarge": 1,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p4d.24xlarge": 8,
}
#: Where each variant's model comes back in the run folder (captions/model/ is what 07, 08 and the
#: endpoint read; the blind twin only serves 06's baseline and encoder study).
MODEL_DIRS = {"model": "captions/model", "blind": "captions/blind-model"}


def gpus_of(instance_type: str) -> int:
    """GPUs of `instance_type`; a clear error for a type this table does not know."""
    if instance_type not in GPUS:
        raise ValueError(
            f"unknown GPU count for {instance_type!r}: one of {', '.join(GPUS)}, "
            "or build a JobSpec with gpus_per_instance yourself"
        )
    return GPUS[instance_type]


def job_hyperparameters(preset: str, knobs: dict[str, Any], blind: bool) -> dict[str, Any]:
    """The job's hyperparameters for notebook 06's knobs: those `helpers.caption.job` takes, None left out
    (the preset's default), so that the job builds the notebook's CaptionConfig."""
    from helpers.caption import job

    kept = {k: v for k, v in knobs.items() if k in job.KNOBS and v is not None}
    return {"preset": preset, **kept, "blind": blind}


@dataclass
class LocalJob:
    """A job run on this machine the way a training instance runs it (`run_local`)."""

    name: str
    root: Path  # the /opt/ml-style folders: model/, output/, checkpoints/, input/data/<channel>
    returncode: int
    seconds: float
    model_tarball: Path  # root/output/model.tar.gz, as SageMaker packs SM_MODEL_DIR
    output_tarball: Path  # root/output/output.tar.gz, as SageMaker packs SM_OUTPUT_DATA_DIR

    def record(self) -> dict[str, Any]:
        return {
            "job_name": self.name,
            "status": "Completed" if self.returncode == 0 else "Failed",
            "where": "local (this machine, the SDK's torchrun driver)",
            "training_seconds": round(self.seconds, 1),
        }


def _pack(folder: Path, tarball: Path) -> Path:
    """folder's contents as a .tar.gz with member names relative to it (SageMaker's packing)."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return tarball


def run_local(
    name: str,
    source_dir: Path,
    channels: dict[str, Path],
    hyperparameters: dict[str, Any],
    root: Path,
    processes: int = 1,
    instance_type: str = "ml.g5.12xlarge",
    echo: bool = True,
) -> LocalJob:
    """Run the staged job here: the SDK's own torchrun driver with the environment a training instance
    gets (SM_ENTRY_SCRIPT, SM_HPS, SM_DISTRIBUTED_CONFIG, one host at 127.0.0.1, SM_CHANNEL_* = the local
    folders, /opt/ml's folders under `root`), then SM_MODEL_DIR and SM_OUTPUT_DATA_DIR packed as
    model.tar.gz and output.tar.gz. What differs from SageMaker: no image, no `pip install` of the job's
    requirements (this environment has them), channels read in place (not copied), CPUs with gloo."""
    import json
    import os
    import subprocess
    import sys
    import time

    import sagemaker.train.container_drivers.distributed_drivers.torchrun_driver as driver

    from helpers.aws.local_server import free_ports

    shutil.rmtree(root / "model", ignore_errors=True)
    for sub in ("model", "output/data", "checkpoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    threads = max(1, (os.cpu_count() or 1) // processes)
    python_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{python_bin}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    env |= {f"SM_CHANNEL_{k.upper()}": str(v) for k, v in channels.items()}
    env |= {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_CHECKPOINT_DIR": str(root / "checkpoints"),
        "SM_CURRENT_INSTANCE_TYPE": instance_type,
        "SM_ENTRY_SCRIPT": str(source_dir / ENTRY_SCRIPT),
        "SM_DISTRIBUTED_CONFIG": json.dumps({"process_count_per_node": processes}),
        "SM_HPS": json.dumps(hyperparameters),
        "SM_HOST_COUNT": "1",
        "SM_CURRENT_HOST_RANK": "0",
        "SM_MASTER_ADDR": "127.0.0.1",
        "SM_MASTER_PORT": str(port),
        "SM_NETWORK_INTERFACE_NAME": "lo",
        "PET_MASTER_ADDR": "127.0.0.1",  # one node: the driver passes no address, torchrun reads these
        "PET_MASTER_PORT": str(port),
        "TRAINING_JOB_NAME": name,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": str(source_dir),  # the staged copy of helpers, as the job's code channel holds it
    }
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, driver.__file__],
        cwd=source_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    tail: list[str] = []
    try:
        for line in proc.stdout:
            tail = [*tail[-199:], line]
            if echo:
                print(line, end="", flush=True)
        proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: stop every process of the job
            os.killpg(proc.pid, 9)
            proc.wait()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"local job {name} failed (exit {proc.returncode}):\n{''.join(tail[-40:])}")
    model = _pack(root / "model", root / "output" / "model.tar.gz")
    output = _pack(root / "output" / "data", root / "output" / "output.tar.gz")
    return LocalJob(name, root, proc.returncode, seconds, model, output)


def read_history(output_tarball: Path) -> Any:
    """history.csv of a job's output.tar.gz (the per-epoch losses the notebook plots)."""
    import pandas as pd

    with tarfile.open(output_tarball) as tar:
        member = tar.extractfile("history.csv")
        if member is None:
            raise ValueError(f"{output_tarball} holds no history.csv")
        return pd.read_csv(member)
