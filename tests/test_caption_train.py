"""helpers.caption training and decoding on a toy world: four "pictures", each with its own caption.

The captioner must learn which caption goes with which picture (its image-blind twin cannot), every
decoding strategy must return well-formed captions and stop, training must resume exactly from its
checkpoint (also under fp16 with its loss scaler, the GPU's path, killed mid-epoch), the autocast paths
must run, and a finished training keeps only its history and best weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.caption.decode import DecodeConfig, decode_captions, generate_ids
from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner, state_tensors
from helpers.caption.tokenizer import gpt2_tokenizer
from helpers.caption.train import TrainConfig, make_pairs, train_captioner

TINY_GPT2 = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "n_positions": 32,
    "vocab_size": 50257,
    "bos_token_id": EOS_ID,
    "eos_token_id": EOS_ID,
}
CAPTIONS = {
    "a.jpg": ["a red circle on the left"],
    "b.jpg": ["a blue square above a green star"],
    "c.jpg": ["two yellow triangles"],
    "d.jpg": ["a red circle below a blue square"],
}
NAMES = sorted(CAPTIONS)
FEATURES = np.eye(4, 6, dtype=np.float16) * 3  # one distinct feature vector per picture
ROWS = {n: i for i, n in enumerate(NAMES)}
FAST = TrainConfig(epochs=12, batch_size=4, lr=1e-2, warmup_fraction=0.05, max_tokens=12, seed=0)


def toy_pairs(features: np.ndarray, repeat: int = 8):
    """Train and val pairs over the four pictures (each caption `repeat` times for training)."""
    tok = gpt2_tokenizer()
    captions = {n: c * repeat for n, c in CAPTIONS.items()}
    return make_pairs(features, ROWS, captions, NAMES, tok, 12), make_pairs(
        features, ROWS, CAPTIONS, NAMES, tok, 12
    )


def new_model(seed: int = 0):
    model = build_captioner(PrefixConfig(feature_dim=6, prefix_length=2, gpt2=TINY_GPT2), seed=seed)
    model.set_feature_stats(FEATURES)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The toy captioner and its blind twin, each trained 12 epochs of 8 steps."""
    out = {}
    for name, feats in (("model", FEATURES), ("blind", np.zeros_like(FEATURES))):
        model = new_model()
        model.set_feature_stats(feats)
        train, val = toy_pairs(feats)
        history = train_captioner(model, train, val, FAST, tmp_path_factory.mktemp(name), progress=False)
        out[name] = (model.eval(), history)
    return out


def test_captioner_learns_which_caption_goes_with_which_picture(trained):
    model, history = trained["model"]
    assert history["val_loss"].iloc[-1] < 0.1 * history["val_loss"].iloc[0]
    captions = decode_captions(model, gpt2_tokenizer(), FEATURES, "greedy")
    assert captions == [CAPTIONS[n][0] for n in NAMES]
    blind, _ = trained["blind"]
    blind_captions = decode_captions(blind, gpt2_tokenizer(), np.zeros_like(FEATURES), "greedy")
    assert len(set(blind_captions)) == 1  # without the picture, one caption for all
    assert sum(c == CAPTIONS[n][0] for c, n in zip(blind_captions, NAMES, strict=True)) <= 1


@pytest.mark.parametrize("spec", ["greedy", "beam3", "beam5", "nucleus0.9"])
def test_every_decoding_returns_well_formed_captions_and_stops(trained, spec):
    model, _ = trained["model"]
    decoding = DecodeConfig.parse(spec, max_new_tokens=20)
    ids = generate_ids(model, FEATURES, decoding, batch_size=3)  # two batches: 3 + 1
    assert len(ids) == len(NAMES)
    for row, name in zip(ids, NAMES, strict=True):
        assert EOS_ID not in row and 0 < len(row) < 20  # stopped at end of caption, well before the limit
        assert len(row) == len(gpt2_tokenizer()(" " + CAPTIONS[name][0])["input_ids"])
    captions = decode_captions(model, gpt2_tokenizer(), FEATURES, decoding)
    assert all(c == c.strip() and "  " not in c and "<|endoftext|>" not in c for c in captions)
    if not spec.startswith("nucleus"):  # the deterministic decoders find the learned captions
        assert captions == [CAPTIONS[n][0] for n in NAMES]


