"""What the rehearsal's run folder says: steps and their FLOPs, sizes, checkpoints, and the T4 estimate."""

from __future__ import annotations

import functools
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


@functools.cache  # the T4 table and the COCO projections read the same file with the same arguments
def caption_shape(
    token_file: Path, batch: int, max_tokens: int, bucket: bool = False, seed: int = 0
) -> dict[str, float]:
    """Mean caption tokens (end included) and the mean padded width of a training batch, from a caption
    file: of one epoch's length-bucketed batches when `bucket` (`TrainConfig.bucket_by_length`), else of
    shuffled batches. The captions are those 06 trains on, read as it reads them: normalized
    (`helpers.data.captions.normalize_caption`), tokenized as training does
    (`helpers.caption.train.caption_tokens`), of `helpers.data.flickr.training_captions`' images."""
    from helpers.caption.batching import epoch_batches
    from helpers.caption.tokenizer import gpt2_tokenizer
    from helpers.caption.train import caption_tokens
    from helpers.data.flickr import training_captions

    captions, names = training_captions(token_file)
    tokens = caption_tokens(captions, names, gpt2_tokenizer(), max_tokens)
    lengths = np.array([len(ids) for _, ids in tokens])
    if bucket:
        widths = [lengths[b].max() for b in epoch_batches(lengths, batch, seed, 1, bucket=True)]
    else:
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


def captioner_steps(
    run_dir: Path, prefix: int, batch: int, max_tokens: int, bucket: bool = False
) -> list[dict[str, Any]]:
    """Seconds per steady step of every captioner trained in 06 (GPT-2 trained, or frozen in the study)."""
    token_file = run_dir / "sources" / "flickr8k" / "Flickr8k.token.txt"
    if not token_file.is_file():
        return []
    shape = caption_shape(token_file, batch, max_tokens, bucket)
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


def full_size_projection(run_dir: Path) -> dict[str, float]:
    """The run folder at full data size: the parts that scale with the data swapped for their full sizes.

    Models, checkpoints, captioner and figures do not depend on how much data trained them. What does:
    ``data/`` (60,000 CIFAR images of 3,072 bytes + labels), ``sources/`` (Flickr8k's 8,091 JPEGs, ~1.1 GB
    as the public archive holds them) and the feature caches (8,091 rows of the same width and dtype).
    """
    data_full = 60_000 * (3_072 + 2 * 8)  # uint8 pixels, two int64 labels per image
    feats_now = feats_full = 0
    for path in run_dir.rglob("features.npy"):
        rows = np.load(path, mmap_mode="r")
        feats_now += path.stat().st_size
        feats_full += estimate.FLICKR["images"] * rows.shape[1] * rows.dtype.itemsize
    parts_now = measure.folder_size(run_dir / "data") + measure.folder_size(run_dir / "sources") + feats_now
    full = measure.folder_size(run_dir) - parts_now + data_full + 1.1e9 + feats_full
    return {"bytes": full, "data": data_full, "sources": 1.1e9, "features": feats_full}


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
        "steps": classifier_steps(run_dir)
        + captioner_steps(run_dir, prefix, batch, max_tokens, cap.train.bucket_by_length),
        "run_folder_bytes": measure.folder_size(run_dir),
        "full_size": full_size_projection(run_dir),
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
    shape = (
        caption_shape(REAL_TOKENS, cap.train.batch_size, cap.train.max_tokens, cap.train.bucket_by_length)
        if real
        else None
    )
    rows.append(vars(estimate.captioner_estimate(cap, shape)))
    return {
        "rows": rows,
        "caption_shape": shape,
        "peak": estimate.T4_PEAK_FLOPS,
        "utilisation": estimate.UTILISATION,
    }
