"""How `make test` shares the suite between its two pytest-xdist workers.

Tests that use a session fixture owning a run folder go to one worker (an xdist group per fixture), so each
series runs once. The order of the items is the order xdist hands out work (`--no-loadscope-reorder`): the
first two units start at once, one per worker, and each worker takes the next unit when it runs low. So:

1. the smoke run (01, 06, 08, 07 and what reads them): the longest chain, on the first worker;
2. the classifier run (01-05), on the second worker while the first trains the captioner; the smoke run
   copies its models before 07, so within the smoke group the tests that need the classifiers go last;
3. the sample run and the long stand-alone tests, then the short unit tests, which fill both workers' ends.
"""

from __future__ import annotations

import pytest

#: Session fixtures that own a run folder, in the order their groups are handed out.
SHARED_RUNS = ("smoke_run", "classifier_run", "sample_run")
#: Smoke-run modules that need only notebooks 01, 06 and 08: they run before those needing the classifiers.
SMOKE_FIRST = ("test_notebook_01.py", "test_notebook_caption.py", "test_notebook_08.py")
#: Stand-alone modules of a minute or so each (measured 2026-11-29): handed out right after the groups.
LONG_MODULES = (
    "test_rehearsal.py",
    "test_gpu_check.py",
    "test_benchmarks.py",
    "test_platform.py",
    "test_caption_job.py",  # torchrun and the SDK's driver, ~190 s (2026-12-04)
    "test_aws_training.py",  # moto server and a tiny captioner, ~50 s
    "test_caption_remote.py",  # 06's trainings as (local and moto) jobs, ~90 s (2026-12-05)
)


def shared_run(item: pytest.Item) -> str | None:
    """The first shared run the test uses (directly or through fixtures), or None."""
    return next((run for run in SHARED_RUNS if run in item.fixturenames), None)


def group_shared_runs(items: list[pytest.Item]) -> None:
    """Mark each test with the xdist group of its shared run, and put the items in hand-out order."""
    for item in items:
        run = shared_run(item)
        if run is not None:
            item.add_marker(pytest.mark.xdist_group(run))
    items.sort(key=hand_out_rank)  # stable: file order within a rank


def hand_out_rank(item: pytest.Item) -> tuple[int, int]:
    run, module = shared_run(item), item.path.name
    if run is not None:
        return SHARED_RUNS.index(run), 0 if run != "smoke_run" or module in SMOKE_FIRST else 1
    return len(SHARED_RUNS), 0 if module in LONG_MODULES else 1
