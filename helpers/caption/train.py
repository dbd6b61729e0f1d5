"""Training the prefix captioner: AdamW with warmup and linear decay, gradient clipping, mixed precision,
validation loss per epoch, a checkpoint every epoch and resuming from it; one process, or several under
torchrun (DistributedDataParallel, see helpers.caption.distributed and helpers.caption.batching).

Checkpoints are safetensors (model, optimizer moments, random state) plus a JSON file (epoch, optimizer
hyper-parameters, scheduler, history), so resuming needs no pickle. A run resumes only when the
checkpoint's fingerprint (train config, model config, data sizes) equals the current one. Once training
ends, only state.json (history) and best.safetensors stay: the resume state is dropped to save disk.

Under torchrun every rank builds the same global batches and trains on its slice of each; each rank's loss
is weighted by its share of the batch's caption tokens, so the averaged gradient is exactly the one
process's. Validation sums are reduced over the ranks; rank 0 alone writes files; every rank reads the
resume state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from helpers import artifacts
from helpers.caption import distributed
from helpers.caption.batching import epoch_batches, rank_share
from helpers.caption.cpu_heap import reused_heap
from helpers.caption.model import EOS_ID, PrefixCaptioner, load_state_tensors, state_tensors
from helpers.caption.tokenizer import caption_text, end_token_id

AMP_MODES = ("auto", "off", "fp16", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over all (image, caption) pairs
    batch_size: int = 32  # pairs per step
    lr: float = 2e-5  # peak learning rate after warmup (GPT-2's parameters)
    mapper_lr: float | None = None  # the mapper's peak learning rate; None: lr
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_fraction: float = 0.1  # share of all steps spent ramping the learning rate up from 0
    grad_clip: float = 1.0  # max global gradient norm
    amp: str = "auto"  # auto: fp16 autocast on CUDA, off on CPU; bf16/fp16/off force it on any device
    max_tokens: int = 40  # caption tokens kept, end-of-text included
    seed: int = 0  # initial shuffle order and dropout
    max_steps: int | None = None  # training steps per epoch; None: every pair (a cap for quick rehearsals)
    # Batches of similar caption length (less padding, see helpers.caption.batching); notebook 06's
    # `bucket_by_length` knob, off in every preset (why: helpers.caption.config.DEFAULTS).
    bucket_by_length: bool = False

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.max_tokens < 2:
            raise ValueError("need epochs >= 1, batch_size >= 1, lr > 0, max_tokens >= 2")
        if self.mapper_lr is not None and self.mapper_lr <= 0:
            raise ValueError(f"mapper_lr must be None or > 0, got {self.mapper_lr}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be None or >= 1, got {self.max_steps}")

    def steps_per_epoch(self, pairs: int) -> int:
        """Optimizer steps in one epoch over `pairs` (image, caption) pairs."""
        steps = -(-pairs // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)


@dataclass
class CaptionPairs:
    """(image, caption) pairs: row `image[i]` of `features` goes with token ids `tokens[i]`."""

    features: np.ndarray  # (num_images, feature_dim), float16 or float32
    image: np.ndarray  # (num_pairs,) row into features
    tokens: list[list[int]]  # caption token ids ending with end-of-text
    pad_id: int = EOS_ID  # fills short rows (masked out); the end token, always in the vocabulary

    def __len__(self) -> int:
        return len(self.tokens)

    def lengths(self) -> np.ndarray:
        """Caption tokens per pair (end-of-text included)."""
        return np.fromiter(map(len, self.tokens), dtype=np.int64, count=len(self.tokens))


def make_pairs(
    features: np.ndarray,
    rows: dict[str, int],
    captions: dict[str, list[str]],
    names: list[str],
    tokenizer,
    max_tokens: int,
) -> CaptionPairs:
    """Every caption of every image in `names`, tokenized and cut to `max_tokens` (end-of-text kept last)."""
    image, tokens = [], []
    for name, ids in caption_tokens(captions, names, tokenizer, max_tokens):
        image.append(rows[name])
        tokens.append(ids)
    if not tokens:
        raise ValueError("no captions for the given images")
    return CaptionPairs(features, np.asarray(image, dtype=np.int64), tokens, end_token_id(tokenizer))


def caption_tokens(captions: dict[str, list[str]], names: list[str], tokenizer, max_tokens: int):
    """(image name, token ids) for every caption of every image in `names`, as training sees them: the
    caption's text tokenized, cut to `max_tokens - 1`, end-of-text appended."""
    end = end_token_id(tokenizer)
    for name in names:
        for caption in captions[name]:
            ids = tokenizer(caption_text(caption), add_special_tokens=False)["input_ids"][: max_tokens - 1]
            yield name, [*ids, end]


