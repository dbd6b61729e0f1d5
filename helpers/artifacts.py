"""Atomic file writes, checksums and JSON helpers: a killed run never leaves a half-written artifact."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write through `write(tmp_path)` into a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_partial_files(folder: str | Path) -> list[Path]:
    """Delete the temp files that writes into `folder` left when the process was killed mid-write."""
    # Only a hard kill (SIGKILL, out of memory, power) skips _atomic's cleanup; such a file can be gigabytes.
    folder = Path(folder)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write bytes."""
    return _atomic(path, lambda p: p.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return _atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write pretty JSON (numpy scalars/arrays, Paths and dataclasses allowed)."""
    return write_text(path, json.dumps(obj, indent=2, default=_jsonable, allow_nan=True) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming the file in the error if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected JSON file not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Atomically save one array as .npy (no pickle)."""

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, array, allow_pickle=False)

    return _atomic(path, write)


def load_npy(path: str | Path) -> np.ndarray:
    """Load a .npy written by `save_npy` (pickles refused)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected array file not found: {path}")
    return np.load(path, allow_pickle=False)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Atomically save a matplotlib figure (format from the suffix)."""
    path = Path(path)
    return _atomic(
        path, lambda p: fig.savefig(p, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
    )
