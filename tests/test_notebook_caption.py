"""06-flickr-gpt2-finetune through papermill.

smoke: on the synthetic Flickr8k-style world (captions fully determined by the picture) the captioner must
score BLEU-4 >= 0.5 on the test split and at least 0.2 above its image-blind twin, trained the same way.
sample: the same notebook on the real Flickr8k sample (real captions, official splits, real JPEGs, most
images missing); a format check, its scores are not asserted.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from notebook_support import markdown_outputs

from helpers import artifacts
from helpers.caption.config import SMOKE_BLEU_ABOVE_BLIND, SMOKE_BLEU_FLOOR, SMOKE_FLICKR, SWEEP
from helpers.metrics import METRICS, java_available

pytestmark = pytest.mark.notebook


def check_scores(scores: dict) -> None:
    """All seven metrics; METEOR a number with Java and None (not computed, never 0) without."""
    assert list(scores) == list(METRICS)
    for name in METRICS:
        if name == "METEOR" and not java_available():
            assert scores[name] is None
        else:
            assert isinstance(scores[name], float) and math.isfinite(scores[name]) and scores[name] >= 0, name


def test_smoke_captioner_beats_the_image_blind_baseline(smoke_run):
    run_dir = smoke_run.ensure("01", "06")
    captions = run_dir / "captions"
    metrics = artifacts.read_json(captions / "metrics.json")
    check_scores(metrics["model"])
    check_scores(metrics["blind"])
    model, blind = metrics["model"]["Bleu_4"], metrics["blind"]["Bleu_4"]
    assert model >= SMOKE_BLEU_FLOOR, f"BLEU-4 {model:.3f} < {SMOKE_BLEU_FLOOR}"
    assert model - blind >= SMOKE_BLEU_ABOVE_BLIND, (
        f"BLEU-4 {model:.3f} is not {SMOKE_BLEU_ABOVE_BLIND} above the blind baseline's {blind:.3f}"
    )
    assert metrics["model"]["CIDEr"] > metrics["blind"]["CIDEr"]
    assert set(metrics["sweep"]) >= set(SWEEP) and metrics["sweep"][metrics["decoding"]] == metrics["model"]
    for scores in metrics["sweep"].values():
        check_scores(scores)
    assert metrics["config"]["preset"] == "smoke" and metrics["versions"]["torch"] and metrics["device"]
    # the full preset's CLIP code path, with a small random-init CLIP: no download in smoke
    assert (
        metrics["config"]["encoder"]["backbone"] == "clip" and metrics["config"]["encoder"]["weights"] is None
    )
    assert "BLEU-4" in markdown_outputs(run_dir / "notebooks" / "06-flickr-gpt2-finetune.ipynb")

    per_image = artifacts.read_json(captions / "test_captions.json")
    assert len(per_image) == metrics["test_images"] > 0
    assert len({c["model"] for c in per_image.values()}) > len({c["blind"] for c in per_image.values()})
    for variant in ("model", "blind"):
        history = pd.read_csv(captions / "training" / variant / "history.csv")
        assert history["epoch"].tolist() == list(range(1, metrics["config"]["train"]["epochs"] + 1))
        assert history["val_loss"].min() < history["val_loss"].iloc[0]
    assert metrics["training"]["model"]["best_val_loss"] < metrics["training"]["blind"]["best_val_loss"]
    for fig in ("caption-stats", "training-curves", "test-captions", "cifar-captions"):
        assert (run_dir / "figures" / f"06-{fig}.png").stat().st_size > 5_000, fig


def test_smoke_captioner_folder_reproduces_the_notebooks_captions(smoke_run):
    from helpers.caption.captioner import Captioner
    from helpers.data import decode_image

    run_dir = smoke_run.ensure("01", "06")
    per_image = artifacts.read_json(run_dir / "captions" / "test_captions.json")
    cache_dir = run_dir / "captions" / "features"
    assert artifacts.read_json(cache_dir / "config.json")["images"] == SMOKE_FLICKR["num_images"]
    rows = {n: i for i, n in enumerate(artifacts.read_json(cache_dir / "index.json")["names"])}
    cached = artifacts.load_npy(cache_dir / "features.npy")
    assert cached.dtype == np.float16
    captioner = Captioner.load(run_dir / "captions" / "model")
    names = sorted(per_image)[:3]
    images = [decode_image(run_dir / "sources" / "flickr8k" / "Images" / n) for n in names]
    # same encoder and weights as the cache, so the same features ...
    np.testing.assert_allclose(
        captioner.encode(images), cached[[rows[n] for n in names]].astype(np.float32), rtol=1e-2, atol=1e-2
    )
    # ... and the same captions as the notebook's evaluation (same weights, same default decoding)
    assert captioner.caption_images(images) == [per_image[n]["model"] for n in names]


def test_smoke_encoder_study_compares_two_encoders_and_the_features_are_reused(smoke_run):
    from helpers.caption.config import CaptionConfig
    from helpers.caption.features import cached_features
    from helpers.data import load_flickr8k

    run_dir = smoke_run.ensure("01", "06")
    study = artifacts.read_json(run_dir / "captions" / "encoders.json")
    assert list(study["encoders"]) == ["clip", "resnet50"] and study["trained"].startswith("mapper only")
    blind = study["blind"]["scores"]
    for row in study["encoders"].values():
        check_scores(row["scores"])
        assert row["above_blind"]["Bleu_4"] == pytest.approx(row["scores"]["Bleu_4"] - blind["Bleu_4"])
        assert row["training"]["epochs"] == study["config"]["study_epochs"]
    assert study["config"]["prefix"]["freeze_gpt2"] and study["config"]["compare_encoders"] == [
        "clip",
        "resnet50",
    ]
    assert (run_dir / "captions" / "encoders" / "resnet50" / "features" / "features.npy").is_file()
    assert (run_dir / "figures" / "06-encoders.png").stat().st_size > 5_000
    text = markdown_outputs(run_dir / "notebooks" / "06-flickr-gpt2-finetune.ipynb")
    assert "With GPT-2 frozen and only the mapper trained" in text
    # a second run finds the chosen encoder's features in the cache (same config, same pictures)
    cfg = CaptionConfig.for_preset("smoke", str(run_dir))
    flickr = load_flickr8k(run_dir / "sources" / "flickr8k")
    names = sorted(n for split in flickr.splits.values() for n in split)
    cache = cached_features(
        run_dir / "captions" / "features", cfg.encoder, names, flickr.image_path, progress=False
    )
    assert cache.reused and cache.config["encoder"]["backbone"] == "clip"


def test_sample_preset_runs_on_the_real_flickr8k_sample(sample_run):
    run_dir = sample_run.ensure("06")
    metrics = artifacts.read_json(run_dir / "captions" / "metrics.json")
    check_scores(metrics["model"])
    check_scores(metrics["blind"])
    assert metrics["config"]["preset"] == "sample" and metrics["config"]["data_source"].endswith("flickr8k")
    assert metrics["test_images"] == 125  # the official test images present in the sample
    features = artifacts.read_json(run_dir / "captions" / "features" / "config.json")
    assert features["images"] == 753 + 113 + 125  # official splits, images on disk only
    per_image = artifacts.read_json(run_dir / "captions" / "test_captions.json")
    assert all(len(c["references"]) == 5 for c in per_image.values())
    assert (run_dir / "captions" / "model" / "captioner.json").is_file()


def test_smoke_clipscore_and_the_fields_table(smoke_run):
    """06 writes CLIP-S/RefCLIP-S for the captioner and its blind twin (a code-path check in smoke: random
    CLIP) with the config that produced them, and shows the field's table with our two rows."""
    run_dir = smoke_run.ensure("01", "06")
    clip = artifacts.read_json(run_dir / "captions" / "clipscore.json")
    assert clip["config"]["dataset"] == "flickr8k" and "code path only" in clip["scorer"]
    test = artifacts.read_json(run_dir / "captions" / "test_captions.json")
    for run in ("model", "blind"):
        assert 0.0 <= clip[run]["CLIP-S"] <= 2.5 and 0.0 <= clip[run]["RefCLIP-S"] <= 2.5
        assert set(clip[run]["per_image"]) == set(test)
    text = "".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in artifacts.read_json(run_dir / "notebooks" / "06-flickr-gpt2-finetune.ipynb")["cells"]
        for o in c.get("outputs", [])
    )
    assert "image-blind twin: preset smoke" in text and "not computed" in text
