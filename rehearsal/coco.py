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
5. Scoring (`python -m rehearsal.coco --score-only` reruns it alone): `helpers.metrics.CaptionScorer`, as 06
   scores each decoding, on Karpathy's 5,000 COCO test images with all their references (the stand-in's
   generated captions; each image's hypothesis is another test image's first caption, fluent and wrong),
   in a fresh process: seconds and the peak RSS of its whole tree (the tokenizer's and METEOR's JVMs).
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

from rehearsal import estimate, measure
from rehearsal.coco_standin import COCO, CocoScale, all_present, build

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
#: CLIP ViT-B/32's vision tower (openai/clip-vit-base-patch32's shapes), random weights: no download.
VIT_B32 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
           "patch_size": 32, "projection_dim": 512}  # fmt: skip


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


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    """The largest RSS so far. Linux updates ``ru_maxrss`` (KiB) lazily, so it can trail the
    current RSS by a few pages; the current value is folded in to keep "largest" true."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, _rss())


def parse_child(root: Path) -> dict[str, Any]:
    """Read the JSON into the caption dataset and build 06's train and val token pairs; seconds, RSS."""
    import numpy as np

    from helpers.caption.config import CaptionConfig
    from helpers.caption.tokenizer import gpt2_tokenizer
    from helpers.caption.train import make_pairs
    from helpers.data.sources import load_dataset

    tok = gpt2_tokenizer()
    start_rss, start_peak = _rss(), _maxrss()
    t0 = time.perf_counter()
    data = load_dataset("karpathy:coco", root, check_images=False)
    parse_s, parse_rss, parse_peak = time.perf_counter() - t0, _rss(), _maxrss()
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
        "rss_start": start_rss,  # resident now / the largest so far, after each step
        "peak_start": start_peak,
        "rss_after_parse": parse_rss,
        "peak_after_parse": parse_peak,
        "rss_after_tokens": _rss(),
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


