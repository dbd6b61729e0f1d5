"""Caption decoding from image features: greedy, beam search (width k, length penalty), nucleus sampling.

All three go through `GPT2LMHeadModel.generate` with the image prefix as `inputs_embeds`; it returns
only the new tokens. Generation stops at <|endoftext|> (the end of a caption) or after
`max_new_tokens`, whichever comes first, so it always terminates.

On the CPU, decoding multiplies through oneDNN with weights prepacked once (`packed_linears`), still
float32: a decoding step multiplies a handful of rows by every weight matrix, and PyTorch's default GEMM
(MKL) streams weights at a third of the speed there (see `packed_linears`).
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.caption.model import EOS_ID, PrefixCaptioner

STRATEGIES = ("greedy", "beam", "nucleus")


@dataclass(frozen=True)
class DecodeConfig:
    """How captions are generated; `DecodeConfig.parse("beam5")` is the short form."""

    strategy: str = "greedy"  # greedy | beam | nucleus
    num_beams: int = 3  # beam width k (beam only)
    length_penalty: float = 1.0  # beam score = log-prob / length**penalty; > 0 favours longer captions
    top_p: float = 0.9  # nucleus: sample from the smallest token set holding this probability mass
    temperature: float = 1.0  # nucleus: softmax temperature
    max_new_tokens: int = 30  # hard stop, in GPT-2 tokens
    no_repeat_ngram_size: int = 0  # > 0: never repeat an n-gram of this size within a caption
    seed: int = 0  # nucleus sampling seed

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"decoding strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.num_beams < 1 or self.max_new_tokens < 1 or not 0 < self.top_p <= 1:
            raise ValueError("need num_beams >= 1, max_new_tokens >= 1 and 0 < top_p <= 1")

    @classmethod
    def parse(cls, spec: str | DecodeConfig, **overrides) -> DecodeConfig:
        """ "greedy", "beam" (k=3), "beam5", "nucleus" (p=0.9), "nucleus0.8"; or a DecodeConfig as is."""
        if isinstance(spec, DecodeConfig):
            return replace(spec, **overrides)
        match = re.fullmatch(r"(greedy|beam|nucleus)([0-9.]*)", spec.strip().lower())
        if not match:
            raise ValueError(
                f"unknown decoding {spec!r}: use greedy, beam, beamK (e.g. beam5), nucleus or nucleusP"
            )
        strategy, number = match.groups()
        kw: dict = {"strategy": strategy}
        if number and strategy == "beam":
            kw["num_beams"] = int(number)
        elif number and strategy == "nucleus":
            kw["top_p"] = float(number)
        elif number:
            raise ValueError(f"unknown decoding {spec!r}: greedy takes no number")
        return cls(**{**kw, **overrides})

    @property
    def name(self) -> str:
        """Short label: greedy, beam3, nucleus0.9."""
        if self.strategy == "beam":
            return f"beam{self.num_beams}"
        return f"nucleus{self.top_p:g}" if self.strategy == "nucleus" else "greedy"

    def generate_kwargs(self) -> dict:
        """Keyword arguments for `generate`."""
        kw: dict = {"max_new_tokens": self.max_new_tokens, "eos_token_id": EOS_ID, "pad_token_id": EOS_ID}
        if self.no_repeat_ngram_size:
            kw["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        if self.strategy == "greedy":
            return {**kw, "do_sample": False, "num_beams": 1}
        if self.strategy == "beam":
            return {
                **kw,
                "do_sample": False,
                "num_beams": self.num_beams,
                "length_penalty": self.length_penalty,
                "early_stopping": True,
            }
        return {
            **kw,
            "do_sample": True,
            "num_beams": 1,
            "top_p": self.top_p,
            "top_k": 0,
            "temperature": self.temperature,
        }


def trim(ids: list[int]) -> list[int]:
    """Tokens up to (not including) the first end-of-text."""
    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids


#: Prepacked weights: module -> ((weight identity, version), packed weight); dropped with the module.
_PACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: id(model) -> [open `packed_linears` blocks on it, the modules patched]: concurrent decodes share one patch.
_OPEN: dict[int, list] = {}
_LOCK = threading.Lock()


def _weight_key(weight: torch.Tensor) -> tuple:
    """Changes whenever the weight does: in place (optimizer steps, load_state_dict) or replaced."""
    return (weight.data_ptr(), weight._version, weight.shape, weight.dtype, weight.device)


def _packable(module: nn.Module) -> bool:
    """An nn.Linear or GPT-2's Conv1D with float32 weights on the CPU, its forward not patched by others."""
    from transformers.pytorch_utils import Conv1D

    weight = getattr(module, "weight", None)
    return (
        isinstance(module, (nn.Linear, Conv1D))
        and isinstance(weight, torch.Tensor)
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and "forward" not in vars(module)
    )


def _pack(module: nn.Module) -> tuple[tuple, torch.Tensor]:
    """(weight key, the (out, in) weight reordered into oneDNN's blocked layout), cached until it changes."""
    key = _weight_key(module.weight)
    cached = _PACKS.get(module)
    if cached is None or cached[0] != key:
        weight = module.weight.detach()
        weight = weight if isinstance(module, nn.Linear) else weight.t()  # Conv1D stores (in, out)
        # The row-count hint only picks the blocking; any number of rows can be multiplied.
        cached = (key, torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 8))
        _PACKS[module] = cached
    return cached


