"""The test suite's run folders (tests/conftest.py): the classifier run that any xdist worker may fill, and
the smoke run that copies its models instead of training them again. Notebooks are stand-ins here."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import conftest
import pytest


@pytest.fixture
def notebooks(monkeypatch, tmp_path):
    """Stand-in notebooks: each call is recorded; 01 writes data, 02-05 write models, compare and figures.
    The session's notes go to tmp_path, away from the running session's."""
    monkeypatch.setattr(conftest, "ARTIFACTS", tmp_path)
    calls: list[tuple[str, str]] = []
    failing: set[str] = set()

    def run(preset: str, run_dir: Path, number: str, data_dir: Path | None) -> None:
        calls.append((run_dir.name, number))
        time.sleep(0.2)  # long enough for a second caller to arrive meanwhile
        if number in failing:
            raise ValueError(f"cell 3 of {number} raised")
        outputs = {
            "01": ["data/test_images.npy"],
            "02": ["models/vgg16/model.keras", "figures/02-curves.png"],
            "05": ["compare/best.json", "figures/05-compare.png"],
        }.get(number, [])
        for name in [*outputs, f"notebooks/{number}-notebook.ipynb"]:
            (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / name).write_text(f"{name} of {preset}")

    monkeypatch.setattr(conftest, "run_notebook", run)
    return calls, failing


def test_two_workers_asking_at_once_run_each_notebook_once(tmp_path, notebooks, monkeypatch):
    calls, _ = notebooks
    monkeypatch.setattr(conftest, "SESSION", "now")
    (tmp_path / "classifiers").mkdir()
    (tmp_path / "classifiers" / "left-by-an-earlier-session").touch()
    shared = [conftest.SharedRun("smoke", tmp_path / "classifiers") for _ in range(2)]
    threads = [threading.Thread(target=run.ensure, args=("01", "02")) for run in shared]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [("classifiers", "01"), ("classifiers", "02")]
    assert not (tmp_path / "classifiers" / "left-by-an-earlier-session").exists()
    shared[0].ensure("01", "02", "05")  # only 05 is new
    assert calls[-1] == ("classifiers", "05") and len(calls) == 3
    monkeypatch.setattr(conftest, "SESSION", "later")  # a new session starts over
    shared[1].ensure("01")
    assert calls[-1] == ("classifiers", "01") and not (tmp_path / "classifiers" / "models").exists()


def test_a_failure_is_reported_to_every_worker_and_not_run_again(tmp_path, notebooks):
    calls, failing = notebooks
    failing.add("03")
    first, second = (conftest.SharedRun("smoke", tmp_path / "classifiers") for _ in range(2))
    with pytest.raises(RuntimeError, match="notebook 03 failed") as raised:
        first.ensure("01", "03")
    assert isinstance(raised.value.__cause__, ValueError)  # the worker that ran it sees the real error
    with pytest.raises(RuntimeError, match="notebook 03 failed .*ValueError: cell 3 of 03 raised"):
        second.ensure("01", "02", "03", "04")
    assert calls == [("classifiers", "01"), ("classifiers", "03"), ("classifiers", "02")]


def test_the_smoke_run_copies_the_classifiers_and_checks_their_data(tmp_path, notebooks):
    calls, _ = notebooks
    classifiers = conftest.SharedRun("smoke", tmp_path / "classifiers")
    smoke = conftest.SeriesRun("smoke", tmp_path / "smoke", classifiers=classifiers)
    run_dir = smoke.ensure("01", "02", "05", "06")
    assert ("smoke", "02") not in calls and ("classifiers", "04") in calls and ("smoke", "06") in calls
    for name in ("models/vgg16/model.keras", "compare/best.json", "figures/05-compare.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "notebooks" / "03-notebook.ipynb").is_file()

    other = conftest.SeriesRun("smoke", tmp_path / "other", classifiers=classifiers)
    other.ensure("01")
    (other.run_dir / "data" / "test_images.npy").write_text("other pictures")
    with pytest.raises(RuntimeError, match="notebook 02 failed earlier") as raised:
        other.ensure("02")
    assert "01 is not deterministic" in str(raised.value.__cause__)
