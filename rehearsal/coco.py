"""``python -m rehearsal.coco``: notebook 06's data path at COCO scale, against the COCO stand-in.

1. Fetch: the stand-in (`rehearsal.coco_standin`) is served by the local mirror and fetched by the `full`
   preset's own code (`helpers.data.sources.fetch_karpathy`: ``caption_datasets.zip``, ``train2014.zip``,
   ``val2014.zip``, hash-checked against the mirror's manifest, extracted, archives deleted).
2. As extracted: the reader with ``check_images=True`` on that folder: 123,287 entries, a few hundred images
   on disk; every other listed image is counted and reported as missing, as a real run would report it.
3. Every image present: the same JSON with every listed image on disk (hard links to the extracted JPEGs,
   so the splits have their real sizes), read with ``check_images=False`` (the decode check's rate is
   measured on the real files in 2 and projected), then the train and val token pairs built as 06 builds
   them, in a fresh process: seconds and peak RSS (``ru_maxrss``, and the process sampled every 0.2 s).
4. Features: `helpers.caption.features.cached_features` on the extracted images with CLIP ViT-B/32 shapes
   and random weights: images/s here, bytes per cached image, and the parts (decode, CLIP preprocessing,
   the encoder) timed apart for the projection to the notebook instance.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rehearsal import coco_standin, estimate, measure
from rehearsal.coco_standin import COCO, CocoScale

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
#: CLIP ViT-B/32's vision tower (openai/clip-vit-base-patch32's shapes), random weights: no download.
VIT_B32 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
           "patch_size": 32, "projection_dim": 512}  # fmt: skip
INSTANCE_RAM = 16 * 2**30  # ml.g4dn.xlarge: 16 GiB, 4 vCPUs, one T4
INSTANCE_CORES = 4


def build(work: Path, scale: CocoScale = COCO) -> dict[str, Any]:
    """The COCO stand-in in `work/mirror` with its manifest (reused when a build of this scale is there)."""
    from rehearsal.standins import write_manifest

    stamp, mirror = work / "coco.json", work / "mirror"
    wanted = json.loads(json.dumps({"scale": vars(scale), "format": 1}))
    if stamp.is_file() and json.loads(stamp.read_text())["wanted"] == wanted:
        return json.loads(stamp.read_text())
    start = time.perf_counter()
    written = coco_standin.write_coco(mirror, scale)
    write_manifest(mirror, work / "manifest.json")
    info = {"wanted": wanted, **written, "seconds": round(time.perf_counter() - start, 1)}
    stamp.write_text(json.dumps(info))
    return info


def fetch(work: Path, sources: Path) -> tuple[Path, float]:
    """The stand-in fetched and extracted by the `full` preset's code from the mirror; (folder, seconds)."""
    from helpers.data.sources import fetch_karpathy
    from rehearsal.mirror import serve

    os.environ["CAPTION_DOWNLOAD_MANIFEST"] = str(work / "manifest.json")
    start = time.perf_counter()
    with serve(work / "mirror") as url:
        os.environ["CAPTION_DOWNLOAD_MIRROR"] = url
        root = fetch_karpathy("coco", sources)
    return root, time.perf_counter() - start


def all_present(extracted: Path, view: Path) -> Path:
    """`view`: the extracted JSON with every image it lists on disk (hard links to the extracted JPEGs)."""
    if (view / ".complete").is_file():
        return view
    files = sorted(p for p in extracted.glob("*2014/*.jpg"))
    with open(extracted / "dataset_coco.json", encoding="utf-8") as f:
        listed = [f"{e['filepath']}/{e['filename']}" for e in json.load(f)["images"]]
    view.mkdir(parents=True, exist_ok=True)
    (view / "dataset_coco.json").unlink(missing_ok=True)
    os.link(extracted / "dataset_coco.json", view / "dataset_coco.json")
    for folder in ("train2014", "val2014"):
        (view / folder).mkdir(exist_ok=True)
    for i, name in enumerate(listed):
        src, dst = extracted / name, view / name
        if not dst.exists():
            os.link(src if src.is_file() else files[i % len(files)], dst)
    (view / ".complete").write_text(f"{len(listed)}\n")
    return view


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def parse_child(root: Path) -> dict[str, Any]:
    """Read the JSON into the caption dataset and build 06's train and val token pairs; seconds, RSS."""
    import numpy as np

    from helpers.caption.config import CaptionConfig
    from helpers.caption.tokenizer import gpt2_tokenizer
    from helpers.caption.train import make_pairs
    from helpers.data.sources import load_dataset

    tok, start_rss = gpt2_tokenizer(), _maxrss()
    t0 = time.perf_counter()
    data = load_dataset("karpathy:coco", root, check_images=False)
    parse_s, parse_rss = time.perf_counter() - t0, _maxrss()
    names = sorted(n for split in data.splits.values() for n in split)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CaptionConfig.for_preset("full", tmp)
        # The feature cache is memory-mapped; make_pairs only indexes it, so a sparse file of its shape.
        feats = np.lib.format.open_memmap(Path(tmp) / "f.npy", "w+", np.float16, (len(names), 512))
        rows = {n: i for i, n in enumerate(names)}
        t1 = time.perf_counter()
        split_names = {"train": cfg.train_names(data), "val": data.splits["val"]}
        pairs = {
            s: make_pairs(feats, rows, data.normalized, n, tok, cfg.train.max_tokens)
            for s, n in split_names.items()
        }
        tokens_s = time.perf_counter() - t1
    lengths = pairs["train"].lengths()
    return {
        "summary": {k: v for k, v in data.summary().items() if k != "left_out"},
        "parse_seconds": round(parse_s, 1),
        "tokens_seconds": round(tokens_s, 1),
        "pairs": {s: len(p) for s, p in pairs.items()},
        "mean_tokens": round(float(lengths.mean()), 2),
        "rss_start": start_rss,
        "rss_after_parse": parse_rss,
        "peak_rss": _maxrss(),
    }


