"""``make rehearse``: notebooks 01-07 with ``--preset full`` on this machine, against local stand-ins.

Each notebook runs through the project's own runner (``python -m helpers run --preset full --only NN``)
with ``allow_cpu=True`` and the caps below, in a fresh Keras cache (every file is downloaded from the
mirror) and a fresh run folder, while its wall time, CPU time, peak memory and bytes written are
measured; then 06's data path at COCO scale (`rehearsal.coco`, a few minutes). Then ``rehearsal/results.md``
(and ``results.json``) is written. About 15-25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rehearsal import measure
from rehearsal.mirror import serve
from rehearsal.standins import REHEARSAL, build, environment

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

#: Caps passed to each notebook (knobs that default to no cap): a few steps per phase, a few hundred images.
#: Everything else is the `full` preset's own: 224x224 inputs, real batch sizes, ImageNet/hub weights.
_TRAIN = {"head_epochs": 1, "finetune_epochs": 1, "max_steps": 2}
CAPS: dict[str, dict[str, Any]] = {
    "01": {"samples_per_class": 3, "test_per_class": 1},  # 200 train, 100 val, 100 test of the 60,000
    "02": _TRAIN,
    "03": _TRAIN,
    "04": _TRAIN,
    "05": {},
    "06": {"epochs": 1, "study_epochs": 1, "max_steps": 2},  # Flickr8k stand-in: 100 / 20 / 20 images
    "07": {},
}


def runner_command(notebook: str, run_dir: Path, extra: dict[str, Any] | None = None) -> list[str]:
    """The project's runner for one notebook, with the rehearsal's caps (and `extra` parameters)."""
    params = {"allow_cpu": True, **CAPS[notebook], **(extra or {})}
    cmd = [sys.executable, "-m", "helpers", "run", "--preset", "full", "--run-dir", str(run_dir)]
    cmd += ["--only", notebook]
    for key, value in params.items():
        cmd += ["-p", f"{key}={value!r}"]
    return cmd


def run_notebooks(work: Path, notebooks: list[str]) -> dict[str, Any]:
    """Build the stand-ins, serve them, run each notebook measured; stops at the first failure."""
    start = time.perf_counter()
    standins = build(work / "standins", REHEARSAL)
    built_s = time.perf_counter() - start
    keras_home, run_dir, logs = work / "keras", work / "run", work / "logs"
    for folder in (keras_home, run_dir):
        shutil.rmtree(folder, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    with serve(standins.mirror) as url:
        env = {**os.environ, **environment(standins, url, keras_home), "TF_ENABLE_ONEDNN_OPTS": "1"}
        for nb in notebooks:
            before = measure.folder_size(run_dir), measure.folder_size(keras_home)
            load = measure.load_average()
            print(f"[rehearsal] {nb} ({' '.join(runner_command(nb, run_dir)[3:])})", flush=True)
            done = measure.run_measured(runner_command(nb, run_dir), env, ROOT, logs / f"{nb}.log")
            rows[nb] = {
                "ok": done.returncode == 0,
                "seconds": round(done.seconds, 1),
                "cpu_seconds": round(done.cpu_seconds, 1),
                "peak_rss": done.peak_rss,
                "written": done.written,
                "run_growth": measure.folder_size(run_dir) - before[0],
                "cache_growth": measure.folder_size(keras_home) - before[1],
                "load_average": [round(load, 1), round(measure.load_average(), 1)],
            }
            print(f"[rehearsal] {nb}: {rows[nb]}", flush=True)
            if done.returncode != 0:
                rows[nb]["error"] = done.output[-3000:]
                break
    shown = run_dir.resolve().relative_to(ROOT) if run_dir.resolve().is_relative_to(ROOT) else run_dir
    return {"notebooks": rows, "standins_seconds": round(built_s, 1), "run_dir": str(shown)}


def pipeline_images_per_second(batches: int = 8, in_model: bool = True) -> float:
    """The classifiers' tf.data input pipeline alone, images/s: with in_model (today) shuffled, augmented
    uint8 32x32 batches, the model resizing and preprocessing on the accelerator; without it the layout
    before preprocessing moved into the model (augment, resize 32 -> 224, preprocess on the CPU)."""
    import numpy as np

    from helpers.classify import get_backbone
    from helpers.classify.pipeline import make_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64 * (batches + 2), 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 100, len(images))
    spec = get_backbone("resnet50")
    ds = iter(make_dataset(images, labels, spec, 224, 64, training=True, preprocess=not in_model))
    next(ds)  # builds the pipeline
    start = time.perf_counter()
    for _ in range(batches):
        next(ds)
    return 64 * batches / (time.perf_counter() - start)


def pipeline_rates() -> dict[str, float]:
    """Both layouts side by side: today's uint8 batches and the former CPU-side resize + preprocess."""
    return {
        "pipeline_images_per_second": round(pipeline_images_per_second(64, in_model=True), 1),
        "pipeline_images_per_second_before": round(pipeline_images_per_second(8, in_model=False), 1),
    }


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and the versions that produced the run."""
    from helpers.runtime import versions

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        "unknown",
    )
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions(),
        "commit": (git.stdout.strip() or "unknown")
        + (" with uncommitted changes" if dirty.stdout.strip() else ""),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_results(out: Path, results: dict[str, Any]) -> None:
    """results.json and the results.md rendered from it, into `out`."""
    from rehearsal import markdown

    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown.render(results))
    print(f"[rehearsal] wrote {out / 'results.md'}")


def recompute_estimates(results: dict[str, Any]) -> dict[str, Any]:
    """`results` with the T4 table and the COCO projections counted again for today's full preset, from the
    measurements stored with them (parse and feature rates); dated in `estimates_recomputed`."""
    import tempfile

    from helpers.caption.config import CaptionConfig
    from rehearsal import estimate, report

    with tempfile.TemporaryDirectory() as tmp:
        cap = CaptionConfig.for_preset("full", tmp)
    results = {**results, "t4": report.t4_estimate(cap)}
    if coco := results.get("coco"):
        results["coco"] = {**coco, "estimates": estimate.coco_projections(coco["parse"], coco["features"])}
    results["estimates_recomputed"] = time.strftime("%Y-%m-%d %H:%M")
    return results


def main(argv: list[str] | None = None) -> int:
    from rehearsal import report

    parser = argparse.ArgumentParser(prog="python -m rehearsal.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", default=str(ROOT / "runs" / "rehearsal"), help="stand-ins, caches, run folder"
    )
    parser.add_argument("--only", default=",".join(CAPS), help="notebooks to run, e.g. 01,02 (default: all)")
    parser.add_argument("--out", default=str(HERE), help="where results.md and results.json go")
    parser.add_argument("--report-only", action="store_true", help="re-read the last run; run nothing")
    parser.add_argument(
        "--pipeline-only",
        action="store_true",
        help="measure the input pipeline again (both layouts) into the stored results; nothing else",
    )
    parser.add_argument(
        "--no-coco", action="store_true", help="skip the COCO-scale data path (rehearsal.coco)"
    )
    parser.add_argument(
        "--estimates-only",
        action="store_true",
        help="recompute the T4 and COCO estimates (FLOP counts) from the stored measurements; run nothing",
    )
    args = parser.parse_args(argv)
    work, notebooks, out = Path(args.work), [n.strip() for n in args.only.split(",")], Path(args.out)
    if args.pipeline_only:  # everything else as the last run measured it
        results = {**json.loads((out / "results.json").read_text()), **pipeline_rates()}
        write_results(out, results)
        return 0
    if args.estimates_only:  # a changed recipe (e.g. bucket_by_length) changes only the FLOP counts
        results = recompute_estimates(json.loads((out / "results.json").read_text()))
        write_results(out, results)
        return 0
    if args.report_only:  # what the run measured stays; what is read from its folder is read again
        results = json.loads((out / "results.json").read_text())
    else:
        caps = {n: CAPS[n] for n in notebooks}
        results = {"machine": machine(), "caps": caps, **run_notebooks(work, notebooks)}
        results.update(pipeline_rates())
        if not args.no_coco:
            from rehearsal.coco import measure_coco

            results["coco"] = measure_coco(work / "coco")
    results.update(report.collect(ROOT / results["run_dir"], work / "keras"))
    write_results(out, results)
    return 0 if all(r["ok"] for r in results["notebooks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
