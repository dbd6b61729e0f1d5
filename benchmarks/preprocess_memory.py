"""Peak memory and speed of preparing CIFAR-100 for ResNet50 at 224x224: our streaming pipeline vs the seed's.

Each side runs in its own fresh process (``--worker ours|seed``) over a full-size synthetic CIFAR-100
(50,000 train + 10,000 test uint8 32x32 images; random pixels: memory and speed do not depend on content):

- ours: `helpers.classify.pipeline.make_dataset` over the whole training array, streaming one epoch of
  shuffled, augmented uint8 32x32 batches, as notebooks 02-04 train today: the model resizes to 224x224
  and applies ResNet50's `preprocess_input` inside, on the accelerator (helpers.classify.preprocessing).
- ours, CPU-side preprocessing (``--preprocess cpu``, the layout before): the same pipeline with the resize
  to 224x224 float32 and `preprocess_input` in tf.data, on the CPU; its images/s is what a GPU would wait on.
- seed: what the original project did before training: every training image resized to 224x224 float32
  into one in-memory array (here preallocated and filled chunk by chunk with the same resize, so the figure
  is a lower bound for that approach). The full array is 50,000 x 224 x 224 x 3 x 4 B = 30.1 GB, more than
  this machine's RAM, so it is measured on fractions and extrapolated linearly.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import emit, peak_rss_bytes, rss_bytes, run_worker

N_TRAIN, N_TEST = 50_000, 10_000  # CIFAR-100's split sizes
SIDE = 32  # CIFAR's native pixels per side
BYTES_PER_224_IMAGE = 224 * 224 * 3 * 4  # float32 RGB at 224x224
TARGET_PEAK_BYTES = 1.5e9  # ours must stay at or under 1.5 GB peak RSS


def synthetic_cifar(n_train: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random uint8 train/test images (N, 32, 32, 3) and 100-class train labels."""
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, (n_train, SIDE, SIDE, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, SIDE, SIDE, 3), dtype=np.uint8)
    return train, test, rng.integers(0, 100, n_train).astype(np.int16)


