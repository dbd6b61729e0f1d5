"""Shared fixtures: offline environment, the real-samples folder, and one smoke run of the series."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    """The folder of small real samples, or skip when this machine does not have it."""
    if not REAL_SAMPLES.is_dir():
        pytest.skip(f"real samples not present at {REAL_SAMPLES} (set CAPTION_REAL_SAMPLES)")
    return REAL_SAMPLES


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
                    run_series(self.preset, str(self.run_dir), only=number, data_dir=data)
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
