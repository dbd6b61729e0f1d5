"""helpers.caption.config: presets choose sizes and sources, knobs override them, bad input is clear."""

from __future__ import annotations

import pytest

from helpers.caption.config import SMOKE_FLICKR, CaptionConfig
from helpers.caption.model import SMALL_GPT2


def test_presets_differ_only_in_sizes_and_sources(tmp_path):
    smoke = CaptionConfig.for_preset("smoke", tmp_path)
    full = CaptionConfig.for_preset("full", tmp_path)
    assert (smoke.encoder.backbone, smoke.encoder.weights, smoke.encoder.input_size) == ("resnet50", None, 64)
    assert (full.encoder.backbone, full.encoder.weights, full.encoder.input_size) == (
        "resnet50",
        "imagenet",
        224,
    )
    assert smoke.prefix.gpt2 == SMALL_GPT2 and full.prefix.gpt2 == "gpt2"
    assert (full.prefix.prefix_length, full.train.lr, full.decoding.name) == (10, 2e-5, "beam3")
    assert smoke.synthetic == {**SMOKE_FLICKR, "seed": 0} and full.synthetic == {}
    assert [d.name for d in smoke.decodings()] == ["greedy", "beam3", "beam5"]
    record = smoke.to_dict()
    assert record["preset"] == "smoke" and record["run_dir"] == str(tmp_path.resolve())


def test_knobs_override_the_preset(tmp_path):
    cfg = CaptionConfig.for_preset(
        "smoke", tmp_path, prefix_length=6, freeze_gpt2=True, epochs=2, batch_size=8, lr=0.01,
        decoding="nucleus", seed=3, mapper="transformer",
    )  # fmt: skip
    assert (cfg.prefix.prefix_length, cfg.prefix.freeze_gpt2, cfg.prefix.mapper) == (6, True, "transformer")
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed) == (2, 8, 0.01, 3)
    assert cfg.decoding.name == "nucleus0.9" and cfg.decodings()[-1] == cfg.decoding  # added to the sweep
    assert cfg.encoder.seed == 3 and cfg.synthetic["seed"] == 3


def test_sample_needs_a_data_source_and_keeps_a_training_subset(tmp_path):
    with pytest.raises(ValueError, match="data_source"):
        CaptionConfig.for_preset("sample", tmp_path)
    cfg = CaptionConfig.for_preset("sample", tmp_path, data_source=str(tmp_path))

    class Flickr:
        splits = {"train": [f"{i:04d}.jpg" for i in range(500)]}

    names = cfg.train_names(Flickr)
    assert len(names) == cfg.max_train_images < 500 and names == sorted(set(names))
    assert names == cfg.train_names(Flickr)  # seeded
    with pytest.raises(ValueError, match="preset"):
        CaptionConfig.for_preset("huge", tmp_path)
