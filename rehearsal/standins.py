"""Stand-ins for every file the `full` preset downloads: real names, formats and sizes, random contents.

- ``cifar-100-python.tar.gz``: the original archive's layout and pickle format (``cifar-100-python/`` with
  ``train``, ``test``, ``meta``), at full size by default (50,000 + 10,000 random images, balanced labels).
- ``Flickr8k_Dataset.zip`` / ``Flickr8k_text.zip``: the public archives' layouts (``Flicker8k_Dataset/``
  with macOS junk, the caption file and the three split lists), a few hundred generated JPEGs.
- the three ImageNet weight files, random-init weights written in Keras' legacy HDF5 weights format (the
  format of the published files, loaded by the same ``load_weights`` code).
- ``gpt2`` and ``openai/clip-vit-base-patch32`` in the Hugging Face cache layout
  (``models--<id>/{blobs,snapshots,refs}``): random-init models of their real sizes (GPT-2 124 M, CLIP
  ViT-B/32 151 M parameters), so ``from_pretrained`` loads them offline through its real code.

The mirror's files are not the published ones, so a manifest of their own sha256 and size goes with them
(`helpers.data.downloads` reads it from ``CAPTION_DOWNLOAD_MANIFEST``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.data.download_table import CIFAR100_ARCHIVE, FLICKR8K_ARCHIVES, GPT2_REVISION, IMAGENET_WEIGHTS

#: Bumped whenever what the stand-ins hold changes, so an older build in a work folder is replaced.
FORMAT = 2


@dataclass(frozen=True)
class Scale:
    """How big the stand-ins are."""

    cifar_train: int = 50_000  # images in the CIFAR-100 train pickle (the real archive's count)
    cifar_test: int = 10_000  # images in the test pickle
    flickr: tuple[int, int, int] = (100, 20, 20)  # train / val / test images in the Flickr8k archives
    seed: int = 0


#: The rehearsal: full-size CIFAR-100; Flickr8k with a few hundred images.
REHEARSAL = Scale()
#: The one-step slice run by the tests: the same formats and model sizes, tiny data.
SLICE = Scale(cifar_train=300, cifar_test=100, flickr=(12, 4, 4))


@dataclass(frozen=True)
class StandIns:
    """Where the stand-ins were written."""

    mirror: Path  # the folder the HTTP mirror serves
    manifest: Path  # {file name: {"hash": "sha256:...", "size": bytes}}
    hf_home: Path  # a Hugging Face home whose hub cache holds gpt2


def build(work: Path, scale: Scale = REHEARSAL) -> StandIns:
    """Write every stand-in under `work` (skipped when a build of the same scale is already there)."""
    work = Path(work)
    out = StandIns(work / "mirror", work / "manifest.json", work / "hf")
    stamp = work / "standins.json"
    wanted = {**dataclasses.asdict(scale), "hub_models": sorted(HUB_MODELS), "format": FORMAT}
    if stamp.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(wanted)):
        return out
    out.mirror.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(scale.seed)
    write_cifar_archive(out.mirror / CIFAR100_ARCHIVE, scale.cifar_train, scale.cifar_test, rng)
    write_flickr_archives(out.mirror, scale.flickr, rng)
    for backbone, name in IMAGENET_WEIGHTS.items():
        write_keras_weights(out.mirror / name, backbone)
    write_manifest(out.mirror, out.manifest)
    write_hub_cache(out.hf_home, scale.seed)
    stamp.write_text(json.dumps(wanted))
    return out


def write_manifest(mirror: Path, manifest: Path) -> dict:
    """sha256 and size of every file the mirror serves."""
    entries = {}
    for path in sorted(p for p in mirror.iterdir() if p.is_file()):
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        entries[path.name] = {"hash": f"sha256:{digest}", "size": path.stat().st_size}
    manifest.write_text(json.dumps(entries, indent=2) + "\n")
    return entries


# ---- CIFAR-100 --------------------------------------------------------------------------------------
def write_cifar_archive(path: Path, n_train: int, n_test: int, rng: np.random.Generator) -> Path:
    """A ``cifar-100-python.tar.gz`` in the original layout with random pixels and balanced labels."""
    from helpers.data.cifar import CIFAR100_COARSE_LABELS, CIFAR100_FINE_LABELS, CifarData, save_cifar100

    def split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fine = rng.permutation(np.arange(n) % 100)
        return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), fine, fine // 5

    data = CifarData(
        *split(n_train), *split(n_test), list(CIFAR100_FINE_LABELS), list(CIFAR100_COARSE_LABELS), "stand-in"
    )
    folder = save_cifar100(path.parent / "cifar-100-python.build", data)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:  # random pixels do not compress anyway
        for name in ("train", "test", "meta"):
            # Re-pickled the way the original (Python 2) files are: byte strings stored raw.
            obj = pickle.loads((folder / name).read_bytes(), encoding="bytes")  # our own file, just written
            (folder / name).write_bytes(_py2_pickle(obj))
            tar.add(folder / name, arcname=f"cifar-100-python/{name}")
            (folder / name).unlink()
    folder.rmdir()
    os.replace(tmp, path)
    return path


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with bytes written as Python 2 wrote its str (BINSTRING), as in the original archive.

    Python 3's protocol 2 stores bytes through ``_codecs.encode(text, "latin1")``, which makes random
    pixel data about a third larger than the real files.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# ---- Flickr8k ---------------------------------------------------------------------------------------
_WHO = ("a black dog", "two children", "a man in a red shirt", "a woman", "a brown horse", "a girl")
_DOES = ("runs through", "plays in", "stands near", "jumps over", "walks along", "sits on")
_WHERE = ("the grass", "the snow", "a wooden fence", "the beach", "a busy street", "the water")


def photo_jpeg(
    rng: np.random.Generator,
    size: tuple[int, int] = (500, 375),
    blocks: tuple[int, int, int] = (3, 20, 60),
    grain: float = 0.0,
    grayscale: bool = False,
) -> bytes:
    """A photo-sized JPEG (`size` landscape, sometimes portrait): a colour gradient, `blocks` (count, min and
    max side) of flat colour and optional grain (std of added noise, grey levels)."""
    from PIL import Image

    w, h = size if rng.random() < 0.7 else size[::-1]
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w)[None, :, None]
    img = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).copy()
    count, lo, hi = blocks
    for _ in range(count):
        y, x = rng.integers(0, h - hi), rng.integers(0, w - hi)
        img[y : y + rng.integers(lo, hi), x : x + rng.integers(lo, hi)] = rng.integers(0, 256, 3)
    if grain:
        img = np.clip(img + rng.normal(0, grain, img.shape), 0, 255)
    pil = Image.fromarray(img.astype(np.uint8))
    buf = io.BytesIO()
    (pil.convert("L") if grayscale else pil).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _jpeg(rng: np.random.Generator) -> bytes:
    """A 500 x 375 Flickr-sized JPEG: a colour gradient with a few blocks (~25 KB)."""
    return photo_jpeg(rng)


def _caption(rng: np.random.Generator) -> str:
    return f"{rng.choice(_WHO).capitalize()} {rng.choice(_DOES)} {rng.choice(_WHERE)} ."


def write_flickr_archives(mirror: Path, counts: tuple[int, int, int], rng: np.random.Generator) -> None:
    """``Flickr8k_Dataset.zip`` and ``Flickr8k_text.zip`` in the public archives' layouts."""
    ids = [f"{rng.integers(10**9, 4 * 10**9)}_{rng.bytes(5).hex()}.jpg" for _ in range(sum(counts))]
    images = {f"Flicker8k_Dataset/{name}": _jpeg(rng) for name in ids}
    images[f"__MACOSX/Flicker8k_Dataset/._{ids[0]}"] = b"\x00\x05\x16\x07"  # the real archive's junk
    tokens = "".join(f"{name}#{i}\t{_caption(rng)}\n" for name in ids for i in range(5))
    a, b = counts[0], counts[0] + counts[1]
    text = {
        "Flickr8k.token.txt": tokens,
        "Flickr8k.lemma.token.txt": tokens,
        "Flickr_8k.trainImages.txt": "".join(f"{n}\n" for n in ids[:a]),
        "Flickr_8k.devImages.txt": "".join(f"{n}\n" for n in ids[a:b]),
        "Flickr_8k.testImages.txt": "".join(f"{n}\n" for n in ids[b:]),
        "readme.txt": "Stand-in for the Flickr8k text archive: generated captions.\n",
    }
    for name, files in zip(FLICKR8K_ARCHIVES, (images, text), strict=True):
        tmp = mirror / f"{name}.tmp"
        with zipfile.ZipFile(tmp, "w") as zf:
            for member, data in files.items():
                zf.writestr(member, data)
        os.replace(tmp, mirror / name)


