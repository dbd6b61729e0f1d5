"""Image features for the captioner: one vector per picture from a frozen image encoder, cached on disk.

Three kinds of encoder, chosen by `EncoderConfig.backbone`:
- ``clip`` (helpers.caption.clip): CLIP's projected image embedding, PyTorch (`full`: openai's ViT-B/32;
  `smoke`/`sample`: a small random-init CLIP); no TensorFlow involved.
- a keras.applications backbone's globally pooled "features" layer (`full`: ImageNet ResNet50 at 224;
  `smoke`/`sample`: random init at 64), pixels through `helpers.classify.preprocess_batch`;
- a CIFAR-100 classifier trained by notebooks 02-04 (its "features" layer), the same way.
`ImageEncoder.build` / `ImageEncoder.load` pick the implementation.

What a random-init encoder can see (the smoke and sample presets have no pretrained weights): on the
synthetic Flickr-style pictures (helpers.data), a linear probe on ResNet50's pooled features (800 train /
200 test pictures, three shapes) names the colour of the left/top object 0.92 of the time, of the other
object 0.88, the layout (side by side or stacked) 0.96, but the shape 0.38 (chance 0.33); at 32x32 the
second colour drops to 0.70. Hence the smoke preset's 64x64 input and its circles-only world
(helpers.caption.config.SMOKE_FLICKR). Random-init MobileNetV2 outputs ~1e-12 everywhere, which float16
stores as 0: such constant features are refused.

Cache (``run_dir/captions/features/``): ``features.npy`` (N, D) float16, ``index.json`` (image names in
row order), ``config.json`` (the encoder config and a fingerprint of the images) and the encoder itself
(``encoder.json`` + ``encoder.keras`` or ``clip/``: a random-init encoder must be saved to be
reproduced). It is reused when the config matches and rebuilt when it does not. While it is being built,
``features.partial.npy`` holds the rows written so far (memory-mapped) and ``partial.json`` the finished
chunks: a killed run picks up there (`cached_features`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from helpers import artifacts


@dataclass(frozen=True)
class EncoderConfig:
    backbone: str = "resnet50"  # "clip" or a keras.applications backbone (helpers.classify.BACKBONES)
    weights: str | None = "imagenet"  # "imagenet" (Keras), a hub id (clip) or None (random init, seeded)
    input_size: int = 224  # pixels per side the images are resized to
    classifier: str | None = None  # folder of a trained classifier (run_dir/models/<name>) to use instead
    classifier_sha256: str | None = None  # its model.keras checksum: retraining it invalidates the cache
    seed: int = 0  # random init only
    vision: dict | None = None  # random-init clip only: CLIPVisionConfig kwargs (helpers.caption.clip)

    @classmethod
    def from_spec(cls, spec: str, models_dir: Path, pretrained: bool, input_size: int, seed: int = 0):
        """ "clip", "resnet50" (a keras.applications backbone) or "classifier:<name>" (run_dir/models/<name>).

        `pretrained`: openai's CLIP / ImageNet weights; otherwise a seeded random init (no download).
        """
        if spec == "clip":
            from helpers.caption.clip import CLIP_HUB_ID, SMALL_CLIP

            if pretrained:
                return cls("clip", CLIP_HUB_ID, int(input_size), seed=seed)
            return cls("clip", None, int(input_size), seed=seed, vision=dict(SMALL_CLIP))
        if spec.startswith("classifier:"):
            folder = Path(models_dir) / spec.split(":", 1)[1]
            if not (folder / "model.keras").is_file():
                raise FileNotFoundError(
                    f"{folder / 'model.keras'} not found: train it with notebooks 02-04 first"
                )
            config = artifacts.read_json(folder / "config.json")
            return cls(
                config["backbone"],
                None,
                int(config["input_size"]),
                str(folder),
                artifacts.sha256_file(folder / "model.keras"),
                seed,
            )
        from helpers.classify import BACKBONES

        if spec not in BACKBONES:
            raise ValueError(
                f"unknown encoder {spec!r}: use 'clip', one of {', '.join(BACKBONES)} or 'classifier:<name>'"
            )
        return cls(spec, "imagenet" if pretrained else None, int(input_size), None, None, seed)

    @property
    def label(self) -> str:
        """Short description for tables and figure titles."""
        if self.classifier:
            return f"{Path(self.classifier).name} classifier @{self.input_size}"
        name = "CLIP ViT" if self.backbone == "clip" else self.backbone
        return f"{name} ({self.weights or 'random init'}) @{self.input_size}"


class ImageEncoder:
    """uint8 RGB images of any size -> (N, D) float32 features; `build`/`load` pick CLIP or Keras."""

    cfg: EncoderConfig
    feature_dim: int
    num_parameters: int

    @staticmethod
    def build(cfg: EncoderConfig) -> Any:
        """A `KerasEncoder` or a `helpers.caption.clip.ClipEncoder` for `cfg`."""
        if cfg.backbone == "clip":
            from helpers.caption.clip import ClipEncoder

            return ClipEncoder.build(cfg)
        return KerasEncoder.build(cfg)

    @staticmethod
    def load(folder: str | Path) -> Any:
        """The encoder saved in `folder` (``encoder.json`` says which kind)."""
        cfg = EncoderConfig(**artifacts.read_json(Path(folder) / "encoder.json"))
        if cfg.backbone == "clip":
            from helpers.caption.clip import ClipEncoder

            return ClipEncoder.load(cfg, folder)
        return KerasEncoder.load(cfg, folder)


class KerasEncoder(ImageEncoder):
    """A Keras backbone's or classifier's "features" model."""

    def __init__(self, cfg: EncoderConfig, model: Any):
        self.cfg, self.model = cfg, model

    @classmethod
    def build(cls, cfg: EncoderConfig) -> KerasEncoder:
        """The backbone's "features" model (seeded random init or ImageNet) or a classifier's "features"."""
        import keras

        from helpers.classify import get_backbone, load_classifier

        if cfg.classifier:
            model, _ = load_classifier(cfg.classifier)
            return cls(cfg, keras.Model(model.inputs, model.get_layer("features").output, name="encoder"))
        keras.utils.set_random_seed(cfg.seed)
        return cls(cfg, get_backbone(cfg.backbone).build_features(cfg.input_size, cfg.weights))

    @property
    def feature_dim(self) -> int:
        return int(self.model.output.shape[-1])

    @property
    def num_parameters(self) -> int:
        return int(self.model.count_params())

    def encode(
        self, images: Sequence[np.ndarray], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Features of each image, in order; images may differ in size."""
        out = [
            self._batch(images[i : i + batch_size])
            for i in tqdm(
                range(0, len(images), batch_size), desc="features", disable=not progress, leave=False
            )
        ]
        return np.concatenate(out) if out else np.zeros((0, self.feature_dim), np.float32)

    def _batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import keras

        for img in images:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(f"expected uint8 (H, W, 3) RGB images, got {img.dtype} {img.shape}")
        size = self.cfg.input_size
        shape = self.model.inputs[0].shape
        if shape[1] is None and shape[2] is None:  # a classifier that resizes and preprocesses inside
            tf_backend = keras.backend.backend() == "tensorflow"
            call = self._inference if tf_backend else lambda x: self.model(x, training=False)
            outs = [keras.ops.convert_to_numpy(call(img[None].astype(np.float32))) for img in images]
            return np.concatenate(outs).astype(np.float32)
        if keras.backend.backend() != "tensorflow":  # the endpoint: Keras on torch, no TensorFlow there
            from helpers.serving_classifier import model_inputs

            x = keras.ops.concatenate([model_inputs(img[None], self.cfg.backbone, size) for img in images])
            return np.asarray(keras.ops.convert_to_numpy(self.model(x, training=False)), dtype=np.float32)
        import tensorflow as tf

        from helpers.classify import get_backbone, preprocess_batch

        spec = get_backbone(self.cfg.backbone)
        # Resized one by one (sizes differ), then the backbone's own preprocessing on the batch.
        x = tf.concat([preprocess_batch(img[None], spec, size) for img in images], axis=0)
        return np.asarray(self._inference(x), dtype=np.float32)

    @functools.cached_property
    def _inference(self) -> Any:
        """`model(x, training=False)` traced once into a TensorFlow graph for any batch and image size.

        The same kernels and the same features as the eager call, without its per-layer Python dispatch
        (ResNet50, batch 8 at 224, one CPU thread: 0.97 s instead of 1.29 s); XLA (jit_compile) was no
        faster on CPU.
        """
        import tensorflow as tf

        signature = [tf.TensorSpec((None, None, None, 3), tf.float32)]
        return tf.function(lambda x: self.model(x, training=False), input_signature=signature)

    def save(self, folder: str | Path) -> Path:
        """``encoder.keras`` (architecture + weights) and ``encoder.json`` (the EncoderConfig)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".encoder.keras.tmp.keras"
        self.model.save(tmp)
        tmp.replace(folder / "encoder.keras")
        artifacts.write_json(folder / "encoder.json", dataclasses.asdict(self.cfg))
        return folder

    @classmethod
    def load(cls, cfg: EncoderConfig, folder: str | Path) -> KerasEncoder:
        """Inverse of `save` (safe_mode on: no arbitrary code is deserialised)."""
        import keras

        return cls(cfg, keras.models.load_model(Path(folder) / "encoder.keras", compile=False))


@dataclass
class FeatureCache:
    features: np.ndarray  # (N, D) float16
    names: list[str]  # image name of each row
    config: dict[str, Any]  # what made them
    encoder: Any  # an ImageEncoder
    reused: bool  # True when read from disk rather than computed

    @property
    def rows(self) -> dict[str, int]:
        """Image name -> row."""
        return {n: i for i, n in enumerate(self.names)}


def images_fingerprint(names: list[str], path_of: Callable[[str], Path]) -> str:
    """SHA-256 over names and file sizes: cheap, and changes when the pictures are regenerated."""
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}\t{path_of(name).stat().st_size}\n".encode())
    return h.hexdigest()


def cached_features(
    cache_dir: str | Path,
    cfg: EncoderConfig,
    names: list[str],
    path_of: Callable[[str], Path],
    batch_size: int = 32,
    progress: bool = True,
    chunk_rows: int | None = None,
    workers: int | None = None,
) -> FeatureCache:
    """Features of `names` (decoded from `path_of(name)`), from the cache when it was made the same way.

    Streams: JPEGs are decoded on `workers` threads (default: the CPUs, at most 8) a few batches ahead of
    the encoder, and every `chunk_rows` rows (default 32 batches) go into a memory-mapped float16 file, so
    memory stays at a few batches of pictures whatever the dataset's size. A killed run resumes at its
    first unfinished chunk with the encoder it saved at the start, so the result equals an uninterrupted
    run's.
    """
    cache_dir, names, chunk_rows = Path(cache_dir), sorted(names), chunk_rows or 32 * batch_size
    if not names:
        raise ValueError("no images to encode")
    if chunk_rows % batch_size:
        raise ValueError(f"chunk_rows ({chunk_rows}) must be a multiple of batch_size ({batch_size})")
    want = {
        "encoder": dataclasses.asdict(cfg),
        "images": len(names),
        "images_sha256": images_fingerprint(names, path_of),
    }
    if _matches(cache_dir, want):
        return _open_cache(cache_dir, reused=True)
    (cache_dir / "config.json").unlink(missing_ok=True)  # the old cache no longer vouches for anything
    encoder, state = _start_or_resume(cache_dir, cfg, want, chunk_rows)
    feats = np.lib.format.open_memmap(cache_dir / PARTIAL, mode="r+")
    todo = [c for c in range(-(-len(names) // chunk_rows)) if c not in state["done"]]
    rows = [r for c in todo for r in range(c * chunk_rows, min(len(names), (c + 1) * chunk_rows))]
    done_rows = len(names) - len(rows)
    desc = f"features (resumed, {done_rows:,} done)" if done_rows else "features"
    with (
        ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool,
        tqdm(total=len(names), initial=done_rows, desc=desc, unit="img", disable=not progress) as bar,
    ):
        images = _prefetch(pool, lambda r: _decode(path_of(names[r])), rows, ahead=4 * batch_size)
        for c in todo:
            lo, hi = c * chunk_rows, min(len(names), (c + 1) * chunk_rows)
            exact = np.concatenate(
                [
                    encoder.encode([next(images) for _ in range(s, min(hi, s + batch_size))], batch_size)
                    for s in range(lo, hi, batch_size)
                ]
            )
            _check_finite(exact.astype(np.float16), exact, cfg)
            feats[lo:hi] = exact
            feats.flush()  # on disk before the chunk is marked done
            state["done"].append(c)
            artifacts.write_json(cache_dir / "partial.json", state)
            bar.update(hi - lo)
    _check_varies(feats, cfg)
    del feats
    os.replace(cache_dir / PARTIAL, cache_dir / "features.npy")
    artifacts.write_json(cache_dir / "index.json", {"names": names})
    config = {**want, "feature_dim": int(state["feature_dim"]), "dtype": "float16"}
    artifacts.write_json(cache_dir / "config.json", config)  # last: marks the cache complete
    (cache_dir / "partial.json").unlink()
    return FeatureCache(_read_features(cache_dir), names, config, encoder, reused=False)


PARTIAL = "features.partial.npy"  # the memory-mapped rows of an unfinished extraction


def _start_or_resume(cache_dir: Path, cfg: EncoderConfig, want: dict, chunk_rows: int) -> tuple[Any, dict]:
    """The saved encoder and chunk record of an unfinished run made the same way, or a fresh start."""
    path = cache_dir / "partial.json"
    state = artifacts.read_json(path) if path.is_file() else {}
    same = state.get("want") == json.loads(json.dumps(want)) and state.get("chunk_rows") == chunk_rows
    if same and (cache_dir / PARTIAL).is_file() and (cache_dir / "encoder.json").is_file():
        return ImageEncoder.load(cache_dir), state
    path.unlink(missing_ok=True)
    encoder = ImageEncoder.build(cfg)
    encoder.save(cache_dir)  # first: a resumed run must encode with these very weights (random init too)
    shape = (want["images"], encoder.feature_dim)
    np.lib.format.open_memmap(cache_dir / PARTIAL, mode="w+", dtype=np.float16, shape=shape).flush()
    state = {"want": want, "chunk_rows": chunk_rows, "feature_dim": encoder.feature_dim, "done": []}
    artifacts.write_json(path, state)
    return encoder, state


def _decode(path: Path) -> np.ndarray:
    from helpers.data import decode_image

    return decode_image(path)


def _prefetch(pool: ThreadPoolExecutor, fn: Callable, items: Sequence, ahead: int) -> Iterator:
    """`fn(item)` for each item, in order, computed on `pool` at most `ahead` items in advance."""
    pending: deque = deque(pool.submit(fn, x) for x in items[:ahead])
    for x in items[ahead:]:
        result = pending.popleft().result()
        pending.append(pool.submit(fn, x))
        yield result
    while pending:
        yield pending.popleft().result()


def _read_features(cache_dir: Path) -> np.ndarray:
    """The (N, D) float16 features, memory-mapped read-only (COCO's 123,287 x 2048 are 505 MB)."""
    path = cache_dir / "features.npy"
    if not path.is_file():
        raise FileNotFoundError(f"expected array file not found: {path}")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _open_cache(cache_dir: Path, reused: bool) -> FeatureCache:
    return FeatureCache(
        _read_features(cache_dir),
        artifacts.read_json(cache_dir / "index.json")["names"],
        artifacts.read_json(cache_dir / "config.json"),
        ImageEncoder.load(cache_dir),
        reused=reused,
    )


def _check_finite(feats: np.ndarray, exact: np.ndarray, cfg: EncoderConfig) -> None:
    """Refuse features that float16 cannot hold."""
    if not np.isfinite(feats).all():
        raise ValueError(f"{cfg.label}: features overflow float16 (max |x| {np.abs(exact).max():.3g})")


def _check_varies(feats: np.ndarray, cfg: EncoderConfig, chunk: int = 8192) -> None:
    """Refuse features that do not vary between images (read in chunks: the array may be large)."""
    lo = np.full(feats.shape[1], np.inf, np.float32)
    hi = np.full(feats.shape[1], -np.inf, np.float32)
    for s in range(0, len(feats), chunk):
        block = np.asarray(feats[s : s + chunk], dtype=np.float32)
        lo, hi = np.minimum(lo, block.min(axis=0)), np.maximum(hi, block.max(axis=0))
    if len(feats) > 1 and not (hi - lo).any():
        raise ValueError(
            f"{cfg.label} gives constant features (max |x| {max(abs(lo).max(), abs(hi).max()):.3g}): the "
            "images cannot be told apart; use another backbone or pretrained weights"
        )


def _matches(cache_dir: Path, want: dict[str, Any]) -> bool:
    """A complete cache made with the same encoder config from the same images."""
    path = cache_dir / "config.json"
    if not path.is_file() or not (cache_dir / "features.npy").is_file():
        return False
    have = artifacts.read_json(path)
    return {k: have.get(k) for k in want} == json.loads(json.dumps(want))
