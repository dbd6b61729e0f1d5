"""helpers.caption.features and Captioner: the feature cache is reused when its config matches and rebuilt
when the encoder changes; a saved captioner folder loads and captions pictures of any size."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from helpers.caption.captioner import Captioner, detail_decoding
from helpers.caption.decode import DecodeConfig
from helpers.caption.features import EncoderConfig, ImageEncoder, cached_features
from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
from helpers.data import write_synthetic_flickr

# VGG16 at 32x32: 512 features, quick to build; these tests check plumbing, not feature quality.
SMALL = EncoderConfig(backbone="vgg16", weights=None, input_size=32, seed=0)


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    from helpers.data import load_flickr8k

    root = write_synthetic_flickr(tmp_path_factory.mktemp("src"), num_images=12, image_size=48)
    return load_flickr8k(root)


def names_of(flickr) -> list[str]:
    return sorted(n for split in flickr.splits.values() for n in split)


def test_cache_is_reused_when_the_config_matches_and_rebuilt_when_the_encoder_changes(flickr, tmp_path):
    names = names_of(flickr)
    first = cached_features(tmp_path, SMALL, names, flickr.image_path, progress=False)
    assert not first.reused and first.features.shape == (12, 512) and first.features.dtype == np.float16
    assert first.names == names and first.config["encoder"]["backbone"] == "vgg16"
    stamp = (tmp_path / "features.npy").stat().st_mtime_ns

    again = cached_features(tmp_path, SMALL, names, flickr.image_path, progress=False)
    assert again.reused and (tmp_path / "features.npy").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.features, first.features)
    # the reloaded encoder is the one that made the cache (random init included)
    image = [np.asarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3)), dtype=np.uint8)]
    np.testing.assert_allclose(again.encoder.encode(image), first.encoder.encode(image), rtol=1e-5, atol=1e-5)

    changed = dataclasses.replace(SMALL, input_size=48)
    rebuilt = cached_features(tmp_path, changed, names, flickr.image_path, progress=False)
    assert not rebuilt.reused and rebuilt.config["encoder"]["input_size"] == 48
    assert not np.array_equal(rebuilt.features, first.features)
    assert cached_features(tmp_path, changed, names, flickr.image_path, progress=False).reused
    with pytest.raises(ValueError, match="constant features"):  # random-init MobileNetV2 outputs ~1e-12
        cached_features(
            tmp_path / "m",
            dataclasses.replace(SMALL, backbone="mobilenet_v2"),
            names,
            flickr.image_path,
            progress=False,
        )
    fewer = cached_features(tmp_path, changed, names[:-1], flickr.image_path, progress=False)
    assert not fewer.reused and len(fewer.names) == 11  # other images: rebuilt too


def test_encoder_graph_gives_the_eager_features_for_any_batch_size_from_one_trace():
    import tensorflow as tf

    from helpers.classify import get_backbone, preprocess_batch

    encoder = ImageEncoder.build(SMALL)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32 + 8 * i, 40, 3), dtype=np.uint8) for i in range(5)]
    for batch in (images[:3], images[3:]):
        x = tf.concat([preprocess_batch(img[None], get_backbone("vgg16"), 32) for img in batch], axis=0)
        eager = np.asarray(encoder.model(x, training=False))
        np.testing.assert_allclose(encoder.encode(batch), eager, rtol=1e-5, atol=1e-6)
    assert encoder._inference.experimental_get_tracing_count() == 1  # no retracing per batch size


def test_encoder_spec_names_a_backbone_or_a_trained_classifier(tmp_path):
    cfg = EncoderConfig.from_spec("resnet50", tmp_path, None, 32)
    assert (cfg.backbone, cfg.weights, cfg.input_size, cfg.classifier) == ("resnet50", None, 32, None)
    with pytest.raises(ValueError, match="unknown encoder"):
        EncoderConfig.from_spec("resnet18", tmp_path, None, 32)
    with pytest.raises(FileNotFoundError, match="notebooks 02-04"):
        EncoderConfig.from_spec("classifier:vgg16", tmp_path, None, 32)


def test_captioner_folder_round_trip(tmp_path):
    encoder = ImageEncoder.build(SMALL)
    gpt2 = {
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 32,
        "n_positions": 32,
        "bos_token_id": EOS_ID,
        "eos_token_id": EOS_ID,
    }
    model = build_captioner(PrefixConfig(feature_dim=encoder.feature_dim, prefix_length=2, gpt2=gpt2))
    Captioner(encoder, model, DecodeConfig("greedy", max_new_tokens=6)).save(tmp_path / "captioner")
    loaded = Captioner.load(tmp_path / "captioner")
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, size, dtype=np.uint8) for size in ((32, 32, 3), (75, 120, 3), (200, 90, 3))
    ]
    captions = loaded.caption_images(images)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert captions == Captioner(encoder, model, DecodeConfig("greedy", max_new_tokens=6)).caption_images(
        images
    )
    for decoding in ("beam3", "nucleus"):
        for detail in ("short", "detailed"):
            assert len(loaded.caption_images(images[:2], decoding=decoding, detail=detail)) == 2
    assert loaded.caption_images([]) == []
    with pytest.raises(ValueError, match="uint8"):
        loaded.caption_images([np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(FileNotFoundError, match="not a captioner folder"):
        Captioner.load(tmp_path)


def test_detailed_decoding_favours_longer_beams():
    detailed = detail_decoding(DecodeConfig("greedy", max_new_tokens=20), "detailed")
    assert detailed.strategy == "beam" and detailed.num_beams >= 5 and detailed.length_penalty > 1
    assert detailed.no_repeat_ngram_size == 4 and detailed.max_new_tokens == 40
    assert detail_decoding(DecodeConfig("beam", num_beams=3), "short") == DecodeConfig("beam", num_beams=3)
    with pytest.raises(ValueError, match="detail"):
        detail_decoding(DecodeConfig(), "long")


@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    from helpers.data import load_flickr8k

    root = write_synthetic_flickr(tmp_path_factory.mktemp("forty"), num_images=40, image_size=48)
    return load_flickr8k(root)


class Crash(RuntimeError):
    pass


def test_extraction_killed_mid_chunk_resumes_at_the_first_unfinished_chunk_and_equals_a_full_run(
    forty, tmp_path
):
    names = names_of(forty)
    whole = cached_features(tmp_path / "whole", SMALL, names, forty.image_path, 4, False, chunk_rows=8)
    calls: list[str] = []

    def failing(name):
        calls.append(name)
        if len(calls) > 40 + 21:  # after the fingerprint (40): chunks 0-1 done, chunk 2 half decoded
            raise Crash(name)
        return forty.image_path(name)

    cache = tmp_path / "resumed"
    with pytest.raises(Crash):
        cached_features(cache, SMALL, names, failing, 4, False, chunk_rows=8, workers=1)
    state = json.loads((cache / "partial.json").read_text())
    assert state["done"] == [0, 1] and not (cache / "features.npy").exists()
    assert not (cache / "config.json").exists()  # an unfinished cache is never taken for a finished one

    seen: list[str] = []
    counting = lambda n: seen.append(n) or forty.image_path(n)  # noqa: E731
    resumed = cached_features(cache, SMALL, names, counting, 4, False, chunk_rows=8)
    assert not resumed.reused and resumed.names == names
    assert seen[:40] == names  # the fingerprint stats every file first
    assert seen[40:] == names[16:]  # then only the unfinished chunks are decoded
    np.testing.assert_array_equal(resumed.features, whole.features)  # bit for bit
    assert isinstance(resumed.features, np.memmap) and not resumed.features.flags.writeable
    assert not (cache / "partial.json").exists() and not (cache / "features.partial.npy").exists()
    assert cached_features(cache, SMALL, names, forty.image_path, 4, False, chunk_rows=8).reused


def test_a_partial_cache_made_another_way_is_started_over(forty, tmp_path):
    names = names_of(forty)
    state = {"done": [0, 1, 2, 3, 4], "chunk_rows": 8, "feature_dim": 512, "want": {"images": 40}}
    (tmp_path / "partial.json").write_text(json.dumps(state))
    np.save(tmp_path / "features.partial.npy", np.ones((40, 512), np.float16))
    fresh = cached_features(tmp_path, SMALL, names, forty.image_path, 4, False, chunk_rows=8)
    reference = cached_features(tmp_path / "ref", SMALL, names, forty.image_path, 4, False, chunk_rows=8)
    np.testing.assert_array_equal(fresh.features, reference.features)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        cached_features(tmp_path / "x", SMALL, names, forty.image_path, 4, False, chunk_rows=10)
    with pytest.raises(ValueError, match="no images"):
        cached_features(tmp_path / "x", SMALL, [], forty.image_path, progress=False)


KILLED_RUN = """
import sys, time
from pathlib import Path
from helpers.caption.features import EncoderConfig, cached_features
root, cache = Path(sys.argv[1]), Path(sys.argv[2])
names = sorted(p.name for p in root.glob("*.jpg"))
def slow(name):
    time.sleep(0.1)
    return root / name
cfg = EncoderConfig("vgg16", None, 32, seed=0)
cached_features(cache, cfg, names, slow, 4, False, chunk_rows=8, workers=2)
"""


def test_a_process_killed_with_sigkill_resumes_to_the_uninterrupted_features(forty, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = forty.image_path(names_of(forty)[0]).parent
    names = sorted(p.name for p in root.glob("*.jpg"))
    path_of = lambda n: root / n  # noqa: E731
    cache = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(root), str(cache)], start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        path = cache / "partial.json"
        if path.is_file() and len(json.loads(path.read_text())["done"]) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the extraction finished (or failed) before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads((cache / "partial.json").read_text())["done"]
    assert 2 <= len(done) < 5 and not (cache / "features.npy").exists()
    resumed = cached_features(cache, SMALL, names, path_of, 4, False, chunk_rows=8)
    whole = cached_features(tmp_path / "whole", SMALL, names, path_of, 4, False, chunk_rows=8)
    np.testing.assert_array_equal(resumed.features, whole.features)
