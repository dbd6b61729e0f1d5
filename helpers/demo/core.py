"""The demo's pure callbacks: uploaded bytes in, a captioned and classified `Result` per file out.

Nothing here touches widgets, so every path (good photos, corrupt files, model failures) is unit-testable
without a browser. One bad file never stops the others and no exception escapes `process_upload`: an image
that cannot be decoded or a model that fails on it becomes a `Result` with a clear `error`.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from helpers.caption.narrative import Narrative
from helpers.choices import DECODINGS, DETAILS, MODEL_MAX_SIDE, fit_within
from helpers.data.images import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image

log = logging.getLogger(__name__)

#: Default per-file upload limit (MB). A browser sends a whole upload in one websocket message and a stock
#: Jupyter server (tornado) drops the connection for messages over 10 MiB, so the default stays below that.
DEFAULT_MAX_UPLOAD_MB = 8.0
#: Longest side (pixels) of the thumbnail shown on a result card.
THUMB_SIDE = 160

#: NHWC uint8 batch -> for each image, the top-k (label, probability) pairs, best first.
TopK = Callable[[np.ndarray], list[list[tuple[str, float]]]]


class Captioner(Protocol):
    """What the demo needs from the trained captioner."""

    def caption_images(self, images: list[np.ndarray], decoding: str, detail: str) -> list[str]: ...


@dataclass
class DemoModels:
    """The models, loaded once: the captioner and the classifier's top-k, with where they came from."""

    captioner: Captioner
    classify: TopK
    captioner_dir: str = ""
    classifier_name: str = ""
    explainer: Any = None  # explore.Explainer: narratives and overlays; None: the cards have no actions
    trained_on: str = ""  # the preset the models were trained with ("smoke", "sample", "full")


@dataclass
class Result:
    """One uploaded file's outcome: caption and top-5, or a clear error; never both missing."""

    name: str
    caption: str | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # wall time for this file: decode, classify, caption
    error: str | None = None
    thumbnail: bytes | None = None  # PNG, at most THUMB_SIDE pixels a side
    size: tuple[int, int] | None = None  # decoded (height, width) in pixels, upright
    decoding: str = "greedy"
    detail: str = "short"
    # Set by the card actions (helpers.demo.explore); the picture is kept for them, never written out.
    narrative: Narrative | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    overlay: bytes | None = None  # PNG: the picture with where a model looked
    overlay_title: str = ""
    notice: str | None = None  # what the last card action has to say (nothing new, a failure)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """Everything but the thumbnail, for captions.json."""
        return {
            "name": self.name,
            "caption": self.caption,
            "top5": [{"label": label, "prob": round(float(p), 6)} for label, p in self.top5],
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "size": list(self.size) if self.size else None,
            "decoding": self.decoding,
            "detail": self.detail,
            "narrative": [s.display() for s in self.narrative.sentences] if self.narrative else None,
        }


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Return `value` or raise naming the allowed ones (a programming error, not a per-file one)."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return value


def megabytes(n_bytes: int | float) -> str:
    """'8.04 MB': decimal megabytes as file browsers show them, two decimals so a file just over a limit
    never reads as equal to it."""
    return f"{n_bytes / 1e6:.2f} MB"


def upload_files(value: Sequence[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """ipywidgets 8 FileUpload.value (a tuple of dicts with a memoryview `content`) -> [(name, bytes)]."""
    return [(str(item["name"]), bytes(item["content"])) for item in value]


def png_thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> bytes:
    """A PNG of the image shrunk to at most `side` pixels a side."""
    buf = io.BytesIO()
    Image.fromarray(fit_within(image, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def read_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode one upload, refusing it first when it is over the stated size limit."""
    if len(data) > max_bytes:
        raise ImageDecodeError(
            f"file is {megabytes(len(data))}, over the {max_bytes / 1e6:g} MB upload limit"
        )
    # The decoder names its input in its messages; the card already shows the file name.
    return decode_image(data, max_pixels=max_pixels)


def run_models(image: np.ndarray, models: DemoModels, decoding: str, detail: str) -> tuple[str, list]:
    """Caption and top-5 of one upright RGB image."""
    small = fit_within(image, MODEL_MAX_SIDE)
    top5 = models.classify(small[None])[0]
    caption = models.captioner.caption_images([small], decoding=decoding, detail=detail)[0]
    return caption, [(str(label), float(p)) for label, p in top5]


def process_file(
    name: str, data: bytes, models: DemoModels, decoding: str, detail: str, max_bytes: int, max_pixels: int
) -> Result:
    """One file -> Result; an undecodable file or a failing model gives a Result with `error` set."""
    start = time.perf_counter()
    result = Result(name=name, decoding=decoding, detail=detail)
    try:
        image = read_image(data, max_bytes, max_pixels)
    except ImageDecodeError as err:
        result.error = f"Could not read this file: {strip_source(str(err))}"
        result.seconds = time.perf_counter() - start
        return result
    result.size = (int(image.shape[0]), int(image.shape[1]))
    result.thumbnail = png_thumbnail(image)
    try:
        result.caption, result.top5 = run_models(image, models, decoding, detail)
        result.narrative = Narrative.start(result.caption or "(no caption)")
        result.image = fit_within(image, MODEL_MAX_SIDE)
    except Exception as err:  # a model failing on one image must not stop the rest of the upload
        log.exception("models failed on %s", name)
        result.error = f"The models failed on this image: {type(err).__name__}: {err}"
    result.seconds = time.perf_counter() - start
    return result


def strip_source(message: str) -> str:
    """Drop the decoder's 'image bytes: ' prefix (the card already names the file)."""
    prefix = "image bytes: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def process_upload(
    files: Sequence[tuple[str, bytes]],
    models: DemoModels,
    decoding: str = "greedy",
    detail: str = "short",
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1e6),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Result]:
    """Caption and classify every file of one upload, in order; each gets a Result, good or bad."""
    check_choice(decoding, DECODINGS, "decoding")
    check_choice(detail, DETAILS, "detail")
    results = []
    for i, (name, data) in enumerate(files):
        if progress is not None:
            progress(i, len(files), name)
        results.append(process_file(name, bytes(data), models, decoding, detail, max_bytes, max_pixels))
    return results
