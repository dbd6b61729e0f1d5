"""Your own pictures: a folder of images with ``metadata.jsonl`` or ``captions.csv``.

``metadata.jsonl`` (Hugging Face ``imagefolder``): one JSON object a line, ``file_name`` and ``text``,
optional ``split``; several lines per image for several captions. ``captions.csv``: header
``image,caption[,split]``. Without splits: a seeded 80/10/10 split by image, written to `split_file`
(reused on the next run, so the split is reproducible).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import artifacts
from helpers.data.captions import (
    CaptionDataset,
    CaptionFormatError,
    assign_splits,
    build_dataset,
    collect_captions,
    not_utf8,
    seeded_split,
    text_lines,
)

JSONL, CSV = "metadata.jsonl", "captions.csv"
JSONL_KEYS, CSV_COLUMNS = ("file_name", "text"), ("image", "caption")


def _jsonl(path: Path, problems: list[str]) -> list[tuple[str, str, str | None]]:
    rows = []
    for lineno, line in text_lines(path):
        where = f"{path.name} line {lineno}"
        if line is None:
            problems.append(f"{where}: not UTF-8 text (line left out)")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not JSON ({e.msg})")
            continue
        if not isinstance(obj, dict) or any(k not in obj for k in JSONL_KEYS):
            raise CaptionFormatError(
                f"{where}: expected keys {', '.join(JSONL_KEYS)} (optional split); got {line[:80]}"
            )
        rows.append((where, str(obj["file_name"]), str(obj["text"]), obj.get("split")))
    return rows


def _csv(path: Path, problems: list[str]) -> list[tuple[str, str, str | None]]:
    rows = []
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = [c.strip().lower() for c in next(reader, [])]
        if header[:2] != list(CSV_COLUMNS) or len(header) > 3 or header[2:] not in ([], ["split"]):
            raise CaptionFormatError(
                f"{path.name}: expected the header image,caption[,split]; got {','.join(header)}"
            )
        for row in reader:
            where = f"{path.name} line {reader.line_num}"
            if any(not_utf8(c) for c in row):
                problems.append(f"{where}: not UTF-8 text (line left out)")
            elif len(row) != len(header):
                problems.append(f"{where}: expected {len(header)} columns, got {len(row)}")
            else:
                rows.append((where, row[0].strip(), row[1], row[2].strip() if len(row) == 3 else None))
    return rows


def load_folder(
    root: str | Path, seed: int = 0, split_file: str | Path | None = None, check_images: bool = True
) -> CaptionDataset:
    """Read your own folder; `split_file` holds (or receives) the seeded split when there are no splits."""
    root = Path(root).expanduser()
    files = [root / n for n in (JSONL, CSV) if (root / n).is_file()]
    if not files:
        raise CaptionFormatError(
            f"{root} has neither {JSONL} (file_name, text[, split]) nor {CSV} (image,caption[,split])"
        )
    problems: list[str] = []
    rows = _jsonl(files[0], problems) if files[0].name == JSONL else _csv(files[0], problems)
    captions, more, duplicates = collect_captions((w, n, c) for w, n, c, _ in rows)
    problems += more
    if any(s is not None for *_, s in rows):
        splits, source = (
            assign_splits(((w, n, s) for w, n, _, s in rows if n in captions), files[0].name, problems),
            "file",
        )
    elif split_file is not None and Path(split_file).is_file():
        splits, source = artifacts.read_json(split_file), "recorded"
    else:
        present = sorted(n for n in captions if (root / n).is_file())
        splits, source = seeded_split(present, seed, 0.1, 0.1), "seeded"
        if split_file is not None:
            artifacts.write_json(split_file, splits)
    return build_dataset(
        root,
        root,
        captions,
        splits,
        problems,
        check_images=check_images,
        split_source=source,
        source=f"folder:{root}",
        duplicates=duplicates,
    )


def write_folder(dataset: CaptionDataset, dest: str | Path, splits: bool = True) -> Path:
    """Copy the images into `dest` with a ``metadata.jsonl`` (a split column unless `splits` is off)."""
    import shutil

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    lines = []
    for split, names in dataset.splits.items():
        for name in names:
            shutil.copyfile(dataset.image_path(name), dest / Path(name).name)
            for text in dataset.captions[name]:
                row = {"file_name": Path(name).name, "text": text, **({"split": split} if splits else {})}
                lines.append(json.dumps(row))
    (dest / JSONL).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest
