"""Learnable synthetic data for the smoke preset, written in the canonical formats the real loaders read.

- CIFAR-style: 32x32 pictures of one textured shape; the class is a (colour, shape, texture) combination
  such as ``red_circle_solid`` and the coarse class is the shape. Position, size, rotation, colour shade,
  background and noise vary, so a model must look at the picture, yet a small CNN learns it in minutes.
- Flickr8k-style: JPEGs of one or two coloured shapes in a spatial relation, five differently worded
  captions stating the same facts. Colours, shapes and relations are drawn uniformly, so the captions
  cannot be guessed without the picture, and they are fully determined by it.
Both are deterministic given the seed.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from helpers import artifacts
from helpers.data import shapes as draw
from helpers.data.cifar import CifarData, save_cifar100
from helpers.data.flickr import CSV_FILE, SPLIT_FILES, TOKEN_FILE

#: Bump when the pictures or captions change, so cached synthetic folders are rewritten.
GENERATOR_VERSION = 1
CIFAR_SIDE = 32  # pixels
MAX_CLASSES = len(draw.SHAPES) * len(draw.COLOURS) * len(draw.TEXTURES)  # 100
FLICKR_COLOURS = ("red", "green", "blue", "yellow")
FLICKR_SHAPES = ("circle", "square", "triangle")
RELATIONS = ("left", "right", "above", "below")
_OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
_LONG = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
_SHORT = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
_SIDE = {"left": "on its left", "right": "on its right", "above": "above it", "below": "below it"}


# ---- CIFAR-style --------------------------------------------------------------------------------------
def cifar_class(index: int) -> tuple[str, str, str]:
    """(colour, shape, texture) of fine class `index`.

    A bijection of 0..99 chosen so that the first few classes already vary all three factors and no
    single factor names the class: shape = i % 5; with k = i // 5, texture = k % 4 and
    colour = (k + shape) % 5 (k is recovered from k mod 4 and k mod 5).
    """
    if not 0 <= index < MAX_CLASSES:
        raise ValueError(f"class index must be in 0..{MAX_CLASSES - 1}, got {index}")
    s, k = index % 5, index // 5
    colour = list(draw.COLOURS)[(k + s) % 5]
    return colour, draw.SHAPES[s], draw.TEXTURES[k % 4]


def _cifar_image(index: int, rng: np.random.Generator) -> np.ndarray:
    colour, shape, texture = cifar_class(index)
    r = rng.uniform(8.0, 12.5)  # radius in pixels of the 32-pixel picture
    blob = draw.Blob(
        shape=shape,
        cx=rng.uniform(r + 1, CIFAR_SIDE - r - 1),
        cy=rng.uniform(r + 1, CIFAR_SIDE - r - 1),
        radius=r,
        colour=draw.jitter(draw.COLOURS[colour], rng),
        angle=rng.uniform(-25, 25),
        texture=texture,
    )
    return draw.render(CIFAR_SIDE, [blob], draw.background(CIFAR_SIDE, rng), noise=6.0, rng=rng)


def _cifar_split(num_classes: int, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
    return np.stack([_cifar_image(int(c), rng) for c in labels]), labels.astype(np.int64)


def _cifar_config(num_classes: int, train_per_class: int, test_per_class: int, seed: int) -> dict[str, Any]:
    """The checked configuration, as the stamp beside the folder records it."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes}")
    if train_per_class < 1 or test_per_class < 1:
        raise ValueError("train_per_class and test_per_class must be at least 1")
    return {
        "generator": "synthetic-cifar",
        "version": GENERATOR_VERSION,
        "num_classes": num_classes,
        "train_per_class": train_per_class,
        "test_per_class": test_per_class,
        "seed": seed,
    }


