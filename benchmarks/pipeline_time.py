"""Wall time of each notebook and of the whole series under the smoke preset.

Runs ``python -m helpers run --preset smoke --run-dir <tmp>`` (papermill, one kernel per notebook) and
reads the per-notebook seconds it writes to ``notebooks/timings.json``; or, with ``--from-run DIR``, only
reads that file from an earlier run. Notebooks run in order and each reads what the earlier ones wrote, so
only the unbroken run of existing notebooks from 01 is timed; missing numbers are listed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, emit
from helpers import artifacts

SERIES = ("01", "02", "03", "04", "05", "06", "07", "08")  # the notebooks of the series, in run order


def present(notebooks: Path = ROOT / "notebooks") -> list[str]:
    """Numbers of the series' notebooks that exist in the checkout."""
    return sorted({p.name[:2] for p in notebooks.glob("[0-9][0-9]-*.ipynb")} & set(SERIES))


def timable(numbers: list[str]) -> list[str]:
    """The unbroken prefix 01, 02, ... of `numbers`: later notebooks need what earlier ones write."""
    out = []
    for number in SERIES:
        if number not in numbers:
            break
        out.append(number)
    return out


def papermill_seconds(executed: Path) -> float | None:
    """Cell execution seconds papermill recorded in an executed notebook (no kernel start-up), or None."""
    meta = artifacts.read_json(executed).get("metadata", {}).get("papermill", {})
    return meta.get("duration")


def from_run(run_dir: str | Path) -> dict[str, Any]:
    """Per-notebook seconds of an earlier run: its timings.json, plus papermill's own record for executed
    copies that timings.json lacks (the runner rewrites it on every call, so runs made one notebook at a
    time keep only the last)."""
    folder = Path(run_dir).resolve() / "notebooks"
    data = artifacts.read_json(folder / "timings.json")
    seconds, source = dict(data["seconds"]), dict.fromkeys(data["seconds"], "timings.json")
    for executed in sorted(folder.glob("[0-9][0-9]-*.ipynb")):
        if executed.stem not in seconds and (took := papermill_seconds(executed)) is not None:
            seconds[executed.stem], source[executed.stem] = round(took, 1), "papermill metadata"
    seconds = dict(sorted(seconds.items()))
    return {
        "source": f"read from {folder}",
        "preset": data.get("preset"),
        "notebooks": seconds,
        "seconds_from": {name: source[name] for name in seconds},
        "sum_s": round(sum(seconds.values()), 1),
        "series_wall_s": None,  # not known from the files alone
    }


def run_smoke(only: list[str], run_dir: Path, timeout: float) -> dict[str, Any]:
    """Run the given notebooks once in a fresh run folder; per-notebook and whole-series seconds."""
    cmd = [sys.executable, "-m", "helpers", "run", "--preset", "smoke", "--run-dir", str(run_dir)]
    cmd += ["--only", ",".join(only)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[1:])}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    result = from_run(run_dir)
    result["source"] = f"measured: python -m helpers run --preset smoke --only {','.join(only)}"
    result["series_wall_s"] = round(wall, 1)  # includes starting Python and one kernel per notebook
    return result


def run(quick: bool = False, run_dir: str | None = None, timeout: float = 1800.0) -> dict[str, Any]:
    """Time the smoke series (quick: notebook 01 only) or read an earlier run's timings."""
    have = present()
    if run_dir is not None:
        result = from_run(run_dir)
    else:
        only = timable(have)[:1] if quick else timable(have)
        if not only:
            raise FileNotFoundError("notebooks/01-*.ipynb not found: nothing to time")
        with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
            result = run_smoke(only, Path(tmp) / "smoke", timeout)
    result["present"] = have
    result["missing"] = [n for n in SERIES if n not in have]
    result["complete_series"] = len(result["notebooks"]) == len(SERIES)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-run", help="read run_dir/notebooks/timings.json instead of running")
    parser.add_argument("--quick", action="store_true", help="time notebook 01 only, for tests")
    args = parser.parse_args(argv)
    emit(run(args.quick, args.from_run))


if __name__ == "__main__":
    main()