def ours(
    n_train: int, n_test: int, input_size: int, batch_size: int, max_batches: int | None, preprocess: str
) -> dict:
    """Stream one epoch (or `max_batches`) of the training pipeline; memory stages, time and images/s.

    preprocess: "model" ships uint8 32x32 batches (today's path), "cpu" resizes and preprocesses in tf.data.
    """
    import helpers  # noqa: F401  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads)
    from helpers.classify.backbones import get_backbone
    from helpers.classify.pipeline import make_dataset

    rss = {"after_import": rss_bytes()}
    train, test, labels = synthetic_cifar(n_train, n_test)  # test stays held, as in a training process
    rss["after_arrays"] = rss_bytes()
    on_cpu = preprocess == "cpu"
    spec = get_backbone("resnet50")
    ds = make_dataset(train, labels, spec, input_size, batch_size, training=True, preprocess=on_cpu)
    rss["after_dataset"] = rss_bytes()
    side = input_size if on_cpu else SIDE
    start = time.perf_counter()
    images, after_first, batches, first_batch_s = 0, 0, 0, 0.0
    for x, _ in ds:
        if x.shape[1:] != (side, side, 3):
            raise RuntimeError(f"pipeline made batches of shape {x.shape}, expected (N, {side}, {side}, 3)")
        if batches == 0:  # the first batch also fills the 50,000-element shuffle buffer
            first_batch_s = time.perf_counter() - start
        else:
            after_first += int(x.shape[0])
        images, batches = images + int(x.shape[0]), batches + 1
        if max_batches is not None and batches >= max_batches:
            break
    total_s = time.perf_counter() - start
    return {
        "side": "ours",
        "preprocess": preprocess,
        "batch_dtype": x.dtype.name,
        "batch_shape": [side, side, 3],
        "batches": batches,
        "images": images,
        "full_epoch": max_batches is None or batches < max_batches,
        "first_batch_s": first_batch_s,
        "total_s": total_s,
        "images_per_s": after_first / (total_s - first_batch_s) if after_first else float("nan"),
        "rss_bytes": rss,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def seed(n_train: int, n_test: int, n_images: int, input_size: int, chunk: int = 256) -> dict:
    """Resize `n_images` training images to float32 input_size into one array, as the seed did."""
    import keras
    import tensorflow as tf

    import helpers  # noqa: F401

    rss = {"after_import": rss_bytes()}
    train, test, labels = synthetic_cifar(n_train, n_test)
    rss["after_arrays"] = rss_bytes()
    start = time.perf_counter()
    out = np.empty((n_images, input_size, input_size, 3), np.float32)
    for i in range(0, n_images, chunk):
        j = min(i + chunk, n_images)
        x = tf.image.resize(tf.cast(train[i:j], tf.float32), (input_size, input_size), antialias=True)
        out[i:j] = keras.applications.resnet50.preprocess_input(x.numpy())
    out.sum(dtype=np.float64)  # touch every page so the array is resident, as training would
    total_s = time.perf_counter() - start
    return {
        "side": "seed",
        "images": n_images,
        "array_bytes": out.nbytes,
        "total_s": total_s,
        "images_per_s": n_images / total_s,
        "rss_bytes": rss,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def extrapolate_rss(points: list[dict], n_full: int) -> float:
    """Peak RSS (bytes) at `n_full` images: least-squares line through the measured (images, peak) pairs."""
    n = np.array([p["images"] for p in points], float)
    y = np.array([p["peak_rss_bytes"] for p in points], float)
    slope, intercept = np.polyfit(n, y, 1) if len(n) > 1 else (y[0] / n[0], 0.0)
    return float(intercept + slope * n_full)


def run(quick: bool = False, timeout: float = 900.0) -> dict[str, Any]:
    """Both sides in separate processes; the seed on two fractions plus the extrapolation to all of it."""
    cfg = {
        "n_train": 2_000 if quick else N_TRAIN,
        "n_test": 400 if quick else N_TEST,
        "input_size": 224,
        "batch_size": 32,
        "max_batches": 4 if quick else None,  # None: the whole epoch
        "seed_fractions": [0.025, 0.05],
        "seed_resize": (
            "tf.image.resize (bilinear, antialias) + resnet50.preprocess_input into one preallocated array"
        ),
        "pixels": "uniform random uint8",
    }
    common = ["--n-train", str(cfg["n_train"]), "--n-test", str(cfg["n_test"]), "--input-size", "224"]
    extra = ["--max-batches", str(cfg["max_batches"])] if cfg["max_batches"] else []
    ours_res = run_worker("benchmarks.preprocess_memory", ["--worker", "ours", *common, *extra], timeout)
    cpu_res = run_worker(
        "benchmarks.preprocess_memory", ["--worker", "ours", "--preprocess", "cpu", *common, *extra], timeout
    )
    seeds = []
    for frac in cfg["seed_fractions"]:
        n = max(int(round(frac * cfg["n_train"])), 1)
        seeds.append(
            run_worker(
                "benchmarks.preprocess_memory", ["--worker", "seed", *common, "--n-images", str(n)], timeout
            )
        )
    n_full = cfg["n_train"]
    return {
        "config": cfg,
        "ours": ours_res,
        "ours_cpu_preprocess": cpu_res,
        "supply_ratio": ours_res["images_per_s"] / cpu_res["images_per_s"],
        "seed_measured": seeds,
        "seed_extrapolated": {
            "images": n_full,
            "array_bytes": n_full * BYTES_PER_224_IMAGE,
            "peak_rss_bytes": extrapolate_rss(seeds, n_full),
            # Time scales with the images resized: the largest fraction's rate, which is the least noisy.
            "total_s": n_full / seeds[-1]["images_per_s"],
            "method": (
                f"peak RSS: least-squares line through the {len(seeds)} measured fractions; "
                "time: the largest fraction's images/s"
            ),
        },
        "target_peak_rss_bytes": TARGET_PEAK_BYTES,
        "ours_meets_target": ours_res["peak_rss_bytes"] <= TARGET_PEAK_BYTES,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ours", "seed"], help="run one side in this process")
    parser.add_argument("--n-train", type=int, default=N_TRAIN)
    parser.add_argument("--n-test", type=int, default=N_TEST)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--max-batches", type=int, help="stop ours after this many batches (default: one epoch)"
    )
    parser.add_argument("--n-images", type=int, help="seed: how many training images to resize")
    parser.add_argument(
        "--preprocess",
        choices=["model", "cpu"],
        default="model",
        help="ours: uint8 batches for in-model preprocessing (today) or resize + preprocess_input in tf.data",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    args = parser.parse_args(argv)
    if args.worker == "ours":
        emit(
            ours(
                args.n_train, args.n_test, args.input_size, args.batch_size, args.max_batches, args.preprocess
            )
        )
    elif args.worker == "seed":
        if not args.n_images:
            parser.error("--worker seed needs --n-images")
        emit(seed(args.n_train, args.n_test, args.n_images, args.input_size))
    else:
        emit(run(args.quick))


if __name__ == "__main__":
    main()
