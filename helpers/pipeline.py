"""Run the notebook series with papermill: ``python -m helpers run --preset smoke``.

Each notebook runs in its own kernel with the parameters below injected, its executed copy is written to
``run_dir/notebooks/``, and the first failure stops the series naming the notebook and the cell.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import KERNEL_NAME, artifacts
from helpers.config import PRESETS, RunPaths, project_root
from helpers.quiet_kernel import QuietKernelManager

#: Which sub-folder of --data-dir each notebook's `data_source` parameter points at.
DATA_SOURCES = {"01": "cifar-100-python", "06": "flickr8k", "08": "flickr8k-cn"}


class NotebookFailed(RuntimeError):
    """A notebook raised: carries the notebook, the cell and where the executed copy was kept."""


def notebooks_dir() -> Path:
    """The checkout's notebooks/ folder."""
    root = project_root()
    if root is None:
        raise FileNotFoundError("notebooks/ not found: run from a checkout installed with `pip install -e .`")
    return root / "notebooks"


def select(notebooks: list[Path], only: str | None) -> list[Path]:
    """Filter by comma-separated number prefixes (``01,03``); unknown prefixes are an error."""
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [nb for nb in notebooks if nb.name[:2] in wanted]
    unknown = sorted(set(wanted) - {nb.name[:2] for nb in chosen})
    if unknown:
        names = ", ".join(nb.name for nb in notebooks)
        raise ValueError(f"no notebook numbered {', '.join(unknown)}; have: {names}")
    return chosen


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value`` with value parsed as a Python literal when it is one (``epochs=2``, ``weights=None``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def parameters_for(nb: Path, preset: str, paths: RunPaths, data_dir: Path | None, extra: dict) -> dict:
    """The parameters injected into one notebook: only those its `parameters` cell declares."""
    import papermill as pm

    declared = pm.inspect_notebook(str(nb))
    params: dict[str, Any] = {"preset": preset, "run_dir": str(paths.root)}
    if data_dir is not None and nb.name[:2] in DATA_SOURCES:
        params["data_source"] = str(data_dir / DATA_SOURCES[nb.name[:2]])
    params.update(extra)
    return {k: v for k, v in params.items() if k in declared}


def failing_cell(executed: Path) -> str:
    """'cell N: <first line>' for the cell that raised, numbered as in the source notebook (from 1)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    added = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill inserts
    cells = [c for c in nb.cells if not added & set(c.metadata.get("tags", []))]
    for i, cell in enumerate(cells, 1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
            return f"cell {i} ({first.strip()[:60]!r})"
    return "an unknown cell"


#: Seconds a notebook's kernel may take to start (papermill's default of 60 s is too short under load).
KERNEL_START_TIMEOUT_S = 300


def run_one(nb: Path, out: Path, params: dict, timeout: int | None = None) -> float:
    """Execute one notebook; returns seconds taken, raises NotebookFailed naming the cell."""
    import papermill as pm

    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(nb),
            str(out),
            parameters=params,
            kernel_name=KERNEL_NAME,
            kernel_manager_class=QuietKernelManager,  # encrypted transport, no TensorFlow start-up noise
            cwd=str(nb.parent),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout,
            start_timeout=KERNEL_START_TIMEOUT_S,
        )
    except pm.PapermillExecutionError as err:
        where = failing_cell(out)
        raise NotebookFailed(
            f"{nb.name} failed in {where} with {err.ename}: {err.evalue}\nexecuted copy kept at {out}"
        ) from err
    return time.perf_counter() - start


def run_series(
    preset: str,
    run_dir: str | None = None,
    only: str | None = None,
    data_dir: str | None = None,
    extra: dict | None = None,
    timeout: int | None = None,
) -> dict[str, float]:
    """Run the selected notebooks in order; returns {notebook: seconds} and writes timings.json."""
    paths = RunPaths.for_run(preset, run_dir).ensure()
    data = Path(data_dir).expanduser().resolve() if data_dir else None
    if data is not None and not data.is_dir():
        raise FileNotFoundError(f"--data-dir {data} does not exist")
    notebooks = select(sorted(notebooks_dir().glob("[0-9][0-9]-*.ipynb")), only)
    timings: dict[str, float] = {}
    timings_file = paths.notebooks / "timings.json"
    earlier = artifacts.read_json(timings_file)["seconds"] if timings_file.is_file() else {}
    print(f"run folder: {paths.root}", flush=True)
    for i, nb in enumerate(notebooks, 1):
        params = parameters_for(nb, preset, paths, data, extra or {})
        print(f"[{i}/{len(notebooks)}] {nb.stem} {params}", flush=True)
        seconds = run_one(nb, paths.notebooks / nb.name, params, timeout)
        timings[nb.stem] = round(seconds, 1)
        print(f"    done in {seconds:.1f} s", flush=True)
        artifacts.write_json(timings_file, {"preset": preset, "seconds": {**earlier, **timings}})
    print(f"all {len(notebooks)} notebooks done in {sum(timings.values()):.1f} s", flush=True)
    return timings


def doctor() -> int:
    """Print what the series needs and whether it is here; non-zero if something essential is missing."""
    from helpers.runtime import versions

    for key, value in versions().items():
        print(f"{key:>14}: {value}")
    java = shutil.which("java")
    print(f"{'java':>14}: {java or 'missing (METEOR will be reported as not computed)'}")
    kernels = subprocess.run(
        [sys.executable, "-m", "jupyter", "kernelspec", "list"], capture_output=True, text=True, check=False
    ).stdout
    ok = KERNEL_NAME in kernels
    print(f"{'kernel':>14}: {KERNEL_NAME} {'registered' if ok else 'NOT registered (run make setup)'}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m helpers` (also read by the docs test)."""
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks in order with papermill")
    run.add_argument("--preset", choices=PRESETS, default="smoke")
    run.add_argument("--run-dir", help="run folder (default runs/<preset>)")
    run.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,03")
    run.add_argument("--data-dir", help="sample preset: a folder of cifar-100-python/, flickr8k/, ...")
    run.add_argument("-p", "--param", action="append", default=[], help="extra parameter key=value")
    run.add_argument("--timeout", type=int, help="per-cell timeout in seconds")
    sub.add_parser("doctor", help="show versions, Java and the Jupyter kernel")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    if args.preset == "sample" and not args.data_dir:
        parser.error("--preset sample needs --data-dir (cifar-100-python/, flickr8k/, flickr8k-cn/)")
    extra = dict(parse_param(p) for p in args.param)
    try:
        run_series(args.preset, args.run_dir, args.only, args.data_dir, extra, args.timeout)
    except (NotebookFailed, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