def features_child(root: Path, cache_dir: Path) -> dict[str, Any]:
    """Reader as extracted (check_images=True), then cached_features on its images, parts timed apart."""
    import numpy as np

    from helpers.caption.features import EncoderConfig, ImageEncoder, cached_features
    from helpers.data import decode_image
    from helpers.data.sources import load_dataset

    t0 = time.perf_counter()
    data = load_dataset("karpathy:coco", root, check_images=True)
    read_s = time.perf_counter() - t0
    names = sorted(n for split in data.splits.values() for n in split)
    t0 = time.perf_counter()
    from helpers.data.captions import undecodable

    undecodable(data.images_dir, names)
    check_rate = len(names) / (time.perf_counter() - t0)
    cfg = EncoderConfig("clip", None, 224, seed=0, vision=VIT_B32)
    warm = cached_features(cache_dir.with_name("warm-up"), cfg, names[:32], data.image_path, progress=False)
    t0 = time.perf_counter()
    warm.encoder.save(cache_dir.with_name("save-timing"))  # what cached_features does before encoding
    ImageEncoder.build(cfg)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cache = cached_features(cache_dir, cfg, names, data.image_path, progress=False)
    total_s = time.perf_counter() - t0
    paths = [data.image_path(n) for n in names]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(decode_image, paths))
    decode_rate = len(paths) / (time.perf_counter() - t0)
    enc = cache.encoder
    t0 = time.perf_counter()
    pixels = [
        enc.processor(images=images[i : i + 32], return_tensors="pt") for i in range(0, len(images), 32)
    ]
    preprocess_rate = len(images) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    enc.encode(images[:64], 32)
    encode_rate = len(images[:64]) / (time.perf_counter() - t0)
    del pixels
    for tmp in ("warm-up", "save-timing"):
        shutil.rmtree(cache_dir.with_name(tmp))
    feature_bytes = (cache_dir / "features.npy").stat().st_size
    return {
        "summary": {k: v for k, v in data.summary().items() if k != "left_out"},
        "read_seconds": round(read_s, 1),
        "images": len(names),
        "grayscale_decoded_rgb": all(im.ndim == 3 and im.shape[2] == 3 for im in images),
        "decode_check_per_second": round(check_rate, 1),
        "encoder_setup_seconds": round(setup_s, 1),  # build + save, warm
        "cached_features_seconds": round(total_s, 1),
        "images_per_second": round(len(names) / total_s, 2),  # build and save of the encoder included
        "decode_per_second": round(decode_rate, 1),
        "preprocess_per_second": round(preprocess_rate, 1),
        "encode_per_second": round(encode_rate, 2),
        "feature_dim": int(cache.features.shape[1]),
        "bytes_per_image": (feature_bytes - 128) / len(names),  # minus the .npy header
        "finite": bool(np.isfinite(np.asarray(cache.features, dtype=np.float32)).all()),
        "peak_rss": _maxrss(),
    }


def _child(kind: str, args: list[str], work: Path) -> dict[str, Any]:
    """Run one measurement in a fresh process (sampled by rehearsal.measure); its JSON result."""
    out = work / f"{kind}.json"
    cmd = [sys.executable, "-m", "rehearsal.coco", kind, *args, "--result", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    load = measure.load_average()
    done = measure.run_measured(cmd, env, ROOT, work / f"{kind}.log")
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.output[-3000:]}")
    result = json.loads(out.read_text())
    result.update(sampled_peak_rss=done.peak_rss, wall_seconds=round(done.seconds, 1),
                  cpu_seconds=round(done.cpu_seconds, 1), load_average=[round(load, 1),
                  round(measure.load_average(), 1)])  # fmt: skip
    return result


