"""What the rehearsal's run folder says (steps, sizes, checkpoints), the T4 estimate, and results.md."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rehearsal import estimate, measure

CLASSIFIERS = {"02": "vgg16", "03": "resnet50", "04": "mobilenet_v2"}
REAL_TOKENS = (
    Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "flickr8k" / "Flickr8k.token.txt"
)


def caption_shape(token_file: Path, batch: int, max_tokens: int, seed: int = 0) -> dict[str, float]:
    """Mean caption tokens (end included) and mean padded width of a shuffled batch, from a caption file."""
    from helpers.caption.tokenizer import caption_text, gpt2_tokenizer

    tok = gpt2_tokenizer()
    captions = [
        ln.split("\t", 1)[1] for ln in token_file.read_text(encoding="utf-8").splitlines() if "\t" in ln
    ]
    lengths = np.array([min(len(tok(caption_text(c))["input_ids"]), max_tokens - 1) + 1 for c in captions])
    rng = np.random.default_rng(seed)
    widths = [lengths[rng.choice(len(lengths), batch, replace=False)].max() for _ in range(200)]
    return {"captions": len(lengths), "mean_tokens": float(lengths.mean()), "padded": float(np.mean(widths))}


def classifier_steps(run_dir: Path) -> list[dict[str, Any]]:
    """Seconds per steady step of each classifier phase, with the step's FLOPs (from the model)."""
    rows = []
    for name in CLASSIFIERS.values():
        folder = run_dir / "models" / name
        if not (folder / "history.csv").is_file():
            continue
        cfg = json.loads((folder / "config.json").read_text())
        forward = 2 * estimate.keras_macs(name, cfg["input_size"]) * cfg["batch_size"]
        for _, row in pd.read_csv(folder / "history.csv").iterrows():
            flops = forward * (1 if row["phase"] == "head" else 3)
            rows.append(_step(f"{name} {row['phase']}", cfg["batch_size"], row["step_seconds"], flops))
    return rows


def captioner_steps(run_dir: Path, prefix: int, batch: int, max_tokens: int) -> list[dict[str, Any]]:
    """Seconds per steady step of every captioner trained in 06 (GPT-2 trained, or frozen in the study)."""
    token_file = run_dir / "sources" / "flickr8k" / "Flickr8k.token.txt"
    if not token_file.is_file():
        return []
    shape = caption_shape(token_file, batch, max_tokens)
    full = estimate.captioner_step_flops(batch, prefix, shape["mean_tokens"], shape["padded"])
    rows = []
    for history in sorted((run_dir / "captions").rglob("history.csv")):
        frozen = "encoders" in history.parts  # the encoder study trains the mapper only
        flops = full * (2 / 3 if frozen else 1)  # no weight gradients for a frozen GPT-2
        label = str(history.parent.relative_to(run_dir / "captions"))
        step_s = pd.read_csv(history)["step_seconds"].iloc[-1]
        rows.append(_step(f"captioner {label}" + (" (GPT-2 frozen)" if frozen else ""), batch, step_s, flops))
    return rows


def _step(what: str, batch: int, seconds: float, flops: float) -> dict[str, Any]:
    achieved = flops / seconds / 1e9 if seconds and not math.isnan(seconds) else float("nan")
    return {"what": what, "batch": int(batch), "step_seconds": round(float(seconds), 2), "gflop": flops / 1e9,
            "gflops_per_s": round(achieved, 1)}  # fmt: skip


def checkpoint_files(run_dir: Path) -> list[dict[str, Any]]:
    """Every file below a checkpoint folder (or named like one), for the disk-discipline check."""
    out = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if path.is_file() and any("checkpoint" in part or part == "backup" for part in rel.parts[:-1]):
            out.append({"path": str(rel), "bytes": path.stat().st_size})
    return out


