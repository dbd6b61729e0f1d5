"""The rehearsal's one-step slice: fetch + load + one training step per notebook, full shapes, tiny data.

``python -m rehearsal.slice --work DIR`` builds the small stand-ins (same formats and model sizes as the
rehearsal's), serves them from the local mirror and, in this process, runs what notebooks 01-04 and 06 do
up to one training step, through the same helpers calls: the CIFAR-100 archive fetched and read (01),
each backbone's ImageNet weights fetched and loaded by Keras at 224x224, one step at its real batch size
(02-04), the Flickr8k archives fetched and extracted, ImageNet ResNet50 features, ``from_pretrained("gpt2")``
and one captioner step at batch 40 (06). 05 and 07 download and train nothing. Writes ``DIR/slice.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rehearsal.mirror import serve
from rehearsal.standins import SLICE, StandIns, build, environment

#: What the slice passes to the preset's defaults: one step per phase, enough images for one full batch.
CLASSIFIER_CAPS = {"head_epochs": 1, "finetune_epochs": 0, "max_steps": 1}


def _digest(path: Path) -> str:
    from helpers.data.downloads import file_hash

    return "sha256:" + file_hash(path)


def step_01(run_dir: Path, manifest: dict) -> dict[str, Any]:
    """CIFAR-100 through the `full` source ("keras"): fetched from the mirror, read, split, saved."""
    from helpers.data import load_cifar100, save_prepared
    from helpers.data import preprocess as pp
    from helpers.data.downloads import cache_root

    cfg = pp.PreprocessConfig.for_preset("full", str(run_dir), samples_per_class=3, test_per_class=1)
    data = load_cifar100(pp.resolve_source(cfg))
    prepared = pp.make_splits(data, cfg)
    save_prepared(cfg.paths.data, prepared, pp.manifest_for(cfg, "keras"))
    archive = cache_root() / "datasets" / "cifar-100-python.tar.gz"
    return {
        "archive_matches_mirror": _digest(archive) == manifest[archive.name]["hash"],
        "x_train": list(data.x_train.shape),
        "label_names": data.label_names[:3],
        "splits": {s: len(getattr(prepared, s).labels) for s in ("train", "val", "test")},
    }


def step_classifier(run_dir: Path, backbone: str, mirror: Path) -> dict[str, Any]:
    """ImageNet weights fetched and loaded through Keras, then one head-phase step at the real batch."""
    import keras
    import numpy as np

    from helpers.classify import TrainConfig, get_backbone
    from helpers.classify.backbones import backbone_layer
    from helpers.classify.train import train_classifier
    from helpers.data import load_prepared

    cfg = TrainConfig.for_preset("full", backbone, str(run_dir), **CLASSIFIER_CAPS)
    result = train_classifier(cfg, load_prepared(cfg.paths.data))
    spec, size = get_backbone(backbone), (cfg.input_size, cfg.input_size, 3)
    published = spec.constructor(
        include_top=False, weights=str(mirror / spec.imagenet_file), input_shape=size
    )
    loaded = backbone_layer(result.model).get_weights()
    same = all(np.array_equal(a, b) for a, b in zip(loaded, published.get_weights(), strict=True))
    row = result.history.iloc[-1]
    keras.backend.clear_session()
    return {
        "weights_match_file": same,  # the frozen backbone still holds exactly the fetched file's weights
        "input_size": cfg.input_size,
        "batch_size": cfg.batch_size,
        "epochs": len(result.history),
        "step_seconds": float(row["step_seconds"]),
    }


def step_06(run_dir: Path) -> dict[str, Any]:
    """Flickr8k archives, ImageNet ResNet50 features, from_pretrained("gpt2") and one captioner step."""
    import torch
    from safetensors.torch import load_file

    from helpers.caption import variants
    from helpers.caption.config import CaptionConfig
    from helpers.caption.features import cached_features
    from helpers.caption.model import build_gpt2, count_parameters
    from helpers.caption.tokenizer import gpt2_tokenizer
    from helpers.data import load_flickr8k

    cfg = CaptionConfig.for_preset("full", str(run_dir), epochs=1, max_steps=1)
    flickr = load_flickr8k(cfg.resolve_data())
    names = sorted(n for split in flickr.splits.values() for n in split)
    cache = cached_features(cfg.paths.captions / "features", cfg.encoder, names, flickr.image_path)
    gpt2 = build_gpt2(cfg.prefix.gpt2)
    snapshot = Path(os.environ["HF_HOME"]) / "hub" / "models--gpt2" / "snapshots"
    stored = load_file(str(next(snapshot.glob("*/model.safetensors"))))
    state = gpt2.state_dict()
    same = all(torch.equal(v, state[k]) for k, v in stored.items() if k in state)
    gpt2_parameters = sum(p.numel() for p in gpt2.parameters())
    del gpt2, state
    model, history = variants.train_variant(cfg, cache, flickr, gpt2_tokenizer(), blind=False)
    return {
        "splits": {s: len(n) for s, n in flickr.splits.items()},
        "features": list(cache.features.shape),
        "gpt2_parameters": gpt2_parameters,
        "gpt2_matches_cache": same,
        "captioner_parameters": count_parameters(model),
        "batch_size": cfg.train.batch_size,
        "epochs": len(history),
        "step_seconds": float(history["step_seconds"].iloc[-1]),
    }


def run(work: Path) -> dict[str, Any]:
    """Build (or reuse) the stand-ins under `work`, then run every step with a fresh cache and run folder."""
    work = Path(work)
    keras_home, run_dir = work / "keras", work / "run"
    for folder in (keras_home, run_dir):
        shutil.rmtree(folder, ignore_errors=True)
    where = work / "standins"
    standins = StandIns(where / "mirror", where / "manifest.json", where / "hf")
    # The hub libraries read HF_HOME when first imported: set everything but the mirror's address first.
    os.environ.update(environment(standins, "http://127.0.0.1:9", keras_home))
    build(where, SLICE)
    manifest = json.loads(standins.manifest.read_text())
    results: dict[str, Any] = {}
    with serve(standins.mirror) as url:
        os.environ["CAPTION_DOWNLOAD_MIRROR"] = url
        steps = {
            "01": lambda: step_01(run_dir, manifest),
            **{
                nb: (lambda b=b: step_classifier(run_dir, b, standins.mirror))
                for nb, b in (("02", "vgg16"), ("03", "resnet50"), ("04", "mobilenet_v2"))
            },
            "06": lambda: step_06(run_dir),
        }
        for notebook, step in steps.items():
            start = time.perf_counter()
            results[notebook] = {**step(), "seconds": round(time.perf_counter() - start, 1)}
            print(f"{notebook}: {results[notebook]}", flush=True)
    results["downloaded"] = sorted(
        p.name for p in keras_home.rglob("*") if p.is_file() and p.suffix != ".lock"
    )
    (work / "slice.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.slice", description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the stand-ins, caches and the run folder")
    run(Path(parser.parse_args(argv).work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
