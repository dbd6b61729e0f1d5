"""Seconds and FLOPs of one captioner training step, with and without length bucketing and the gathered head.

`python -m benchmarks.caption_step` trains GPT-2 small (random weights of the real shapes: 12 x 768, the
50,257-token head) behind a 10-token MLP prefix at batch 40, as 06's `full` preset does, and times steps
(forward, backward, gradient clipping, fused AdamW, as `helpers.caption.train` runs them) four ways:

- before: batches cut from the shuffled epoch, padded to their longest caption; GPT-2's LM head applied at
  every position (prefix and padding included) and the loss masked afterwards;
- gathered head: the same batches; the LM head only at the positions that predict a caption token
  (`PrefixCaptioner.forward`, today's model);
- bucketed batches: `helpers.caption.batching.epoch_batches(bucket=True)`; head at every position;
- after: both (06 with `bucket_by_length=True`).

Caption lengths are GPT-2 tokens of the real captions of Flickr8k's official training images
(../shared/real-samples) when that folder exists, otherwise of the rehearsal's stand-in captions (the
result says which). FLOPs per step come from each batch's own shape (`rehearsal.estimate.transformer_macs`:
3 x 2 x (GPT-2's body over prefix + padded positions + width x 50,257 per position the head is applied
at)), averaged over the whole epoch. Seconds are measured on a few batches chosen at evenly spaced
quantiles of the epoch's batch widths, so their mean stands for the epoch's; the four ways alternate round
by round on one model so machine noise hits each alike. The same rows at the smoke preset's shapes (its
small GPT-2, batch 32, prefix 4, the synthetic captions) come second.
`--quick` runs tiny shapes, to check the code in seconds.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np

from benchmarks.common import emit, timed

#: name -> (bucketed batches, LM head gathered at the labelled positions)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "before": (False, False),
    "gathered head": (False, True),
    "bucketed batches": (True, False),
    "after": (True, True),
}
#: timed batches per variant, each after one untimed warm-up step (smoke steps take a tenth of a second:
#: more of them average out the machine's noise)
ROUNDS = {"full": 3, "smoke": 12, "quick": 1}
GPT2_SMALL = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}
TINY_GPT2 = {"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64}
QUICK_IMAGES = 80  # five captions each


#: (captions per image name, the training images in order, where they came from)
Captions = tuple[dict[str, list[str]], list[str], str]


def real_or_standin_captions(quick: bool) -> Captions:
    """Flickr8k's official training images and their normalized captions, as notebook 06 reads them
    (`helpers.data.flickr`), from the real sample when that folder exists; else the rehearsal's stand-in
    captions, five for each of as many images as Flickr8k's training split has (6,000)."""
    from helpers.data.flickr import training_captions
    from rehearsal.report import REAL_TOKENS
    from rehearsal.standins import _caption

    limit = QUICK_IMAGES if quick else None
    if REAL_TOKENS.is_file():
        captions, names = training_captions(REAL_TOKENS)
        where = f"real Flickr8k captions of the official training images ({REAL_TOKENS.name})"
        return captions, names[:limit], where
    rng = np.random.default_rng(0)
    names = [f"standin-{i}.jpg" for i in range(limit or 6_000)]
    captions = {n: [_caption(rng) for _ in range(5)] for n in names}
    return captions, names, "the rehearsal's stand-in captions (the real Flickr8k sample was not found)"


def smoke_captions(limit: int | None = None) -> Captions:
    """The smoke preset's synthetic Flickr8k, written and read as notebook 06 does: its training split."""
    import tempfile

    from helpers.caption.config import SMOKE_FLICKR
    from helpers.data.flickr import load_flickr8k
    from helpers.data.synthetic import write_synthetic_flickr

    with tempfile.TemporaryDirectory() as tmp:
        data = load_flickr8k(write_synthetic_flickr(tmp, **SMOKE_FLICKR))
    names = data.splits["train"][:limit]
    return data.normalized, names, "the smoke preset's synthetic captions (its training split)"


