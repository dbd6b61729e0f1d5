"""The captioner's optimizer: the mapper and GPT-2 train at their own peak rates, and each group's rate
follows its own linear warmup and decay, step by step; a frozen GPT-2 has no group at all."""

from __future__ import annotations

import pytest
import torch

from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
from helpers.caption.train import TrainConfig, _optimizer, param_groups

TINY_GPT2 = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 16, "bos_token_id": EOS_ID,
             "eos_token_id": EOS_ID}  # fmt: skip


def tiny_model(freeze: bool = False):
    return build_captioner(PrefixConfig(feature_dim=6, prefix_length=2, gpt2=TINY_GPT2, freeze_gpt2=freeze))


def expected(peak: float, step: int, warmup: int, total: int) -> float:
    """Linear warmup from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return peak * step / warmup
    return peak * max(0.0, (total - step) / (total - warmup))


def test_each_group_follows_its_own_warmup_and_decay_step_by_step():
    model = tiny_model()
    cfg = TrainConfig(epochs=3, batch_size=4, lr=1e-3, mapper_lr=2e-2, warmup_fraction=0.25)
    steps_per_epoch = 4  # 12 steps in all, the first 3 warming up
    optimizer, scheduler, _ = _optimizer(model, cfg, steps_per_epoch, None)
    names = [g["name"] for g in optimizer.param_groups]
    assert names == ["mapper", "gpt2"]
    mapper_ids = {id(p) for p in model.mapper.parameters()}
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == mapper_ids
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trainable
    peaks = {"mapper": 2e-2, "gpt2": 1e-3}
    seen = {name: [] for name in names}
    for step in range(12):
        for group in optimizer.param_groups:
            want = expected(peaks[group["name"]], step, warmup=3, total=12)
            assert group["lr"] == pytest.approx(want, abs=1e-12), (group["name"], step)
            seen[group["name"]].append(group["lr"])
        for p in model.parameters():  # a real update, so the scheduler steps after an optimizer step
            p.grad = torch.zeros_like(p) if p.requires_grad else None
        optimizer.step()
        scheduler.step()
    for name, rates in seen.items():  # up to its own peak at the end of warmup, then down
        assert max(rates) == pytest.approx(peaks[name]) and rates.index(max(rates)) == 3
        assert rates[3:] == sorted(rates[3:], reverse=True) and rates[-1] < peaks[name] / 5


def test_mapper_rate_defaults_to_lr_and_a_frozen_gpt2_has_no_group():
    cfg = TrainConfig(lr=5e-4)
    assert [g["lr"] for g in param_groups(tiny_model(), cfg)] == [5e-4, 5e-4]
    frozen = param_groups(tiny_model(freeze=True), TrainConfig(lr=5e-4, mapper_lr=1e-2))
    assert [(g["name"], g["lr"]) for g in frozen] == [("mapper", 1e-2)]
    with pytest.raises(ValueError, match="mapper_lr"):
        TrainConfig(mapper_lr=0.0)
