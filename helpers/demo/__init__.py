"""Notebook 07's demo: pure callbacks (core, explore), model loading (models, explainer), result cards
(render, card), the app."""

from helpers.choices import DECODINGS, DETAILS
from helpers.demo.app import CaptionApp, build_app
from helpers.demo.core import (
    DEFAULT_MAX_UPLOAD_MB,
    DemoModels,
    Result,
    process_file,
    process_upload,
    upload_files,
)
from helpers.demo.explore import OVERLAYS, look_here, reset, show_where, tell_more
from helpers.demo.models import (
    DemoConfig,
    classifier_dir,
    example_images,
    load_models,
    read_files,
    write_captions,
)
from helpers.demo.render import banner_html, card_html

__all__ = [
    "DECODINGS",
    "DEFAULT_MAX_UPLOAD_MB",
    "DETAILS",
    "OVERLAYS",
    "CaptionApp",
    "DemoConfig",
    "DemoModels",
    "Result",
    "banner_html",
    "build_app",
    "card_html",
    "classifier_dir",
    "example_images",
    "load_models",
    "look_here",
    "process_file",
    "process_upload",
    "read_files",
    "reset",
    "show_where",
    "tell_more",
    "upload_files",
    "write_captions",
]
