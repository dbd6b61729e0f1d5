"""Caption decoding from image features: greedy, beam search (width k, length penalty), nucleus sampling.

All three go through `GPT2LMHeadModel.generate` with the image prefix as `inputs_embeds`; it returns
only the new tokens. Generation stops at <|endoftext|> (the end of a caption) or after
`max_new_tokens`, whichever comes first, so it always terminates.

On the CPU, decoding multiplies through oneDNN with weights prepacked once (`helpers.caption.cpu_kernels`),
still float32.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.caption.cpu_kernels import packed_linears
from helpers.caption.model import EOS_ID, PrefixCaptioner

STRATEGIES = ("greedy", "beam", "nucleus")
# A space with a CJK character (ideographs, CJK punctuation, full-width forms) on both sides.
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_CJK_SPACE = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


@dataclass(frozen=True)
class DecodeConfig:
    """How captions are generated; `DecodeConfig.parse("beam5")` is the short form."""

    strategy: str = "greedy"  # greedy | beam | nucleus
    num_beams: int = 3  # beam width k (beam only)
    length_penalty: float = 1.0  # beam score = log-prob / length**penalty; > 0 favours longer captions
    top_p: float = 0.9  # nucleus: sample from the smallest token set holding this probability mass
    temperature: float = 1.0  # nucleus: softmax temperature
    max_new_tokens: int = 30  # hard stop, in GPT-2 tokens
    # > 0: never repeat an n-gram of this size within a caption. 4 by default: 3 would forbid templates
    # such as "a red circle at the top and a blue circle at the bottom" ("circle at the" twice); notebook
    # 06 measures the scores with and without it (captions/no_repeat.json).
    no_repeat_ngram_size: int = 4
    block_stutter: bool = True  # never emit the token just emitted ("a a a a")
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

    def generate_kwargs(self, end_id: int = EOS_ID) -> dict:
        """Keyword arguments for `generate`; `end_id` ends a caption (and pads)."""
        kw: dict = {"max_new_tokens": self.max_new_tokens, "eos_token_id": end_id, "pad_token_id": end_id}
        if self.no_repeat_ngram_size:
            kw["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        if self.block_stutter:
            from transformers import LogitsProcessorList

            kw["logits_processor"] = LogitsProcessorList([NoStutter()])
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


class NoStutter:
    """A logits processor that forbids the token just generated: a caption word never follows itself."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == 0:  # the prompt is the image prefix (embeddings): nothing emitted yet
            return scores
        return scores.scatter(1, input_ids[:, -1:], float("-inf"))


def trim(ids: list[int], end_id: int = EOS_ID) -> list[int]:
    """Tokens up to (not including) the first end-of-caption token."""
    return ids[: ids.index(end_id)] if end_id in ids else ids


@torch.no_grad()
def generate_ids(
    model: PrefixCaptioner,
    features: np.ndarray | torch.Tensor,
    decoding: DecodeConfig,
    batch_size: int = 64,
    progress: bool = False,
    packed: bool = True,
    weights: str = "float32",
) -> list[list[int]]:
    """Token ids of one caption per feature row (end-of-text and padding removed).

    `packed`: on the CPU, multiply through prepacked oneDNN weights (`packed_linears`); False: PyTorch's
    default kernels. `weights`: the packed weights' precision, "float32" or "bfloat16" (`packed_linears`).
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
    kernels = packed_linears(model, weights) if packed else contextlib.nullcontext()
    with torch.random.fork_rng(devices=cuda), kernels:
        torch.manual_seed(decoding.seed)
        for start in tqdm(starts, desc=f"decode {decoding.name}", disable=not progress, leave=False):
            prefix = model.prefix(feats[start : start + batch_size].to(device))
            mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=device)
            with warnings.catch_warnings():
                # "n-gram constraints apply only to new tokens": intended, the prompt is the image prefix.
                warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*inputs_embeds")
                ids = model.gpt.generate(
                    inputs_embeds=prefix, attention_mask=mask, **decoding.generate_kwargs(model.end_id)
                )
            out.extend(trim(row, model.end_id) for row in ids.tolist())
    return out


def ids_to_text(tokenizer, ids: list[list[int]]) -> list[str]:
    """Decode token ids to single-spaced, stripped captions (no spaces between CJK characters)."""
    texts = (" ".join(tokenizer.decode(row, skip_special_tokens=True).split()) for row in ids)
    # A character vocabulary decodes "红 色 的 圆"; Chinese is written without spaces.
    return [_CJK_SPACE.sub("", t) for t in texts]


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
