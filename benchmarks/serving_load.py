"""The endpoint's model server under load: latency percentiles, throughput, errors and memory.

Packages a run's models as `deploy` does (with wheels for the serving environment's Python), starts the
PyTorch inference image's serve program on 127.0.0.1 (`helpers.aws.local_server`, TorchServe 0.12 from
.venv-serve) with the container environment `deploy` sets, and sends a fixed number of JPEG requests from
N concurrent clients; the run stops by itself. Each worker setting is a fresh server; RSS is the server's
(JVM, workers, serve program) after a warm-up and after the load.

The run folder is ``--from-run`` (default runs/smoke, what ``make run`` writes); without a trained captioner
there, 01 and 06 of the smoke preset run first into a temporary folder. Then the same for a captioner of
the full preset's shapes with random weights (`full_shape_run`), with the slowest requests the handler
accepts timed against the response timeout. ``--quick`` serves a tiny random captioner instead, to check
the code in seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import emit, timed
from benchmarks.run_folders import tiny_run, trained_run

#: Server settings as (TorchServe workers, torch threads per worker; None: torch's default, every core),
#: then concurrent clients and requests per level. Each server setting is one fresh server.
FULL = {"workers": ((1, None), (2, 1)), "clients": (1, 4), "requests": 48, "warmup": 4}
QUICK = {"workers": ((1, None),), "clients": (1, 2), "requests": 6, "warmup": 1}
FULL_SHAPES = {"workers": ((1, None), (2, 1)), "clients": (1, 4), "requests": 16, "warmup": 2}
START_TIMEOUT_S = 600


def photo_jpeg() -> bytes:
    """A real photograph (matplotlib's sample of Grace Hopper, 512x600) as the request body."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def full_shape_run(root: Path) -> Path:
    """A run folder with the full preset's captioner shapes and random weights: CLIP ViT-B/32 at 224 ->
    MLP mapper -> 10-embedding prefix -> GPT-2 124M (no classifier). Random weights rarely end a caption,
    so decoding runs to the token limit: latencies are an upper bound for the trained model."""
    from helpers.caption.captioner import Captioner
    from helpers.caption.features import EncoderConfig, ImageEncoder
    from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
    from helpers.caption.tokenizer import GPT2_VOCAB_SIZE

    # CLIPVisionConfig() is ViT-B/32 and GPT2Config() GPT-2 124M
    encoder = ImageEncoder.build(EncoderConfig("clip", None, 224, vision={}))
    gpt2 = {"vocab_size": GPT2_VOCAB_SIZE, "bos_token_id": EOS_ID, "eos_token_id": EOS_ID}
    model = build_captioner(PrefixConfig(encoder.feature_dim, 10, "mlp", gpt2=gpt2))
    Captioner(encoder, model).save(root / "captions" / "model")
    return root


def slowest_requests(server: Any, body: bytes) -> list[dict[str, Any]]:
    """The most expensive requests the handler accepts: its image limit (beam search), and narratives at
    its limit on sentences past the first (`Limits.max_extra_sentences`), spread over 1, 2, ... images."""
    import base64
    import json

    from helpers.serving import JSON_TYPE, Limits

    limits, image = Limits(), base64.b64encode(body).decode()
    shapes = [(limits.max_images, 1)]
    for images in (1, 2, 4):
        if images * (limits.max_sentences - 1) >= limits.max_extra_sentences:  # the most sentences allowed
            shapes.append((images, min(limits.max_sentences, 1 + limits.max_extra_sentences // images)))
    out = []
    for images, sentences in shapes:
        doc = {"images": [image] * images, "sentences": sentences}
        start = time.perf_counter()
        status, raw, _ = server.request("/invocations", json.dumps(doc).encode(), JSON_TYPE, timeout=600)
        seconds = round(time.perf_counter() - start, 1)
        out.append({"images": images, "sentences": sentences, "status": status, "seconds": seconds})
        if status != 200:
            out[-1]["answer_head"] = raw[:300].decode(errors="replace")
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default method)."""
    import numpy as np

    return float(np.percentile(values, q))


def load(server: Any, body: bytes, clients: int, requests: int) -> dict[str, Any]:
    """`requests` POSTs from `clients` threads; every answer checked (status 200 and a caption)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        start = time.perf_counter()
        try:
            status, doc = server.invoke(body, "image/jpeg", timeout=300)
            ok = status == 200 and bool(doc["predictions"][0]["caption"])
            problem = None if ok else f"{status}: {str(doc)[:200]}"
        except Exception as err:  # a reset or a timeout is a result here, counted and reported
            problem = f"{type(err).__name__}: {err}"
        with lock:
            latencies.append(time.perf_counter() - start)
            if problem:
                errors.append(problem)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": requests,
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 2),
        "throughput_rps": round(requests / wall, 3),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "mean_s": round(statistics.fmean(latencies), 3),
    }


def measure(run_dir: Path, base: Path, sizes: dict[str, Any], slowest: bool = False) -> dict[str, Any]:
    from helpers.aws import local_server
    from helpers.aws.endpoint import CONTAINER_ENV

    classifier = "best" if (run_dir / "compare" / "best.json").is_file() else None
    model = local_server.prepare(run_dir, base, classifier)
    archive = base / "model.tar.gz"
    body = photo_jpeg()
    settings = []
    for workers, threads in sizes["workers"]:
        env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads in each worker
        server = local_server.start(model, env=env)
        try:
            ping_s = server.wait_healthy(START_TIMEOUT_S)
            first_s, (status, doc) = timed(lambda s=server: s.invoke(body, "image/jpeg", timeout=300))
            if status != 200:
                raise RuntimeError(f"first request answered {status}: {doc}\n{server.log_tail()}")
            load(server, body, 1, sizes["warmup"])
            rss_before = server.rss_bytes()
            levels = [load(server, body, c, sizes["requests"]) for c in sizes["clients"]]
            rss_after = server.rss_bytes()
            worst = slowest_requests(server, body) if slowest and workers == 1 else None
        finally:
            server.stop()
        settings.append(
            {
                "workers": workers,
                "threads": threads or os.cpu_count(),
                "first_ping_s": round(ping_s, 1),
                "first_request_s": round(first_s, 2),
                "rss_before_mb": round(rss_before / 1e6),
                "rss_after_mb": round(rss_after / 1e6),
                "levels": levels,
                **({"slowest_requests": worst} if worst else {}),
            }
        )
    return {
        "run_dir": str(run_dir),
        "classifier": classifier,
        "archive_mb": round(archive.stat().st_size / 1e6, 1),
        "request_bytes": len(body),
        "container_env": {k: v for k, v in CONTAINER_ENV.items() if k.startswith(("TS_", "SAGEMAKER_MODEL"))},
        "settings": settings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--from-run", help="run folder with captions/model (default: runs/smoke)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="serving-load-") as tmp:
        tmp = Path(tmp)
        run_dir = tiny_run(tmp / "run") if args.quick else trained_run(args.from_run, tmp / "run")
        result = {"quick": args.quick, "smoke": measure(run_dir.resolve(), tmp / "serve", sizes)}
        if not args.quick:
            shapes = full_shape_run(tmp / "full-shapes")
            result["full_shapes"] = measure(shapes, tmp / "serve-full", FULL_SHAPES, slowest=True)
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