def collect(run_dir: Path, keras_home: Path) -> dict[str, Any]:
    """Steps, folder sizes, checkpoints, downloads and the T4 estimate, from what the run left."""
    from helpers.caption.config import CaptionConfig

    cap = CaptionConfig.for_preset("full", str(run_dir))
    prefix, batch, max_tokens = cap.prefix.prefix_length, cap.train.batch_size, cap.train.max_tokens
    sizes = {k: v for k, v in measure.folder_table(run_dir, depth=3).items() if v >= 1_000_000}
    downloads = {
        str(p.relative_to(keras_home)): p.stat().st_size for p in keras_home.rglob("*") if p.is_file()
    }
    return {
        "steps": classifier_steps(run_dir) + captioner_steps(run_dir, prefix, batch, max_tokens),
        "run_folder_bytes": measure.folder_size(run_dir),
        "folders": sizes,
        "checkpoints": checkpoint_files(run_dir),
        "downloads": {k: v for k, v in downloads.items() if not k.endswith(".lock")},
        "t4": t4_estimate(cap),
    }


def t4_estimate(cap) -> dict[str, Any]:
    """The FLOP-bound work of a full run per notebook on one T4 (see rehearsal.estimate for the method)."""
    from helpers.classify.config import PRESET_DEFAULTS

    rows = []
    for nb, name in CLASSIFIERS.items():
        d = PRESET_DEFAULTS[name]["full"]
        e = estimate.classifier_estimate(nb, name, d["input_size"], d["batch_size"], d["head_epochs"],
                                         d["finetune_epochs"])  # fmt: skip
        rows.append(vars(e))
    real = REAL_TOKENS.is_file()
    shape = caption_shape(REAL_TOKENS, cap.train.batch_size, cap.train.max_tokens) if real else None
    rows.append(vars(estimate.captioner_estimate(cap, shape)))
    return {
        "rows": rows,
        "caption_shape": shape,
        "peak": estimate.T4_PEAK_FLOPS,
        "utilisation": estimate.UTILISATION,
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


_STANDINS = (
    "Every external file came from a local HTTP mirror of stand-ins: the real names, formats and sizes (a "
    "50,000 + 10,000-image `cifar-100-python.tar.gz`, the Flickr8k archives' layouts with 140 JPEGs, the "
    "three ImageNet weight files in Keras' HDF5 format), random contents, checked against the mirror's own "
    "sha256 manifest; `gpt2` and CLIP ViT-B/32 (random weights of their real sizes) from a Hugging Face "
    "cache, with `HF_HUB_OFFLINE=1`. Shapes are the preset's own: 224x224 inputs, batch 64 / 64 / 128 / 40, "
    "GPT-2 124 M."
)
_LOAD = (
    "The two cores were shared with other work while this ran (the load average is shown per notebook; "
    "above 2 means competition): wall seconds are slower than on a quiet machine, CPU seconds are what "
    "the notebook itself used."
)


def _header(r: dict[str, Any]) -> list[str]:
    m, v = r["machine"], r["machine"]["versions"]
    caps = "; ".join(
        f"{nb}: " + (", ".join(f"`{k}={val}`" for k, val in c.items()) or "none")
        for nb, c in r["caps"].items()
    )
    return [
        "# Rehearsal of the `full` preset",
        "",
        f"`make rehearse` ran the notebooks with `--preset full -p allow_cpu=True` on {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB RAM (commit {m['commit']}, {m['date']}; TensorFlow "
        f"{v.get('tensorflow', '?')}, torch {v.get('torch', '?')}). " + _STANDINS,
        "",
        f"Caps (knobs that default to no cap): {caps}. Building the stand-ins took "
        f"{r['standins_seconds']:.0f} s, not counted below.",
        "",
        _LOAD,
    ]


def _notebooks(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Per notebook",
        "",
        "| notebook | result | wall s | CPU s | peak RSS (GiB) | written (MB) | run folder growth (MB) | "
        "download cache growth (MB) | load average start / end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for nb, row in r["notebooks"].items():
        lines.append(
            f"| {nb} | {'ok' if row['ok'] else 'FAILED'} | {row['seconds']:.0f} | {row['cpu_seconds']:.0f} | "
            f"{row['peak_rss'] / 2**30:.2f} | {_mb(row['written'])} | {_mb(row['run_growth'])} | "
            f"{_mb(row['cache_growth'])} | {row['load_average'][0]} / {row['load_average'][1]} |"
        )
    total = sum(row["seconds"] for row in r["notebooks"].values())
    lines += [
        "",
        f"All together: {total / 60:.1f} minutes wall. Peak RSS: runner + kernel, sampled every "
        "0.2 s. Written: bytes the runner and kernel wrote (/proc write_bytes, temporary files included).",
    ]
    return lines


def _steps(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Seconds per training step at full shapes (this CPU)",
        "",
        "| step | batch | seconds per step | GFLOP per step | GFLOP/s reached |",
        "|---|---|---|---|---|",
    ]
    for s in r["steps"]:
        lines.append(
            f"| {s['what']} | {s['batch']} | {s['step_seconds']} | {s['gflop']:,.0f} | {s['gflops_per_s']} |"
        )
    lines += [
        "",
        "A steady step: the median without the first step of an epoch that builds the train graph (with "
        "two steps per phase, one step). FLOPs per step as counted for the T4 estimate below; the CPU's "
        "rate is a check on the count (2 AVX2 cores peak near 190 GFLOP/s in float32).",
    ]
    return lines


def _disk(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Disk: the run folder",
        "",
        f"Total {_mb(r['run_folder_bytes'])} MB. Folders of 1 MB or more:",
        "",
        "| folder | MB |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {_mb(v)} |" for k, v in r["folders"].items()]
    ckpt = r["checkpoints"]
    lines += [
        "",
        "Files left in checkpoint folders after the run: "
        + (", ".join(f"`{c['path']}` ({_mb(c['bytes'])} MB)" for c in ckpt) if ckpt else "none."),
    ]
    return lines


def _t4(r: dict[str, Any]) -> list[str]:
    t4 = r["t4"]
    lines = [
        "",
        "## Estimated time on one T4 (ml.g4dn.xlarge), not measured",
        "",
        estimate.__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "",
        f"Peak {t4['peak'] / 1e12:.0f} TFLOPS x assumed utilisation {t4['utilisation']:.0%}.",
        "",
        "| notebook | FLOP-bound work (TFLOP) | T4 minutes | counted |",
        "|---|---|---|---|",
    ]
    for row in t4["rows"]:
        lines.append(
            f"| {row['notebook']} | {row['tflop']:,.0f} | {row['seconds'] / 60:.0f} | {row['note']} |"
        )
    gpu = sum(row["seconds"] for row in t4["rows"])
    cpu_side = sum(r["notebooks"][nb]["seconds"] for nb in ("01", "05", "07") if nb in r["notebooks"])
    rate = r["pipeline_images_per_second"]
    lines += [
        "",
        f"01, 05 and 07 do no GPU work worth counting: they took {cpu_side / 60:.1f} minutes here at full "
        "data size for 01 (plus the 169 MB download on the instance). Sum of the FLOP-bound estimates: "
        f"{gpu / 3600:.1f} h, plus kernel starts, graph builds, caption decoding, METEOR and figures.",
        "",
        f"Input pipeline: the classifiers' tf.data pipeline alone (augment, resize 32 -> 224, preprocess) "
        f"gave {rate:,.0f} images/s on these 2 cores. " + _pipeline_check(t4, rate),
    ]
    return lines


def _pipeline_check(t4: dict[str, Any], rate: float) -> str:
    """Whether the CPU input pipeline could feed the T4 at the estimated speed (4 vCPUs: 2x this rate)."""
    need = []
    for row in t4["rows"]:
        if row["notebook"] in CLASSIFIERS:
            name = CLASSIFIERS[row["notebook"]]
            forward = 2 * estimate.keras_macs(name, 224)
            need.append(f"{name} {estimate.T4_PEAK_FLOPS * estimate.UTILISATION / (3 * forward):,.0f}")
    return (
        "Fine-tuning at the estimated T4 speed consumes images/s: "
        + ", ".join(need)
        + f"; the instance's 4 vCPUs would supply about {2 * rate:,.0f}: where that is lower, the input "
        "pipeline, not the GPU, sets the pace."
    )


def markdown(r: dict[str, Any]) -> str:
    """results.md from the collected results."""
    from helpers.data.download_table import markdown_table

    lines = _header(r) + _notebooks(r) + _steps(r) + _disk(r) + _t4(r)
    fetched = ", ".join(f"`{k}` ({_mb(v)} MB)" for k, v in r["downloads"].items())
    lines += [
        "",
        "## Files the `full` preset fetches",
        "",
        markdown_table(("helpers", "huggingface_hub")),
        "",
        f"Downloaded from the mirror into a fresh Keras cache in this run: {fetched}.",
    ]
    return "\n".join(lines) + "\n"
