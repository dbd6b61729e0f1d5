"""Run every benchmark and write benchmarks/results.json and results.md: ``python -m benchmarks.run``.

Each benchmark runs in its own process (the preprocessing one in one process per side), one after the
other, so they never compete with each other. Other work on the machine does compete and inflates every
time here, so the CPU that other processes took while each benchmark ran is recorded beside it.

``--only caption_speed`` reruns one benchmark: the other sections are carried over unchanged from the
results.json already in the output folder (made in the same mode), with the date of the run that made them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, busy_cpu_seconds, children_cpu_seconds, machine, run_worker
from benchmarks.report import render
from helpers import artifacts
from helpers.runtime import versions

#: benchmark name -> the module run as its worker process
BENCHMARKS: dict[str, str] = {
    "preprocess_memory": "benchmarks.preprocess_memory",
    "caption_speed": "benchmarks.caption_speed",
    "pipeline_time": "benchmarks.pipeline_time",
    "serving_load": "benchmarks.serving_load",
    "int8_decoding": "benchmarks.int8_decoding",
    "caption_step": "benchmarks.caption_step",
}
TIMEOUT_S = 1800  # per benchmark; the whole run takes about 15 minutes on 2 cores


def run_one(name: str, quick: bool, from_run: str | None) -> dict[str, Any]:
    """One benchmark in a fresh process, with its wall time and the CPU other processes took meanwhile."""
    args = ["--quick"] if quick else []
    if name in ("pipeline_time", "serving_load", "int8_decoding") and from_run:
        args += ["--from-run", str(Path(from_run).resolve())]
    load_before = [round(x, 2) for x in os.getloadavg()]
    busy, ours, start = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
    result = run_worker(BENCHMARKS[name], args, TIMEOUT_S)
    wall = time.perf_counter() - start
    result["benchmark_wall_s"] = round(wall, 1)
    result["load_average_before_after"] = [load_before, [round(x, 2) for x in os.getloadavg()]]
    if busy is not None:
        # Machine-wide busy CPU time minus our benchmark's own: the average cores other work kept busy.
        others = (busy_cpu_seconds() - busy) - (children_cpu_seconds() - ours)
        result["other_processes_cores"] = round(max(others, 0.0) / wall, 2)
    return result


def carried_over(previous: dict[str, Any], quick: bool, rerun: list[str]) -> dict[str, Any]:
    """Sections of an earlier results.json (same mode) that this run does not redo, and where they came from.

    Returns {"sections": {name: result}, "from": {name: {"date_utc", "versions", "machine"}}} (empty when
    nothing fits); a section the earlier file had itself carried over keeps its original date, versions and
    machine (the CPU model; where an older file did not record it, the one its header named).
    """
    if previous.get("quick") != quick:
        return {"sections": {}, "from": {}}
    keep = [name for name in BENCHMARKS if name not in rerun and name in previous]
    origin = previous.get("carried_over", {})
    cpu = previous.get("machine", {}).get("cpu_model")
    own = {"date_utc": previous.get("date_utc"), "versions": previous.get("versions"), "machine": cpu}
    return {
        "sections": {name: previous[name] for name in keep},
        "from": {name: {"machine": cpu, **origin.get(name, own)} for name in keep},
    }


def run_all(quick: bool, only: list[str], from_run: str | None, out_dir: Path) -> dict[str, Any]:
    """Run the chosen benchmarks and write results.json and results.md into `out_dir`.

    Benchmarks not in `only` are carried over from `out_dir`/results.json when it exists (same mode).
    """
    started = dt.datetime.now(dt.UTC)
    command = "python -m benchmarks.run" + (" --quick" if quick else "")
    if set(only) != set(BENCHMARKS):
        command += f" --only {','.join(only)}"
    results: dict[str, Any] = {
        "date_utc": started.isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "versions": versions(),
        "command": command,
    }
    previous = out_dir / "results.json"
    old = carried_over(artifacts.read_json(previous), quick, only) if previous.is_file() else {"from": {}}
    for name in only:
        print(f"[{name}] running ...", flush=True)
        results[name] = run_one(name, quick, from_run)
        print(f"[{name}] done in {results[name]['benchmark_wall_s']} s", flush=True)
    results["machine_after"] = {"load_average_1_5_15": machine()["load_average_1_5_15"]}
    results["total_wall_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    if old["from"]:
        results.update(old["sections"])
        results["carried_over"] = old["from"]
    artifacts.write_json(out_dir / "results.json", results)
    artifacts.write_text(out_dir / "results.md", render(results))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes in seconds, to check the code runs")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated, of {', '.join(BENCHMARKS)}; the others are kept from the existing results",
    )
    parser.add_argument(
        "--from-run",
        help="pipeline_time: read this run folder's timings.json instead of running; serving_load: serve "
        "this run folder's models; int8_decoding: decode with its captioner (default runs/smoke)",
    )
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks"), help="folder for results.json and results.md"
    )
    args = parser.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    out = Path(args.out)
    run_all(args.quick, only, args.from_run, out)
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
