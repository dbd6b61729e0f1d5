"""8-bit CPU decoding: int8 weights (torch dynamic quantization) against today's prepacked float32 decoder;
bfloat16 weights (`helpers.caption.cpu_kernels`, where the CPU has bfloat16 kernels) measured beside them.

`python -m benchmarks.int8_decoding` measures, on a trained captioner's test split (the features notebook 06
cached), decoder-only seconds of greedy and beam3 for both precisions side by side in one process
(alternating rounds, 1 thread), BLEU-4 with `helpers.metrics.CaptionScorer` and the share of captions that
are identical; then one decoding step of GPT-2 small (random weights) in both precisions against the
memory-bandwidth floor. The captioner is `--from-run`'s (default runs/smoke, what `make run` writes); without
one there, 01 and 06 of the smoke preset run first into a temporary folder. `--quick` uses a tiny random
captioner with a few test images of the real formats and a tiny step, to check the code in seconds.

int8: GPT-2's Conv1D layers become nn.Linear (weight transposed), then `torch.ao.quantization.
quantize_dynamic` turns them and the LM head into int8-weight linears (per-tensor, activations quantized
per call); embeddings, layer norms and the mapper stay float32. bfloat16: the same prepacked oneDNN
linears with bfloat16 weights (activations rounded to bfloat16 at each linear's input, float32 out), on
the same model. The ship criterion (issue 24, item 5), for each: >= 1.5x faster decoder-only than float32,
|BLEU-4 change| <= 0.01 and >= 90 % identical captions, greedy and beam3.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import emit, memory_bandwidth, timed
from benchmarks.run_folders import tiny_run, trained_run

CRITERION = {"speedup": 1.5, "bleu4_change": 0.01, "identical": 0.9}
DECODINGS = ("greedy", "beam3")
REPEATS = {"full": 7, "quick": 2}  # timed rounds per precision, after one warm-up round
QUICK_IMAGES = 6
BATCH, CACHED = 8, 30  # the full-shapes step: captions decoded at once, positions already in the KV cache


def bfloat16_supported() -> bool:
    """Whether this CPU's oneDNN has bfloat16 kernels (`helpers.caption.cpu_kernels`)."""
    from helpers.caption.cpu_kernels import bfloat16_supported as supported

    return supported()


