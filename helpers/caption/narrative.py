"""A narrative per image that grows when asked: pure text and geometry, no models and no widgets.

A `Narrative` starts with the image's caption. *Tell me more* adds the candidate sentence that is most
specific to the picture (`rank_candidates`: specificity minus a penalty for repeating what is already
said; a candidate sharing any 4-gram with the narrative is never chosen). *Look here* adds the caption of
a grid cell with where it is ("At the top left, a red circle."). `reset` goes back to the first sentence.
The models that make candidates and score them live in `helpers.caption.storyteller`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

#: Words that carry no content: a candidate repeating only these has said nothing new.
_STOP = "a an the and or of on in at to is are there its it with one two some this that his her their"
STOPWORDS = frozenset(_STOP.split() + ["picture", "shows", "image", "photo", "by", "from", "for", "as"])
#: Sentences in one narrative never share an n-gram of this many words.
NO_REPEAT_WORDS = 4
KINDS = ("caption", "more", "region")


@dataclass(frozen=True)
class Sentence:
    """One sentence: the captioner's words (scored as a caption) and, for a region, where it is."""

    text: str  # as the captioner wrote it, lower case, no final full stop
    kind: str = "caption"  # caption | more | region
    where: str | None = None  # region only: "At the top left"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def display(self) -> str:
        """'A red circle.' or 'At the top left, a red circle.'"""
        text = self.text.strip().rstrip(".")
        if self.where:
            return f"{self.where}, {text}."
        return f"{text[:1].upper()}{text[1:]}."


@dataclass(frozen=True)
class Narrative:
    """The sentences said so far about one image, oldest first; `seed` makes every step repeatable."""

    sentences: tuple[Sentence, ...] = field(default_factory=tuple)
    seed: int = 0

    @classmethod
    def start(cls, caption: str, seed: int = 0) -> Narrative:
        """A narrative holding only the image's caption."""
        if not caption.strip():
            raise ValueError("a narrative starts from a non-empty caption")
        return cls((Sentence(caption.strip()),), seed)

    def add(self, sentence: Sentence) -> Narrative:
        return replace(self, sentences=(*self.sentences, sentence))

    def reset(self) -> Narrative:
        """Back to the first sentence (the caption)."""
        return replace(self, sentences=self.sentences[:1])

    @property
    def texts(self) -> list[str]:
        """The captioner's words of every sentence (what the likelihood scores)."""
        return [s.text for s in self.sentences]

    def step_seed(self) -> int:
        """The sampling seed of the next step: the same narrative always grows the same way."""
        return self.seed * 1000 + len(self.sentences)

    def display(self) -> str:
        return " ".join(s.display() for s in self.sentences)


def words(text: str) -> list[str]:
    """Lower-case word tokens."""
    return re.findall(r"[a-z0-9']+", text.lower())


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS}


def ngrams(text: str, n: int = NO_REPEAT_WORDS) -> set[tuple[str, ...]]:
    toks = words(text)
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def shares_ngram(candidate: str, said: Sequence[str], n: int = NO_REPEAT_WORDS) -> bool:
    """True when the candidate repeats any n words in a row of what was said."""
    seen = set().union(*(ngrams(s, n) for s in said)) if said else set()
    return bool(ngrams(candidate, n) & seen)


def repeats_itself(text: str, n: int = NO_REPEAT_WORDS) -> bool:
    """True for a degenerate sentence: a word twice in a row ('a a a a') or an n-gram twice within it."""
    toks = words(text)
    if any(a == b for a, b in zip(toks, toks[1:], strict=False)):
        return True
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    return len(grams) != len(set(grams))


def repetition(candidate: str, said: Sequence[str]) -> float:
    """Share (0..1) of the candidate's content words already in the narrative; 1.0 when it has none."""
    mine = content_words(candidate)
    if not mine:
        return 1.0
    old = set().union(*(content_words(s) for s in said)) if said else set()
    return len(mine & old) / len(mine)


@dataclass(frozen=True)
class Ranked:
    """A candidate with the numbers that ranked it."""

    text: str
    score: float  # specificity - penalty * repetition
    specificity: float  # log p(text | image) - log p(text | no image), nats
    repetition: float


