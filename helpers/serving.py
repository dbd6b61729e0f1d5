"""The captioning endpoint's request handler: image bytes or JSON with base64 images in, JSON out.

`handle(body, content_type, predictor)` is pure (bytes in, ``(status, dict)`` out) so every parsing and
error path is tested in process; bad input always gets a 4xx with a JSON error, never an exception.
SageMaker's PyTorch inference image calls `model_fn` and `transform_fn`, which the packaged
``code/inference.py`` re-exports; the model side is a thin adapter over `helpers.caption` and
`helpers.classify`, loaded from the archive layout that `helpers.aws.package` writes.

JSON requests: ``{"image": "<base64>"}`` or ``{"images": ["<base64>", ...]}``, optionally with
``"decoding": "greedy"|"beam"``, ``"alternatives": true``, ``"top_k": 0..10`` and ``"sentences": 1..5``
(a narrative: the caption, then sentences that each say something new). Responses:
``{"predictions": [{"caption": ..., "narrative": [...], "alternatives": [...], "top_k": [...]}]}``;
errors: ``{"error": {"status": 4xx, "code": ..., "message": ...}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from helpers.choices import DECODINGS, DETAILS, fit_within
from helpers.data.images import ImageDecodeError, decode_image

# The inference image installs only code/requirements.txt: nothing here may import the notebook-side
# packages (ipywidgets through helpers.demo, pandas, matplotlib...); tests/test_serving.py checks that.
JSON_TYPE = "application/json"
#: Raw-image content types; the body is decoded by the same decoder as the demo's uploads, so every format
#: the demo accepts (JPEG, PNG, GIF, WebP, BMP, TIFF...) works under any of them.
IMAGE_TYPES = (
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "application/x-image",
    "application/octet-stream",
)
ACCEPTED_TYPES = (*IMAGE_TYPES, JSON_TYPE)
JSON_KEYS = {"image", "images", "decoding", "alternatives", "top_k", "sentences", "language"}


@dataclass(frozen=True)
class Limits:
    """What one request may hold; SageMaker itself caps a real-time request at 6 MB."""

    max_request_bytes: int = 6_000_000  # whole body, bytes
    max_images: int = 8  # images per JSON request
    max_pixels: int = 25_000_000  # per decoded image (a 25-megapixel RGB image is 75 MB in memory)
    max_top_k: int = 10
    max_sentences: int = 5  # narrative length; each sentence past the first decodes ~11 candidates
    # Narrative sentences past the first, summed over a request's images. Each costs ~8 s at the full
    # preset's shapes on 2 cores (benchmarks/serving_load.py: 8 images x 5 sentences ran past TorchServe's
    # timeout), and SageMaker gives an invocation 60 s: 4 keeps the slowest request near 35 s there.
    max_extra_sentences: int = 4


@dataclass(frozen=True)
class Request:
    """A validated request: decoded upright RGB images and the decoding options."""

    images: list[np.ndarray]
    decoding: str = "beam"
    alternatives: bool = False
    top_k: int = 5
    sentences: int = 1  # > 1: a narrative of this many sentences
    language: str = "en"  # caption language: English or one notebook 08 trained in the run


class RequestError(Exception):
    """Bad input, with the HTTP status and a short machine-readable code for the client."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def payload(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


class Predictor(Protocol):
    """What the handler needs from the models (the real adapter or a fake in tests)."""

    def caption(self, images: list[np.ndarray], decoding: str, detail: str) -> list[str]: ...

    def top_k(self, images: list[np.ndarray], k: int) -> list[list[tuple[str, float]]] | None: ...

    def narrate(self, images: list[np.ndarray], captions: list[str], sentences: int) -> list[list[str]]: ...


def media_type(content_type: str | None) -> str:
    """'image/JPEG; charset=x' -> 'image/jpeg'; a missing or unknown type is a 415."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in ACCEPTED_TYPES:
        shown = repr(content_type) if content_type else "no Content-Type"
        raise RequestError(
            415,
            "unsupported_content_type",
            f"{shown} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}",
        )
    return kind


def decode_one(data: bytes, what: str, limits: Limits) -> np.ndarray:
    """Image bytes in any format the demo decodes -> (H, W, 3) uint8 RGB; else a 400 naming `what`."""
    if not data:
        raise RequestError(400, "empty_image", f"{what} is empty")
    try:
        image = decode_image(data, max_pixels=limits.max_pixels)
    except ImageDecodeError as err:
        message = str(err).removeprefix("image bytes: ")
        raise RequestError(400, "invalid_image", f"{what}: {message}") from err
    return image


def _b64(text: Any, what: str) -> bytes:
    """Strict base64 (an optional data: URL prefix and line breaks allowed)."""
    if not isinstance(text, str):
        raise RequestError(400, "invalid_field", f"{what} must be a base64 string, got {type(text).__name__}")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(400, "invalid_base64", f"{what} is not valid base64 ({err})") from err


def _options(doc: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The optional knobs of a JSON request, validated."""
    decoding = doc.get("decoding", "beam")
    if decoding not in DECODINGS:
        raise RequestError(
            400, "invalid_field", f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}"
        )
    alternatives = doc.get("alternatives", False)
    if not isinstance(alternatives, bool):
        raise RequestError(400, "invalid_field", f"alternatives must be true or false, got {alternatives!r}")
    language = doc.get("language", "en")
    if not isinstance(language, str) or not language:
        raise RequestError(400, "invalid_field", f'language must be a code such as "en", got {language!r}')
    return {
        "decoding": decoding,
        "language": language,
        "alternatives": alternatives,
        "top_k": _bounded_int(doc, "top_k", 5, 0, limits.max_top_k),
        "sentences": _bounded_int(doc, "sentences", 1, 1, limits.max_sentences),
    }


