"""GPU check: both frameworks train on the GPU in one process, and how fast (``make gpu-check``).

1. TensorFlow: ResNet50 at 224x224 under mixed_float16, XLA as Keras picks it on a GPU, fed by the
   classifiers' own input pipeline (CIFAR-size uint8 images resized on the fly): images/s.
2. PyTorch, after TensorFlow in the same process: a gpt2-size GPT-2 (random init, nothing downloaded) with
   the captioner's training step (fp16 autocast, loss scaling, fused AdamW, clipping): tokens/s.

Each part times `--steps` steps after one warm-up step (graph build, XLA and cuBLAS set-up) and reports peak
GPU memory. Without a GPU it refuses (exit status 2); ``--allow-cpu --tiny`` runs it on a CPU at toy sizes
to check the script itself. ``--json PATH`` also writes the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Importing helpers sets TensorFlow's GPU memory growth (and oneDNN); TensorFlow loads later, in the parts.
from helpers.runtime import gpu_report, missing_gpu

#: Sizes of a real run: ResNet50's classifier batch of the full preset; the captioner's full-preset batch
#: of 40 with a 10-embedding prefix and up to 40 caption tokens. `--tiny` shrinks everything for a CPU.
SIZES: dict[str, dict[str, Any]] = {
    "full": {"image_size": 224, "image_batch": 64, "token_batch": 40, "sequence": 50, "gpt2": {}},
    "tiny": {
        "image_size": 32,
        "image_batch": 2,
        "token_batch": 2,
        "sequence": 16,
        "gpt2": {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 64},
    },
}
GIB = 1024**3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per part (after one warm-up step)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to test the script)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for --allow-cpu")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    return args


def check_gpus(allow_cpu: bool) -> dict[str, Any]:
    """What each framework sees; exits with status 2 unless both see a GPU (or `allow_cpu`)."""
    found = gpu_report()
    what = missing_gpu(found)
    if what is None:
        return found
    if not allow_cpu:
        print(
            f"gpu-check needs a GPU that both frameworks can use, and found: {what}. "
            "(--allow-cpu --tiny runs it on the CPU at toy sizes, to check the script only.)",
            file=sys.stderr,
        )
        sys.exit(2)
    print(f"warning: no GPU for both frameworks ({what}); --allow-cpu, timing the CPU", file=sys.stderr)
    return found


def resnet50_rate(steps: int, size: int, batch: int) -> dict[str, Any]:
    """Images/s of ResNet50 training steps under mixed_float16, and TensorFlow's peak GPU memory."""
    import keras
    import tensorflow as tf

    from helpers.classify.backbones import build_classifier, get_backbone
    from helpers.classify.pipeline import make_dataset
    from helpers.classify.preprocessing import for_training
    from helpers.classify.train import dtype_policy

    spec, classes = get_backbone("resnet50"), 100
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * 4, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, len(images))
    # The product's path: uint8 32x32 batches, resize and preprocess_input inside the model, on the GPU
    data = make_dataset(images, labels, spec, size, batch, training=True, preprocess=False).repeat()
    with dtype_policy("mixed_float16"):
        model = for_training(build_classifier(spec, size, classes, None, 0.3, in_model=True), True)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")  # jit_compile "auto"
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)  # warm-up: graph build and XLA compile
        start = time.perf_counter()
        history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
        seconds = time.perf_counter() - start
    gpu = bool(tf.config.list_logical_devices("GPU"))
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpu else None
    return {
        "images_per_second": steps * batch / seconds,
        "seconds": seconds,
        "steps": steps,
        "batch": batch,
        "input_size": size,
        "policy": "mixed_float16",
        "optimizer": type(model.optimizer).__name__,
        "jit_compile": bool(model.jit_compile),
        "loss": float(history.history["loss"][-1]),
        "peak_gpu_gib": None if peak is None else peak / GIB,
    }


def gpt2_rate(steps: int, batch: int, sequence: int, overrides: dict[str, int]) -> dict[str, Any]:
    """Tokens/s of GPT-2 training steps as the captioner takes them, and torch's peak GPU memory."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**overrides)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)
    scaler = torch.amp.GradScaler(device)
    tokens = torch.randint(0, model.config.vocab_size, (batch, sequence), device=device)

    def step() -> torch.Tensor:
        # helpers.caption.train's step: loss in fp16 autocast, scaled backward, clip the unscaled gradients.
        with torch.autocast(device, dtype=torch.float16):
            loss = model(input_ids=tokens, labels=tokens).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    step()  # warm-up: kernels and allocator
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    losses = [step() for _ in range(steps)]
    loss = losses[-1].item()  # waits for the GPU
    seconds = time.perf_counter() - start
    return {
        "tokens_per_second": steps * batch * sequence / seconds,
        "seconds": seconds,
        "steps": steps,
        "batch": batch,
        "sequence": sequence,
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss": loss,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / GIB if device == "cuda" else None,
    }


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"


def report(results: dict[str, Any]) -> str:
    """The lines a person reads."""

    def gib(x: float | None) -> str:
        return "n/a (no GPU)" if x is None else f"{x:.2f} GiB"

    tf_part, torch_part = results["resnet50"], results["gpt2"]
    return "\n".join(
        [
            f"device: {results['gpu_name']}; nvidia-smi: {results['device']['nvidia_smi']}",
            f"ResNet50 {tf_part['input_size']}px, batch {tf_part['batch']}, {tf_part['policy']}, "
            f"XLA {tf_part['jit_compile']}: {tf_part['images_per_second']:.1f} images/s, "
            f"peak GPU memory {gib(tf_part['peak_gpu_gib'])}",
            f"GPT-2 {torch_part['parameters'] / 1e6:.0f}M parameters, batch {torch_part['batch']} x "
            f"{torch_part['sequence']} tokens, fp16: {torch_part['tokens_per_second']:.0f} tokens/s, "
            f"peak GPU memory {gib(torch_part['peak_gpu_gib'])}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    found = check_gpus(args.allow_cpu)
    sizes = SIZES["tiny" if args.tiny else "full"]
    results = {
        "device": found,
        "gpu_name": _gpu_name(),
        "resnet50": resnet50_rate(args.steps, sizes["image_size"], sizes["image_batch"]),
        "gpt2": gpt2_rate(args.steps, sizes["token_batch"], sizes["sequence"], sizes["gpt2"]),
    }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    finite = all(math.isfinite(results[k]["loss"]) for k in ("resnet50", "gpt2"))
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())