def rank_candidates(
    candidates: Sequence[str], specificity: Sequence[float], said: Sequence[str], penalty: float = 4.0
) -> list[Ranked]:
    """Eligible candidates, best first; `penalty` (nats) is what repeating every content word costs.

    Not eligible: empty or degenerate sentences, one already said, one sharing a 4-gram with the narrative.
    Ties keep the candidates' order, so the ranking is deterministic.
    """
    if len(candidates) != len(specificity):
        raise ValueError("one specificity per candidate")
    out, seen = [], {" ".join(words(s)) for s in said}
    for text, spec in zip(candidates, specificity, strict=True):
        key = " ".join(words(text))
        if len(key.split()) < 2 or key in seen or repeats_itself(text) or shares_ngram(text, said):
            continue
        seen.add(key)
        rep = repetition(text, said)
        out.append(Ranked(text, float(spec) - penalty * rep, float(spec), rep))
    order = sorted(range(len(out)), key=lambda i: -out[i].score)  # sorted() is stable
    return [out[i] for i in order]


# ---- regions: a grid of cells over the picture ----


@dataclass(frozen=True)
class Cell:
    """One cell of a rows x cols grid, in pixels of the image it was made for."""

    row: int
    col: int
    rows: int
    cols: int
    top: int
    left: int
    bottom: int
    right: int


def grid_cells(height: int, width: int, rows: int = 3, cols: int = 3) -> list[Cell]:
    """The cells of a rows x cols grid, row by row; edges rounded so the cells tile the image."""
    if rows < 1 or cols < 1 or height < rows or width < cols:
        raise ValueError(f"cannot lay a {rows}x{cols} grid over a {width}x{height} image")
    ys = np.linspace(0, height, rows + 1).round().astype(int)
    xs = np.linspace(0, width, cols + 1).round().astype(int)
    return [
        Cell(r, c, rows, cols, int(ys[r]), int(xs[c]), int(ys[r + 1]), int(xs[c + 1]))
        for r in range(rows)
        for c in range(cols)
    ]


def cell_at(height: int, width: int, row: int, col: int, rows: int = 3, cols: int = 3) -> Cell:
    """The grid cell at (row, col), checked."""
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"cell ({row}, {col}) is outside a {rows}x{cols} grid")
    return grid_cells(height, width, rows, cols)[row * cols + col]


def crop(image: np.ndarray, cell: Cell, margin: float = 0.0) -> np.ndarray:
    """The cell's pixels, grown by `margin` (a fraction of the cell's size) on each side within the image."""
    dy, dx = round((cell.bottom - cell.top) * margin), round((cell.right - cell.left) * margin)
    h, w = image.shape[:2]
    return image[
        max(0, cell.top - dy) : min(h, cell.bottom + dy), max(0, cell.left - dx) : min(w, cell.right + dx)
    ]


def _band(index: int, count: int, names: tuple[str, str, str]) -> str:
    """Which third of the picture a cell's centre falls in."""
    centre = (index + 0.5) / count
    return names[0] if centre < 1 / 3 else names[2] if centre > 2 / 3 else names[1]


def position_phrase(cell: Cell) -> str:
    """'At the top left', 'At the top', 'On the left', 'In the centre', ... for a grid cell."""
    v = _band(cell.row, cell.rows, ("top", "middle", "bottom"))
    h = _band(cell.col, cell.cols, ("left", "centre", "right"))
    if v == "middle":
        return "In the centre" if h == "centre" else f"On the {h}"
    return f"At the {v}" if h == "centre" else f"At the {v} {h}"


def region_sentence(caption: str, cell: Cell) -> Sentence:
    """The caption of a cell's crop, placed: Sentence('a red circle', 'region', 'At the top left')."""
    return Sentence(caption.strip(), "region", position_phrase(cell))


def distinct_ngrams(texts: Sequence[str], n: int = NO_REPEAT_WORDS) -> bool:
    """True when no n-gram occurs in two different sentences."""
    seen: set[tuple[str, ...]] = set()
    for text in texts:
        grams = ngrams(text, n)
        if grams & seen:
            return False
        seen |= grams
    return True
