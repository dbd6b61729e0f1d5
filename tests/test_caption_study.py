"""Notebook 06's checks and study write-ups: the first-epoch comparison with the blind twin warns in bold
when the captioner is not below it, the encoder study resolves "best" and generates its table, chart and
conclusion from the numbers (the notebook test runs the study itself)."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import artifacts
from helpers.caption import study, variants
from helpers.config import RunPaths


def test_first_epoch_check_compares_with_the_blind_twin_and_warns_in_bold():
    blind = pd.DataFrame({"epoch": [1, 2], "val_loss": [3.0, 2.5]})
    shown: list[str] = []
    check = variants.first_epoch_check(blind, shown.append)
    check({"epoch": 1, "val_loss": 2.2})
    check({"epoch": 2, "val_loss": 1.0})  # only the first epoch is checked
    assert len(shown) == 1 and "2.2000" in shown[0] and "3.0000" in shown[0] and "**" not in shown[0]
    check = variants.first_epoch_check(blind, shown.append)
    check({"epoch": 1, "val_loss": 3.1})
    assert shown[-1].startswith("**") and shown[-1].endswith("**") and "not below" in shown[-1]
    assert "**" in variants.first_epoch_verdict(3.0, 3.0)  # equal is not below


def test_best_means_the_compared_classifier_and_is_left_out_before_05(tmp_path, capsys):
    paths = RunPaths.for_run("smoke", tmp_path).ensure()
    assert study.resolve_specs(("clip", "best", "clip"), paths) == ["clip"]
    assert "no best CIFAR-100 classifier" in capsys.readouterr().out
    (paths.models / "resnet50").mkdir(parents=True)
    (paths.models / "resnet50" / "model.keras").write_bytes(b"weights")
    artifacts.write_json(paths.best, {"name": "resnet50", "model_dir": "models/resnet50"})
    specs = study.resolve_specs(("clip", "resnet50", "best"), paths)
    assert specs == ["clip", "resnet50", "classifier:resnet50"]


def row(label: str, backbone: str, bleu: float, cider: float, loss: float) -> dict:
    scores = {"Bleu_4": bleu, "CIDEr": cider}
    return {"label": label, "backbone": backbone, "scores": scores, "training": {"best_val_loss": loss},
            "above_blind": {"Bleu_4": bleu - 0.1, "CIDEr": cider - 0.5}}  # fmt: skip


@pytest.fixture
def result() -> dict:
    return {
        "decoding": "greedy",
        "test_images": 60,
        "blind": {"scores": {"Bleu_4": 0.1, "CIDEr": 0.5}, "training": {"best_val_loss": 2.0}},
        "encoders": {
            "clip": row("CLIP ViT (x) @224", "clip", 0.3, 1.4, 1.2),
            "resnet50": row("resnet50 (imagenet) @224", "resnet50", 0.25, 1.1, 1.4),
            "classifier:resnet50": row("resnet50 classifier @32", "resnet50", 0.2, 0.9, 1.5),
        },
    }


def test_study_table_chart_and_conclusion_come_from_the_numbers(result):
    table = study.study_table(result)
    assert list(table.index) == [*(r["label"] for r in result["encoders"].values()), "image-blind twin"]
    assert table.loc["CLIP ViT (x) @224", "CIDEr above blind"] == pytest.approx(0.9)
    assert table.loc["image-blind twin", "BLEU-4"] == pytest.approx(0.1)
    text = study.study_conclusion(result)
    assert text.index("CLIP ViT (x) @224") < text.index("resnet50 (imagenet)")  # ranked by CIDEr gain
    assert "**CLIP ViT (x) @224**" in text and "+0.900" in text
    assert "fine-tuning **hurt**" in text and "-0.200" in text  # 0.4 vs 0.6 CIDEr above blind
    result["encoders"]["classifier:resnet50"] = row("resnet50 classifier @32", "resnet50", 0.3, 1.3, 1.3)
    assert "fine-tuning **helped**" in study.study_conclusion(result)
    for encoder in result["encoders"].values():  # nothing above blind: said so, no winner named
        encoder["above_blind"]["CIDEr"] = -0.1
    assert "no encoder lifts CIDEr above the image-blind twin" in study.study_conclusion(result)
    fig = study.plot_study(result)
    assert [len(ax.patches) for ax in fig.axes] == [3, 3]  # one bar per encoder in each panel