def _cifar_data(num_classes: int, train_per_class: int, test_per_class: int, seed: int) -> CifarData:
    """The pictures and labels, with coarse labels (the shape) and class names as in the original."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _cifar_split(num_classes, train_per_class, rng)
    x_test, y_test = _cifar_split(num_classes, test_per_class, rng)
    names = ["_".join(cifar_class(c)) for c in range(num_classes)]
    shape_of = np.array([c % len(draw.SHAPES) for c in range(num_classes)], dtype=np.int64)
    return CifarData(
        x_train,
        y_train,
        shape_of[y_train],
        x_test,
        y_test,
        shape_of[y_test],
        label_names=names,
        coarse_label_names=list(draw.SHAPES),
        source="synthetic",
    )


def write_synthetic_cifar(
    dest: str | Path,
    num_classes: int = 10,
    train_per_class: int = 100,
    test_per_class: int = 20,
    seed: int = 0,
    *,
    reuse: bool = False,
) -> Path:
    """Write ``dest/cifar-100-python`` (train, test, meta pickles exactly as the original) and return it.

    With ``reuse``, a folder written earlier with the same configuration is returned as it is.
    """
    config = _cifar_config(num_classes, train_per_class, test_per_class, seed)

    def build(folder: Path) -> None:
        save_cifar100(folder, _cifar_data(num_classes, train_per_class, test_per_class, seed))

    return _publish(Path(dest), "cifar-100-python", config, build, reuse)


# ---- Flickr8k-style -----------------------------------------------------------------------------------
def _scene(rng: np.random.Generator, colours: tuple[str, ...], kinds: tuple[str, ...]) -> dict[str, Any]:
    """Facts of one picture: one object (a fifth of the time) or two distinct ones and a relation."""
    pairs = list(itertools.product(colours, kinds))
    first = pairs[rng.integers(len(pairs))]
    if rng.random() < 0.2:
        return {"objects": [first], "relation": None}
    others = [p for p in pairs if p != first]
    return {"objects": [first, others[rng.integers(len(others))]], "relation": RELATIONS[rng.integers(4)]}


def captions_for(scene: dict[str, Any]) -> list[str]:
    """Five differently worded captions of the same facts (lowercase, no punctuation)."""
    a = " ".join(scene["objects"][0])
    if scene["relation"] is None:
        return [
            f"a {a}",
            f"a single {a}",
            f"there is one {a}",
            f"the picture shows a {a}",
            f"one {a} on a plain background",
        ]
    b, rel = " ".join(scene["objects"][1]), scene["relation"]
    if rel in ("left", "right"):
        first, second = (a, b) if rel == "left" else (b, a)
        layout = f"there is a {first} on the left and a {second} on the right"
    else:
        first, second = (a, b) if rel == "above" else (b, a)
        layout = f"there is a {first} at the top and a {second} at the bottom"
    return [
        f"a {a} {_LONG[rel]} a {b}",
        f"a {b} {_LONG[_OPPOSITE[rel]]} a {a}",
        layout,
        f"the {a} is {_SHORT[rel]} the {b}",
        f"a {b} with a {a} {_SIDE[rel]}",
    ]


def _placements(
    scene: dict[str, Any], side: int, rng: np.random.Generator
) -> list[tuple[float, float, float]]:
    """(cx, cy, radius) per object; two objects are 0.32+ apart on the relation's axis, 0.12- across it."""
    if scene["relation"] is None:
        r = rng.uniform(0.12, 0.18) * side
        return [(rng.uniform(0.3, 0.7) * side, rng.uniform(0.3, 0.7) * side, r)]
    near, far = rng.uniform(0.18, 0.34), rng.uniform(0.66, 0.82)  # along the axis, fraction of the side
    across = rng.uniform(0.3, 0.7)
    across_b = float(np.clip(across + rng.uniform(-0.12, 0.12), 0.25, 0.75))
    rel = scene["relation"]
    a_along, b_along = (near, far) if rel in ("left", "above") else (far, near)
    if rel in ("left", "right"):
        centres = [(a_along, across), (b_along, across_b)]
    else:
        centres = [(across, a_along), (across_b, b_along)]
    return [(x * side, y * side, rng.uniform(0.10, 0.15) * side) for x, y in centres]


def _flickr_jpeg(scene: dict[str, Any], side: int, rng: np.random.Generator) -> bytes:
    blobs = [
        draw.Blob(
            shape=kind,
            cx=cx,
            cy=cy,
            radius=r,
            colour=draw.jitter(draw.COLOURS[colour], rng),
            angle=rng.uniform(-20, 20),
        )
        for (colour, kind), (cx, cy, r) in zip(scene["objects"], _placements(scene, side, rng), strict=True)
    ]
    pixels = draw.render(side, blobs, draw.background(side, rng), noise=4.0, rng=rng)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _image_ids(n: int, rng: np.random.Generator) -> list[str]:
    """Unique names shaped like real Flickr8k ids, e.g. ``2513260012_03d33305cf.jpg``."""
    ids: dict[str, None] = {}
    while len(ids) < n:
        ids[f"{rng.integers(10**8, 4 * 10**9)}_{rng.bytes(5).hex()}.jpg"] = None
    return list(ids)


def _flickr_pictures(
    num_images: int, seed: int, image_size: int, colours: tuple[str, ...], shapes: tuple[str, ...]
) -> tuple[list[str], list[dict], list[bytes]]:
    """(file names, scenes, JPEG bytes) of every picture, in an order independent of generation."""
    rng = np.random.default_rng(seed)
    names = _image_ids(num_images, rng)
    scenes = [_scene(rng, colours, shapes) for _ in names]
    jpegs = [_flickr_jpeg(s, image_size, rng) for s in scenes]
    order = rng.permutation(num_images)  # split assignment independent of generation order
    names, scenes, jpegs = ([seq[i] for i in order] for seq in (names, scenes, jpegs))
    return names, scenes, jpegs


