"""One language's study in notebook 08: its data, the three routes, scores on human references, results."""

from __future__ import annotations

from typing import Any

from helpers import artifacts
from helpers.metrics import CaptionScorer
from helpers.multilingual import routes
from helpers.multilingual.config import MultilingualConfig
from helpers.multilingual.data import load_language
from helpers.multilingual.languages import Language
from helpers.multilingual.translate_test import held_out_bleu, prepare_translator
from helpers.multilingual.translator import translate
from helpers.runtime import device_summary, versions


class LanguageStudy:
    """Native, translate-train and translate-test captions in one language, scored on the test split."""

    def __init__(self, cfg: MultilingualConfig, language: Language, flickr, table: routes.FeatureTable):
        self.cfg, self.language, self.flickr, self.table = cfg, language, flickr, table
        self.folder = cfg.folder(language)
        self.captions = load_language(language, cfg.resolve_data())
        self.names = routes.split_names(cfg, flickr.splits, table, self.captions.native)
        self.trained: dict[
            str, tuple
        ] = {}  # "native", "native blind", "translate-train", ... -> (model, history)
        self.hypotheses: dict[str, list[str]] = {}  # route -> captions of the test images
        self.translator: dict[str, Any] = {}
        self.tokenizer: Any = None
        self.english: list[str] = []  # 06's English captions of the test images

    def references(self) -> dict[str, dict[str, list[str]]]:
        """Human references of the test images: written in the language, and translated from English."""
        test = set(self.names["test"])
        refs = {"written": {n: c for n, c in self.captions.native.items() if n in test}}
        if self.captions.human_translation:
            refs["translated"] = {n: c for n, c in self.captions.human_translation.items() if n in test}
        return refs

    def train_routes(self, device: str = "cpu") -> None:
        """Native and translate-train captioners and their image-blind twins, saved under <lang>/model/."""
        texts = {
            r: self.captions.normalized(w) for r, w in routes.TRAINED.items() if getattr(self.captions, w)
        }
        train_text = [c for caps in texts.values() for n in self.names["train"] for c in caps.get(n, [])]
        self.tokenizer, decoder = routes.language_decoder(self.cfg, self.language, train_text)
        for route, captions in texts.items():
            names = {s: [n for n in ids if captions.get(n)] for s, ids in self.names.items()}
            for blind in (False, True):
                label = f"{route} blind" if blind else route
                out = self.folder / "training" / label.replace(" ", "-")
                self.trained[label] = routes.train_route(
                    self.cfg, self.table, captions, names, self.tokenizer, decoder, out, blind, device
                )
            meta = {"language": self.language.to_dict(), "route": route, "decoding": self.cfg.decoding.name}
            routes.save_route(self.trained[route][0], self.tokenizer, self.folder / "model" / route, meta)

    def caption_test(self) -> None:
        """Captions of the test images by every trained route (and blind twin), then translate-test."""
        from helpers.caption.decode import decode_captions

        test = self.names["test"]
        for label, (model, _) in self.trained.items():
            feats = self.table.of(test, blind=label.endswith("blind"))
            self.hypotheses[label] = decode_captions(model, self.tokenizer, feats, self.cfg.decoding)
        self.english, _ = routes.english_captions(self.cfg, self.table.of(test))
        if not self.can_translate():
            self.translator = {"skipped": "the entry names no translator and no parallel text to train one"}
            return
        english_refs = dict(self.flickr.normalized)
        model, tok, record = prepare_translator(self.cfg, self.captions, english_refs, self.names["train"])
        prefix = self.language.translator_prefix
        self.hypotheses["translate-test"] = translate(model, tok, self.english, prefix)
        held_out = {n: english_refs[n] for n in test if n in english_refs}
        human = self.captions.human_translation
        self.translator = {**record, "held_out": held_out_bleu(model, tok, self.language, held_out, human)}

    def can_translate(self) -> bool:
        """Whether translate-test can run: a pretrained translator named, or text to train a small one."""
        if self.cfg.knobs["translator"] is None:
            return bool(self.language.translator)
        return bool(self.captions.parallel or self.captions.machine)

    def evaluate(self) -> dict[str, Any]:
        """Score every route on both reference sets; write run_dir/multilingual/<lang>/metrics.json."""
        with CaptionScorer(tokens=self.language.metric_tokens) as scorer:
            scores = routes.score_routes(scorer, self.names["test"], self.hypotheses, self.references())
            scoring = scorer.describe()
        metrics = {
            "language": self.language.to_dict(),
            "scores": scores,
            "test_images": len(self.names["test"]),
            "images": {s: len(v) for s, v in self.names.items()},
            "data": self.captions.summary(),
            "translator": self.translator,
            "training": {k: routes.training_record(m, h) for k, (m, h) in self.trained.items()},
            "scoring": scoring,
            "config": self.cfg.to_dict(),
            "versions": versions(),
            "device": device_summary(),
        }
        artifacts.write_json(self.folder / "metrics.json", metrics)
        captions = {
            n: {**{r: caps[i] for r, caps in self.hypotheses.items()}, "english": self.english[i]}
            for i, n in enumerate(self.names["test"])
        }
        artifacts.write_json(self.folder / "test_captions.json", captions)
        return metrics
