"""Notebook 07's demo: pure callbacks (core), model loading (models), result cards (render), the app."""

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
from helpers.demo.models import (
    DemoConfig,
    classifier_dir,
    example_images,
    load_models,
    read_files,
    write_captions,
)
from helpers.demo.render import card_html

__all__ = [
    "DECODINGS",
    "DEFAULT_MAX_UPLOAD_MB",
    "DETAILS",
    "CaptionApp",
    "DemoConfig",
    "DemoModels",
    "Result",
    "build_app",
    "card_html",
    "classifier_dir",
    "example_images",
    "load_models",
    "process_file",
    "process_upload",
    "read_files",
    "upload_files",
    "write_captions",
]
