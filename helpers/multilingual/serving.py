"""Captions in a chosen language for the demo and the endpoint: English (06's captioner) plus every
language notebook 08 trained in the run.

A language is served by its best trained route on the written references (native or translate-train, by
BLEU-4 in its metrics.json); it shares 06's image encoder, whose cached features it was trained on. A run
without notebook 08 offers English only, exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers import artifacts

ENGLISH = "en"


class UnknownLanguage(ValueError):
    """A language the run has not trained."""


def trained_languages(multilingual_dir: str | Path) -> dict[str, dict[str, Any]]:
    """{code: {"name", "route", "folder"}} for each language with a complete captioner under the folder."""
    out = {}
    root = Path(multilingual_dir)
    for metrics_file in sorted(root.glob("*/metrics.json")) if root.is_dir() else []:
        metrics = artifacts.read_json(metrics_file)
        bleu = {r: s["written"]["Bleu_4"] for r, s in metrics["scores"].items() if "written" in s}
        trained = [r for r in ("native", "translate-train") if r in bleu]
        if not trained:
            continue
        route = max(trained, key=bleu.get)
        folder = metrics_file.parent / "model" / route
        if (folder / "language.json").is_file():
            out[metrics_file.parent.name] = {
                "name": metrics["language"]["name"],
                "route": route,
                "folder": folder,
            }
    return out


class MultilingualCaptioner:
    """`caption_images(images, language=...)`: English by 06's captioner, other languages by their own."""

    def __init__(self, english: Any, languages: dict[str, dict[str, Any]]):
        self.english, self.languages = english, languages
        self.language = ENGLISH  # the selection used when a call names none (the demo's selector)
        self._loaded: dict[str, tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        """Everything else (encoder, decoding defaults, ...) is the English captioner's."""
        if name == "english":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.english, name)

    def select(self, language: str) -> str:
        """Make `language` the default of later calls (checked first)."""
        self.language = self.check(language)
        return self.language

    @classmethod
    def load(cls, english: Any, multilingual_dir: str | Path) -> MultilingualCaptioner:
        """Wrap a loaded English `Captioner`; languages are found now and loaded on first use."""
        return cls(english, trained_languages(multilingual_dir))

    def choices(self) -> list[tuple[str, str]]:
        """(label, code) pairs for a selector: English first, then every trained language."""
        return [
            ("English", ENGLISH),
            *((f"{v['name']} ({v['route']})", k) for k, v in self.languages.items()),
        ]

    def check(self, language: str) -> str:
        """`language` if the run can caption in it, else UnknownLanguage naming the ones it can."""
        if language != ENGLISH and language not in self.languages:
            known = ", ".join([ENGLISH, *self.languages])
            raise UnknownLanguage(f"language {language!r} is not trained in this run; available: {known}")
        return language

    def caption_images(
        self,
        images: Sequence[np.ndarray],
        decoding: Any = None,
        detail: str = "short",
        language: str | None = None,
    ) -> list[str]:
        """One caption per uint8 RGB image in `language` (None: the selected one), with English's choices."""
        from helpers.caption.captioner import detail_decoding
        from helpers.caption.decode import DecodeConfig, decode_captions

        language = self.check(language or self.language)
        if language == ENGLISH:
            return self.english.caption_images(images, decoding=decoding, detail=detail)
        images = list(images)
        if not images:
            return []
        model, tokenizer = self._model(language)
        base = self.english.decoding
        base = DecodeConfig.parse(decoding, max_new_tokens=base.max_new_tokens) if decoding else base
        return decode_captions(model, tokenizer, self.english.encode(images), detail_decoding(base, detail))

    def _model(self, language: str) -> tuple[Any, Any]:
        """The language's captioner and tokenizer, loaded once."""
        if language not in self._loaded:
            from helpers.caption.model import load_captioner
            from helpers.multilingual.decoder import load_tokenizer
            from helpers.multilingual.languages import Language

            folder = self.languages[language]["folder"]
            meta = artifacts.read_json(folder / "language.json")
            device = next(self.english.model.parameters()).device
            self._loaded[language] = (
                load_captioner(folder, device),
                load_tokenizer(Language.from_dict(meta["language"]), folder),
            )
        return self._loaded[language]