def step_flops(
    shape: dict[str, int], prefix: int, widths: np.ndarray, lengths: list[np.ndarray], gathered: bool
) -> np.ndarray:
    """Training FLOPs per batch: 3 x forward (forward + backward), GPT-2's body plus the LM head."""
    from helpers.caption.tokenizer import GPT2_VOCAB_SIZE
    from rehearsal.estimate import transformer_macs

    width = shape["n_embd"]
    out = []
    for w, lens in zip(widths, lengths, strict=True):
        body = transformer_macs(shape["n_layer"], width, int(prefix + w)) * len(lens)
        positions = int(lens.sum()) if gathered else len(lens) * int(prefix + w)
        out.append(3 * 2 * (body + width * GPT2_VOCAB_SIZE * positions))
    return np.asarray(out, dtype=np.float64)


def loss_at_every_position(model, feats, tokens, mask):
    """The loss as computed before the gather: LM head over every position, masked afterwards."""
    import torch

    prefix = model.prefix(feats)
    embeds = torch.cat([prefix, model.gpt.get_input_embeddings()(tokens)], dim=1)
    ones = torch.ones(prefix.shape[:2], dtype=mask.dtype)
    logits = model.gpt(inputs_embeds=embeds, attention_mask=torch.cat([ones, mask], dim=1)).logits
    logits = logits[:, prefix.shape[1] - 1 : -1].float()
    return torch.nn.functional.cross_entropy(logits[mask.bool()], tokens[mask.bool()])


def quantile_batches(widths: np.ndarray, k: int) -> list[int]:
    """Indices of `k` batches at evenly spaced quantiles of the batch widths (1/2k, 3/2k, ...)."""
    order = np.argsort(widths, kind="stable")
    return [int(order[int((2 * i + 1) * len(order) / (2 * k))]) for i in range(k)]


