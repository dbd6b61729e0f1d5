"""helpers.caption.config: presets choose sizes and sources, knobs override them, bad input is clear."""

from __future__ import annotations

import pytest

from helpers.caption.clip import CLIP_HUB_ID, SMALL_CLIP
from helpers.caption.config import SMOKE_FLICKR, CaptionConfig
from helpers.caption.model import SMALL_GPT2


def test_presets_differ_only_in_sizes_and_sources(tmp_path):
    smoke = CaptionConfig.for_preset("smoke", tmp_path)
    full = CaptionConfig.for_preset("full", tmp_path)
    # the same CLIP code path: a small random-init tower in smoke, openai's pretrained one in full
    assert (smoke.encoder.backbone, smoke.encoder.weights, smoke.encoder.input_size) == ("clip", None, 64)
    assert smoke.encoder.vision == SMALL_CLIP and not smoke.pretrained
    assert (full.encoder.backbone, full.encoder.weights) == ("clip", CLIP_HUB_ID)
    assert full.encoder.input_size == 224
    assert full.encoder.vision is None and full.pretrained
    assert smoke.prefix.gpt2 == SMALL_GPT2 and full.prefix.gpt2 == "gpt2"
    assert (full.prefix.prefix_length, full.train.lr, full.decoding.name) == (10, 2e-5, "beam3")
    # full: ClipCap's batch and epochs; the new mapper learns 10x faster than pretrained GPT-2
    assert (full.train.batch_size, full.train.epochs, full.train.mapper_lr) == (40, 10, 2e-4)
    assert smoke.train.mapper_lr == smoke.train.lr  # smoke's GPT-2 is from scratch too
    assert smoke.compare_encoders == ("clip", "resnet50") and "best" in full.compare_encoders
    assert full.check_first_epoch and not smoke.check_first_epoch  # smoke's GPT-2 learns language first
    assert smoke.synthetic == {**SMOKE_FLICKR, "seed": 0} and full.synthetic == {}
    assert [d.name for d in smoke.decodings()] == ["greedy", "beam3", "beam5"]
    record = smoke.to_dict()
    assert record["preset"] == "smoke" and record["run_dir"] == str(tmp_path.resolve())


def test_knobs_override_the_preset(tmp_path):
    cfg = CaptionConfig.for_preset(
        "smoke", tmp_path, prefix_length=6, freeze_gpt2=True, epochs=2, batch_size=8, lr=0.01,
        decoding="nucleus", seed=3, mapper="transformer", encoder="resnet50", mapper_lr=0.05, warmup=0.2,
        compare_encoders=[],
    )  # fmt: skip
    assert (cfg.prefix.prefix_length, cfg.prefix.freeze_gpt2, cfg.prefix.mapper) == (6, True, "transformer")
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.seed) == (2, 8, 0.01, 3)
    assert cfg.decoding.name == "nucleus0.9" and cfg.decodings()[-1] == cfg.decoding  # added to the sweep
    assert cfg.encoder.seed == 3 and cfg.synthetic["seed"] == 3
    assert (cfg.encoder.backbone, cfg.encoder.weights, cfg.train.mapper_lr) == ("resnet50", None, 0.05)
    assert cfg.train.warmup_fraction == 0.2 and cfg.compare_encoders == ()


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
