"""helpers.caption.decode's prepacked oneDNN kernels: the same captions as PyTorch's default kernels, only
inside `packed_linears` and only without gradients, and never from weights that have changed since packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.caption.cpu_kernels import packed_linears
from helpers.caption.decode import DecodeConfig, generate_ids
from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner

GPT2 = {
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 64,
    "n_positions": 64,
    "vocab_size": 50257,
    "bos_token_id": EOS_ID,
    "eos_token_id": EOS_ID,
}
FEATURES = np.random.default_rng(0).normal(size=(6, 16)).astype(np.float32)

onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def new_model(seed: int = 0):
    return build_captioner(PrefixConfig(feature_dim=16, prefix_length=3, gpt2=GPT2), seed=seed).eval()


def instance_forwards(model) -> int:
    return sum("forward" in vars(m) for m in model.modules())


@onednn
@pytest.mark.parametrize("spec", ["greedy", "beam3", "nucleus0.9"])
def test_packed_kernels_decode_the_same_tokens_as_pytorch_defaults(spec):
    model = new_model()
    decoding = DecodeConfig.parse(spec, max_new_tokens=12)
    stock = generate_ids(model, FEATURES, decoding, batch_size=4, packed=False)
    assert generate_ids(model, FEATURES, decoding, batch_size=4) == stock
    assert instance_forwards(model) == 0  # nothing left patched after decoding


@onednn
def test_packed_linears_apply_only_inside_the_block_and_only_without_gradients():
    model = new_model()
    layer = model.gpt.transformer.h[0].mlp.c_fc  # GPT-2's Conv1D, weight stored (in, out)
    x = torch.randn(5, layer.weight.shape[0])
    with torch.no_grad():
        want = type(layer).forward(layer, x)
    with packed_linears(model) as count:
        # every Conv1D (4 per block), lm_head and the MLP mapper's two Linears
        assert count == 4 * GPT2["n_layer"] + 1 + 2 == instance_forwards(model)
        with packed_linears(model) as again:  # a nested (or concurrent) block shares the patch
            assert again == count
        assert instance_forwards(model) == count  # still patched: the outer block is open
        with torch.no_grad():
            torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-6)
        out = layer(x)  # gradients on: the module's own forward, so training still works
        assert torch.equal(out.detach(), want) and out.requires_grad
        out.sum().backward()
        assert layer.weight.grad is not None
    assert instance_forwards(model) == 0


@onednn
def test_packed_weights_never_outlive_a_change_of_the_weights():
    model = new_model()
    decoding = DecodeConfig("greedy", max_new_tokens=10)
    before = generate_ids(model, FEATURES, decoding)  # packs the weights
    with torch.no_grad():  # a "training step" on the output projection and a block, in place
        model.gpt.lm_head.weight.mul_(-1.0)
        model.gpt.transformer.h[1].attn.c_attn.weight.add_(0.05)
    after = generate_ids(model, FEATURES, decoding)
    assert after == generate_ids(model, FEATURES, decoding, packed=False) and after != before
    layer = model.gpt.transformer.h[0].mlp.c_proj
    x = torch.randn(3, layer.weight.shape[0])
    with packed_linears(model), torch.no_grad():
        layer.weight.add_(1.0)  # changed while the block is open: the stale pack must not be used
        assert torch.equal(layer(x), type(layer).forward(layer, x))


bf16 = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    reason="no bfloat16 kernels in this CPU's oneDNN",
)


@bf16
def test_bfloat16_weights_round_the_linears_and_return_float32():
    """bfloat16 packs multiply within bfloat16's rounding of the float32 result, return float32, and
    differ from float32's (the weights really are rounded); both precisions' packs are kept."""
    from helpers.caption import cpu_kernels

    model = new_model()
    layer = model.gpt.lm_head
    x = torch.randn(8, layer.weight.shape[1])
    with torch.no_grad():
        want = layer(x)
        rounded = x.bfloat16().float() @ layer.weight.bfloat16().float().t()  # the same inputs, exactly
        with packed_linears(model, "bfloat16") as count:
            assert count == 4 * GPT2["n_layer"] + 1 + 2
            got = layer(x)
        assert got.dtype == torch.float32 and not torch.equal(got, want)
        torch.testing.assert_close(got, rounded, rtol=2e-2, atol=2e-2)
        assert (got - want).abs().max() < 0.05 * want.abs().max()
        with packed_linears(model):  # float32 again: its own pack, exact up to the order of additions
            torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-5)
    assert set(cpu_kernels._PACKS[layer]) == {torch.float32, torch.bfloat16}
    ids = generate_ids(model, FEATURES, DecodeConfig("greedy", max_new_tokens=8), weights="bfloat16")
    assert len(ids) == len(FEATURES) and instance_forwards(model) == 0


@onednn
def test_weight_precision_is_checked_and_one_per_open_model(monkeypatch):
    from helpers.caption import cpu_kernels

    model = new_model()
    with pytest.raises(ValueError, match="weights must be one of"), packed_linears(model, "float16"):
        pass
    monkeypatch.setattr(cpu_kernels, "bfloat16_supported", lambda: False)
    with pytest.warns(UserWarning, match="no bfloat16 kernels"), packed_linears(model, "bfloat16") as count:
        assert count > 0 and set(cpu_kernels._PACKS[model.gpt.lm_head]) == {torch.float32}  # fell back
    monkeypatch.setattr(cpu_kernels, "bfloat16_supported", lambda: True)
    blocked = pytest.raises(RuntimeError, match="already decoding with float32")
    with packed_linears(model), blocked, packed_linears(model, "bfloat16"):
        pass
    assert instance_forwards(model) == 0