def batches(pairs: CaptionPairs, index_batches, device: torch.device):
    """(features, tokens, mask) tensors per batch of pair indices; right-padded with end-of-text, masked."""
    for idx in index_batches:
        rows = [pairs.tokens[i] for i in idx]
        width = max(map(len, rows))
        tokens = np.full((len(rows), width), pairs.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, ids in enumerate(rows):
            tokens[r, : len(ids)], mask[r, : len(ids)] = ids, 1
        feats = torch.from_numpy(pairs.features[pairs.image[idx]].astype(np.float32))
        yield feats.to(device), torch.from_numpy(tokens).to(device), torch.from_numpy(mask).to(device)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for this mode and device, or None for full precision."""
    if amp == "auto":
        return torch.float16 if device.type == "cuda" else None
    # fp16 runs on CPU too (autocast, GradScaler("cpu"), fused AdamW: checked with torch 2.13), so tests
    # there exercise the GPU's training path.
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype`, or a no-op context."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@torch.no_grad()
def evaluate_loss(
    model: PrefixCaptioner, pairs: CaptionPairs, cfg: TrainConfig, device: torch.device
) -> float:
    """Mean caption-token cross-entropy over all pairs (weighted by tokens; each rank scores its share)."""
    model.eval()
    dtype, ranks = autocast_dtype(cfg.amp, device), distributed.current()
    share = rank_share(np.arange(len(pairs)), ranks.rank, ranks.world)
    total, count = 0.0, 0
    size = cfg.batch_size * 2
    for feats, tokens, mask in batches(
        pairs, (share[i : i + size] for i in range(0, len(share), size)), device
    ):
        with autocast(device, dtype):
            loss = model(feats, tokens, mask)
        n = int(mask.sum())
        total, count = total + float(loss) * n, count + n
    total, count = distributed.sum_all(ranks, [total, count], device)
    return total / count


def fingerprint(model: PrefixCaptioner, cfg: TrainConfig, train: CaptionPairs, val: CaptionPairs) -> str:
    """What must match for a checkpoint to be resumed: configs, and the data itself (features, captions)."""
    desc = {"train": dataclasses.asdict(cfg), "model": dataclasses.asdict(model.cfg)}
    h = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode())
    for pairs in (train, val):
        # Hashing the feature bytes (8k x 2048 float16 = 33 MB for Flickr8k) takes ~0.1 s.
        h.update(np.ascontiguousarray(pairs.features).tobytes())
        h.update(pairs.image.tobytes())
        h.update(json.dumps(pairs.tokens).encode())
    return h.hexdigest()[:16]


def save_checkpoint(folder: Path, model, optimizer, scheduler, scaler, state: dict) -> None:
    """model/optimizer/random state as safetensors, the rest as JSON (written last: it marks completion)."""
    from safetensors.torch import save

    opt = optimizer.state_dict()
    tensors = {
        f"{i}.{k}": v.detach().cpu().contiguous() for i, s in opt["state"].items() for k, v in s.items()
    }
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {"epoch": str(state["epoch"])}
    artifacts.write_bytes(folder / "model.safetensors", save(state_tensors(model), metadata=meta))
    artifacts.write_bytes(folder / "optimizer.safetensors", save(tensors, metadata=meta))
    extra = {
        "param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
    }
    artifacts.write_json(folder / "state.json", {**state, **extra})


def load_checkpoint(folder: Path, model, optimizer, scheduler, scaler, expected: str) -> dict | None:
    """Restore everything from `folder` if it holds a complete checkpoint with the `expected` fingerprint."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not (folder / "state.json").is_file():
        return None
    state = artifacts.read_json(folder / "state.json")
    if state.get("fingerprint") != expected:
        return None
    if state.get("finished"):  # model and optimizer state were dropped: the history and best weights remain
        return state if (folder / "best.safetensors").is_file() else None
    for name in ("model.safetensors", "optimizer.safetensors"):
        with safe_open(str(folder / name), "pt") as f:
            if f.metadata().get("epoch") != str(state["epoch"]):
                return None  # interrupted between files: start over rather than mix epochs
    load_state_tensors(model, load_file(str(folder / "model.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    if "rng.cuda" in tensors:
        cuda_state = tensors.pop("rng.cuda")
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda_state)
    opt_state: dict = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    return state


def train_captioner(
    model: PrefixCaptioner,
    train: CaptionPairs,
    val: CaptionPairs,
    cfg: TrainConfig,
    out_dir: str | Path,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train (or resume) into `out_dir`; writes history.csv and checkpoint/; returns the history.

    The model ends with the weights of the epoch with the lowest validation loss. Under torchrun, call
    it on every rank with the model already on `distributed.device(...)`; rank 0 writes the files.
    """
    out_dir, ckpt = Path(out_dir), Path(out_dir) / "checkpoint"
    ranks = distributed.current()
    device = next(model.parameters()).device
    dtype = autocast_dtype(cfg.amp, device)
    optimizer, scheduler, scaler = _optimizer(model, cfg, cfg.steps_per_epoch(len(train)), dtype)
    key = fingerprint(model, cfg, train, val)
    torch.manual_seed(cfg.seed)
    state = _resume(ckpt, model, optimizer, scheduler, scaler, key, ranks, device)
    net = _wrap(model, ranks, device)
    history = state["history"] if state else []
    best = state["best_val_loss"] if state else float("inf")
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        start = time.perf_counter()
        train_loss, step_s = _train_epoch(
            net, model, train, cfg, epoch, optimizer, scheduler, scaler, dtype, progress and ranks.main
        )
        val_loss = evaluate_loss(model, val, cfg, device)
        seconds = round(time.perf_counter() - start, 2)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": scheduler.get_last_lr()[0],
            "seconds": seconds,
            "step_seconds": step_s,
        }
        history.append(row)
        state = {"fingerprint": key, "epoch": epoch, "best_val_loss": min(best, val_loss), "history": history}
        if ranks.main:
            if val_loss < best:
                artifacts.write_bytes(ckpt / "best.safetensors", _weights_bytes(model))
            save_checkpoint(ckpt, model, optimizer, scheduler, scaler, state)
            artifacts.write_text(out_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
        best = state["best_val_loss"]
        distributed.barrier(ranks)  # no rank runs ahead of a checkpoint it may have to resume from
        if progress and ranks.main:
            print(f"epoch {epoch}/{cfg.epochs}: train {train_loss:.4f}, val {val_loss:.4f} ({seconds:.0f} s)")
        if on_epoch_end is not None:
            on_epoch_end(row)
    if ranks.main:
        _drop_resume_state(ckpt, state)
    distributed.barrier(ranks)
    _restore_best(model, ckpt / "best.safetensors")
    return pd.DataFrame(history)


def _resume(ckpt: Path, model, optimizer, scheduler, scaler, key: str, ranks, device) -> dict | None:
    """Every rank loads the checkpoint (rank 0 first tidies the folder); all must reach the same epoch."""
    if ranks.main:
        artifacts.remove_partial_files(ckpt)
    distributed.barrier(ranks)
    state = load_checkpoint(ckpt, model, optimizer, scheduler, scaler, key)
    epochs = len(state["history"]) if state else 0
    low, high = distributed.sum_all(ranks, [-epochs, epochs], device) if ranks.active else (-epochs, epochs)
    if ranks.active and (-low != epochs * ranks.world or high != epochs * ranks.world):
        raise RuntimeError(
            f"rank {ranks.rank} found a checkpoint of {epochs} epochs in {ckpt}, other ranks another: every "
            "node must see the same checkpoint folder (SageMaker copies the checkpoint S3 prefix to each)"
        )
    distributed.barrier(ranks)
    if state is None and ranks.main:  # a fresh start: best weights left by another configuration must go
        (ckpt / "best.safetensors").unlink(missing_ok=True)
    return state


def _wrap(model: PrefixCaptioner, ranks, device: torch.device):
    """The module the training steps call: the model itself, or DistributedDataParallel around it."""
    if not ranks.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _optimizer(model: PrefixCaptioner, cfg: TrainConfig, steps_per_epoch: int, dtype: torch.dtype | None):
    """AdamW, a loss scaler (active for fp16 only), and per parameter group (mapper, GPT-2) its own peak
    rate with linear warmup then linear decay to 0."""
    from transformers import get_linear_schedule_with_warmup

    # The fused kernel updates all parameters in one pass: ~9x faster than the default on CPU, where the
    # update of GPT-2's 50,257-row embedding otherwise costs as much as the forward and backward passes.
    optimizer = torch.optim.AdamW(param_groups(model, cfg), weight_decay=cfg.weight_decay, fused=True)
    total = steps_per_epoch * cfg.epochs
    # One multiplier for all groups (LambdaLR): each group ramps to its own peak, then decays to 0.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_fraction * total), total)
    device_type = next(model.parameters()).device.type
    return optimizer, scheduler, torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)


def param_groups(model: PrefixCaptioner, cfg: TrainConfig) -> list[dict]:
    """Trainable parameters as AdamW groups: "mapper" at `mapper_lr`, "gpt2" (the rest) at `lr`."""
    in_mapper = {id(p) for p in model.mapper.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    mapper = [p for p in trainable if id(p) in in_mapper]
    gpt2 = [p for p in trainable if id(p) not in in_mapper]
    groups = [
        {"name": "mapper", "params": mapper, "lr": cfg.mapper_lr or cfg.lr},
        {"name": "gpt2", "params": gpt2, "lr": cfg.lr},
    ]
    return [g for g in groups if g["params"]]  # a frozen GPT-2 has no group


def _train_epoch(
    net, model, pairs, cfg, epoch, optimizer, scheduler, scaler, dtype, progress
) -> tuple[float, float]:
    """One pass over the epoch's batches; returns the mean training loss and the median seconds per step.

    `net` is `model` or its DistributedDataParallel wrapper; under torchrun each rank trains on its share.
    """
    model.train()
    ranks, device = distributed.current(), next(model.parameters()).device
    lengths = pairs.lengths()
    steps = cfg.steps_per_epoch(len(pairs))
    global_batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch, cfg.bucket_by_length, steps)
    shares = [rank_share(b, ranks.rank, ranks.world) for b in global_batches]
    # A rank whose share is empty (a last batch smaller than the world) still joins the gradient
    # all-reduce, on one pair at weight 0.
    weights = [_share_weight(lengths, b, s, ranks.world) for b, s in zip(global_batches, shares, strict=True)]
    shares = [s if len(s) else b[:1] for b, s in zip(global_batches, shares, strict=True)]
    bar = tqdm(
        zip(batches(pairs, shares, device), weights, strict=True),
        total=steps,
        desc=f"epoch {epoch}/{cfg.epochs}",
        disable=not progress,
        leave=False,
    )
    # On the CPU the step's large buffers (logits and their gradients) are reused, not mapped afresh.
    with reused_heap(device):
        losses, times, tick = [], [], time.perf_counter()
        for (feats, tokens, mask), weight in bar:
            with autocast(device, dtype):
                loss = net(feats, tokens, mask)
                loss = loss if weight is None else loss * weight
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
            now = time.perf_counter()
            times.append(now - tick)  # seconds for this step, its batch assembly included
            tick = now
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    # Under DDP each rank's weighted loss is its part of the global mean times the world size.
    mean = distributed.sum_all(ranks, [float(np.mean(losses)) / ranks.world], device)[0]
    # The first step of an epoch also pays one-off costs (optimizer state, kernel selection): left out.
    return float(mean), float(np.median(times[1:] or times))


def _share_weight(lengths: np.ndarray, batch: np.ndarray, share: np.ndarray, world: int) -> float | None:
    """Factor on a rank's mean loss so DDP's gradient average equals the global batch's token mean.

    None for one process (the loss is used as it is)."""
    if world == 1:
        return None
    return float(lengths[share].sum()) * world / float(lengths[batch].sum())


def _drop_resume_state(folder: Path, state: dict) -> None:
    """Mark the training finished (first: a kill in between still loads), then drop the resume state."""
    artifacts.write_json(folder / "state.json", {**state, "finished": True})
    for name in ("model.safetensors", "optimizer.safetensors"):
        (folder / name).unlink(missing_ok=True)


def _weights_bytes(model: PrefixCaptioner) -> bytes:
    from safetensors.torch import save

    return save(state_tensors(model))


def _restore_best(model: PrefixCaptioner, path: Path) -> None:
    from safetensors.torch import load_file

    if path.is_file():
        load_state_tensors(model, load_file(str(path)))
