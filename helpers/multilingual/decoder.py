"""A language's decoder and tokenizer: a pretrained causal LM by hub id, or a small random-init GPT-2.

The small decoder (smoke, sample) uses the tokenizer class of the real one: for Chinese a BERT-style
character vocabulary (``vocab.txt``, as ``uer/gpt2-chinese-cluecorpussmall`` ships), built here from the
training captions and loaded through the same `BertTokenizer.from_pretrained` as the hub's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from helpers import artifacts
from helpers.caption.model import SMALL_GPT2, PrefixConfig
from helpers.caption.tokenizer import end_token_id, gpt2_tokenizer
from helpers.multilingual.languages import Language

#: BERT's special tokens, in the order of its vocab.txt ([PAD] is id 0).
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_char_vocab(captions: Iterable[str], folder: str | Path) -> Path:
    """``folder/vocab.txt``: BERT's specials, every character seen, and its ``##`` form (inside a word)."""
    chars = sorted({c for text in captions for c in text if not c.isspace()})
    lines = [*SPECIALS, *chars, *(f"##{c}" for c in chars)]
    artifacts.write_text(Path(folder) / "vocab.txt", "\n".join(lines) + "\n")
    return Path(folder)


def load_tokenizer(language: Language, source: str | Path | None = None) -> Any:
    """GPT-2's tokenizer, or a BERT-style one from a hub id or a folder with ``vocab.txt``."""
    if language.tokenizer == "gpt2":
        return gpt2_tokenizer()
    from transformers import BertTokenizer

    # BertTokenizer(vocab_file=...) gives an empty tokenizer in transformers v5; from_pretrained reads it.
    tokenizer = BertTokenizer.from_pretrained(str(source or language.decoder))
    if len(tokenizer) <= len(SPECIALS):
        raise ValueError(f"{source or language.decoder}: tokenizer has only {len(tokenizer)} tokens")
    return tokenizer


def small_decoder(tokenizer: Any) -> dict[str, Any]:
    """notebook 06's small GPT-2 config, sized to `tokenizer`, ending captions with its end token."""
    end = end_token_id(tokenizer)
    return {**SMALL_GPT2, "vocab_size": len(tokenizer), "bos_token_id": end, "eos_token_id": end}


def prefix_config(base: PrefixConfig, decoder: str | dict, tokenizer: Any) -> PrefixConfig:
    """`base` (mapper, prefix length) with this language's decoder, vocabulary size and end token."""
    return dataclasses.replace(
        base, gpt2=decoder, vocab_size=len(tokenizer), end_token_id=end_token_id(tokenizer)
    )


def save_tokenizer(tokenizer: Any, folder: str | Path) -> Path:
    """The tokenizer beside a saved captioner, so the folder is self-contained."""
    tokenizer.save_pretrained(str(folder))
    return Path(folder)
