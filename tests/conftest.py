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
#: This pytest session (all xdist workers share it).
SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"


#: Tests using these fixtures belong to `make test-slow` (CI runs it after `make test`): the sample preset on
#: the real samples, the benchmarks' quick run, the platform checks that ask PyPI.
SLOW_FIXTURES = ("sample_run", "quick_results", "pypi")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups, and before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in item.fixturenames for name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)
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
#: 07's dry-run deploy packages without the wheelhouse: the offline archive is built for real (3.12 wheels,
#: installed by pip with no index) in test_platform.py, and its download would lengthen the smoke series.
SERIES_EXTRA = {
    "07": {
        "deploy": True,
        "deploy_dry_run": True,
        "deploy_instance_type": "ml.g4dn.xlarge",
        "deploy_offline": False,
    }
}
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


def session_folder() -> Path:
    """This session's notes between its xdist workers (run-folder owners, finished workers, the classifier
    run's state); earlier sessions' folders are removed when it is made."""
    import shutil

    folder = ARTIFACTS / ".sessions" / SESSION
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        for earlier in folder.parent.iterdir():
            if earlier.name != SESSION:
                shutil.rmtree(earlier, ignore_errors=True)
    return folder


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        (session_folder() / f"{worker}.finished").touch()


def thread_share() -> dict[str, str]:
    """Thread settings for a kernel started now: under xdist, the cores divided among the workers that have
    not finished yet (once the other worker is done, every core). Not read from the load at the kernel's
    start: the other worker may be between tests just then, and a kernel with every core beside a busy
    worker runs far slower for the rest of its run (two processes with 2 threads each on 2 cores: 2.2x)."""
    if XDIST_WORKERS <= 1:
        return {}
    finished = len(list(session_folder().glob("*.finished")))
    cores = os.cpu_count() or 1
    return dict.fromkeys(THREAD_VARS, str(max(1, cores // max(1, XDIST_WORKERS - finished))))


#: The classifier notebooks: the smoke run takes them from `classifier_run` instead of training them again.
CLASSIFIER_NOTEBOOKS = ("02", "03", "04", "05")
#: What 02-05 write into a run folder (run_dir-relative globs), copied into the smoke run.
CLASSIFIER_OUTPUTS = ("models", "compare", "figures/0[2-5]-*", "notebooks/0[2-5]-*")


def run_notebook(preset: str, run_dir: Path, number: str, data_dir: Path | None) -> None:
    """One notebook of the series through papermill, with the test environment and this moment's threads."""
    from helpers.pipeline import run_series

    with environment({**SERIES_ENV.get(number, {}), **thread_share()}):
        data = str(data_dir) if data_dir else None
        run_series(preset, str(run_dir), only=number, data_dir=data, extra=SERIES_EXTRA.get(number, {}))


class SharedRun:
    """A run folder that any xdist worker may fill. Notebooks run under a file lock and the session folder
    records which ran (or failed), so each runs once whichever worker asks first; a worker that asks while
    another is running them waits. The first to ask in a session clears what an earlier session left."""

    def __init__(self, preset: str, run_dir: Path):
        self.preset, self.run_dir = preset, run_dir

    def ensure(self, *numbers: str) -> Path:
        import fcntl
        import json
        import shutil

        state_file = session_folder() / f"{self.run_dir.name}.json"
        with open(session_folder() / f"{self.run_dir.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if state_file.is_file():
                state = json.loads(state_file.read_text())
            else:
                shutil.rmtree(self.run_dir, ignore_errors=True)
                state = {"failed": {}, "done": []}
            for number in numbers:
                if number not in state["done"] and number not in state["failed"]:
                    try:
                        run_notebook(self.preset, self.run_dir, number, None)
                        state["done"].append(number)
                    except Exception as err:
                        state["failed"][number] = f"{type(err).__name__}: {err}"[:4000]
                        raise RuntimeError(f"notebook {number} failed in {self.run_dir}") from err
                    finally:
                        state_file.write_text(json.dumps(state))
                if number in state["failed"]:
                    reason = state["failed"][number]
                    raise RuntimeError(f"notebook {number} failed in {self.run_dir}: {reason}")
        return self.run_dir


class SeriesRun:
    """One run folder shared by the notebook tests; each notebook is executed at most once per session.
    With `classifiers`, notebooks 02-05 are not trained here: their outputs are copied from that run."""

    def __init__(
        self, preset: str, run_dir: Path, data_dir: Path | None = None, classifiers: SharedRun | None = None
    ):
        self.preset, self.run_dir, self.data_dir = preset, run_dir, data_dir
        self.classifiers = classifiers
        self.done: dict[str, BaseException | None] = {}

    def ensure(self, *numbers: str) -> Path:
        """Run the given notebooks (in order, skipping ones already run); re-raise an earlier failure."""
        for number in numbers:
            if number not in self.done:
                try:
                    if self.classifiers is not None and number in CLASSIFIER_NOTEBOOKS:
                        self.copy_classifiers()
                    else:
                        run_notebook(self.preset, self.run_dir, number, self.data_dir)
                    self.done[number] = None
                except BaseException as err:  # remembered so dependants fail with the real cause
                    self.done[number] = err
            if self.done[number] is not None:
                raise RuntimeError(f"notebook {number} failed earlier") from self.done[number]
        return self.run_dir

    def copy_classifiers(self) -> None:
        """02-05's outputs from the classifier run (which trains them now if no worker has yet)."""
        import shutil

        source = self.classifiers.ensure("01", *CLASSIFIER_NOTEBOOKS)
        self.ensure("01")
        for array in sorted((source / "data").glob("*.npy")):  # the models must fit this run's data
            mine = self.run_dir / "data" / array.name
            if not mine.is_file() or mine.read_bytes() != array.read_bytes():
                raise RuntimeError(f"{array} differs from {mine}: 01 is not deterministic any more")
        for pattern in CLASSIFIER_OUTPUTS:
            for path in sorted(source.glob(pattern)):
                target = self.run_dir / path.relative_to(source)
                if path.is_dir():
                    shutil.copytree(path, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        self.done.update(dict.fromkeys(CLASSIFIER_NOTEBOOKS))


def claim(run_dir: Path) -> None:
    """Under pytest-xdist, fail when a second worker opens a shared run folder (the grouping broke: two
    workers would run the same series into one folder). Without xdist there is one process: nothing to do."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    owner = session_folder() / f"{run_dir.name}.owner"
    try:
        fd = os.open(owner, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise RuntimeError(
            f"{run_dir.name} is already used by xdist worker {owner.read_text()}: the tests that share it "
            "must run on one worker (xdist_group with --dist loadgroup; pytest 9.2 ignores the groups, "
            "see requirements-dev.txt)"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(worker)


@pytest.fixture(scope="session")
def classifier_run() -> SharedRun:
    """Notebooks 01-05 of the smoke preset, in test-artifacts/smoke-classifiers. Under xdist the classifier
    tests train them on one worker while the other runs the captioner; the smoke run copies the results."""
    return SharedRun("smoke", ARTIFACTS / "smoke-classifiers")


@pytest.fixture(scope="session")
def smoke_run(classifier_run: SharedRun) -> SeriesRun:
    """The smoke preset's run folder under test-artifacts/ (cleared at the start of the session)."""
    import shutil

    run_dir = ARTIFACTS / "smoke-run"
    claim(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return SeriesRun("smoke", run_dir, classifiers=classifier_run)


@pytest.fixture(scope="session")
def sample_run(real_samples: Path) -> SeriesRun:
    """The sample preset over the real samples, under test-artifacts/."""
    import shutil

    run_dir = ARTIFACTS / "sample-run"
    claim(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return SeriesRun("sample", run_dir, real_samples)