def test_untrained_model_stops_at_the_token_limit_and_blocks_repeats():
    model = new_model().eval()
    ids = generate_ids(model, FEATURES, DecodeConfig("greedy", max_new_tokens=5))
    assert all(len(row) <= 5 for row in ids)
    blocked = generate_ids(
        model, FEATURES, DecodeConfig("beam", num_beams=3, max_new_tokens=12, no_repeat_ngram_size=1)
    )
    assert all(len(set(row)) == len(row) for row in blocked)  # no token (1-gram) twice
    sampled = [
        generate_ids(model, FEATURES, DecodeConfig("nucleus", max_new_tokens=8, seed=s)) for s in (1, 1, 2)
    ]
    assert sampled[0] == sampled[1] != sampled[2]  # seeded sampling


def test_decode_config_parsing():
    assert DecodeConfig.parse("beam5").num_beams == 5 and DecodeConfig.parse("beam").num_beams == 3
    assert DecodeConfig.parse("nucleus0.8").top_p == 0.8 and DecodeConfig.parse("greedy").name == "greedy"
    for bad in ("beamx", "greedy2", "topk"):
        with pytest.raises(ValueError, match="decoding"):
            DecodeConfig.parse(bad)


class Interrupted(Exception):
    pass


RESUME_FILES = {"model.safetensors", "optimizer.safetensors", "state.json", "best.safetensors"}
FINISHED_FILES = {"state.json", "best.safetensors"}


def checkpoint_files(out_dir) -> set[str]:
    return {p.name for p in (out_dir / "checkpoint").iterdir()}


