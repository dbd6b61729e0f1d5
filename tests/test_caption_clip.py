"""helpers.caption.clip: the CLIP encoder loads by hub id from the Hugging Face cache (the full preset's
path, offline), its features are cached and reused like the Keras encoders', and a CLIP-encoded captioner
folder loads and captions without importing TensorFlow."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.caption.captioner import Captioner
from helpers.caption.clip import CLIP_HUB_ID, ClipEncoder
from helpers.caption.decode import DecodeConfig
from helpers.caption.features import EncoderConfig, ImageEncoder, cached_features
from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
from helpers.data import write_synthetic_flickr

TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "patch_size": 16,
    "projection_dim": 24,
}
RANDOM = EncoderConfig("clip", None, 32, seed=0, vision=TINY_CLIP)
TINY_GPT2 = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 32, "bos_token_id": EOS_ID,
             "eos_token_id": EOS_ID}  # fmt: skip


def pictures(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40 + 9 * i, 50, 3), dtype=np.uint8) for i in range(n)]


def run_python(code: str, env: dict[str, str]) -> str:
    """Run `code` in a fresh interpreter (its own imports and environment); return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_clip_loads_by_hub_id_from_the_hugging_face_cache_offline(tmp_path):
    """The full preset's `from_pretrained("openai/clip-vit-base-patch32")`, against a cache laid out as the
    hub client writes it: models--<org>--<name>/snapshots/<revision>/ and refs/main."""
    tiny = ClipEncoder.build(RANDOM)
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / f"models--{CLIP_HUB_ID.replace('/', '--')}"
    tiny.model.save_pretrained(repo / "snapshots" / revision)
    tiny.processor.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    np.save(tmp_path / "pictures.npy", np.stack([p[:40] for p in pictures()]))
    code = f"""
import json, numpy as np
from helpers.caption.features import EncoderConfig, ImageEncoder
cfg = EncoderConfig.from_spec("clip", None, pretrained=True, input_size=32)
encoder = ImageEncoder.build(cfg)
feats = encoder.encode(list(np.load({str(tmp_path / "pictures.npy")!r})))
print(json.dumps({{"weights": cfg.weights, "label": cfg.label, "features": feats.tolist()}}))
"""
    out = json.loads(run_python(code, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}))
    assert out["weights"] == CLIP_HUB_ID and "CLIP" in out["label"]
    expected = tiny.encode([p[:40] for p in pictures()])
    np.testing.assert_allclose(np.array(out["features"]), expected, rtol=1e-4, atol=1e-5)


def test_clip_features_are_cached_and_reused_with_the_encoder_that_made_them(tmp_path):
    root = write_synthetic_flickr(tmp_path / "src", num_images=10, image_size=48)
    from helpers.data import load_flickr8k

    flickr = load_flickr8k(root)
    names = sorted(n for split in flickr.splits.values() for n in split)
    first = cached_features(tmp_path / "cache", RANDOM, names, flickr.image_path, progress=False)
    assert not first.reused and first.features.shape == (10, 24) and first.features.dtype == np.float16
    assert (tmp_path / "cache" / "clip" / "model.safetensors").is_file()
    again = cached_features(tmp_path / "cache", RANDOM, names, flickr.image_path, progress=False)
    assert again.reused and isinstance(again.encoder, ClipEncoder)
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_allclose(again.encoder.encode(pictures()), first.encoder.encode(pictures()), atol=1e-6)
    reseeded = dataclasses.replace(RANDOM, seed=1)
    other = cached_features(tmp_path / "cache", reseeded, names, flickr.image_path, progress=False)
    assert not other.reused and not np.array_equal(other.features, first.features)


def test_clip_encoder_checks_its_input_and_counts_its_parameters():
    encoder = ImageEncoder.build(RANDOM)
    assert isinstance(encoder, ClipEncoder) and encoder.feature_dim == 24
    assert encoder.num_parameters == sum(p.numel() for p in encoder.model.parameters()) > 0
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode([np.zeros((32, 32, 3), np.float32)])
    assert encoder.encode([]).shape == (0, 24)


def test_clip_captioner_loads_and_captions_without_tensorflow(tmp_path: Path):
    encoder = ClipEncoder.build(RANDOM)
    model = build_captioner(PrefixConfig(feature_dim=encoder.feature_dim, prefix_length=2, gpt2=TINY_GPT2))
    captioner = Captioner(encoder, model, DecodeConfig("greedy", max_new_tokens=5))
    captioner.save(tmp_path / "captioner")
    np.save(tmp_path / "pictures.npy", np.stack([p[:40] for p in pictures()]))
    code = f"""
import json, sys, numpy as np
from helpers.caption.captioner import Captioner
captioner = Captioner.load({str(tmp_path / "captioner")!r}, device="cpu")
captions = captioner.caption_images(list(np.load({str(tmp_path / "pictures.npy")!r})))
print(json.dumps({{"captions": captions, "tensorflow": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}}))
"""
    out = json.loads(run_python(code, {"HF_HUB_OFFLINE": "1"}))
    assert not out["tensorflow"] and not out["keras"]
    assert out["captions"] == captioner.caption_images([p[:40] for p in pictures()])
