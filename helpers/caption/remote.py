"""Notebook 06's two trainings (the captioner and its image-blind twin) as SageMaker training jobs.

``train_on`` in 06's parameters:

- ``"notebook"``: 06 trains both itself (`helpers.caption.variants.train_variant`), as before.
- ``"job"``: one training job per variant, started together (`helpers.aws.training`: ModelTrainer +
  Torchrun on the instance type and count asked for, managed spot, checkpoints on S3), with the feature
  cache and the dataset (captions and splits as 06 read them, no images) as input channels; 06 waits with
  the jobs' logs, then brings each model back into the run folder.
- ``"local-job"``: the rehearsal of a job before paying for one. The same requests are built and shown
  (`connect(dry_run=True)`: nothing is sent), then each job runs on this machine under the SDK's own
  torchrun driver with the environment a training instance gets, and its model.tar.gz comes back through
  the same unpacking. It catches a broken entry point, a wrong hyperparameter or a model that does not
  load, in minutes and at no cost.

Either way the models end where 06 writes them (captions/model/, captions/blind-model/) with the jobs'
names, requests and records in captions/jobs/ (the captioner's record also in captions/job.json).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import artifacts

TRAIN_ON = ("notebook", "job", "local-job")
VARIANTS = ("blind", "model")  # the blind twin first, as 06 trains them


@dataclass(frozen=True)
class JobSettings:
    """Where the jobs run: 06's job_* parameters."""

    instance_type: str = "ml.g5.12xlarge"
    instance_count: int = 1
    spot: bool = True
    max_run_hours: float = 8.0  # cap on paid training time per job
    max_wait_hours: float | None = None  # spot: training plus waiting for capacity; None: 1.5 x max_run
    local_processes: int = 1  # local-job: torchrun processes on this machine's CPUs (gloo)
    region: str | None = None  # None: helpers.aws.connect's (local-job without one: us-east-1's request)

    def spec(self, hyperparameters: dict[str, Any], channels: dict[str, str]) -> Any:
        from helpers.aws.training import JobSpec, gpus_of

        max_run = int(self.max_run_hours * 3600)
        wait = self.max_wait_hours
        return JobSpec(
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            gpus_per_instance=gpus_of(self.instance_type),
            spot=self.spot,
            max_run_s=max_run,
            max_wait_s=int(wait * 3600) if wait is not None else int(max_run * 1.5),
            hyperparameters=hyperparameters,
            channels=channels,
        )


def job_name(run_dir: Path, variant: str) -> str:
    """caption-<run folder>-<variant>, in SageMaker's name alphabet; also the checkpoint prefix's name."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", run_dir.name).strip("-")[:30] or "run"
    return f"caption-{slug}-{variant}"


def _region(settings: JobSettings, local: bool) -> str | None:
    """The settings' region; a local rehearsal without any shows the request us-east-1 would get."""
    from helpers.aws.context import AwsConfigError, resolve_region

    if settings.region or not local:
        return settings.region
    try:
        return resolve_region()[0]
    except AwsConfigError:
        return "us-east-1"


def _created_request(ctx: Any) -> dict[str, Any]:
    """The last CreateTrainingJob request a dry run recorded."""
    calls = [c for c in ctx.dry_run.calls if c.operation == "CreateTrainingJob"]
    return calls[-1].params


def train_as_jobs(
    cfg: Any,
    knobs: dict[str, Any],
    cache: Any,
    dataset: Any,
    train_on: str,
    settings: JobSettings,
    ctx: Any = None,
) -> dict[str, tuple[Any, Any]]:
    """Train both variants as jobs (or local rehearsals of jobs); variant -> (PrefixCaptioner, history)."""
    from helpers.aws import connect, training
    from helpers.caption.captioner import Captioner
    from helpers.caption.job import export_dataset

    if train_on not in TRAIN_ON[1:]:
        raise ValueError(f"train_on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
    local = train_on == "local-job"
    root = cfg.paths.root
    jobs_dir = cfg.paths.captions / "jobs"
    shutil.rmtree(jobs_dir / "code", ignore_errors=True)
    source = training.stage_source(jobs_dir / "code")
    data_dir = export_dataset(dataset, jobs_dir / "data").parent
    features_dir = cfg.paths.captions / "features"
    if not local:
        print("checking that the job's requirements install on the image's Python ...")
        training.check_requirements(source)
    ctx = ctx or connect(region=_region(settings, local), dry_run=local)
    rel = {"data": data_dir.relative_to(root), "features": features_dir.relative_to(root)}
    channels = training.upload_inputs(ctx, root, {k: str(v) for k, v in rel.items()})
    started = {}
    for variant in VARIANTS:
        hps = training.job_hyperparameters(cfg.preset, knobs, blind=variant == "blind")
        spec = settings.spec(hps, channels)
        trainer = training.build_trainer(ctx, spec, source, name=job_name(root, variant))
        trainer.train(wait=False, logs=False)
        if local:
            request = _created_request(ctx)
            artifacts.write_json(jobs_dir / f"{variant}-request.json", request)
            started[variant] = (request["TrainingJobName"], hps)
        else:
            started[variant] = (trainer._latest_training_job, hps)  # the SDK keeps it only there
    results = {}
    for variant, (job, hps) in started.items():
        if local:
            print(f"\n== {variant}: job {job} on this machine ({settings.local_processes} process(es)) ==")
            ran = training.run_local(
                job,
                source,
                {"data": data_dir, "features": features_dir},
                hps,
                jobs_dir / "local" / variant,
                processes=settings.local_processes,
                instance_type=settings.instance_type,
            )
            model_dir = training.unpack_model(ran.model_tarball, root / training.MODEL_DIRS[variant])
            history = training.read_history(ran.output_tarball)
            artifacts.write_json(training.record_path(root, variant), ran.record())
        else:
            job.wait(logs=True)
            record = training.job_record(job)
            model_dir = training.fetch_model(
                ctx, job.model_artifacts.s3_model_artifacts, root, record, variant
            )
            history = training.fetch_history(ctx, job, root, variant)
        results[variant] = (Captioner.load(model_dir).model.eval(), history)
    return results


def job_summary(run_dir: Path) -> Any:
    """One row per variant's job record (name, status, where, instances, spot, seconds)."""
    import pandas as pd

    from helpers.aws.training import record_path

    rows = {v: artifacts.read_json(record_path(run_dir, v)) for v in VARIANTS}
    return pd.DataFrame.from_dict(rows, orient="index").drop(columns=["final_metrics"], errors="ignore")
