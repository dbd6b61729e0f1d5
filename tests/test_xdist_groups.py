"""`make test` runs two xdist workers: the tests sharing a series must still land on one worker."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SUITE = """
import time
import pytest

@pytest.fixture(scope="session")
def smoke_run():
    return "run"

@pytest.fixture(scope="session")
def classifier_run():
    return "classifiers"

@pytest.fixture
def through_another(smoke_run):
    return smoke_run

@pytest.mark.parametrize("i", range(6))
def test_alone(i):
    time.sleep(0.2)

@pytest.mark.parametrize("i", range(3))
def test_indirect(through_another, i):
    time.sleep(0.2)

@pytest.mark.parametrize("i", range(4))
def test_direct(smoke_run, i):
    time.sleep(0.2)

@pytest.mark.parametrize("i", range(2))
def test_classifiers(classifier_run, i):
    time.sleep(0.2)
"""

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import pytest
from xdist_groups import group_shared_runs

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    group_shared_runs(items)
"""


def test_each_run_goes_to_one_worker_and_the_two_longest_start_at_once(tmp_path: Path):
    """The smoke run's tests on one worker, the classifier run's on the other from the start (the stand-alone
    tests, first in the file, come after both groups)."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_mini.py").write_text(SUITE)
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder"]
    cmd += ["-v", "-p", "no:cacheprovider"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    workers, first = defaultdict(set), {}
    for worker, test in re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED test_mini.py::(test_\w+)", done.stdout):
        workers[test].add(worker)
        first.setdefault(worker, test)
    assert sum(1 for line in done.stdout.splitlines() if " PASSED " in line) == 15, done.stdout
    smoke = workers["test_direct"] | workers["test_indirect"]
    assert len(smoke) == 1, f"the tests using smoke_run ran on {sorted(smoke)}:\n{done.stdout[-3000:]}"
    assert len(workers["test_classifiers"]) == 1 and workers["test_classifiers"] != smoke, done.stdout
    assert sorted(first.values()) == ["test_classifiers", "test_indirect"], done.stdout


def test_a_second_worker_opening_a_shared_run_folder_stops_the_session(tmp_path: Path, monkeypatch):
    import conftest

    monkeypatch.setattr(conftest, "ARTIFACTS", tmp_path)
    (tmp_path / ".sessions" / "earlier").mkdir(parents=True)
    (tmp_path / ".sessions" / "earlier" / "smoke-run.owner").write_text("gw1")  # an earlier session's claim
    monkeypatch.setattr(conftest, "SESSION", "now")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    conftest.claim(tmp_path / "smoke-run")
    assert [p.name for p in (tmp_path / ".sessions").iterdir()] == ["now"]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    with pytest.raises(RuntimeError, match="already used by xdist worker gw0"):
        conftest.claim(tmp_path / "smoke-run")
    conftest.claim(tmp_path / "sample-run")  # another folder is another claim