def _packed_forward(module: nn.Module, key: tuple, packed: torch.Tensor) -> Callable:
    """`module.forward` through the packed weight; the module's own forward where that would be wrong."""
    stock = type(module).forward.__get__(module)

    def packed_forward(x: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            or x.device.type != "cpu"
            or x.dtype != torch.float32
            or _weight_key(module.weight) != key
        ):
            return stock(x)  # training, autocast, moved, or changed since packing
        bias = None if module.bias is None else module.bias.detach()
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")

    return packed_forward


def _patch(model: nn.Module) -> list[nn.Module]:
    """Give each packable layer a packed forward; none at all if this PyTorch's oneDNN cannot."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return []
    patched: list[nn.Module] = []
    try:
        with torch.no_grad():
            for module in filter(_packable, model.modules()):
                module.forward = _packed_forward(module, *_pack(module))
                patched.append(module)
    except RuntimeError as err:  # oneDNN without these kernels on this machine: everything stays stock
        _unpatch(patched)
        message = f"prepacked oneDNN kernels unavailable, decoding with PyTorch's defaults: {err}"
        warnings.warn(message, stacklevel=2)
        return []
    return patched


def _unpatch(modules: list[nn.Module]) -> None:
    for module in modules:
        vars(module).pop("forward", None)


@contextlib.contextmanager
def packed_linears(model: nn.Module) -> Iterator[int]:
    """In the block, `model`'s float32 CPU linear layers (GPT-2's Conv1D and lm_head, the mapper's) multiply
    through oneDNN with prepacked weights while gradients are off; yields how many layers do.

    Why: each decoding step multiplies a few rows (batch x beams) by every weight matrix. On this
    project's CPU (AMD EPYC, one thread), PyTorch's default MKL GEMM took 39 ms to multiply 8 rows by
    GPT-2's 50257 x 768 output projection, oneDNN 13 ms from a prepacked weight; greedy decoding of a batch
    of 8 over GPT-2 small took 1.3 s instead of 3.2 s. Still float32; only the order of the additions
    differs (|difference| ~ 1e-6 in the logits) and the captions measured identical, greedy and beam.

    The packed copies (as large as the weights: 0.5 GB for GPT-2 small) are made on first use, kept for
    the model's lifetime and remade after the weights change (a training step). Nothing changes without
    oneDNN, on a GPU or for other dtypes, nor while gradients are on.
    """
    with _LOCK:
        entry = _OPEN.setdefault(id(model), [0, []])
        if entry[0] == 0:
            entry[1] = _patch(model)
        entry[0] += 1
    try:
        yield len(entry[1])
    finally:
        with _LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                _unpatch(entry[1])
                del _OPEN[id(model)]


@torch.no_grad()
def generate_ids(
    model: PrefixCaptioner,
    features: np.ndarray | torch.Tensor,
    decoding: DecodeConfig,
    batch_size: int = 64,
    progress: bool = False,
    packed: bool = True,
) -> list[list[int]]:
    """Token ids of one caption per feature row (end-of-text and padding removed).

    `packed`: on the CPU, multiply through prepacked oneDNN weights (`packed_linears`); False: PyTorch's
    default kernels.
    """
    model.eval()
    device = next(model.parameters()).device
    feats = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if feats.ndim != 2 or feats.shape[1] != model.cfg.feature_dim:
        raise ValueError(f"expected features of shape (N, {model.cfg.feature_dim}), got {tuple(feats.shape)}")
    out: list[list[int]] = []
    starts = range(0, len(feats), batch_size)
    # Sampling draws from a private generator state so decoding never disturbs training's random stream.
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    kernels = packed_linears(model) if packed else contextlib.nullcontext()
    with torch.random.fork_rng(devices=cuda), kernels:
        torch.manual_seed(decoding.seed)
        for start in tqdm(starts, desc=f"decode {decoding.name}", disable=not progress, leave=False):
            prefix = model.prefix(feats[start : start + batch_size].to(device))
            mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=device)
            with warnings.catch_warnings():
                # "n-gram constraints apply only to new tokens": intended, the prompt is the image prefix.
                warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*inputs_embeds")
                ids = model.gpt.generate(
                    inputs_embeds=prefix, attention_mask=mask, **decoding.generate_kwargs()
                )
            out.extend(trim(row) for row in ids.tolist())
    return out


def ids_to_text(tokenizer, ids: list[list[int]]) -> list[str]:
    """Decode token ids to single-spaced, stripped captions."""
    return [" ".join(tokenizer.decode(row, skip_special_tokens=True).split()) for row in ids]


def decode_captions(
    model: PrefixCaptioner,
    tokenizer,
    features: np.ndarray,
    decoding: str | DecodeConfig = "greedy",
    batch_size: int = 64,
    progress: bool = False,
) -> list[str]:
    """One caption per feature row with the given decoding."""
    ids = generate_ids(model, features, DecodeConfig.parse(decoding), batch_size, progress)
    return ids_to_text(tokenizer, ids)
