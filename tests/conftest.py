"""Shared fixtures: offline environment, the real-samples folder, and one smoke run of the series."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prerequisites import require
from xdist_groups import group_shared_runs

# Model hubs are unreachable: fail at once instead of retrying for ~47 s. Kernels started by papermill
# inherit this environment.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# Under pytest-xdist each worker gets its share of the cores: torch and TensorFlow (here and in the kernels
# and processes started from here) would otherwise each start a thread per core, and oversubscribed cores
# made a smoke training 2.2x slower than running alone. The series' kernels ask again when they start
# (`thread_share`): once the other worker has finished, they get every core.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if XDIST_WORKERS > 1:
    for _var in THREAD_VARS:
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // XDIST_WORKERS)))

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("CAPTION_REAL_SAMPLES", ROOT.parent / "shared" / "real-samples"))
#: Run folders of the notebook tests stay here after the run, for a person to open.
ARTIFACTS = Path(os.environ.get("CAPTION_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    group_shared_runs(items)


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """The folder of small real samples (skip locally, fail under CI when it is missing)."""
    require(
        REAL_SAMPLES.is_dir(),
        f"real samples not present at {REAL_SAMPLES}",
        "set CAPTION_REAL_SAMPLES to a folder with cifar-100-python/ and flickr8k/",
    )
    return REAL_SAMPLES


@pytest.fixture(scope="session")
def java() -> None:
    """Java for pycocoevalcap's PTB tokenizer and METEOR."""
    from helpers.metrics import java_available

    require(java_available(), "java not installed", "apt-get install default-jre-headless (Java 17)")


@pytest.fixture(scope="session")
def scorer(java):
    """One CaptionScorer (one METEOR JVM, 5-15 s to start) for the whole session, closed at its end."""
    from helpers.metrics import CaptionScorer

    with CaptionScorer() as s:
        yield s


#: Where the test series points AWS: a closed local port, so a request that escaped a dry run fails the run.
NO_AWS = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "SAGEMAKER_VALIDATE_ROLE": "false",
}
#: Per notebook of the test series: extra parameters and environment. Notebook 07 also runs its deploy
#: cells as a dry run, so it is executed once for both the demo and the deploy tests.
SERIES_EXTRA = {"07": {"deploy": True, "deploy_dry_run": True, "deploy_instance_type": "ml.g4dn.xlarge"}}
SERIES_ENV = {"07": NO_AWS}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set (kernels started meanwhile inherit them), restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def thread_share() -> dict[str, str]:
    """Thread settings for a kernel started now: under xdist, the cores that are idle (at least one)."""
    if XDIST_WORKERS <= 1:
        return {}
    import psutil

    cores = os.cpu_count() or 1
    idle = cores - psutil.cpu_percent(interval=0.5) / 100 * cores  # this worker waits meanwhile
    return dict.fromkeys(THREAD_VARS, str(max(1, round(idle))))


class SeriesRun:
    """One run folder shared by the notebook tests; each notebook is executed at most once per session."""

    def __init__(self, preset: str, run_dir: Path, data_dir: Path | None = None):
        self.preset, self.run_dir, self.data_dir = preset, run_dir, data_dir
        self.done: dict[str, BaseException | None] = {}

    def ensure(self, *numbers: str) -> Path:
        """Run the given notebooks (in order, skipping ones already run); re-raise an earlier failure."""
        from helpers.pipeline import run_series

        for number in numbers:
            if number not in self.done:
                try:
                    data = str(self.data_dir) if self.data_dir else None
                    with environment({**SERIES_ENV.get(number, {}), **thread_share()}):
                        extra = SERIES_EXTRA.get(number, {})
                        run_series(self.preset, str(self.run_dir), only=number, data_dir=data, extra=extra)
                    self.done[number] = None
                except BaseException as err:  # remembered so dependants fail with the real cause
                    self.done[number] = err
            if self.done[number] is not None:
                raise RuntimeError(f"notebook {number} failed earlier") from self.done[number]
        return self.run_dir


def claim(run_dir: Path) -> None:
    """Under pytest-xdist, fail when a second worker opens a shared run folder (the grouping broke: two
    workers would run the same series into one folder). Without xdist there is one process: nothing to do."""
    session = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if session is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    owner = ARTIFACTS / f".{run_dir.name}.{session}.owner"
    for stale in ARTIFACTS.glob(f".{run_dir.name}.*.owner"):  # earlier sessions'
        if stale != owner:
            stale.unlink(missing_ok=True)
    try:
        fd = os.open(owner, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise RuntimeError(
            f"{run_dir.name} is already used by xdist worker {owner.read_text()}: the tests that share it "
            "must run on one worker (xdist_group with --dist loadgroup; pytest 9.2 ignores the groups, "
            "see requirements-dev.txt)"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "?"))


@pytest.fixture(scope="session")
def smoke_run() -> SeriesRun:
    """The smoke preset's run folder under test-artifacts/ (cleared at the start of the session)."""
    import shutil

    run_dir = ARTIFACTS / "smoke-run"
    claim(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return SeriesRun("smoke", run_dir)


@pytest.fixture(scope="session")
def sample_run(real_samples: Path) -> SeriesRun:
    """The sample preset over the real samples, under test-artifacts/."""
    import shutil

    run_dir = ARTIFACTS / "sample-run"
    claim(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return SeriesRun("sample", run_dir, real_samples)