def measure(
    label: str,
    shape: dict[str, int],
    prefix: int,
    batch: int,
    max_tokens: int,
    captions: Captions,
    rounds: int,
) -> dict[str, Any]:
    """The four variants at one set of shapes: epoch-mean positions and FLOPs, timed seconds per step."""
    import torch

    from helpers.caption.batching import epoch_batches
    from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
    from helpers.caption.tokenizer import GPT2_VOCAB_SIZE, gpt2_tokenizer
    from helpers.caption.train import TrainConfig, _optimizer, batches, make_pairs

    texts, names, source = captions
    feature_dim = 512  # CLIP ViT-B/32's image embedding, 06's default encoder
    feats = np.random.default_rng(0).standard_normal((len(names), feature_dim)).astype(np.float16)
    rows = {n: i for i, n in enumerate(names)}
    pairs = make_pairs(feats, rows, texts, names, gpt2_tokenizer(), max_tokens)  # as 06 tokenizes
    lengths = pairs.lengths()
    gpt2 = {"vocab_size": GPT2_VOCAB_SIZE, "bos_token_id": EOS_ID, "eos_token_id": EOS_ID, **shape}
    model = build_captioner(PrefixConfig(feature_dim, prefix, "mlp", gpt2=gpt2))
    cfg = TrainConfig(batch_size=batch, max_tokens=max_tokens, amp="off")
    optimizer, scheduler, scaler = _optimizer(model, cfg, 1_000, None)
    params = [p for p in model.parameters() if p.requires_grad]

    def step(feats, toks, mask, gathered):
        loss = model(feats, toks, mask) if gathered else loss_at_every_position(model, feats, toks, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        return float(loss.detach())

    plans: dict[str, dict[str, Any]] = {}
    for name, (bucket, gathered) in VARIANTS.items():
        epoch = epoch_batches(lengths, batch, seed=0, epoch=1, bucket=bucket)
        widths = np.array([lengths[b].max() for b in epoch])
        flops = step_flops(shape, prefix, widths, [lengths[b] for b in epoch], gathered)
        chosen = quantile_batches(widths, rounds + 1)  # the first is the warm-up step
        tensors = list(batches(pairs, [epoch[i] for i in chosen], torch.device("cpu")))
        plans[name] = {"gathered": gathered, "tensors": tensors, "secs": [],
                       "row": {"bucketed": bucket, "gathered_head": gathered, "steps_per_epoch": len(epoch),
                               "mean_padded_tokens": float(widths.mean()),
                               "head_positions_per_pair": float(np.mean([
                                   lengths[b].mean() if gathered else prefix + lengths[b].max()
                                   for b in epoch])),
                               "gflop_per_step": float(flops.mean() / 1e9),
                               "timed_gflop_per_step": float(flops[chosen[1:]].mean() / 1e9)}}  # fmt: skip
    model.train()
    with torch.no_grad():  # the same objective: one batch's loss both ways (dropout off for the check)
        model.eval()
        feats, toks, mask = plans["before"]["tensors"][0]
        same = abs(float(model(feats, toks, mask)) - float(loss_at_every_position(model, feats, toks, mask)))
        model.train()
    for plan in plans.values():
        step(*plan["tensors"][0], plan["gathered"])  # warm-up: optimizer state, kernel selection
    names = list(plans)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            plan = plans[name]
            plan["secs"].append(timed(lambda p=plan, r=r: step(*p["tensors"][r + 1], p["gathered"]))[0])
    rows = {}
    for name, plan in plans.items():
        row = plan["row"]
        row["step_s"] = statistics.mean(plan["secs"])
        row["all_s"] = plan["secs"]
        row["gflops_per_s"] = row["timed_gflop_per_step"] / row["step_s"]
        # The epoch at the timed batches' rate: the timed batches stand for the epoch's mix of widths.
        row["epoch_s_projected"] = (
            row["step_s"] * row["gflop_per_step"] / row["timed_gflop_per_step"] * (row["steps_per_epoch"])
        )
        rows[name] = row
    base = rows["before"]
    for row in rows.values():
        row["flop_ratio"] = base["gflop_per_step"] / row["gflop_per_step"]
        row["speedup"] = base["epoch_s_projected"] / row["epoch_s_projected"]
    return {
        "label": label,
        "gpt2": {k: shape[k] for k in ("n_layer", "n_head", "n_embd")},
        "prefix": prefix,
        "batch": batch,
        "max_tokens": max_tokens,
        "captions": source,
        "pairs": len(pairs),
        "mean_caption_tokens": float(lengths.mean()),
        "loss_difference_same_batch": same,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "variants": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, to check the code in seconds")
    args = parser.parse_args(argv)
    from helpers.caption.config import DEFAULTS
    from helpers.caption.model import SMALL_GPT2

    def preset(name: str) -> dict[str, int]:
        return {k: DEFAULTS[k][name] for k in ("prefix_length", "batch_size", "max_tokens")}

    if args.quick:  # both rows at tiny shapes and a few hundred captions
        tiny = {"prefix_length": 4, "batch_size": 8, "max_tokens": 24}
        full = ("full shapes (quick: tiny GPT-2, batch 8)", TINY_GPT2, tiny, real_or_standin_captions(True))
        smoke = ("smoke shapes (quick: tiny GPT-2, batch 8)", TINY_GPT2, tiny, smoke_captions(QUICK_IMAGES))
    else:
        full = ("full shapes", GPT2_SMALL, preset("full"), real_or_standin_captions(False))
        smoke = ("smoke shapes", SMALL_GPT2, preset("smoke"), smoke_captions())
    result: dict[str, Any] = {"quick": args.quick}
    for key, (label, shape, knobs, captions) in {"full": full, "smoke": smoke}.items():
        rounds = ROUNDS["quick" if args.quick else key]
        result[key] = measure(
            label, shape, knobs["prefix_length"], knobs["batch_size"], knobs["max_tokens"], captions, rounds
        )
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