def _bounded_int(doc: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    """doc[key] as an integer in low..high (booleans refused), or a 400 naming the range."""
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, "invalid_field", f"{key} must be an integer {low}..{high}, got {value!r}")
    return value


def parse_json(text: str, limits: Limits) -> Request:
    """A JSON request document -> Request."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(400, "invalid_json", f"body is not valid JSON ({err})") from err
    if not isinstance(doc, dict):
        raise RequestError(400, "invalid_json", 'body must be a JSON object like {"image": "<base64>"}')
    unknown = sorted(set(doc) - JSON_KEYS)
    if unknown:
        raise RequestError(
            400,
            "unknown_field",
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(JSON_KEYS))}",
        )
    if ("image" in doc) == ("images" in doc):
        raise RequestError(400, "missing_image", 'give exactly one of "image" (base64) or "images" (a list)')
    items = [doc["image"]] if "image" in doc else doc["images"]
    if not isinstance(items, list) or not items:
        raise RequestError(400, "missing_image", '"images" must be a non-empty list of base64 strings')
    if len(items) > limits.max_images:
        raise RequestError(
            413, "too_many_images", f"{len(items)} images in one request; at most {limits.max_images}"
        )
    options = _options(doc, limits)
    extra = len(items) * (options["sentences"] - 1)
    if extra > limits.max_extra_sentences:
        raise RequestError(
            413,
            "too_much_work",
            f"{len(items)} image(s) x {options['sentences']} sentences is {extra} narrative sentences "
            f"past the first; at most {limits.max_extra_sentences} per request (e.g. one image with "
            f"{limits.max_extra_sentences + 1} sentences): send the images in separate requests",
        )
    names = ["image"] if "image" in doc else [f"images[{i}]" for i in range(len(items))]
    images = [decode_one(_b64(item, name), name, limits) for item, name in zip(items, names, strict=True)]
    return Request(images=images, **options)


def parse_request(body: bytes | str | None, content_type: str | None, limits: Limits = Limits()) -> Request:
    """Raw body and Content-Type -> Request, or RequestError with a 4xx status."""
    kind = media_type(content_type)
    if body is None or len(body) == 0:
        raise RequestError(400, "empty_body", "request body is empty; send a JPEG/PNG or a JSON document")
    if len(body) > limits.max_request_bytes:
        raise RequestError(
            413,
            "too_large",
            f"request is {len(body) / 1e6:.1f} MB; the limit is {limits.max_request_bytes / 1e6:g} MB",
        )
    if kind == JSON_TYPE:
        if isinstance(body, str):
            return parse_json(body, limits)
        try:
            return parse_json(bytes(body).decode("utf-8"), limits)
        except UnicodeDecodeError as err:
            raise RequestError(400, "invalid_json", f"JSON body is not UTF-8 ({err})") from err
    if isinstance(body, str):
        raise RequestError(400, "invalid_image", f"{kind} body arrived as text; send the raw image bytes")
    return Request(images=[decode_one(bytes(body), "image", limits)])


def predict(request: Request, predictor: Predictor) -> dict[str, Any]:
    """Caption (and classify) the request's images -> the response document."""
    images = [fit_within(image) for image in request.images]
    caption = _in_language(predictor, request)
    captions = caption(images, request.decoding, "short")
    predictions: list[dict[str, Any]] = [{"caption": c} for c in captions]
    if request.alternatives:
        for decoding in DECODINGS:
            for detail in DETAILS:
                if (decoding, detail) == (request.decoding, "short"):
                    continue
                for pred, text in zip(predictions, caption(images, decoding, detail), strict=True):
                    pred.setdefault("alternatives", []).append(
                        {"decoding": decoding, "detail": detail, "caption": text}
                    )
    if request.sentences > 1:
        stories = predictor.narrate(images, captions, request.sentences)
        for pred, story in zip(predictions, stories, strict=True):
            pred["narrative"] = story
    ranked = predictor.top_k(images, request.top_k) if request.top_k else None
    for pred, pairs in zip(predictions, ranked or [], strict=False):
        pred["top_k"] = [{"label": str(label), "probability": round(float(p), 6)} for label, p in pairs]
    out = {"predictions": predictions, "decoding": request.decoding}
    return out if request.language == "en" else {**out, "language": request.language}


