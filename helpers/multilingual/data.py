"""A language's captions of the Flickr8k images: read from its files, or fetched (Flickr8K-CN, full)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import artifacts
from helpers.data.flickr import read_caption_file
from helpers.multilingual.languages import Language

#: Flickr8K-CN's files (li-xirong/flickr8kcn), fetched and hash-checked through helpers.data.downloads.
FLICKR8K_CN_FILES = (
    "flickr8kzhc.caption.txt",
    "flickr8kzhb.caption.txt",
    "flickr8kzhg.caption.txt",
    "flickr8kzhmtest.captions.txt",
)


@dataclass
class LanguageCaptions:
    """Raw captions by image id from each of a language's files (None where the language has no such file)."""

    language: Language
    native: dict[str, list[str]]
    machine: dict[str, list[str]] | None = None
    human_translation: dict[str, list[str]] | None = None
    parallel: list[tuple[str, str]] | None = None  # (English, translation) sentence pairs
    problems: list[str] = field(default_factory=list)  # malformed lines, with file and line number

    def normalized(self, which: str) -> dict[str, list[str]]:
        """Training text of the `native` or `machine` captions (`Language.normalize`)."""
        captions = getattr(self, which)
        if captions is None:
            raise ValueError(f"{self.language.name} has no {which} caption file in its registry entry")
        return {n: [self.language.normalize(c) for c in cs] for n, cs in captions.items()}

    def summary(self) -> dict[str, int]:
        """Images and captions per file, and the malformed lines."""
        out = {}
        for which in ("native", "machine", "human_translation"):
            caps = getattr(self, which)
            if caps is not None:
                out[f"{which}_images"], out[f"{which}_captions"] = len(caps), sum(map(len, caps.values()))
        out["parallel_pairs"] = len(self.parallel or [])
        out["problems"] = len(self.problems)
        return out


def load_language(language: Language, folder: str | Path) -> LanguageCaptions:
    """Read every file the registry entry names from `folder`; a missing native file is an error."""
    folder = Path(folder).expanduser()
    native = folder / language.native
    if not native.is_file():
        found = (
            ", ".join(sorted(p.name for p in folder.iterdir())[:10]) if folder.is_dir() else "no such folder"
        )
        raise FileNotFoundError(f"{native} not found ({language.name} captions); {folder} holds: {found}")
    captions, problems = read_caption_file(native)
    out = LanguageCaptions(language, captions, problems=problems)
    for which in ("machine", "human_translation"):
        name = getattr(language, which)
        if name and (folder / name).is_file():
            captions, problems = read_caption_file(folder / name)
            setattr(out, which, captions)
            out.problems += problems
    if language.parallel and (folder / language.parallel).is_file():
        out.parallel = read_parallel(folder / language.parallel)
    return out


def read_parallel(path: str | Path) -> list[tuple[str, str]]:
    """(source, target) pairs of a ``source<TAB>target`` file; lines without a tab are an error."""
    pairs = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            source, tab, target = line.partition("\t")
            if not tab or not source.strip() or not target.strip():
                raise ValueError(f"{Path(path).name} line {lineno}: expected 'source<TAB>target'")
            pairs.append((source.strip(), target.strip()))
    return pairs


def translator_corpus(
    captions: LanguageCaptions, english: dict[str, list[str]], names: list[str], limit: int | None = None
) -> tuple[list[tuple[str, str]], str]:
    """Pairs to train a small translator on, and their source: the parallel file, else English caption N
    with machine translation N of the `names` images (Flickr8K-CN's translations follow the English order)."""
    if captions.parallel:
        pairs, source = captions.parallel, "parallel file"
    elif captions.machine:
        pairs = [
            (e, m)
            for n in names
            if n in captions.machine and n in english
            for e, m in zip(english[n], captions.machine[n], strict=False)
        ]
        source = "English captions with their machine translations"
    else:
        raise ValueError(
            f"{captions.language.name}: no parallel or machine-translation file to train a translator"
        )
    if limit is not None and len(pairs) > limit:
        keep = np.random.default_rng(0).choice(len(pairs), limit, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    return pairs, source


def fetch_flickr8k_cn(dest: str | Path) -> Path:
    """``dest/flickr8k-cn`` with Flickr8K-CN's caption files, downloaded and hash-checked once."""
    from helpers.data.downloads import fetch

    folder = Path(dest).expanduser() / "flickr8k-cn"
    for name in FLICKR8K_CN_FILES:
        fetch(name, folder)
    artifacts.write_json(folder / ".fetched.json", {"files": list(FLICKR8K_CN_FILES)})
    return folder
