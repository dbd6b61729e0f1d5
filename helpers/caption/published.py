"""The field's table: our test-split scores beside published ones for the same dataset and split.

Published rows come from ``published_results.csv`` (one citation per row, scores x100 as papers print
them, blank where a paper does not report a metric) and are labelled "as published, not reproduced
here". Our scores come from notebook 06's metrics.json (pycocoevalcap's 0-1 scale, multiplied by 100
here); SPICE is never computed (it needs Stanford CoreNLP), so our SPICE says "not computed".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from helpers.metrics import METRICS

RESULTS_FILE = Path(__file__).with_name("published_results.csv")
SCORES = (*METRICS, "SPICE")
CLIP_SCORES = ("CLIP-S", "RefCLIP-S")  # on their own scale (0-2.5), never x100
PUBLISHED = "as published, not reproduced here"
#: Our dataset name -> (dataset, split) of the published rows it compares with.
DATASETS = {
    "karpathy:coco": ("coco", "Karpathy test"),
    "karpathy:flickr30k": ("flickr30k", "Karpathy test"),
    "karpathy:flickr8k": ("flickr8k", "Karpathy test"),
    "flickr8k": ("flickr8k", "official test"),
}
#: Splits known to hold the same images, e.g. ("flickr8k", "official test"): ("flickr8k", "Karpathy test")
#: once Karpathy's Flickr8k test list is checked to equal Flickr_8k.testImages.txt. Unchecked: empty.
SAME_SPLITS: dict[tuple[str, str], tuple[str, str]] = {}


def published_results() -> pd.DataFrame:
    """Every row of the data file; refuses rows without a citation."""
    table = pd.read_csv(RESULTS_FILE, dtype={"citation": str})
    uncited = table.index[table["citation"].fillna("").str.strip() == ""].tolist()
    if uncited:
        raise ValueError(f"{RESULTS_FILE.name}: rows without a citation: {uncited}")
    return table


def published_for(dataset: str) -> tuple[pd.DataFrame, str]:
    """Published rows for our dataset name, and a note saying what was matched (or why nothing)."""
    table = published_results()
    if dataset not in DATASETS:
        return table.iloc[0:0], f"no published results for {dataset!r} (known: {', '.join(DATASETS)})"
    want = DATASETS[dataset]
    keys = {want, SAME_SPLITS[want]} if want in SAME_SPLITS else {want}
    rows = table[[(d, s) in keys for d, s in zip(table["dataset"], table["split"], strict=True)]]
    matched = " or ".join(f"{d}, {s}" for d, s in sorted(keys))
    return rows, f"{len(rows)} published results on {matched}"


def our_row(scores: dict[str, Any], run: str, clip: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of ours: pycocoevalcap scores x100, SPICE "not computed", CLIP-S/RefCLIP-S as computed."""
    row: dict[str, Any] = {"paper": "this run", "method": run, "source": "computed in this run"}
    for name in METRICS:
        value = scores.get(name)
        row[name] = "not computed" if value is None else 100 * float(value)
    row["SPICE"] = "not computed"
    for name in CLIP_SCORES:
        value = None if clip is None else clip.get(name)
        row[name] = "not computed" if value is None else float(value)
    return row


def field_table(
    dataset: str, metrics: dict[str, Any], clip: dict[str, dict] | None = None
) -> tuple[pd.DataFrame, str]:
    """Our model and blind rows (from metrics.json), then the published rows; and the match note.

    `clip`: {"model": clip_scores(...), "blind": clip_scores(...)} from helpers.caption.clipscore.
    """
    cfg = metrics["config"]
    encoder = cfg["encoder"]
    label = (
        f"preset {cfg['preset']}, encoder {encoder['backbone']} ({encoder.get('weights') or 'random init'}),"
        f" {metrics['decoding']}, {cfg['train']['epochs']} epochs"
    )
    clip = clip or {}
    ours = [
        our_row(metrics["model"], f"captioner: {label}", clip.get("model")),
        our_row(metrics["blind"], f"image-blind twin: {label}", clip.get("blind")),
    ]
    rows, note = published_for(dataset)
    theirs = rows.assign(source=PUBLISHED)[["paper", "authors_year", "method", *SCORES, "source", "citation"]]
    table = pd.concat([pd.DataFrame(ours), theirs], ignore_index=True)
    columns = ["paper", "authors_year", "method", *SCORES, *CLIP_SCORES, "source", "citation"]
    return table.reindex(columns=columns), note
