"""Captions in a chosen language: MultilingualCaptioner, the demo's language selector and the endpoint's
"language" option, each with its error for a language the run has not trained."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import artifacts
from helpers.caption.decode import DecodeConfig
from helpers.caption.model import PrefixConfig, build_captioner
from helpers.multilingual.decoder import load_tokenizer, prefix_config, small_decoder, write_char_vocab
from helpers.multilingual.languages import REGISTRY
from helpers.multilingual.routes import save_route
from helpers.multilingual.serving import MultilingualCaptioner, UnknownLanguage, trained_languages
from helpers.serving import handle

FEATURES = 6


class EnglishCaptioner:
    """06's captioner stand-in: fixed features per image, a recognisable English caption."""

    decoding = DecodeConfig(max_new_tokens=8)

    def __init__(self):
        import torch

        self.model = torch.nn.Linear(1, 1)  # where the device is read from

    def encode(self, images):
        return np.stack([np.full(FEATURES, float(im.mean()) / 255, np.float32) for im in images])

    def caption_images(self, images, decoding=None, detail="short"):
        return [f"english {detail}" for _ in images]


def run_with_chinese(root: Path) -> Path:
    """run_dir/multilingual/zh/ as notebook 08 leaves it: metrics.json and an (untrained) native captioner."""
    folder = root / "multilingual" / "zh"
    tokenizer = load_tokenizer(
        REGISTRY["zh"], write_char_vocab(["红色的圆", "蓝色的圆"], folder / "vocabulary")
    )
    cfg = prefix_config(
        PrefixConfig(feature_dim=FEATURES, prefix_length=2), small_decoder(tokenizer), tokenizer
    )
    meta = {"language": REGISTRY["zh"].to_dict(), "route": "native", "decoding": "greedy"}
    save_route(build_captioner(cfg), tokenizer, folder / "model" / "native", meta)
    scores = {"native": {"written": {"Bleu_4": 0.5}}, "translate-train": {"written": {"Bleu_4": 0.2}}}
    artifacts.write_json(folder / "metrics.json", {"language": {"name": "Chinese"}, "scores": scores})
    return root / "multilingual"


def test_captioner_in_a_trained_language_and_a_clear_error_otherwise(tmp_path: Path):
    assert trained_languages(tmp_path / "multilingual") == {}  # a run without 08: English only
    both = MultilingualCaptioner.load(EnglishCaptioner(), run_with_chinese(tmp_path))
    assert both.choices() == [("English", "en"), ("Chinese (native)", "zh")]
    images = [np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)]
    assert both.caption_images(images) == ["english short", "english short"]
    chinese = both.caption_images(images, language="zh", decoding="greedy")
    assert len(chinese) == 2 and all(isinstance(c, str) and " " not in c for c in chinese)
    assert (
        both.select("zh") == "zh" and both.caption_images(images) == chinese
    )  # the selection is the default
    with pytest.raises(UnknownLanguage, match="'fr' is not trained in this run; available: en, zh"):
        both.caption_images(images, language="fr")
    assert both.decoding.max_new_tokens == 8  # the rest is the English captioner's


class LanguagePredictor:
    """The endpoint's predictor protocol, with the languages a packaged run would have."""

    def __init__(self, languages=("en",)):
        self.known, self.calls = list(languages), []

    def caption(self, images, decoding, detail, language="en"):
        self.calls.append(language)
        return [f"{language} {decoding} {detail}" for _ in images]

    def narrate(self, images, captions, sentences):
        return [[c] for c in captions]

    def top_k(self, images, k):
        return None

    def languages(self):
        return self.known


def request(**fields) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(buf, format="PNG")
    return json.dumps({"image": base64.b64encode(buf.getvalue()).decode(), "top_k": 0, **fields})


def test_endpoint_language_option():
    predictor = LanguagePredictor(["en", "zh"])
    status, doc = handle(request(language="zh", alternatives=True), "application/json", predictor)
    assert status == 200 and doc["language"] == "zh" and doc["predictions"][0]["caption"] == "zh beam short"
    assert {a["caption"].split()[0] for a in doc["predictions"][0]["alternatives"]} == {"zh"}
    status, doc = handle(request(), "application/json", predictor)  # no language: English, as before
    assert status == 200 and "language" not in doc and doc["predictions"][0]["caption"] == "en beam short"
    status, doc = handle(request(language="fr"), "application/json", predictor)
    assert status == 400 and doc["error"]["code"] == "unknown_language"
    assert "'fr' is not trained in this model; available: en, zh" in doc["error"]["message"]
    status, doc = handle(request(language="zh"), "application/json", LanguagePredictor())  # a run without 08
    assert status == 400 and doc["error"]["code"] == "unknown_language"
    status, doc = handle(request(language=7), "application/json", predictor)
    assert status == 400 and doc["error"]["code"] == "invalid_field"
    status, doc = handle(request(language="zh", sentences=3), "application/json", predictor)
    assert status == 400 and "English only" in doc["error"]["message"]
    assert predictor.calls == ["zh"] * 4 + ["en"]  # the rejected requests never reached the models


def test_demo_language_selector(tmp_path: Path):
    from helpers.demo.app import CaptionApp
    from helpers.demo.core import DemoModels

    def classify(batch):
        return [[("thing", 1.0)] for _ in batch]

    english_only = CaptionApp(DemoModels(EnglishCaptioner(), classify))
    assert english_only.language is None  # a run without 08: the app is as before
    both = MultilingualCaptioner.load(EnglishCaptioner(), run_with_chinese(tmp_path))
    app = CaptionApp(DemoModels(both, classify))
    assert list(app.language.options) == [("English", "en"), ("Chinese (native)", "zh")]
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (30, 30, 200)).save(buf, format="PNG")
    app.files = [("blue.png", buf.getvalue())]
    assert app.run()[0].caption == "english short"
    app.language.value = "zh"  # re-captions the last upload in Chinese
    assert app.results[0].ok and app.results[0].caption != "english short" and both.language == "zh"
