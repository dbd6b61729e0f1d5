"""Translate-test's translator for notebook 08: the registry's pretrained MarianMT, or a small one trained
on parallel captions (reused while its data and settings are unchanged), and its held-out BLEU."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from helpers import artifacts
from helpers.metrics import CaptionScorer
from helpers.multilingual.config import MultilingualConfig
from helpers.multilingual.data import LanguageCaptions, translator_corpus
from helpers.multilingual.languages import Language
from helpers.multilingual.translator import (
    SMALL_MARIAN,
    load_translator,
    save_translator,
    small_translator,
    train_translator,
    translate,
    write_translator_tokenizer,
)

TRANSLATOR_BATCH = 32  # sentence pairs per step
TRANSLATOR_LR = 3e-3  # peak AdamW rate for the small random-init model


def prepare_translator(
    cfg: MultilingualConfig, captions: LanguageCaptions, english: dict[str, list[str]], train_names: list[str]
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, record): pretrained by id (`translator` None), else trained in <lang>/translator."""
    language = captions.language
    if cfg.knobs["translator"] is None:
        if not language.translator:
            raise ValueError(f"{language.name} names no translator in its registry entry")
        model, tokenizer = load_translator(language.translator)
        return model, tokenizer, {"source": language.translator, "trained": False}
    if cfg.knobs["translator"] != "train":
        raise ValueError(
            f"translator must be 'train' or None (the registry's), got {cfg.knobs['translator']!r}"
        )
    pairs, source = translator_corpus(captions, english, train_names)
    prefix = language.translator_prefix
    # Targets as the captioners' training text (no punctuation): the metrics drop punctuation anyway.
    pairs = [(f"{prefix} {e}" if prefix else e, language.normalize(z)) for e, z in pairs]
    steps, vocab = cfg.knobs["translator_steps"], cfg.knobs["translator_vocab"]
    desc = {"pairs": pairs, "steps": steps, "vocab": vocab, "model": SMALL_MARIAN, "seed": cfg.seed}
    key = hashlib.sha256(json.dumps(desc, ensure_ascii=False).encode()).hexdigest()[:16]
    folder = cfg.folder(language) / "translator"
    marker = folder / "translator.json"
    if marker.is_file() and artifacts.read_json(marker).get("fingerprint") == key:
        model, tokenizer = load_translator(folder)
        return model, tokenizer, artifacts.read_json(marker)
    marker.unlink(missing_ok=True)
    tokenizer = write_translator_tokenizer(folder, pairs, vocab, prefix)
    model = small_translator(tokenizer, cfg.seed)
    losses = train_translator(model, tokenizer, pairs, steps, TRANSLATOR_BATCH, TRANSLATOR_LR, cfg.seed)
    save_translator(model, tokenizer, folder)
    record = {
        "source": str(folder),
        "trained": True,
        "corpus": source,
        "pairs": len(pairs),
        "steps": steps,
        "final_loss": float(sum(losses[-20:]) / len(losses[-20:])),
        "fingerprint": key,
    }
    artifacts.write_json(marker, record)  # last: marks the folder complete
    return model, tokenizer, record


def held_out_bleu(
    model: Any,
    tokenizer: Any,
    language: Language,
    english: dict[str, list[str]],
    human: dict[str, list[str]] | None,
) -> dict[str, Any] | None:
    """Scores of translating each held-out English caption against its human translation (same index N)."""
    if not human:
        return None
    pairs = {
        f"{n}#{i}": (e, h)
        for n, hs in human.items()
        if n in english
        for i, (e, h) in enumerate(zip(english[n], hs, strict=False))
    }
    if not pairs:
        return None
    keys = sorted(pairs)
    outputs = translate(model, tokenizer, [pairs[k][0] for k in keys], language.translator_prefix)
    scorer = CaptionScorer(tokens=language.metric_tokens)
    scores = scorer.score({k: [pairs[k][1]] for k in keys}, dict(zip(keys, outputs, strict=True)))
    examples = [
        {"english": pairs[k][0], "translation": o, "human": pairs[k][1]}
        for k, o in zip(keys[:5], outputs[:5], strict=True)
    ]
    return {"sentences": len(keys), "scores": scores, "examples": examples}
