"""Shared fixtures: offline environment, the real-samples folder, and one smoke run of the series."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prerequisites import require

# Model hubs are unreachable: fail at once instead of retrying for ~47 s. Kernels started by papermill
# inherit this environment.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("CAPTION_REAL_SAMPLES", ROOT.parent / "shared" / "real-samples"))
#: Run folders of the notebook tests stay here after the run, for a person to open.
ARTIFACTS = Path(os.environ.get("CAPTION_TEST_ARTIFACTS", ROOT / "test-artifacts"))


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
                    with environment(SERIES_ENV.get(number, {})):
                        extra = SERIES_EXTRA.get(number, {})
                        run_series(self.preset, str(self.run_dir), only=number, data_dir=data, extra=extra)
                    self.done[number] = None
                except BaseException as err:  # remembered so dependants fail with the real cause
                    self.done[number] = err
            if self.done[number] is not None:
                raise RuntimeError(f"notebook {number} failed earlier") from self.done[number]
        return self.run_dir


@pytest.fixture(scope="session")
def smoke_run() -> SeriesRun:
    """The smoke preset's run folder under test-artifacts/ (cleared at the start of the session)."""
    import shutil

    run_dir = ARTIFACTS / "smoke-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    return SeriesRun("smoke", run_dir)


@pytest.fixture(scope="session")
def sample_run(real_samples: Path) -> SeriesRun:
    """The sample preset over the real samples, under test-artifacts/."""
    import shutil

    run_dir = ARTIFACTS / "sample-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    return SeriesRun("sample", run_dir, real_samples)
