"""The synthetic Flickr8k world in Chinese, written in Flickr8K-CN's formats.

From the scenes of a synthetic Flickr8k folder (its ``synthetic_scenes.json`` and split lists) this writes
``flickr8k-cn/`` with the files Flickr8K-CN has, one line ``IMAGE.jpg#zhX#N caption`` each:
- ``flickr8kzhc.caption.txt``: five captions "written by speakers": natural Chinese word order (the
  left or upper object first, position words after the noun), not a mapping of the English sentences;
- ``flickr8kzhg.caption.txt``: a deliberately imperfect "machine translation" of the five English captions:
  word by word in English order, with typical sense errors (left -> 离开 "depart", right -> 正确 "correct",
  plain -> 平原 "plains") in about a third of the sentences that have such a word;
- ``flickr8kzhmtest.captions.txt``: correct human-style translations of the English captions, test split only;
- ``parallel.en-zh.tsv``: English caption TAB its correct translation, training images only: the parallel
  text the smoke preset's small translator learns from (the real Flickr8K-CN has no such file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from helpers import artifacts
from helpers.data.flickr import SPLIT_FILES, normalize_caption
from helpers.data.synthetic import _publish, captions_for

GENERATOR_VERSION = 1
FILES = {
    "native": "flickr8kzhc.caption.txt",
    "machine": "flickr8kzhg.caption.txt",
    "human_translation": "flickr8kzhmtest.captions.txt",
    "parallel": "parallel.en-zh.tsv",
}
_COLOUR = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色"}
_KIND = {"circle": "圆", "square": "正方形", "triangle": "三角形", "cross": "十字", "star": "星形"}
_SIDE_WORD = {"left": "左边", "right": "右边", "above": "上面", "below": "下面"}
_OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
# Word-by-word dictionary of the "machine translation"; a list holds (correct, wrong sense) choices.
_WORDS = {
    "a": "一个", "the": "这个", "one": "一", "single": "单", "there": "那里", "is": "是", "of": "的",
    "to": "到", "on": "在", "at": "在", "and": "和", "with": "与", "its": "它的", "it": "它",
    "picture": "图片", "shows": "显示", "background": "背景", "top": "顶部", "bottom": "底部",
    "above": "以上", "below": "下面", "left": ["左", "离开"], "right": ["右", "正确"],
    "plain": ["朴素", "平原"], **_COLOUR, **_KIND,
}  # fmt: skip
_ERROR_RATE = 0.35  # share of ambiguous words translated with the wrong sense


def _noun(colour: str, kind: str, short: bool = False) -> str:
    """红色的圆, or the short 红圆."""
    return f"{_COLOUR[colour][0]}{_KIND[kind]}" if short else f"{_COLOUR[colour]}的{_KIND[kind]}"


def native_captions(scene: dict[str, Any]) -> list[str]:
    """Five Chinese captions as a speaker writes them: spatial order first, position words after nouns."""
    if scene["relation"] is None:
        a, s = _noun(*scene["objects"][0]), _noun(*scene["objects"][0], short=True)
        return [
            f"一个{a}。",
            f"图中只有一个{a}。",
            f"背景上有一个{s}。",
            f"一个{s}。",
            f"纯色背景上的一个{a}。",
        ]
    rel, (first, second) = scene["relation"], scene["objects"]
    if rel in ("right", "below"):  # name the left or upper object first
        first, second, rel = second, first, _OPPOSITE[rel]
    x, y, xs, ys = _noun(*first), _noun(*second), _noun(*first, short=True), _noun(*second, short=True)
    near, far = ("左", "右") if rel == "left" else ("上", "下")
    return [
        f"{x}在{y}的{near}边。",
        f"{near}边是一个{x}，{far}边是一个{y}。",
        f"{y}的{near}侧有一个{x}。",
        f"图中{near}边是{xs}，{far}边是{ys}。",
        f"{x}和{y}{near}{far}排列。",
    ]


def human_translations(scene: dict[str, Any]) -> list[str]:
    """Correct translations of the five English captions of `captions_for(scene)`, in the same order."""
    a = _noun(*scene["objects"][0])
    if scene["relation"] is None:
        return [
            f"一个{a}。",
            f"单独一个{a}。",
            f"有一个{a}。",
            f"图片上是一个{a}。",
            f"素色背景上的一个{a}。",
        ]
    b, rel = _noun(*scene["objects"][1]), scene["relation"]
    if rel in ("left", "right"):
        first, second = (a, b) if rel == "left" else (b, a)
        layout = f"左边有一个{first}，右边有一个{second}。"
    else:
        first, second = (a, b) if rel == "above" else (b, a)
        layout = f"上面有一个{first}，下面有一个{second}。"
    side, back = _SIDE_WORD[rel], _SIDE_WORD[_OPPOSITE[rel]]
    return [
        f"一个{a}在一个{b}的{side}。",
        f"一个{b}在一个{a}的{back}。",
        layout,
        f"{a}在{b}的{side}。",
        f"一个{b}，它的{side}有一个{a}。",
    ]


def machine_translation(english: str, rng: np.random.Generator) -> str:
    """Word by word in English order; ambiguous words take the wrong sense `_ERROR_RATE` of the time."""
    out = []
    for word in english.split():
        choice = _WORDS.get(word, word)
        if isinstance(choice, list):
            choice = choice[1] if rng.random() < _ERROR_RATE else choice[0]
        out.append(choice)
    return "".join(out) + "。"


def _lines(tag: str, per_image: dict[str, list[str]]) -> str:
    return "".join(f"{n}#{tag}#{i} {c}\n" for n, caps in per_image.items() for i, c in enumerate(caps))


def _build(folder: Path, scenes: dict[str, dict], splits: dict[str, list[str]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    english = {n: captions_for(s) for n, s in scenes.items()}
    machine = {n: [machine_translation(e, rng) for e in caps] for n, caps in english.items()}
    human = {n: human_translations(s) for n, s in scenes.items()}
    artifacts.write_text(
        folder / FILES["native"], _lines("zhc", {n: native_captions(s) for n, s in scenes.items()})
    )
    artifacts.write_text(folder / FILES["machine"], _lines("zhg", machine))
    artifacts.write_text(
        folder / FILES["human_translation"], _lines("zhm", {n: human[n] for n in splits["test"]})
    )
    pairs = [
        (normalize_caption(e), z) for n in splits["train"] for e, z in zip(english[n], human[n], strict=True)
    ]
    artifacts.write_text(folder / FILES["parallel"], "".join(f"{e}\t{z}\n" for e, z in pairs))


def write_synthetic_flickr_zh(dest: str | Path, flickr_dir: str | Path, seed: int = 0) -> Path:
    """Write ``dest/flickr8k-cn`` for the synthetic Flickr8k folder `flickr_dir`; reused while unchanged."""
    flickr_dir = Path(flickr_dir)
    scenes_file = flickr_dir / "synthetic_scenes.json"
    if not scenes_file.is_file():
        raise FileNotFoundError(f"{scenes_file} not found: {flickr_dir} is not a synthetic Flickr8k folder")
    scenes = artifacts.read_json(scenes_file)
    splits = {
        k: [ln for ln in (flickr_dir / f).read_text(encoding="utf-8").split() if ln]
        for k, f in SPLIT_FILES.items()
    }
    config = {
        "generator": "synthetic-flickr-zh",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "scenes_sha256": hashlib.sha256(scenes_file.read_bytes()).hexdigest(),
    }
    return _publish(
        Path(dest), "flickr8k-cn", config, lambda folder: _build(folder, scenes, splits, seed), True
    )