def score_child() -> dict[str, Any]:
    """06's corpus scoring at COCO's test size: 5,000 images, all their references; seconds and RSS."""
    from helpers.metrics import CaptionScorer
    from rehearsal.coco_standin import coco_entries

    test = [e for e in coco_entries(COCO) if e["split"] == "test"]
    refs = {e["filename"]: [s["raw"] for s in e["sentences"]] for e in test}
    names = list(refs)
    hyps = {n: refs[names[(i + 1) % len(names)]][0] for i, n in enumerate(names)}  # fluent, wrong
    start_rss = _rss()
    t0 = time.perf_counter()
    with CaptionScorer() as scorer:
        scores = scorer.score(refs, hyps)
        described = scorer.describe()
    return {
        "images": len(refs),
        "references": sum(map(len, refs.values())),
        "seconds": round(time.perf_counter() - t0, 1),
        "scores": scores,
        "scorer": described,
        "rss_start": start_rss,
        "peak_rss": _maxrss(),  # this process alone; the sampled peak adds the JVMs
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


#: Notebook 06 on the stand-in: the rehearsal's caps, the COCO dataset, no encoder study (its encoders
#: beyond CLIP need 02-05's classifiers and ImageNet weights; the Flickr8k rehearsal runs it).
NOTEBOOK_06 = {"dataset": "karpathy:coco", "compare_encoders": []}


def notebook_06(work: Path, standin: Path) -> dict[str, Any]:
    """06 through the runner with ``dataset="karpathy:coco"``, fetching from the mirror; measured."""
    from rehearsal.mirror import serve
    from rehearsal.run import runner_command
    from rehearsal.standins import HUB_MODELS, write_hub_cache

    work, standin = work.resolve(), standin.resolve()  # the kernel runs in another folder
    hf, run_dir, keras_home = work / "hf", work / "run", work / "keras"
    if not (hf / "hub.json").is_file() or json.loads((hf / "hub.json").read_text()) != HUB_MODELS:
        write_hub_cache(hf)  # gpt2 and CLIP ViT-B/32 of their real sizes, random weights
        (hf / "hub.json").write_text(json.dumps(HUB_MODELS))
    for folder in (run_dir, keras_home):
        shutil.rmtree(folder, ignore_errors=True)
    cmd = runner_command("06", run_dir, NOTEBOOK_06)
    with serve(standin / "mirror") as url:
        env = {**os.environ, "CAPTION_DOWNLOAD_MIRROR": url, "CAPTION_DOWNLOAD_MANIFEST": str(standin /
               "manifest.json"), "KERAS_HOME": str(keras_home), "HF_HOME": str(hf), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TF_ENABLE_ONEDNN_OPTS": "1"}  # fmt: skip
        load = measure.load_average()
        done = measure.run_measured(cmd, env, ROOT, work / "06.log")
    summary = run_dir / "captions" / "data_summary.json"
    row = {
        "command": " ".join(cmd[3:]).replace(f"{ROOT}/", ""),  # paths relative to the checkout
        "ok": done.returncode == 0,
        "seconds": round(done.seconds, 1),
        "cpu_seconds": round(done.cpu_seconds, 1),
        "peak_rss": done.peak_rss,
        "run_folder_bytes": measure.folder_size(run_dir),
        "load_average": [round(load, 1), round(measure.load_average(), 1)],
        "metrics_written": (run_dir / "captions" / "metrics.json").is_file(),
    }
    if summary.is_file():
        data = json.loads(summary.read_text())
        row["data_summary"] = {k: data[k] for k in ("images_captioned", "captions", "missing_images",
                               "undecodable_images", "splits")}  # fmt: skip
        row["missing_listed"] = len(data["left_out"].get("missing_images", []))
    if not row["ok"]:
        row["error"] = done.output[-3000:]
    return row


def measure_coco(work: Path, scale: CocoScale = COCO, notebook: bool = True) -> dict[str, Any]:
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
    scoring = _child("score", [], work)
    kept = {k: v for k, v in standin.items() if k not in ("present", "wanted", "grayscale", "truncated")}
    nb06 = notebook_06(work, work / "standin") if notebook else None
    return {
        "machine": machine(),
        "standin": {**kept, "scale": vars(scale)},
        "fetch_seconds": round(fetch_s, 1),
        "extracted": sorted(p.name for p in root.iterdir() if not p.name.startswith(".")),
        "parse": parse,
        "features": feats,
        "estimates": estimate.coco_projections(parse, feats),
        "scoring": scoring,
        "notebook_06": nb06,
    }


def main(argv: list[str] | None = None) -> int:
    from rehearsal.run import write_results

    parser = argparse.ArgumentParser(prog="python -m rehearsal.coco", description=__doc__.splitlines()[0])
    parser.add_argument(
        "step", nargs="?", choices=("parse", "features", "score"), help="(internal) one measured step"
    )
    parser.add_argument("paths", nargs="*", help="(internal) the step's folders")
    parser.add_argument("--result", help="(internal) where the step writes its JSON")
    parser.add_argument("--work", default=str(ROOT / "runs" / "rehearsal" / "coco"), help="stand-in, copies")
    parser.add_argument("--out", default=str(HERE), help="where results.md and results.json are updated")
    parser.add_argument("--no-notebook", action="store_true", help="skip notebook 06 on the stand-in")
    parser.add_argument("--report-only", action="store_true", help="re-render results.md; run nothing")
    parser.add_argument(
        "--score-only", action="store_true", help="measure the test-split scoring alone into the results"
    )
    args = parser.parse_args(argv)
    if args.step:
        paths = [Path(p) for p in args.paths]
        children = {"parse": parse_child, "features": features_child, "score": score_child}
        result = children[args.step](*paths)
        Path(args.result).write_text(json.dumps(result, indent=2))
        return 0
    out = Path(args.out)
    results = json.loads((out / "results.json").read_text())
    if args.score_only:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        results["coco"] = {**results["coco"], "scoring": _child("score", [], work)}
    elif not args.report_only:
        results["coco"] = measure_coco(Path(args.work), notebook=not args.no_notebook)
    write_results(out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
