"""Languages are data: a registry entry names a language's caption files, decoder, translator, metrics.

Adding a language needs no code: add an entry to `REGISTRY`, or pass notebook 08 a dict with these fields
(`Language.from_dict`) together with a folder holding its caption files. Caption files are in Flickr8k's
``IMAGE.jpg#N<tab or space>caption`` family (Flickr8K-CN: ``IMAGE.jpg#zhc#N caption``).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from helpers.metrics import TOKENIZATIONS

TOKENIZER_KINDS = ("gpt2", "bert")


@dataclass(frozen=True)
class Language:
    """One caption language; file names are relative to the folder notebook 08 reads (`data_source`)."""

    code: str  # short id, e.g. "zh"; folder name under run_dir/multilingual/
    name: str  # for tables and the demo, e.g. "Chinese"
    native: str  # captions written by speakers of the language (the `native` route trains on these)
    machine: str | None = None  # machine translations of the English captions (`translate-train`)
    human_translation: str | None = None  # human translations of the English test captions (references)
    parallel: str | None = None  # "English<TAB>translation" lines for training a small translator
    decoder: str = "gpt2"  # hub id of the causal LM to fine-tune (full preset)
    tokenizer: str = "gpt2"  # "gpt2": GPT-2's BPE; "bert": a BERT-style vocab.txt (character vocabulary)
    translator: str | None = None  # hub id of the MarianMT English -> language model (translate-test)
    translator_prefix: str = (
        ""  # target-language token a multi-target MarianMT model needs, e.g. ">>cmn_Hans<<"
    )
    metric_tokens: str = "whitespace"  # "ptb" (English), "chars" (Chinese, Japanese), "whitespace"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.code):
            raise ValueError(f"language code must be lower-case letters/digits, got {self.code!r}")
        if self.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"tokenizer must be one of {TOKENIZER_KINDS}, got {self.tokenizer!r}")
        if self.metric_tokens not in TOKENIZATIONS:
            raise ValueError(f"metric_tokens must be one of {TOKENIZATIONS}, got {self.metric_tokens!r}")

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Language:
        """A registry entry from plain data (a notebook parameter, JSON); unknown fields are an error."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(entry) - fields):
            raise ValueError(f"unknown language fields {unknown}; known: {sorted(fields)}")
        return cls(**entry)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def normalize(self, text: str) -> str:
        """Training text: NFKC, lower case, no punctuation; no spaces for character-tokenised languages."""
        text = unicodedata.normalize("NFKC", text).lower()
        text = "".join(" " if unicodedata.category(c)[0] in "PZC" else c for c in text)
        return "".join(text.split()) if self.metric_tokens == "chars" else " ".join(text.split())


ENGLISH = Language(
    code="en",
    name="English",
    native="Flickr8k.token.txt",
    decoder="gpt2",
    tokenizer="gpt2",
    metric_tokens="ptb",
)

REGISTRY: dict[str, Language] = {
    "en": ENGLISH,
    # Flickr8K-CN (Li et al., ICMR 2016): human-written, Google-translated and human-translated captions.
    "zh": Language(
        code="zh",
        name="Chinese",
        native="flickr8kzhc.caption.txt",
        machine="flickr8kzhg.caption.txt",
        human_translation="flickr8kzhmtest.captions.txt",
        parallel="parallel.en-zh.tsv",
        decoder="uer/gpt2-chinese-cluecorpussmall",
        tokenizer="bert",
        translator="Helsinki-NLP/opus-mt-en-zh",
        translator_prefix=">>cmn_Hans<<",
        metric_tokens="chars",
    ),
}


def get_language(spec: str | dict[str, Any] | Language) -> Language:
    """A registry code ("zh"), a dict of fields (a new language) or a Language as is."""
    if isinstance(spec, Language):
        return spec
    if isinstance(spec, dict):
        return Language.from_dict(spec)
    if spec not in REGISTRY:
        raise ValueError(
            f"unknown language {spec!r}; registered: {', '.join(REGISTRY)} (or pass a dict entry)"
        )
    return REGISTRY[spec]