@pytest.mark.parametrize("bucket", [False, True])
def test_training_resumes_exactly_from_its_last_checkpoint(tmp_path, bucket):
    cfg = dataclasses.replace(FAST, epochs=3, bucket_by_length=bucket)
    train, val = toy_pairs(FEATURES)
    straight = new_model()
    expected = train_captioner(straight, train, val, cfg, tmp_path / "straight", progress=False)

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise Interrupted

    resumed = new_model()
    with pytest.raises(Interrupted):
        train_captioner(
            resumed, train, val, cfg, tmp_path / "resumed", on_epoch_end=stop_after_first, progress=False
        )
    assert len(pd.read_csv(tmp_path / "resumed" / "history.csv")) == 1
    assert checkpoint_files(tmp_path / "resumed") == RESUME_FILES
    seen = []
    fresh = new_model(seed=123)  # different start: everything must come from the checkpoint
    history = train_captioner(
        fresh, train, val, cfg, tmp_path / "resumed", on_epoch_end=seen.append, progress=False
    )
    assert [r["epoch"] for r in seen] == [2, 3]  # epoch 1 was not trained again
    cols = ["epoch", "train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(history[cols], expected[cols], rtol=1e-5)
    for key, value in state_tensors(straight).items():
        assert torch.allclose(value, state_tensors(fresh)[key], atol=1e-6), key
    assert checkpoint_files(tmp_path / "resumed") == FINISHED_FILES  # the resume state was dropped


def test_changed_config_or_features_start_over_instead_of_resuming(tmp_path):
    train, val = toy_pairs(FEATURES)
    cfg = dataclasses.replace(FAST, epochs=1)
    train_captioner(new_model(), train, val, cfg, tmp_path, progress=False)
    seen = []
    train_captioner(new_model(), train, val, cfg, tmp_path, on_epoch_end=seen.append, progress=False)
    assert seen == []  # same everything: finished, nothing to train
    changed = dataclasses.replace(cfg, lr=5e-3)
    train_captioner(new_model(), train, val, changed, tmp_path, on_epoch_end=seen.append, progress=False)
    assert [r["epoch"] for r in seen] == [1]
    other = toy_pairs(FEATURES[::-1].copy())  # e.g. another encoder: same shapes, other features
    train_captioner(new_model(), *other, changed, tmp_path, on_epoch_end=seen.append, progress=False)
    assert [r["epoch"] for r in seen] == [1, 1]


class ScalerSpy:
    """Wraps GradScaler.step/update: records the scaler's state after each step; can die at step N."""

    def __init__(self, monkeypatch, die_at_step: int | None = None):
        self.states: list[dict] = []
        self.steps, self.die_at_step = 0, die_at_step
        step, update = torch.amp.GradScaler.step, torch.amp.GradScaler.update

        def spy_step(scaler, optimizer, *args, **kwargs):
            self.steps += 1
            if self.steps == self.die_at_step:
                raise Interrupted(f"killed at step {self.steps}")
            return step(scaler, optimizer, *args, **kwargs)

        def spy_update(scaler, *args, **kwargs):
            update(scaler, *args, **kwargs)
            self.states.append(scaler.state_dict() if scaler.is_enabled() else {})

        monkeypatch.setattr(torch.amp.GradScaler, "step", spy_step)
        monkeypatch.setattr(torch.amp.GradScaler, "update", spy_update)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_paths_run_on_cpu(tmp_path, monkeypatch, amp):
    """bf16 (native on CPUs) and fp16 with loss scaling, fused AdamW and unscale_ (the GPU's path)."""
    model = new_model()
    dtypes = []
    model.gpt.lm_head.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    spy = ScalerSpy(monkeypatch)
    train, val = toy_pairs(FEATURES)
    cfg = dataclasses.replace(FAST, epochs=2, amp=amp)
    history = train_captioner(model, train, val, cfg, tmp_path, progress=False)
    expected = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert dtypes and set(dtypes) == {expected}  # the matmuls really ran in the reduced precision
    assert np.isfinite(history[["train_loss", "val_loss"]].to_numpy()).all()
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    assert spy.steps == 2 * 8  # 32 training pairs in batches of 4, two epochs
    if amp == "fp16":  # the loss scaler was on, and no step was lost to overflowing gradients
        assert spy.states[-1]["scale"] == 2.0**16 and spy.states[-1]["_growth_tracker"] == 16
    else:  # bfloat16 has float32's range: no loss scaling
        assert spy.states[-1] == {}
    assert checkpoint_files(tmp_path) == FINISHED_FILES


def test_fp16_training_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Killed at the third of epoch 2's 8 steps, resumed from epoch 1's checkpoint by a fresh model."""
    cfg = dataclasses.replace(FAST, epochs=3, amp="fp16")
    train, val = toy_pairs(FEATURES)
    straight_spy = ScalerSpy(monkeypatch)
    straight = new_model()
    expected = train_captioner(straight, train, val, cfg, tmp_path / "straight", progress=False)
    scaler_end = straight_spy.states[-1]
    assert scaler_end["_growth_tracker"] == 24  # read now: the spies below wrap this one

    ScalerSpy(monkeypatch, die_at_step=8 + 3)  # the third step of epoch 2: weights moved, no checkpoint yet
    with pytest.raises(Interrupted):
        train_captioner(new_model(), train, val, cfg, tmp_path / "resumed", progress=False)
    assert len(pd.read_csv(tmp_path / "resumed" / "history.csv")) == 1
    assert checkpoint_files(tmp_path / "resumed") == RESUME_FILES
    partial = tmp_path / "resumed" / "checkpoint" / ".optimizer.safetensors.x1y2.tmp"
    partial.write_bytes(b"\0" * 1000)  # what a hard kill in the middle of an atomic write leaves

    spy, seen = ScalerSpy(monkeypatch), []
    fresh = new_model(seed=123)  # different start: everything must come from the checkpoint
    history = train_captioner(
        fresh, train, val, cfg, tmp_path / "resumed", on_epoch_end=seen.append, progress=False
    )
    assert [r["epoch"] for r in seen] == [2, 3]  # epoch 1 not trained again, epoch 2 again from its start
    assert spy.steps == 16  # two epochs of 8 steps
    assert spy.states[-1] == scaler_end  # loss scale and growth tracker carried over
    cols = ["epoch", "train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(history[cols], expected[cols], rtol=1e-5)
    for key, value in state_tensors(straight).items():
        assert torch.allclose(value, state_tensors(fresh)[key], atol=1e-6), key
    assert checkpoint_files(tmp_path / "resumed") == FINISHED_FILES  # the partial file is gone too
