"""Presets and the run-folder layout shared by every notebook.

A preset only chooses data sources and sizes; the code path is the same for all three:
- ``smoke``: learnable synthetic data written in the canonical formats, random-init models, tiny sizes.
- ``sample``: the canonical loaders pointed at a folder of small real samples (``data_dir``).
- ``full``: the real datasets and pretrained weights, sized for an ml.g4dn.xlarge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import artifacts

PRESETS = ("smoke", "sample", "full")


def check_preset(preset: str) -> str:
    """Return `preset` or raise a clear error naming the valid ones."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset


def pick(preset: str, value: Any, defaults: dict[str, Any]) -> Any:
    """A notebook knob left as None takes the preset's default."""
    check_preset(preset)
    return defaults[preset] if value is None else value


def preset_knobs(preset: str, defaults: dict[str, dict[str, Any]], **given: Any) -> dict[str, Any]:
    """Every knob of `defaults` (knob -> preset -> value): the value given, or the preset's default where
    the notebook left it None. Knobs that only the preset sets are simply not given."""
    if unknown := sorted(set(given) - set(defaults)):
        raise TypeError(f"no preset default for {', '.join(unknown)}")
    return {knob: pick(preset, given.get(knob), by_preset) for knob, by_preset in defaults.items()}


def require_data_source(preset: str, data_source: str | None, what: str) -> None:
    """The sample preset reads a folder of real samples it cannot guess: fail early, naming what it wants."""
    if preset == "sample" and data_source is None:
        raise ValueError(f"the sample preset needs data_source: {what}")


def project_root() -> Path | None:
    """The checkout `helpers` was installed from (editable install), or None for a plain install."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "notebooks").is_dir() else None


def runs_root() -> Path:
    """Parent of the default run folders: $CAPTION_RUNS_DIR, else <checkout>/runs, else ./runs.

    Anchoring on the checkout means a notebook opened from notebooks/ in Jupyter and the same notebook
    run by the pipeline from the repository root write to the same place.
    """
    if env := os.environ.get("CAPTION_RUNS_DIR"):
        return Path(env)
    root = project_root()
    return root / "runs" if root else Path.cwd() / "runs"


@dataclass(frozen=True)
class RunPaths:
    """Where a run's artifacts live: everything under one folder, notebooks talk through these files."""

    root: Path

    @classmethod
    def for_run(cls, preset: str, run_dir: str | os.PathLike | None = None) -> RunPaths:
        """`run_dir` or the default ``<runs_root()>/<preset>``."""
        check_preset(preset)
        root = Path(run_dir) if run_dir else runs_root() / preset
        return cls(root.expanduser().resolve())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sources(self) -> Path:
        """Synthetic or downloaded raw datasets (canonical formats) live here."""
        return self.root / "sources"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, name: str) -> Path:
        return self.models / name

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def captions(self) -> Path:
        return self.root / "captions"

    @property
    def compare(self) -> Path:
        return self.root / "compare"

    @property
    def best(self) -> Path:
        """05-compare's pick of the classifiers: name, model_dir (relative to the run folder) and scores."""
        return self.compare / "best.json"

    @property
    def demo(self) -> Path:
        return self.root / "demo"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    def relative(self, path: str | os.PathLike) -> str:
        """`path` as the run's JSON files store it: relative to the run folder (POSIX), so the folder stays
        valid when it is moved or synced elsewhere. Raises ValueError for a path outside the run folder."""
        return Path(path).relative_to(self.root).as_posix()

    def best_classifier(self) -> Path | None:
        """The classifier folder best.json names, or None when 05-compare has not run.

        Runs written before model_dir was stored relative hold an absolute path; when that folder is gone
        (the run folder was moved), the model of the same name in this run folder is meant.
        """
        if not self.best.is_file():
            return None
        best = artifacts.read_json(self.best)
        folder = self.root / best["model_dir"]  # an absolute model_dir stays as it is
        if not folder.is_dir() and "name" in best:
            folder = self.model(best["name"])
        return folder

    def classifier(self, choice: str | os.PathLike | None = None) -> Path:
        """The one answer to "which classifier": None or "best" is 05-compare's pick (`best_classifier`),
        else a name under models/ (vgg16, resnet50, mobilenet_v2) or a folder."""
        if choice is None or str(choice) == "best":
            folder = self.best_classifier()
            if folder is None:
                raise FileNotFoundError(
                    f"no classifier chosen: {self.best} does not exist; run 05-compare first "
                    "or name a model such as 'mobilenet_v2'"
                )
        else:
            given = Path(choice).expanduser()
            folder = given if given.is_absolute() or given.exists() else self.model(str(choice))
        if not (folder / "model.keras").is_file():
            raise FileNotFoundError(f"no trained classifier in {folder}: train it first (02-04)")
        return folder

    def ensure(self) -> RunPaths:
        """Create the standard sub-folders."""
        for p in (self.data, self.models, self.figures, self.captions, self.notebooks):
            p.mkdir(parents=True, exist_ok=True)
        return self
