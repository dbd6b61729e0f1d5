"""Faster CPU decoding: linear layers multiplied through oneDNN with prepacked weights (CPU only).

One entry point, `packed_linears(model)`, a context manager; decoding (`helpers.caption.decode`) is its only
user. Why it exists: each decoding step multiplies a few rows (batch x beams) by every weight matrix, and on
this project's CPU (AMD EPYC) PyTorch's default MKL GEMM streams weights at a third of oneDNN's speed there.

The weights are packed as float32 (the default: the same arithmetic up to the order of additions) or,
where oneDNN has bfloat16 kernels (AVX512-BF16 or AMX), as bfloat16 (`weights="bfloat16"`): half the
bytes to read per decoding step, the activations rounded to bfloat16 at each linear's input and the
products accumulated and returned in float32. `benchmarks/int8_decoding.py` measures its speed and what it
does to the captions.

It uses PyTorch's private ops `torch.ops.mkldnn._reorder_linear_weight` and `_linear_pointwise`: re-check on
a PyTorch upgrade. If they are missing it warns and everything runs on the stock kernels.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator

import torch
from torch import nn

#: The weight precisions `packed_linears` packs to.
WEIGHTS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: Prepacked weights: module -> {precision: ((weight identity, version), packed weight, bias)}; dropped
#: with the module.
_PACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: id(model) -> [open `packed_linears` blocks on it, the modules patched, their precision]: concurrent
#: decodes share one patch.
_OPEN: dict[int, list] = {}
_LOCK = threading.Lock()


def bfloat16_supported() -> bool:
    """Whether this CPU's oneDNN multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


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


def _pack(module: nn.Module, dtype: torch.dtype) -> tuple[tuple, torch.Tensor, torch.Tensor | None]:
    """(weight key, the (out, in) weight in `dtype` reordered into oneDNN's blocked layout, the bias in
    `dtype`), cached until the weight changes."""
    key = _weight_key(module.weight)
    packs = _PACKS.setdefault(module, {})
    cached = packs.get(dtype)
    if cached is None or cached[0] != key:
        weight = module.weight.detach()
        weight = weight if isinstance(module, nn.Linear) else weight.t()  # Conv1D stores (in, out)
        bias = None if module.bias is None else module.bias.detach().to(dtype)
        # The row-count hint only picks the blocking; any number of rows can be multiplied.
        cached = (key, torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype).contiguous(), 8), bias)
        packs[dtype] = cached
    return cached


def _packed_forward(
    module: nn.Module, key: tuple, packed: torch.Tensor, bias: torch.Tensor | None
) -> Callable:
    """`module.forward` through the packed weight; the module's own forward where that would be wrong."""
    stock = type(module).forward.__get__(module)
    dtype = packed.dtype

    def packed_forward(x: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            or x.device.type != "cpu"
            or x.dtype != torch.float32
            or _weight_key(module.weight) != key
        ):
            return stock(x)  # training, autocast, moved, or changed since packing
        if dtype == torch.float32:
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")
        y = torch.ops.mkldnn._linear_pointwise(x.to(dtype).contiguous(), packed, bias, "none", [], "")
        return y.float()

    return packed_forward


def _patch(model: nn.Module, weights: str) -> list[nn.Module]:
    """Give each packable layer a packed forward; none at all if this PyTorch's oneDNN cannot."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return []
    patched: list[nn.Module] = []
    try:
        with torch.no_grad():
            for module in filter(_packable, model.modules()):
                module.forward = _packed_forward(module, *_pack(module, WEIGHTS[weights]))
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
def packed_linears(model: nn.Module, weights: str = "float32") -> Iterator[int]:
    """In the block, `model`'s float32 CPU linear layers (GPT-2's Conv1D and lm_head, the mapper's) multiply
    through oneDNN with prepacked weights while gradients are off; yields how many layers do.

    `weights`: "float32" (the default) or "bfloat16" (see the module's docstring); on a CPU without
    bfloat16 kernels, "bfloat16" warns and packs float32. A block opened while another one on the same
    model holds the other precision raises (one patch per model).

    Why: each decoding step multiplies a few rows (batch x beams) by every weight matrix. On this
    project's CPU (AMD EPYC, one thread), PyTorch's default MKL GEMM took 39 ms to multiply 8 rows by
    GPT-2's 50257 x 768 output projection, oneDNN 13 ms from a prepacked weight; greedy decoding of a batch
    of 8 over GPT-2 small took 1.3 s instead of 3.2 s. Still float32; only the order of the additions
    differs (|difference| ~ 1e-6 in the logits) and the captions measured identical, greedy and beam.

    The packed copies (as large as the weights: 0.5 GB for GPT-2 small) are made on first use, kept for
    the model's lifetime and remade after the weights change (a training step). Nothing changes without
    oneDNN, on a GPU or for other dtypes, nor while gradients are on.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WEIGHTS)}, got {weights!r}")
    if weights == "bfloat16" and not bfloat16_supported():
        warnings.warn("no bfloat16 kernels in this CPU's oneDNN: float32 weights instead", stacklevel=3)
        weights = "float32"
    with _LOCK:
        entry = _OPEN.setdefault(id(model), [0, [], weights])
        if entry[0] == 0:
            entry[1], entry[2] = _patch(model, weights), weights
        elif entry[2] != weights:
            raise RuntimeError(f"the model is already decoding with {entry[2]} weights, not {weights}")
        entry[0] += 1
    try:
        yield len(entry[1])
    finally:
        with _LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                _unpatch(entry[1])
                del _OPEN[id(model)]