def _in_language(predictor: Predictor, request: Request):
    """`predictor.caption`, in the request's language; a language the run has not trained is a 400."""
    if request.language == "en":
        return predictor.caption
    known = getattr(predictor, "languages", lambda: ["en"])()
    if request.language not in known:
        raise RequestError(
            400,
            "unknown_language",
            f"language {request.language!r} is not trained in this model; available: {', '.join(known)}",
        )
    if request.sentences > 1:
        raise RequestError(400, "invalid_field", "narratives (sentences > 1) are English only")

    def caption(images: list[np.ndarray], decoding: str, detail: str) -> list[str]:
        return predictor.caption(images, decoding, detail, language=request.language)

    return caption


def handle(
    body: bytes | str | None, content_type: str | None, predictor: Predictor, limits: Limits = Limits()
) -> tuple[int, dict[str, Any]]:
    """One request -> (HTTP status, JSON document); bad input gives its 4xx and an error document."""
    try:
        request = parse_request(body, content_type, limits)
        return 200, predict(request, predictor)  # a language the model lacks is found here
    except RequestError as err:
        return err.status, err.payload()


# ---- the real models: a thin adapter over helpers.caption and helpers.classify ----

#: The model archive's layout (written by helpers.aws.package): the trained captioner, the best classifier
#: (its config.json holds the label names) and serving.json saying what was packaged.
CAPTIONER_DIR, CLASSIFIER_DIR, SERVING_JSON = "captioner", "classifier", "serving.json"
LANGUAGES_DIR = "languages"  # languages notebook 08 trained: <code>/metrics.json and <code>/model/<route>/


@dataclass
class ModelPredictor:
    """The trained captioner and (optionally) the best classifier, loaded once per worker."""

    captioner: Any
    classifier: Any = None
    classifier_config: Any = None
    label_names: tuple[str, ...] = ()

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelPredictor:
        """Load from an unpacked archive; the classifier is optional (captions only without it)."""
        from helpers.caption.captioner import Captioner

        root = Path(model_dir)
        if not (root / SERVING_JSON).is_file():
            raise FileNotFoundError(f"{root / SERVING_JSON} not found: not a model archive from helpers.aws")
        captioner = Captioner.load(root / CAPTIONER_DIR)
        if (root / LANGUAGES_DIR).is_dir():  # an archive from a run with notebook 08
            from helpers.multilingual.serving import MultilingualCaptioner

            captioner = MultilingualCaptioner.load(captioner, root / LANGUAGES_DIR)
        if not (root / CLASSIFIER_DIR).is_dir():
            return cls(captioner)
        from helpers.serving_classifier import ServingClassifier  # Keras on any backend: no TensorFlow

        classifier = ServingClassifier.load(root / CLASSIFIER_DIR)
        return cls(captioner, classifier, classifier.config, classifier.label_names)

    def caption(
        self, images: list[np.ndarray], decoding: str, detail: str, language: str = "en"
    ) -> list[str]:
        if language == "en":
            return self.captioner.caption_images(images, decoding=decoding, detail=detail)
        return self.captioner.caption_images(images, decoding=decoding, detail=detail, language=language)

    def languages(self) -> list[str]:
        """Caption languages this model speaks: English, plus those notebook 08 trained."""
        return ["en", *getattr(self.captioner, "languages", {})]

    def narrate(self, images: list[np.ndarray], captions: list[str], sentences: int) -> list[list[str]]:
        """Per image, its caption and up to `sentences - 1` more that each say something new."""
        from helpers.caption.storyteller import Storyteller

        features = self.captioner.encode(images)
        stories = Storyteller(self.captioner).narrate_features(features, sentences, captions=captions)
        return [[s.display() for s in story.sentences] for story in stories]

    def top_k(self, images: list[np.ndarray], k: int) -> list[list[tuple[str, float]]] | None:
        """Per image (sizes differ within a request), the k most likely labels, best first."""
        if self.classifier is None:
            return None
        return [self.classifier.top_k(image, k) for image in images]


# ---- the SageMaker inference-toolkit entry points (re-exported by the packaged code/inference.py) ----


def model_fn(model_dir: str) -> Predictor:
    """Load the captioner and the classifier from the unpacked model archive."""
    return ModelPredictor.load(model_dir)


def transform_fn(
    predictor: Predictor, body: bytes | str, content_type: str, accept: str | None, context: Any = None
) -> tuple[str, str]:
    """The packaged entry point: one request through `handle`, its status set on the toolkit's context.

    The toolkit answers an exception raised from input_fn/predict_fn with the message *and a Python
    traceback* in the body (sagemaker-inference 1.10, Transformer.handle_error), which no client can parse;
    so bad input is answered here: the 4xx status on the request's context and the JSON error document as
    the body. Anything else still raises and becomes the toolkit's 500.
    """
    status, doc = handle(body, content_type, predictor)
    if status != 200 and context is not None:
        context.set_response_status(status, HTTPStatus(status).phrase)
    return json.dumps(doc), JSON_TYPE
