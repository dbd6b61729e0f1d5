"""helpers.caption.clipscore: CLIP-S and RefCLIP-S equal a hand computation; both CLIP paths run offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.caption.clip import ClipEncoder
from helpers.caption.clipscore import (
    PROMPT,
    ClipScorer,
    char_clip_tokenizer,
    clip_scores,
    image_embeddings,
    score_embeddings,
)
from helpers.caption.features import EncoderConfig

TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
               "num_attention_heads": 2, "patch_size": 32, "projection_dim": 16}  # fmt: skip


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_scores_equal_a_hand_computation_with_weight_clipping_and_harmonic_mean():
    images = unit([[1, 0, 0], [0, 1, 0]])
    cand = unit([[3, 4, 0], [1, -1, 0]])  # image 2's cosine is negative: clipped to 0
    refs = unit([[1, 0, 0], [0, 0, 1], [-1, 0, 0]])
    owner = np.array([0, 0, 1])
    out = score_embeddings(images, cand, (refs, owner), ["a", "b"])
    s_a = 2.5 * 0.6  # cos((3,4,0)/5, (1,0,0)) = 0.6
    r_a = max(0.6, 0.0)  # best of the two references
    assert out["per_image"]["a"]["CLIP-S"] == pytest.approx(s_a)
    assert out["per_image"]["a"]["RefCLIP-S"] == pytest.approx(2 * s_a * r_a / (s_a + r_a))
    assert out["per_image"]["b"] == {"CLIP-S": 0.0, "RefCLIP-S": 0.0}  # both clipped: 0, not nan
    assert out["CLIP-S"] == pytest.approx(s_a / 2)
    assert out["RefCLIP-S"] == pytest.approx(2 * s_a * r_a / (s_a + r_a) / 2)


def test_a_matching_caption_scores_above_a_mismatched_one():
    images = unit([[1, 0.1, 0], [0, 1, 0.2]])
    good = score_embeddings(images, unit([[1, 0, 0], [0, 1, 0]]), None, ["a", "b"])
    bad = score_embeddings(images, unit([[0, 1, 0], [1, 0, 0]]), None, ["a", "b"])
    assert good["CLIP-S"] > bad["CLIP-S"] + 1 and good["RefCLIP-S"] is None


def test_char_tokenizer_is_offline_and_ends_each_caption_with_its_eos():
    tok = char_clip_tokenizer()
    ids = tok([PROMPT + "a dog"], truncation=True, max_length=8)["input_ids"][0]
    assert len(tok) == 514 and ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) == 8


def test_random_clip_scores_every_image_and_refuses_blind_features():
    encoder = ClipEncoder.build(EncoderConfig("clip", None, 32, seed=0, vision=TINY_VISION))
    scorer = ClipScorer.for_encoder(encoder)
    pics = [np.random.default_rng(i).integers(0, 256, (32, 40, 3), dtype=np.uint8) for i in range(3)]
    emb = scorer.embed_images(pics)
    cands = {"x": "a red circle", "y": "two blue circles", "z": "a green circle"}
    refs = {n: [c, "something else"] for n, c in cands.items()}
    out = clip_scores(scorer, emb, cands, refs, progress=False)
    assert set(out["per_image"]) == set(cands) and "code path only" in out["scorer"]
    assert 0 <= out["CLIP-S"] <= 2.5 and 0 <= out["RefCLIP-S"] <= 2.5
    with pytest.raises(ValueError, match="all zeros"):
        clip_scores(scorer, np.zeros_like(emb), cands, refs, progress=False)
    with pytest.raises(ValueError, match="no reference"):
        clip_scores(scorer, emb, cands, {"x": ["a"]}, progress=False)


def test_pretrained_path_loads_the_text_tower_of_the_encoders_checkpoint(tmp_path):
    """`full`'s route on a tiny CLIPModel checkpoint: text embeddings equal CLIPModel's own."""
    from transformers import CLIPConfig, CLIPModel

    text = {"vocab_size": 514, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "projection_dim": 16, "bos_token_id": 512, "eos_token_id": 513,
            "pad_token_id": 513}  # fmt: skip
    vision = {**TINY_VISION, "image_size": 32}
    torch.manual_seed(0)
    full = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    full.save_pretrained(tmp_path)
    char_clip_tokenizer().save_pretrained(tmp_path)
    ClipEncoder.build(EncoderConfig("clip", None, 32, vision=TINY_VISION)).processor.save_pretrained(tmp_path)
    scorer = ClipScorer.for_encoder(ClipEncoder.build(EncoderConfig("clip", str(tmp_path), 32)))
    assert scorer.pretrained and "code path" not in scorer.describe()
    enc = scorer.tokenizer([PROMPT + "a dog"], return_tensors="pt")
    with torch.no_grad():
        expected = full.get_text_features(**enc).pooler_output.numpy()
    np.testing.assert_allclose(scorer.embed_texts(["a dog"]), unit(expected), atol=1e-5)


def test_image_embeddings_reuse_the_feature_cache_only_for_the_scorers_own_clip(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    encoder = ClipEncoder.build(EncoderConfig("clip", None, 32, seed=0, vision=TINY_VISION))
    scorer = ClipScorer.for_run(encoder, pretrained=False, input_size=32)
    assert scorer.images is encoder
    pics = {
        n: np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i, n in enumerate("ab")
    }
    for n, p in pics.items():
        Image.fromarray(p).save(tmp_path / f"{n}.png")
    feats = encoder.encode(list(pics.values()))
    cache = SimpleNamespace(encoder=encoder, features=feats.astype(np.float16), rows={"a": 0, "b": 1})
    got = image_embeddings(scorer, cache, ["b", "a"], lambda n: tmp_path / f"{n}.png")
    np.testing.assert_allclose(got, feats[[1, 0]], rtol=1e-2, atol=1e-3)
    other = SimpleNamespace(encoder=object(), features=None, rows=None)  # e.g. a ResNet cache: encode afresh
    fresh = image_embeddings(scorer, other, ["b", "a"], lambda n: tmp_path / f"{n}.png")
    np.testing.assert_allclose(fresh, unit(feats[[1, 0]]), atol=1e-5)
