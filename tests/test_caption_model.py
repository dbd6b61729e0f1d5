"""helpers.caption tokenizer and prefix model: real GPT-2 vocabulary, loss on caption tokens only,
freezing, and a pickle-free save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.caption.model import (
    EOS_ID,
    PrefixConfig,
    build_captioner,
    count_parameters,
    load_captioner,
    save_captioner,
)
from helpers.caption.tokenizer import GPT2_VOCAB_SIZE, caption_text, gpt2_tokenizer

TINY_GPT2 = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "n_positions": 32,
    "vocab_size": GPT2_VOCAB_SIZE,
    "bos_token_id": EOS_ID,
    "eos_token_id": EOS_ID,
}


def tiny(mapper: str = "mlp", freeze: bool = False):
    cfg = PrefixConfig(
        feature_dim=8, prefix_length=3, mapper=mapper, mapper_tokens=2, gpt2=TINY_GPT2, freeze_gpt2=freeze
    )
    return build_captioner(cfg, seed=0)


def test_tokenizer_is_the_real_gpt2_one():
    tok = gpt2_tokenizer()
    assert len(tok) == GPT2_VOCAB_SIZE == 50257  # the v5 file-path constructor would give 1
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == EOS_ID
    ids = tok(caption_text("A  dog runs"))["input_ids"]
    assert ids == [317, 3290, 4539]  # GPT-2's ids for " A", " dog", " runs"
    assert tok.decode(ids) == " A dog runs"
    with pytest.raises(ValueError, match="empty"):
        caption_text("   ")


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_prefix_shape_and_loss_ignores_padding(mapper):
    model = tiny(mapper).eval()
    feats = torch.randn(2, 8)
    assert model.prefix(feats).shape == (2, 3, 32)
    tokens = torch.tensor([[10, 20, 30, EOS_ID], [40, 50, EOS_ID, EOS_ID]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    loss = model(feats, tokens, mask)
    changed = tokens.clone()
    changed[1, 3] = 999  # a padded position: must not matter
    assert model(feats, changed, mask).item() == pytest.approx(loss.item(), abs=1e-6)
    changed[1, 1] = 999  # a caption token: must matter
    assert model(feats, changed, mask).item() != pytest.approx(loss.item(), abs=1e-4)
    assert abs(loss.item() - np.log(GPT2_VOCAB_SIZE)) < 1.0  # untrained: about uniform over the vocabulary


def test_freeze_gpt2_trains_the_mapper_only():
    model = tiny(freeze=True)
    counts = count_parameters(model)
    mapper = sum(p.numel() for p in model.mapper.parameters())
    assert counts["trainable"] == mapper < counts["total"]
    model.train()
    assert model.mapper.training and not model.gpt.training  # frozen GPT-2 keeps dropout off


def test_feature_standardisation_uses_training_statistics():
    model = tiny().eval()
    train = np.random.default_rng(0).normal(5.0, 3.0, size=(50, 8)).astype(np.float32)
    model.set_feature_stats(train)
    assert torch.allclose(model.feature_mean, torch.from_numpy(train.mean(0)))
    zeros = tiny().eval()
    zeros.set_feature_stats(np.zeros((4, 8), np.float32))  # the blind baseline: inputs stay exactly 0
    assert torch.equal(zeros.prefix(torch.zeros(1, 8)), zeros.mapper(torch.zeros(1, 8)))


def test_save_and_load_round_trip_without_pickle(tmp_path):
    model = tiny("transformer").eval()
    model.set_feature_stats(np.random.default_rng(1).normal(size=(10, 8)).astype(np.float32))
    save_captioner(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["gpt2_config"]["n_embd"] == 32  # the full GPT-2 config: loading needs no hub
    loaded = load_captioner(tmp_path)
    feats = torch.randn(3, 8)
    tokens, mask = torch.tensor([[5, 6, EOS_ID]] * 3), torch.ones(3, 3, dtype=torch.long)
    assert torch.equal(loaded.prefix(feats), model.prefix(feats))
    assert loaded(feats, tokens, mask).item() == pytest.approx(model(feats, tokens, mask).item(), abs=1e-6)
    # tied input/output embeddings stay tied after loading
    assert loaded.gpt.lm_head.weight.data_ptr() == loaded.gpt.transformer.wte.weight.data_ptr()


def test_bad_configs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="mapper"):
        PrefixConfig(feature_dim=8, mapper="lstm")
    with pytest.raises(ValueError, match="vocab_size"):
        build_captioner(PrefixConfig(feature_dim=8, gpt2={**TINY_GPT2, "vocab_size": 100}))
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a prefix-captioner"):
        load_captioner(tmp_path)
