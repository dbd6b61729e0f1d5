"""Notebook 08's configuration: every knob with its per-preset default, derived in one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.caption.decode import DecodeConfig
from helpers.caption.model import PrefixConfig
from helpers.caption.train import TrainConfig
from helpers.config import RunPaths, preset_knobs, require_data_source
from helpers.multilingual.languages import Language, get_language

ROUTES = ("native", "translate-train", "translate-test")

DEFAULTS: dict[str, dict[str, Any]] = {
    # "small": a random-init 2-layer GPT-2 with a vocabulary built from the captions; None: the registry's
    # pretrained decoder (uer/gpt2-chinese-cluecorpussmall for Chinese).
    "decoder": {"smoke": "small", "sample": "small", "full": None},
    # "train": a small MarianMT trained here on parallel captions; None: the registry's pretrained one.
    "translator": {"smoke": "train", "sample": "train", "full": None},
    "prefix_length": {"smoke": 4, "sample": 4, "full": 10},
    "epochs": {"smoke": 5, "sample": 1, "full": 10},  # sample: a format check of the real captions
    "batch_size": {"smoke": 32, "sample": 32, "full": 40},
    "lr": {"smoke": 1e-3, "sample": 1e-3, "full": 2e-5},
    "decoding": {"smoke": "beam3", "sample": "beam3", "full": "beam3"},
    # Tokens per caption, end included: characters for Chinese (synthetic captions have at most 26).
    "max_tokens": {"smoke": 32, "sample": 40, "full": 40},
    "translator_steps": {"smoke": 500, "sample": 200, "full": 0},  # batches of 32 sentence pairs
    "translator_vocab": {"smoke": 64, "sample": 2000, "full": 0},  # sentencepiece pieces per side (at most)
    "max_train_images": {"smoke": None, "sample": 200, "full": None},
}


@dataclass
class MultilingualConfig:
    """Everything notebook 08 does, resolved from its parameters."""

    preset: str
    paths: RunPaths
    data_source: str | None  # folder with the languages' caption files; None: synthetic (smoke) or fetched
    languages: list[Language]
    knobs: dict[str, Any]
    prefix: PrefixConfig  # mapper and prefix length; feature_dim, decoder and vocabulary filled per language
    train: TrainConfig
    decoding: DecodeConfig
    seed: int = 0

    @classmethod
    def for_preset(
        cls,
        preset: str,
        run_dir: str | None,
        data_source: str | None,
        languages: list,
        seed: int = 0,
        **given: Any,
    ) -> MultilingualConfig:
        """Knobs left as None take the preset's default."""
        paths = RunPaths.for_run(preset, run_dir)
        require_data_source(preset, data_source, "a folder of caption files (e.g. <data-dir>/flickr8k-cn)")
        langs = [get_language(spec) for spec in languages]
        if not langs or any(lang.code == "en" for lang in langs):
            raise ValueError("languages: give one or more languages other than English (06 trains English)")
        knobs = preset_knobs(preset, DEFAULTS, **given)
        prefix = PrefixConfig(feature_dim=1, prefix_length=knobs["prefix_length"])
        train = TrainConfig(
            epochs=knobs["epochs"],
            batch_size=knobs["batch_size"],
            lr=knobs["lr"],
            max_tokens=knobs["max_tokens"],
            seed=seed,
        )
        decoding = DecodeConfig.parse(knobs["decoding"], max_new_tokens=knobs["max_tokens"])
        return cls(preset, paths, data_source, langs, knobs, prefix, train, decoding, seed)

    def folder(self, language: Language) -> Path:
        """run_dir/multilingual/<code>/: metrics.json, model/, translator/, examples.html."""
        return self.paths.root / "multilingual" / language.code

    def flickr_source(self) -> Path:
        """The Flickr8k folder notebook 06 read (its metrics record it), else run_dir/sources/flickr8k."""
        from helpers.caption.config import recorded_config

        config = recorded_config(self.paths)
        if config is None:
            metrics = self.paths.captions / "metrics.json"
            raise FileNotFoundError(f"{metrics} not found: run notebook 06 for this run_dir first")
        dataset = config.get("dataset", "flickr8k")
        if dataset != "flickr8k":
            raise ValueError(
                f"notebook 06 trained on {dataset!r} in {self.paths.root}: the languages of notebook 08 "
                "caption the Flickr8k images (Flickr8K-CN's files name them), so 08 needs a run folder "
                "where 06 ran with dataset='flickr8k'"
            )
        given = config.get("data_source")
        return Path(given).expanduser() if given else self.paths.sources / "flickr8k"

    def resolve_data(self) -> Path:
        """The folder of caption files: given, or the synthetic Chinese world written beside 06's Flickr8k."""
        if self.data_source is not None:
            return Path(self.data_source).expanduser()
        if self.preset == "smoke":
            from helpers.data.synthetic_zh import write_synthetic_flickr_zh

            return write_synthetic_flickr_zh(self.paths.sources, self.flickr_source(), self.seed)
        from helpers.multilingual.data import fetch_flickr8k_cn

        return fetch_flickr8k_cn(self.paths.sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the configuration, stored in every metrics file."""
        return {
            "preset": self.preset,
            "run_dir": str(self.paths.root),
            "data_source": self.data_source,
            "languages": [lang.to_dict() for lang in self.languages],
            "knobs": self.knobs,
            "prefix": dataclasses.asdict(self.prefix),
            "train": dataclasses.asdict(self.train),
            "decoding": dataclasses.asdict(self.decoding),
            "seed": self.seed,
        }
