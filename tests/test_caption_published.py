"""helpers.caption.published: the data file parses with a citation per row; the dataset filter, our
row's x100 scaling, SPICE "not computed", and an unknown dataset's empty published part."""

from __future__ import annotations

import pytest

from helpers.caption import published
from helpers.metrics import METRICS

METRICS_JSON = {
    "model": dict(zip(METRICS, (0.6, 0.4, 0.3, 0.2, 0.21, 0.45, 0.9), strict=True)),
    "blind": {**dict(zip(METRICS, (0.5, 0.3, 0.2, 0.1, 0.15, 0.4, 0.3), strict=True)), "METEOR": None},
    "decoding": "beam3",
    "config": {"preset": "full", "encoder": {"backbone": "clip", "weights": "openai/clip-vit-base-patch32"},
               "train": {"epochs": 10}},
}  # fmt: skip


def test_every_published_row_parses_with_a_citation_and_scores_on_the_x100_scale():
    table = published.published_results()
    assert len(table) >= 8 and table["citation"].str.contains("arXiv:").all()
    scores = table[list(published.SCORES)]
    assert ((scores.isna()) | ((scores > 1) & (scores < 150))).all().all()
    assert set(table["dataset"]) <= {d for d, _ in published.DATASETS.values()}


def test_clipcap_and_show_attend_tell_numbers_are_the_published_ones():
    rows, _ = published.published_for("karpathy:coco")
    clipcap = rows[rows["paper"] == "ClipCap"].set_index("method")
    assert clipcap.loc["transformer mapper, GPT-2 frozen", ["Bleu_4", "CIDEr"]].tolist() == [33.53, 113.08]
    flickr30k, _ = published.published_for("karpathy:flickr30k")
    soft = flickr30k[flickr30k["method"] == "soft attention"].iloc[0]
    assert (soft["Bleu_4"], soft["METEOR"]) == (19.1, 18.49)


def test_filter_by_dataset_and_split():
    rows, note = published.published_for("karpathy:flickr8k")
    assert set(rows["dataset"]) == {"flickr8k"} and len(rows) == 2 and "Karpathy test" in note
    official, note = published.published_for("flickr8k")  # a different split until shown to be the same
    assert official.empty and "official test" in note


def test_field_table_scales_our_rows_and_labels_both_parts():
    clip = {"model": {"CLIP-S": 0.71, "RefCLIP-S": 0.75}}
    table, note = published.field_table("karpathy:coco", METRICS_JSON, clip)
    ours = table[table["source"] == "computed in this run"].set_index("paper", append=True)
    model, blind = ours.iloc[0], ours.iloc[1]
    assert model["Bleu_4"] == pytest.approx(20.0) and model["CIDEr"] == pytest.approx(90.0)
    assert model["SPICE"] == "not computed" and blind["METEOR"] == "not computed"
    assert model["CLIP-S"] == 0.71 and blind["CLIP-S"] == "not computed"
    assert "beam3" in model["method"] and "10 epochs" in model["method"] and "preset full" in model["method"]
    theirs = table[table["source"] == published.PUBLISHED]
    assert len(theirs) == 5 and theirs["citation"].notna().all() and "coco" in note


def test_unknown_dataset_gives_only_our_rows_and_says_why():
    table, note = published.field_table("folder:/my/pictures", METRICS_JSON)
    assert (table["source"] == "computed in this run").all() and len(table) == 2
    assert "no published results" in note and "folder:/my/pictures" in note
