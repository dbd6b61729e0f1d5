"""The card actions, as pure callbacks: *Tell me more*, *Look here*, *Reset* and *Show where it looked*.

Each takes a captioned `Result` and returns a new one; nothing here touches widgets. They run on demand,
one image at a time, never for every upload. A model that fails leaves the card as it was, with a notice.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

import numpy as np

from helpers.caption.narrative import Narrative, Ranked
from helpers.demo.core import DemoModels, Result, png_thumbnail

log = logging.getLogger(__name__)

#: What *Show where it looked* can show: nothing, the classifier's LayerCAM or the caption's occlusion map.
OVERLAYS = ("off", "classifier", "caption")
OVERLAY_TITLES = {
    "classifier": "LayerCAM of the classifier's top-1",
    "caption": "Occlusion: where greying out hurts the caption most",
}


class Explainer(Protocol):
    """What the card actions need from the models (the real ones or a stand-in in tests)."""

    grid: int  # Look here: a grid x grid of cells

    def more(self, image: np.ndarray, narrative: Narrative) -> tuple[Narrative, Ranked | None]: ...

    def look_here(self, image: np.ndarray, narrative: Narrative, row: int, col: int) -> Narrative: ...

    def classifier_map(self, image: np.ndarray) -> tuple[np.ndarray, str]: ...

    def caption_map(self, image: np.ndarray, caption: str) -> np.ndarray: ...


def _ready(result: Result, models: DemoModels) -> str | None:
    """Why an action cannot run on this card, or None."""
    if not result.ok or result.image is None or result.narrative is None:
        return "This card has no captioned picture."
    if models.explainer is None:
        return "Narratives and overlays need the trained models (run notebooks 05 and 06)."
    return None


def _failed(result: Result, what: str, err: Exception) -> Result:
    log.exception("%s failed on %s", what, result.name)
    return dataclasses.replace(result, notice=f"{what} failed: {type(err).__name__}: {err}")


def tell_more(result: Result, models: DemoModels) -> Result:
    """One more sentence that says something new, or a notice that nothing new is left."""
    if (why := _ready(result, models)) is not None:
        return dataclasses.replace(result, notice=why)
    try:
        narrative, picked = models.explainer.more(result.image, result.narrative)
    except Exception as err:  # the card and the app keep working
        return _failed(result, "Tell me more", err)
    notice = None if picked else "Nothing new to add about this picture."
    return dataclasses.replace(result, narrative=narrative, notice=notice)


def look_here(result: Result, models: DemoModels, row: int, col: int) -> Result:
    """The caption of grid cell (row, col), added with where it is."""
    if (why := _ready(result, models)) is not None:
        return dataclasses.replace(result, notice=why)
    try:
        narrative = models.explainer.look_here(result.image, result.narrative, row, col)
    except Exception as err:
        return _failed(result, "Look here", err)
    return dataclasses.replace(result, narrative=narrative, notice=None)


def reset(result: Result) -> Result:
    """Back to the caption alone, overlay off."""
    if result.narrative is None:
        return result
    return dataclasses.replace(
        result, narrative=result.narrative.reset(), overlay=None, overlay_title="", notice=None
    )


def show_where(result: Result, models: DemoModels, which: str) -> Result:
    """The card with the chosen overlay ("off", "classifier" or "caption")."""
    if which not in OVERLAYS:
        raise ValueError(f"unknown overlay {which!r}; choose one of {', '.join(OVERLAYS)}")
    if which == "off":
        return dataclasses.replace(result, overlay=None, overlay_title="", notice=None)
    if (why := _ready(result, models)) is not None:
        return dataclasses.replace(result, notice=why)
    from helpers.saliency import overlay

    try:
        if which == "classifier":
            heat, label = models.explainer.classifier_map(result.image)
            title = f"{OVERLAY_TITLES[which]} ({label})"
        else:
            heat = models.explainer.caption_map(result.image, result.caption or "")
            title = OVERLAY_TITLES[which]
    except Exception as err:
        return _failed(result, "Show where it looked", err)
    png = png_thumbnail(overlay(result.image, heat))
    return dataclasses.replace(result, overlay=png, overlay_title=title, notice=None)