def projections(parse: dict[str, Any], feats: dict[str, Any]) -> dict[str, Any]:
    """Estimates (not measurements) for the notebook instance and the T4, from the FLOP counts and rates."""
    from helpers.caption.config import CaptionConfig
    from rehearsal.report import REAL_TOKENS, caption_shape

    with tempfile.TemporaryDirectory() as tmp:
        cap = CaptionConfig.for_preset("full", tmp)
    shape = (
        caption_shape(REAL_TOKENS, cap.train.batch_size, cap.train.max_tokens)
        if REAL_TOKENS.is_file()
        else None
    )
    rows = {name: vars(estimate.captioner_estimate(cap, shape, data))
            for name, data in (("Flickr8k", estimate.FLICKR), ("COCO", estimate.COCO))}  # fmt: skip
    alone = {}
    for name, data in (("Flickr8k", estimate.FLICKR), ("COCO", estimate.COCO)):
        seconds, steps = estimate.captioner_only_seconds(
            cap, shape or {"mean_tokens": 14.0, "padded": 24.0}, data
        )
        hours = {str(g): round(estimate.on_gpus(seconds, g) / 3600, 2) for g in estimate.GPU_SCALING}
        alone[name] = {"steps": steps, "epochs": cap.train.epochs, "hours": hours}
    gpu_rate = estimate.T4_PEAK_FLOPS * estimate.UTILISATION / estimate.encoder_forward_flops("clip")[0]
    cores = os.cpu_count() or 1
    cpu_rate = min(feats["decode_per_second"] * INSTANCE_CORES / cores, feats["preprocess_per_second"])
    images = estimate.COCO["images"]
    check_rate = feats["decode_check_per_second"] * INSTANCE_CORES / cores
    return {
        "caption_shape": shape,
        "t4_rows": rows,
        "captioner_alone": alone,
        "feature_cache_bytes": images * feats["bytes_per_image"],
        "feature_cache_bytes_resnet50": images * 2048 * 2,
        "t4_feature_images_per_second": round(gpu_rate),
        "instance_feed_images_per_second": round(cpu_rate, 1),
        "instance_feature_hours": round(images / min(gpu_rate, cpu_rate) / 3600, 2),
        "instance_decode_check_minutes": round(images / check_rate / 60, 1),
        "peak_rss_share_of_instance": parse["peak_rss"] / INSTANCE_RAM,
    }


def measure_coco(work: Path, scale: CocoScale = COCO) -> dict[str, Any]:
    """Build, fetch, read and encode the COCO stand-in under `work`; every measurement and projection."""
    from rehearsal.run import machine

    work.mkdir(parents=True, exist_ok=True)
    standin = build(work / "standin", scale)
    for folder in ("sources", "all-present", "features"):
        shutil.rmtree(work / folder, ignore_errors=True)
    root, fetch_s = fetch(work / "standin", work / "sources")
    view = all_present(root, work / "all-present")
    parse = _child("parse", [str(view)], work)
    feats = _child("features", [str(root), str(work / "features" / "clip")], work)
    kept = {k: v for k, v in standin.items() if k not in ("present", "wanted")}
    return {
        "machine": machine(),
        "standin": {**kept, "scale": vars(scale)},
        "fetch_seconds": round(fetch_s, 1),
        "extracted": sorted(p.name for p in root.iterdir() if not p.name.startswith(".")),
        "parse": parse,
        "features": feats,
        "estimates": projections(parse, feats),
    }


def main(argv: list[str] | None = None) -> int:
    from rehearsal import markdown

    parser = argparse.ArgumentParser(prog="python -m rehearsal.coco", description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=("parse", "features"), help="(internal) one measured step")
    parser.add_argument("paths", nargs="*", help="(internal) the step's folders")
    parser.add_argument("--result", help="(internal) where the step writes its JSON")
    parser.add_argument("--work", default=str(ROOT / "runs" / "rehearsal" / "coco"), help="stand-in, copies")
    parser.add_argument("--out", default=str(HERE), help="where results.md and results.json are updated")
    args = parser.parse_args(argv)
    if args.step:
        paths = [Path(p) for p in args.paths]
        result = parse_child(*paths) if args.step == "parse" else features_child(*paths)
        Path(args.result).write_text(json.dumps(result, indent=2))
        return 0
    out = Path(args.out)
    results = json.loads((out / "results.json").read_text())
    results["coco"] = measure_coco(Path(args.work))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown.render(results))
    print(f"[rehearsal] wrote {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