# ---- ImageNet weights -------------------------------------------------------------------------------
def write_keras_weights(path: Path, backbone: str) -> Path:
    """Random-init weights of `backbone` (no top, 224 x 224) in the legacy HDF5 format of Keras' files."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format  # the writer of the format load_weights reads

    from helpers.classify.backbones import get_backbone

    keras.utils.set_random_seed(0)
    model = get_backbone(backbone).constructor(include_top=False, weights=None, input_shape=(224, 224, 3))
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    os.replace(tmp, path)
    keras.backend.clear_session()
    return path


# ---- hub models in the Hugging Face cache -----------------------------------------------------------
#: The hub models the `full` preset loads with from_pretrained, and the revision their stand-ins are filed
#: under (gpt2's real one; the CLIP one is a made-up placeholder, any name works offline).
HUB_MODELS = {
    "gpt2": GPT2_REVISION,
    "openai/clip-vit-base-patch32": hashlib.sha1(b"stand-in openai/clip-vit-base-patch32").hexdigest(),
}


def _save_gpt2(folder: Path) -> None:
    """A random-init GPT-2 of gpt2's own size (124 M parameters)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(architectures=["GPT2LMHeadModel"])).save_pretrained(folder)


def _save_clip(folder: Path) -> None:
    """A random-init CLIP ViT-B/32 (the shape of transformers' default CLIPConfig) and its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    CLIPModel(CLIPConfig(architectures=["CLIPModel"])).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)


def write_hub_cache(hf_home: Path, seed: int = 0) -> list[Path]:
    """Each model of `HUB_MODELS` in the hub cache layout (blobs, snapshot links, refs/main)."""
    import tempfile

    import torch

    repos = []
    for repo_id, revision in HUB_MODELS.items():
        repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / revision
        torch.manual_seed(seed)
        with tempfile.TemporaryDirectory() as tmp:
            (_save_gpt2 if repo_id == "gpt2" else _save_clip)(Path(tmp))
            for file in sorted(Path(tmp).iterdir()):
                with open(file, "rb") as f:
                    blob = repo / "blobs" / hashlib.file_digest(f, "sha256").hexdigest()
                blob.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(file, blob)
                snapshot.mkdir(parents=True, exist_ok=True)
                (snapshot / file.name).unlink(missing_ok=True)
                (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)  # as the hub client links
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
        repos.append(repo)
    return repos


def environment(standins: StandIns, mirror_url: str, keras_home: Path) -> dict[str, str]:
    """The environment a `full` run needs to use the stand-ins: mirror, manifest, caches, hub offline."""
    return {
        "CAPTION_DOWNLOAD_MIRROR": mirror_url,
        "CAPTION_DOWNLOAD_MANIFEST": str(standins.manifest),
        "KERAS_HOME": str(keras_home),  # empty at the start: every file is downloaded from the mirror
        "HF_HOME": str(standins.hf_home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
