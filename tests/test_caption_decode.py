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