def int8_copy(model: Any) -> Any:
    """A deep copy of a PrefixCaptioner whose GPT-2 linears and LM head hold int8 weights."""
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    out = copy.deepcopy(model).eval()
    for parent in list(out.gpt.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):  # stores (in, out); nn.Linear wants (out, in)
                lin = nn.Linear(child.weight.shape[0], child.weight.shape[1])
                lin.weight.data = child.weight.data.t().contiguous()
                lin.bias.data = child.bias.data.clone()
                setattr(parent, name, lin)
    out.gpt.lm_head = copy.deepcopy(out.gpt.lm_head)  # untie from wte before quantizing
    out.gpt.lm_head.weight = nn.Parameter(out.gpt.lm_head.weight.detach().clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        out.gpt = torch.ao.quantization.quantize_dynamic(out.gpt, {nn.Linear}, dtype=torch.qint8)
    return out


def test_split(captioner_dir: Path) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """(features, names, references) of the test split, from notebook 06's cache and test_captions.json."""
    captions = captioner_dir.parent
    test = json.loads((captions / "test_captions.json").read_text())
    names = json.loads((captions / "features" / "index.json").read_text())["names"]
    feats = np.load(captions / "features" / "features.npy")
    row = {n: i for i, n in enumerate(names)}
    keep = [n for n in test if n in row]
    return feats[[row[n] for n in keep]], keep, {n: test[n]["references"] for n in keep}


def quick_run(root: Path) -> Path:
    """`tiny_run`'s captioner with a test split of random features in notebook 06's formats."""
    from helpers import artifacts
    from helpers.caption.model import load_captioner

    tiny_run(root)
    captions = root / "captions"
    dim = load_captioner(captions / "model", "cpu").cfg.feature_dim
    names = [f"quick-{i}.jpg" for i in range(QUICK_IMAGES)]
    rng = np.random.default_rng(0)
    (captions / "features").mkdir(parents=True, exist_ok=True)
    np.save(captions / "features" / "features.npy", rng.standard_normal((len(names), dim)).astype(np.float16))
    artifacts.write_json(captions / "features" / "index.json", {"names": names})
    refs = ["a red circle on the left", "a blue square at the top"]
    artifacts.write_json(captions / "test_captions.json", {n: {"references": refs} for n in names})
    return root


def smoke(captioner_dir: Path, repeats: int) -> dict[str, Any]:
    """Both precisions on the trained captioner's test split: seconds, BLEU-4, identical captions."""
    from helpers.caption.captioner import Captioner
    from helpers.caption.decode import DecodeConfig, generate_ids, ids_to_text
    from helpers.metrics import CaptionScorer

    cap = Captioner.load(captioner_dir)
    feats, names, refs = test_split(captioner_dir)
    models = {"float32": (cap.model, "float32"), "int8": (int8_copy(cap.model), "float32")}
    if bfloat16_supported():
        models["bfloat16"] = (cap.model, "bfloat16")  # the same model, its weights packed as bfloat16
    out: dict[str, Any] = {"test_images": len(names)}
    scorer = CaptionScorer(meteor=False)
    for spec in DECODINGS:
        dec = DecodeConfig.parse(spec)
        runs = {
            k: (lambda m=m, w=w, dec=dec: generate_ids(m, feats, dec, 64, weights=w))
            for k, (m, w) in models.items()
        }
        secs: dict[str, list[float]] = {k: [] for k in runs}
        ids = {k: fn() for k, fn in runs.items()}  # warm-up (packs the weights), kept for quality
        for r in range(repeats):
            order = list(runs)[r % len(runs) :] + list(runs)[: r % len(runs)]
            for k in order:
                secs[k].append(timed(runs[k])[0])
        texts = {k: ids_to_text(cap.tokenizer, v) for k, v in ids.items()}
        bleu = {k: scorer.score(refs, dict(zip(names, t, strict=True)))["Bleu_4"] for k, t in texts.items()}
        med = {k: statistics.median(v) for k, v in secs.items()}

        def against_float32(k: str, med=med, bleu=bleu, texts=texts) -> dict[str, Any]:
            pairs = list(zip(texts["float32"], texts[k], strict=True))
            return {
                "speedup": med["float32"] / med[k],
                "bleu4_change": bleu[k] - bleu["float32"],
                "identical": float(np.mean([a == b for a, b in pairs])),
                "examples": [[a, b] for a, b in pairs if a != b][:3],
            }

        out[spec] = {
            "median_s": med,
            "all_s": secs,  # unrounded, so the median lies within them
            "bleu4": bleu,
            **{k: against_float32(k) for k in runs if k != "float32"},
        }
    return out


def full_shapes(repeats: int, quick: bool) -> dict[str, Any]:
    """One KV-cached decoding step (batch 8, 30 cached positions) of GPT-2 small, random weights; quick: a
    2-layer, 64-wide GPT-2 and a smaller bandwidth measurement."""
    import torch

    from helpers.caption.cpu_kernels import packed_linears
    from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
    from helpers.caption.tokenizer import GPT2_VOCAB_SIZE

    shape = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}
    if quick:
        shape = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 64}
    gpt2 = {**shape, "vocab_size": GPT2_VOCAB_SIZE, "bos_token_id": EOS_ID, "eos_token_id": EOS_ID}
    f32 = build_captioner(PrefixConfig(512, 10, "mlp", gpt2=gpt2)).eval()
    q8 = int8_copy(f32)
    bf16 = copy.deepcopy(f32) if bfloat16_supported() else None  # its own patch, beside float32's
    x = torch.randn(BATCH, CACHED, shape["n_embd"])
    step = torch.randn(BATCH, 1, shape["n_embd"])

    def one_step(model):
        past = model.gpt(inputs_embeds=x, use_cache=True).past_key_values

        def call():
            model.gpt(inputs_embeds=step, past_key_values=past, use_cache=True)
            past.crop(-1)  # back to 30 cached positions for the next timing

        return call

    secs: dict[str, list[float]] = {"float32": [], "int8": [], **({"bfloat16": []} if bf16 else {})}
    bf16_kernels = packed_linears(bf16, "bfloat16") if bf16 else contextlib.nullcontext()
    with torch.no_grad(), packed_linears(f32), bf16_kernels:
        calls = {
            "float32": one_step(f32),
            "int8": one_step(q8),
            **({"bfloat16": one_step(bf16)} if bf16 else {}),
        }
        for fn in calls.values():
            fn()
        for _ in range(repeats):
            for k, fn in calls.items():
                secs[k].append(timed(fn)[0])
    bw = max(memory_bandwidth(32 * 1024**2, 3).values() if quick else memory_bandwidth().values())
    wpe = f32.gpt.transformer.wpe.weight
    f32_bytes = sum(p.numel() * 4 for p in f32.gpt.parameters() if p is not wpe)
    # Every matrix read per step is int8 (1 byte) or bfloat16 (2 bytes); layer norms: negligible.
    weight_bytes = {"float32": f32_bytes, "int8": f32_bytes // 4, "bfloat16": f32_bytes // 2}
    weight_bytes = {k: v for k, v in weight_bytes.items() if k in secs}
    med = {k: statistics.median(v) for k, v in secs.items()}
    floors = {k: b / bw for k, b in weight_bytes.items()}
    return {
        "shape": {**shape, "batch": BATCH, "cached_positions": CACHED},
        "parameters": sum(p.numel() for p in f32.gpt.parameters()),
        "weight_bytes_per_step": weight_bytes,
        "step_s": med,
        "speedup": {k: med["float32"] / med[k] for k in med if k != "float32"},
        "bandwidth_bytes_per_s": bw,
        "floor_s": floors,
        "multiple_of_floor": {k: med[k] / floors[k] for k in med},
    }


def criterion_met(smoke_result: dict[str, Any], precision: str) -> bool:
    """Every part of the ship criterion, for greedy and beam3, of int8 or bfloat16 weights."""
    return all(
        p["speedup"] >= CRITERION["speedup"]
        and abs(p["bleu4_change"]) <= CRITERION["bleu4_change"]
        and p["identical"] >= CRITERION["identical"]
        for p in (smoke_result[d][precision] for d in DECODINGS)
    )


def run(from_run: str | None, quick: bool, repeats: int | None) -> dict[str, Any]:
    import torch

    import helpers  # noqa: F401

    torch.set_num_threads(1)
    repeats = repeats or REPEATS["quick" if quick else "full"]
    with tempfile.TemporaryDirectory(prefix="int8-decoding-") as tmp:
        run_dir = quick_run(Path(tmp) / "run") if quick else trained_run(from_run, Path(tmp) / "run")
        captioner = run_dir / "captions" / "model"
        out: dict[str, Any] = {"quick": quick, "criterion": CRITERION, "threads": 1, "repeats": repeats}
        out["captioner"] = "tiny random (quick mode)" if quick else str(captioner)
        out["smoke"] = smoke(captioner, repeats)
    out["bfloat16_supported"] = bfloat16_supported()
    measured = ["int8", *(["bfloat16"] if out["bfloat16_supported"] else [])]
    out["criterion_met"] = {k: criterion_met(out["smoke"], k) for k in measured}
    out["full_shapes"] = full_shapes(repeats, quick)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-run", help="run folder with captions/model (default: runs/smoke)")
    parser.add_argument("--quick", action="store_true", help="tiny random captioner and step, in seconds")
    parser.add_argument("--repeats", type=int, help=f"timed rounds (default {REPEATS})")
    args = parser.parse_args(argv)
    emit(run(args.from_run, args.quick, args.repeats))


if __name__ == "__main__":
    main()
