"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr from pycocoevalcap, on PTB-tokenized text.

The same scorers and tokenization as the COCO caption evaluation server (SPICE left out: it downloads
Stanford CoreNLP at run time). Each image is scored against all of its references.

The PTB tokenizer and METEOR are Java programs. METEOR's JVM takes ~5-15 s to start, so a
`CaptionScorer` starts it once and reuses it for every evaluation. Without Java, METEOR is reported as
None ("not computed", never 0) and tokenization falls back to a Python approximation of the PTB rules,
which `describe()` records next to the scores.

Other languages: `tokens="chars"` scores characters (Chinese, written without spaces), `"whitespace"`
scores words split at whitespace; both after Unicode (NFKC) normalisation, lower case, punctuation and
symbols removed. METEOR's resources are English-only, so it is not computed (None) for them.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import unicodedata
from typing import Any

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
#: How captions become tokens: English PTB rules, characters, or whitespace-separated words.
TOKENIZATIONS = ("ptb", "chars", "whitespace")

# What pycocoevalcap's PTBTokenizer drops after tokenizing (its PUNCTUATIONS list).
_PUNCT = {
    "''",
    "'",
    "``",
    "`",
    "-LRB-",
    "-RRB-",
    "-LCB-",
    "-RCB-",
    ".",
    "?",
    "!",
    ",",
    ":",
    "-",
    "--",
    "...",
    ";",
}
# Words (hyphenated ones whole), "do n't" and "man 's" split as PTB does, "...", "--", any other symbol.
# Abbreviations ("d.c.", "u.", "mr.") keep their full stop.
_TOKEN = re.compile(
    r"(?:[a-z]\.)+(?![a-z])|(?:mr|mrs|ms|dr|jr|sr|st)\.|[a-z0-9]+?(?=n't\b)|n't|'[a-z]+"
    r"|[a-z0-9]+(?:[-.][a-z0-9]+)*|\.\.\.|--|[^\sa-z0-9]"
)
# PTB spells brackets out; lower-cased, they escape pycocoevalcap's punctuation filter (kept, as there).
_BRACKETS = str.maketrans(
    {"(": " -lrb- ", ")": " -rrb- ", "{": " -lcb- ", "}": " -rcb- ", "[": " -lsb- ", "]": " -rsb- "}
)


def java_available() -> bool:
    """Whether a `java` executable is on PATH (needed by the PTB tokenizer and METEOR)."""
    return shutil.which("java") is not None


def simple_tokenize(text: str) -> str:
    """Lower-case, split like PTB (words, contractions, punctuation) and drop punctuation; Java-free."""
    out = []
    for chunk in text.lower().translate(_BRACKETS).replace("cannot", "can not").split():
        out.extend([chunk] if chunk.startswith("-") and chunk.endswith("b-") else _TOKEN.findall(chunk))
    return " ".join(t for t in out if t not in _PUNCT and t != '"')


def unicode_tokenize(text: str, tokens: str) -> str:
    """NFKC, lower case, punctuation/symbols dropped; then space-separated characters or words."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    return " ".join(text.replace(" ", "")) if tokens == "chars" else " ".join(text.split())


class CaptionScorer:
    """Scores hypotheses against references; holds one METEOR JVM for all its evaluations."""

    def __init__(self, meteor: bool = True, tokens: str = "ptb"):
        if tokens not in TOKENIZATIONS:
            raise ValueError(f"tokens must be one of {TOKENIZATIONS}, got {tokens!r}")
        self.java = java_available()
        self.tokens = tokens
        self.meteor_wanted = meteor and tokens == "ptb"  # METEOR's paraphrase tables are English
        self._meteor: Any = None

    def describe(self) -> dict[str, str]:
        """How the scores were computed, for the metrics file."""
        meteor = "computed (meteor-1.5)" if self.java and self.meteor_wanted else "not computed"
        if self.tokens != "ptb":
            tokenizer, meteor = f"unicode NFKC, {self.tokens}", "not computed: English only"
            return {"tokenizer": tokenizer, "meteor": meteor, "scorers": "pycocoevalcap"}
        if not self.java:
            meteor += ": java not found"
        tokenizer = "PTBTokenizer (Stanford CoreNLP 3.4.1)" if self.java else "python PTB approximation"
        return {"tokenizer": tokenizer, "meteor": meteor, "scorers": "pycocoevalcap"}

    def tokenize(self, captions: dict[Any, list[str]]) -> dict[Any, list[str]]:
        """PTB-tokenize {id: [caption, ...]} (lower case, punctuation removed); or per `tokens`."""
        if self.tokens != "ptb":
            return {k: [unicode_tokenize(c, self.tokens) for c in v] for k, v in captions.items()}
        if not self.java:
            return {k: [simple_tokenize(c) for c in v] for k, v in captions.items()}
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        wrapped = {k: [{"caption": c.replace("\n", " ")} for c in v] for k, v in captions.items()}
        return PTBTokenizer().tokenize(wrapped)

    def score(self, references: dict[str, list[str]], hypotheses: dict[str, str]) -> dict[str, float | None]:
        """Corpus scores of one hypothesis per image against all of that image's references."""
        refs, hyps = self._check(references, hypotheses)
        # One tokenizer run (one JVM start) for both sides: keys tagged "r"/"h", split afterwards.
        both = self.tokenize(
            {**{("r", k): v for k, v in refs.items()}, **{("h", k): [h] for k, h in hyps.items()}}
        )
        gts = {k: both[("r", k)] for k in refs}
        res = {k: both[("h", k)] for k in refs}
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its n-gram counts
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out: dict[str, float | None] = {f"Bleu_{n}": float(b) for n, b in enumerate(bleu, 1)}
        out["METEOR"] = self._meteor_score(gts, res)
        out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        return {name: out[name] for name in METRICS}

    def _meteor_score(self, gts: dict, res: dict) -> float | None:
        """METEOR through the shared JVM, or None when Java is missing or METEOR was not wanted."""
        if not (self.java and self.meteor_wanted):
            return None
        if self._meteor is None:
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        return float(self._meteor.compute_score(gts, res)[0])

    @staticmethod
    def _check(references: dict, hypotheses: dict) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Same image ids on both sides, at least one reference each, one string per hypothesis."""
        if not references:
            raise ValueError("no images to score")
        if set(references) != set(hypotheses):
            missing = sorted(set(references) ^ set(hypotheses))[:5]
            raise ValueError(f"references and hypotheses cover different images, e.g. {missing}")
        refs = {str(k): [str(c) for c in v] for k, v in references.items()}
        empty = [k for k, v in refs.items() if not v]
        if empty:
            raise ValueError(f"images without reference captions: {empty[:5]}")
        bad = [k for k, v in hypotheses.items() if not isinstance(v, str)]
        if bad:
            raise ValueError(f"hypotheses must be one string per image, not for {bad[:5]}")
        return refs, {str(k): v for k, v in hypotheses.items()}

    def close(self) -> None:
        """Stop METEOR's JVM."""
        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            meteor.meteor_p.stdin.close()
            meteor.meteor_p.kill()
            meteor.meteor_p.wait()

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def caption_metrics(
    references: dict[str, list[str]], hypotheses: dict[str, str], meteor: bool = True
) -> dict[str, float | None]:
    """One-off scoring (starts and stops its own METEOR JVM); prefer a CaptionScorer for several sets."""
    with CaptionScorer(meteor=meteor) as scorer:
        return scorer.score(references, hypotheses)
