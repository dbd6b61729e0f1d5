"""The ipywidgets 8 app: upload images, see each one's caption, its CIFAR-100 top-5 and the time taken;
on each card, grow a narrative (*Tell me more*, *Look here*, *Reset*) and see where the models looked.

The widget only wires controls to `core.process_upload` and shows a `card.CardView` per result; the
models are loaded once (`DemoModels`) and shared by every upload. A banner says when the models come from
the smoke or sample preset.
"""

from __future__ import annotations

import time
from html import escape

import ipywidgets as widgets

from helpers.choices import DECODINGS, DETAILS
from helpers.demo.card import CardView
from helpers.demo.core import (
    DEFAULT_MAX_UPLOAD_MB,
    DemoModels,
    Result,
    check_choice,
    process_upload,
    upload_files,
)
from helpers.demo.render import banner_html, summary_text

_ACCEPT = "image/*"


def toggle(options: tuple[str, ...], value: str, description: str) -> widgets.ToggleButtons:
    """Compact toggle buttons with the description on the same line."""
    return widgets.ToggleButtons(
        options=options,
        value=value,
        description=description,
        style={"description_width": "initial", "button_width": "80px"},
    )


class CaptionApp:
    """Upload button, decoding and detail controls, a status line and one card per uploaded image."""

    def __init__(
        self,
        models: DemoModels,
        decoding: str = "greedy",
        detail: str = "short",
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    ):
        self.models = models
        self.max_bytes = int(max_upload_mb * 1e6)
        self.upload = widgets.FileUpload(accept=_ACCEPT, multiple=True, description="Upload images")
        self.decoding = toggle(DECODINGS, check_choice(decoding, DECODINGS, "decoding"), "Decoding")
        self.detail = toggle(DETAILS, check_choice(detail, DETAILS, "detail"), "Caption")
        self.status = widgets.HTML(value="Choose one or more images.")
        self.status.add_class("demo-status")
        self.cards = widgets.VBox()
        self.cards.add_class("demo-cards")
        # A programming error inside a callback shows its traceback here instead of vanishing in Voila.
        self.log = widgets.Output()
        self.files: list[tuple[str, bytes]] = []  # the last upload, re-captioned when a control changes
        self.results: list[Result] = []
        self.views: list[CardView] = []
        self.summary = ""  # the status line of the last upload, shown again after a card action
        self.upload.observe(self._on_upload, names="value")
        self.decoding.observe(self._on_settings, names="value")
        self.detail.observe(self._on_settings, names="value")
        self.language = self._language_selector()  # None: English only (no notebook 08 in this run)
        chosen = [self.upload, self.decoding, self.detail, *([self.language] if self.language else [])]
        controls = widgets.HBox(chosen, layout={"flex_flow": "row wrap"})
        self.widget = widgets.VBox([self._header(), controls, self.status, self.cards, self.log])
        self.widget.add_class("demo-app")

    def _header(self) -> widgets.HTML:
        """Title, where the models came from and the stated upload limit."""
        limit = f"{self.max_bytes / 1e6:g} MB"
        text = (
            "<h3 style='margin:4px 0'>Caption your images</h3>"
            f"<div class='demo-limit'>JPEG, PNG, GIF, WebP, BMP or TIFF, up to <b>{limit}</b> each; "
            "several at once are fine. Larger files and non-images are refused with a message.</div>"
            f"<div style='color:#57606a;font-size:85%'>captioner: {escape(self.models.captioner_dir)} · "
            f"classifier: {escape(self.models.classifier_name)}</div>"
        )
        text += banner_html(self.models.trained_on)
        return widgets.HTML(value=text)

    def _language_selector(self) -> widgets.Dropdown | None:
        """English plus every language notebook 08 trained in the run; None when there is no other."""
        choices = getattr(self.models.captioner, "choices", None)
        if choices is None or len(choices()) < 2:
            return None
        selector = widgets.Dropdown(options=choices(), value="en", description="Language")
        selector.style.description_width = "initial"
        selector.observe(self._on_language, names="value")
        return selector

    def _on_language(self, change: dict) -> None:
        """Language changed: caption the last upload again in it."""
        with self.log:
            self.models.captioner.select(change["new"])
            if self.files:
                self.run()

    def _on_upload(self, change: dict) -> None:
        """New files chosen: caption them, then clear the widget so the same file can be chosen again."""
        if not change["new"]:
            return  # our own reset below
        with self.log:
            self.files = upload_files(change["new"])
            self.upload.value = ()  # also frees the uploaded bytes held by the widget
            self.run()

    def _on_settings(self, change: dict) -> None:
        """Decoding or detail changed: caption the last upload again with the new settings."""
        with self.log:
            if self.files:
                self.run()

    def _progress(self, i: int, n: int, name: str) -> None:
        self.status.value = f"Captioning {i + 1} of {n}: {escape(name)} …"

    def _card_busy(self, on: bool) -> None:
        """A card action is running: say so, and keep uploads out of the way until it is done."""
        self.upload.disabled = on
        self.status.value = "Working on a card …" if on else self.summary

    def run(self) -> list[Result]:
        """Caption `self.files` with the current settings and show one card per file."""
        start = time.perf_counter()
        self.upload.disabled = True
        try:
            self.results = process_upload(
                self.files,
                self.models,
                decoding=self.decoding.value,
                detail=self.detail.value,
                max_bytes=self.max_bytes,
                progress=self._progress,
            )
        finally:
            self.upload.disabled = False  # the app stays usable whatever happened
        self.views = [CardView(r, self.models, self._card_busy) for r in self.results]
        self.cards.children = [view.widget for view in self.views]
        self.summary = summary_text(self.results, time.perf_counter() - start)
        self.status.value = self.summary
        return self.results


def build_app(models: DemoModels, **settings) -> CaptionApp:
    """A ready `CaptionApp`; display `app.widget`."""
    return CaptionApp(models, **settings)
