"""Loading the demo's models once from a run folder, picking sample images, and writing captions.json."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers import artifacts
from helpers.choices import DECODINGS, DETAILS
from helpers.config import RunPaths
from helpers.demo.core import DemoModels, Result, TopK, check_choice
from helpers.runtime import device_summary, versions

#: Real photos that ship inside installed packages: (package, path inside it). Offline and licence-clean.
BUNDLED_PHOTOS = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)


#: Largest allowed per-file limit (MB). A browser sends a whole upload as one websocket message: the
#: checkout's voila.json lets Voila take 128 MiB; a stock Jupyter server drops the connection over 10 MiB.
MAX_UPLOAD_MB = 100


@dataclass(frozen=True)
class DemoConfig:
    """The knobs of notebook 07, checked."""

    preset: str
    paths: RunPaths
    classifier: str | None = None  # None: compare/best.json's model
    decoding: str = "greedy"
    detail: str = "short"
    max_upload_mb: float = 8.0  # per file, megabytes (1e6 bytes)
    images: tuple[str, ...] | None = None  # files captioned before the app opens; None: preset examples
    num_examples: int = 4

    def __post_init__(self) -> None:
        check_choice(self.decoding, DECODINGS, "decoding")
        check_choice(self.detail, DETAILS, "detail")
        if not 0 < self.max_upload_mb <= MAX_UPLOAD_MB:
            raise ValueError(f"max_upload_mb must be in (0, {MAX_UPLOAD_MB}], got {self.max_upload_mb}")
        if self.num_examples < 1:
            raise ValueError(f"num_examples must be at least 1, got {self.num_examples}")

    @classmethod
    def for_preset(cls, preset: str, run_dir: str | None = None, images: Sequence[str] | None = None, **kw):
        """Config with run_dir resolved (None -> runs/<preset>)."""
        files = tuple(str(f) for f in images) if images is not None else None
        return cls(preset=preset, paths=RunPaths.for_run(preset, run_dir), images=files, **kw)

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "run_dir": str(self.paths.root),
            "classifier": self.classifier,
            "decoding": self.decoding,
            "detail": self.detail,
            "max_upload_mb": self.max_upload_mb,
            "images": list(self.images) if self.images is not None else None,
            "num_examples": self.num_examples,
        }


def classifier_dir(paths: RunPaths, classifier: str | None = None) -> Path:
    """The classifier folder: `classifier` (a folder or a name under models/), else compare/best.json's."""
    return paths.classifier(classifier)


def load_topk(model_dir: Path, k: int = 5) -> TopK:
    """A function: NHWC uint8 batch -> per image the top-k (label, probability), from a trained classifier."""
    from helpers.classify import load_classifier

    return topk_function(*load_classifier(model_dir), k=k)


def topk_function(model: Any, config: dict[str, Any], k: int = 5) -> TopK:
    """NHWC uint8 batch -> per image the top-k (label, probability) of a loaded classifier."""
    from helpers.classify import predict_topk

    names = list(config["label_names"])

    def classify(images: np.ndarray) -> list[list[tuple[str, float]]]:
        indices, probs = predict_topk(model, config, images, k=k)
        return [
            [(names[int(i)], float(p)) for i, p in zip(row_i, row_p, strict=True)]
            for row_i, row_p in zip(indices, probs, strict=True)
        ]

    return classify


def load_models(run_dir: str | Path, classifier: str | None = None, preset: str = "smoke") -> DemoModels:
    """The captioner (run_dir/captions/model/) and the chosen classifier, each loaded once."""
    from helpers.caption.captioner import Captioner
    from helpers.classify import load_classifier
    from helpers.demo.explainer import ModelExplainer

    paths = RunPaths.for_run(preset, run_dir)
    caption_dir = paths.captions / "model"
    if not caption_dir.is_dir():
        raise FileNotFoundError(f"no trained captioner at {caption_dir}; run 06-flickr-gpt2-finetune first")
    model_dir = classifier_dir(paths, classifier)
    captioner = Captioner.load(caption_dir)
    if (paths.root / "multilingual").is_dir():  # notebook 08 ran: its languages join English
        from helpers.multilingual.serving import MultilingualCaptioner

        captioner = MultilingualCaptioner.load(captioner, paths.root / "multilingual")
    model, config = load_classifier(model_dir)
    trained_on = artifacts.read_json(caption_dir / "captioner.json").get("preset", "")
    return DemoModels(
        captioner=captioner,
        classify=topk_function(model, config),
        captioner_dir=str(caption_dir),
        classifier_name=model_dir.name,
        explainer=ModelExplainer(captioner, model, config),
        trained_on=str(trained_on or config.get("preset", "")),
    )


def bundled_photos() -> list[Path]:
    """The real photos of BUNDLED_PHOTOS that are installed here."""
    import importlib.util

    found = []
    for package, inner in BUNDLED_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec and spec.origin and (path := Path(spec.origin).parent / inner).is_file():
            found.append(path)
    return found


def synthetic_examples(paths: RunPaths, count: int) -> list[Path]:
    """Test-split pictures of the dataset 06 trained on, as its metrics.json records it (in smoke, the
    synthetic world); without 06 in this run folder, a synthetic Flickr8k written for the demo."""
    from helpers.caption.config import recorded_dataset
    from helpers.data import load_flickr8k, write_synthetic_flickr

    dataset = recorded_dataset(paths)
    if dataset is None:
        # ~10 % of the pictures land in the test split
        dataset = load_flickr8k(write_synthetic_flickr(paths.demo / "inputs", num_images=max(20, 12 * count)))
    return [dataset.image_path(name) for name in dataset.splits["test"][:count]]


def example_images(cfg: DemoConfig) -> list[Path]:
    """The images captioned before the app opens: `cfg.images`, or synthetic (smoke) or real photos."""
    if cfg.images is not None:
        return [Path(f) for f in cfg.images]
    if cfg.preset == "smoke":
        return synthetic_examples(cfg.paths, cfg.num_examples)
    photos = bundled_photos()
    if not photos:
        raise FileNotFoundError(
            "no bundled example photos found (matplotlib's grace_hopper.jpg); set `images`"
        )
    return photos[: cfg.num_examples]


def read_files(files: Sequence[str | Path]) -> list[tuple[str, bytes]]:
    """[(file name, bytes)] as an upload would deliver them."""
    return [(Path(f).name, Path(f).read_bytes()) for f in files]


def write_captions(path: str | Path, results: list[Result], config: dict[str, Any]) -> Path:
    """captions.json: every result, the config that produced them, versions and device."""
    return artifacts.write_json(
        path,
        {
            "config": config,
            "results": [r.to_json() for r in results],
            "captioned": sum(r.ok for r in results),
            "failed": sum(not r.ok for r in results),
            "versions": versions(),
            "device": device_summary(),
        },
    )