def _write_flickr(folder: Path, names: list[str], scenes: list[dict], jpegs: list[bytes], fmt: str) -> None:
    for name, data in zip(names, jpegs, strict=True):
        artifacts.write_bytes(folder / "Images" / name, data)
    # written like the real files: capitalised, with a spaced full stop ("A red circle above a blue star .")
    rows = [
        (n, i, c[0].upper() + c[1:] + " .")
        for n, s in zip(names, scenes, strict=True)
        for i, c in enumerate(captions_for(s))
    ]
    if fmt == "token":
        artifacts.write_text(folder / TOKEN_FILE, "".join(f"{n}#{i}\t{c}\n" for n, i, c in rows))
    else:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([("image", "caption"), *((n, c) for n, _, c in rows)])
        artifacts.write_text(folder / CSV_FILE, buf.getvalue())
    n_val = n_test = round(len(names) * 0.1)
    parts = {"val": names[:n_val], "test": names[n_val : n_val + n_test], "train": names[n_val + n_test :]}
    for split, file in SPLIT_FILES.items():
        artifacts.write_text(folder / file, "".join(f"{n}\n" for n in sorted(parts[split])))
    artifacts.write_json(folder / "synthetic_scenes.json", dict(zip(names, scenes, strict=True)))


def _flickr_config(
    num_images: int,
    seed: int,
    image_size: int,
    colours: tuple[str, ...],
    shapes: tuple[str, ...],
    caption_format: str,
) -> dict[str, Any]:
    """The checked configuration, as the stamp beside the folder records it."""
    unknown = [c for c in colours if c not in draw.COLOURS] + [s for s in shapes if s not in draw.SHAPES]
    if unknown:
        raise ValueError(f"unknown colours/shapes {unknown}; choose from {list(draw.COLOURS)}, {draw.SHAPES}")
    if caption_format not in ("token", "csv"):
        raise ValueError(f"caption_format must be 'token' or 'csv', got {caption_format!r}")
    if num_images < 10 or image_size < 32 or len(colours) * len(shapes) < 2:
        raise ValueError("need num_images >= 10, image_size >= 32 and at least two colour/shape pairs")
    return {
        "generator": "synthetic-flickr",
        "version": GENERATOR_VERSION,
        "num_images": num_images,
        "seed": seed,
        "image_size": image_size,
        "colours": list(colours),
        "shapes": list(shapes),
        "caption_format": caption_format,
    }


def write_synthetic_flickr(
    dest: str | Path,
    num_images: int = 400,
    seed: int = 0,
    image_size: int = 96,
    colours: tuple[str, ...] = FLICKR_COLOURS,
    shapes: tuple[str, ...] = FLICKR_SHAPES,
    caption_format: str = "token",
    *,
    reuse: bool = False,
) -> Path:
    """Write ``dest/flickr8k`` (Images/*.jpg, captions file, split lists ~80/10/10) and return it.

    ``caption_format``: "token" writes ``Flickr8k.token.txt``, "csv" writes ``captions.txt``. The facts of
    every picture are also saved in ``synthetic_scenes.json`` (the loaders ignore it). With ``reuse``, a
    folder written earlier with the same configuration is returned as it is.
    """
    colours, shapes = tuple(colours), tuple(shapes)
    config = _flickr_config(num_images, seed, image_size, colours, shapes, caption_format)

    def build(folder: Path) -> None:
        pictures = _flickr_pictures(num_images, seed, image_size, colours, shapes)
        _write_flickr(folder, *pictures, caption_format)

    return _publish(Path(dest), "flickr8k", config, build, reuse)


# ---- write once, rewrite when the configuration changes --------------------------------------------------
def _stamp(dest: Path, name: str) -> Path:
    return dest / f"{name}.synthetic.json"


def _publish(
    dest: Path, name: str, config: dict[str, Any], build: Callable[[Path], Any], reuse: bool = False
) -> Path:
    """Build into a temporary folder, then swap it in as ``dest/name`` and record `config` beside it.

    With `reuse`, a ``dest/name`` whose recorded config is `config` is kept and nothing is built.
    """
    target, stamp = dest / name, _stamp(dest, name)
    recorded = artifacts.read_json(stamp) if stamp.is_file() else None
    if reuse and target.is_dir() and recorded == json.loads(json.dumps(config)):
        return target
    if target.exists() and recorded is None:
        raise FileExistsError(
            f"{target} exists and was not written by the synthetic generator; not replacing it (delete it "
            "to have it generated)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest))
    try:
        build(tmp)
        stamp.unlink(missing_ok=True)  # the old stamp must not vouch for a half-swapped folder
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    artifacts.write_json(stamp, config)
    return target


def ensure_synthetic_cifar(sources_dir: str | Path, **kw: Any) -> Path:
    """``sources_dir/cifar-100-python``, written only if absent or made with a different configuration."""
    return write_synthetic_cifar(sources_dir, **kw, reuse=True)


def ensure_synthetic_flickr(sources_dir: str | Path, **kw: Any) -> Path:
    """``sources_dir/flickr8k``, written only if absent or made with a different configuration."""
    return write_synthetic_flickr(sources_dir, **kw, reuse=True)
