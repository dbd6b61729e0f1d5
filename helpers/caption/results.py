"""Notebook 06's result files: run_dir/captions/test_captions.json and metrics.json."""

from __future__ import annotations

from typing import Any

from helpers import artifacts
from helpers.caption.config import CaptionConfig
from helpers.caption.features import FeatureCache
from helpers.caption.variants import training_summary
from helpers.runtime import device_summary, versions


def write_test_captions(
    cfg: CaptionConfig, references: dict[str, list[str]], model_caps: list[str], blind_caps: list[str]
) -> dict[str, dict]:
    """run_dir/captions/test_captions.json: per test image, both variants' captions and the references."""
    per_image = {
        n: {"model": m, "blind": b, "references": references[n]}
        for n, m, b in zip(references, model_caps, blind_caps, strict=True)
    }
    artifacts.write_json(cfg.paths.captions / "test_captions.json", per_image)
    return per_image


def run_record(cache: FeatureCache, scoring: dict, trained: dict[str, tuple]) -> dict[str, Any]:
    """What the metrics file records beside the scores: test size, scoring, features, both trainings."""
    return {
        "scoring": scoring,
        "features": cache.config,
        "training": {name: training_summary(model, history) for name, (model, history) in trained.items()},
    }


def write_metrics(
    cfg: CaptionConfig, model_metrics: dict[str, dict], blind_metrics: dict[str, dict], extra: dict[str, Any]
) -> dict[str, Any]:
    """run_dir/captions/metrics.json: headline `model` and `blind` scores, the sweep, config, versions."""
    head = cfg.decoding.name
    out = {
        "model": model_metrics[head],
        "blind": blind_metrics[head],
        "decoding": head,
        "sweep": model_metrics,
        "blind_sweep": blind_metrics,
        "gain_over_blind": {
            k: _diff(model_metrics[head][k], blind_metrics[head][k]) for k in model_metrics[head]
        },
        **extra,
        "config": cfg.to_dict(),
        "versions": versions(),
        "device": device_summary(),
    }
    artifacts.write_json(cfg.paths.captions / "metrics.json", out)
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
