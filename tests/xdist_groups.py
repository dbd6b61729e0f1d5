"""Which tests must share a pytest-xdist worker: those using a session fixture that owns a run folder."""

from __future__ import annotations

import pytest

#: Session fixtures that own a run folder. Under pytest-xdist (`make test` runs two workers) every test that
#: uses one of them goes to one worker, so each series still runs once per session.
SHARED_RUNS = ("smoke_run", "sample_run")


def group_shared_runs(items: list[pytest.Item]) -> None:
    """Mark each test with the xdist group of the first shared run it uses (directly or through fixtures)."""
    for item in items:
        for run in SHARED_RUNS:
            if run in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(run))
                break
