"""What notebook 08 shows: a score table and a figure per language, example captions side by side, and the
conclusion generated from the numbers."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd

ROUTE_ORDER = ("native", "translate-train", "translate-test", "native blind", "translate-train blind")
HEADLINE = ("Bleu_4", "CIDEr")


def scores_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Rows: routes and blind twins; columns: (reference set, metric); METEOR left out (English only)."""
    rows = {}
    for route in [r for r in ROUTE_ORDER if r in metrics["scores"]]:
        rows[route] = {
            (refs, name): value
            for refs, scores in metrics["scores"][route].items()
            for name, value in scores.items()
            if name != "METEOR"
        }
    return pd.DataFrame(rows).T.astype(float)


def plot_scores(metrics: dict[str, Any]):
    """Bars of BLEU-4 and CIDEr per route against each reference set."""
    import matplotlib.pyplot as plt

    table = scores_table(metrics)
    ref_sets = list(dict.fromkeys(k for k, _ in table.columns))
    fig, axes = plt.subplots(1, len(HEADLINE), figsize=(5 * len(HEADLINE), 3.6), squeeze=False)
    width = 0.8 / len(ref_sets)
    for ax, name in zip(axes[0], HEADLINE, strict=True):
        for i, refs in enumerate(ref_sets):
            ax.bar(np.arange(len(table)) + i * width, table[(refs, name)], width, label=f"{refs} references")
        ax.set_xticks(
            np.arange(len(table)) + width * (len(ref_sets) - 1) / 2, table.index, rotation=30, ha="right"
        )
        ax.set_title(f"{metrics['language']['name']}: {name.replace('_', '-')}")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def examples_html(
    images: list[np.ndarray], captions: dict[str, dict[str, str]], references: dict[str, list[str]]
) -> str:
    """An HTML page: each test image beside the three routes' captions and a human reference.

    HTML rather than a matplotlib figure: the browser has fonts for every script, matplotlib's default
    font has no Chinese glyphs.
    """
    from PIL import Image

    rows = []
    for image, (name, caps) in zip(images, captions.items(), strict=True):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=85)
        src = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        lines = [
            f"<b>{html.escape(r)}</b>: {html.escape(caps[r])}"
            for r in ("native", "translate-train", "translate-test")
            if r in caps
        ]
        lines.append(f"<i>English (06)</i>: {html.escape(caps.get('english', ''))}")
        lines.append(f"<i>human</i>: {html.escape(references.get(name, [''])[0])}")
        rows.append(f'<tr><td><img src="{src}" width="160"></td><td>{"<br>".join(lines)}</td></tr>')
    return '<meta charset="utf-8"><table style="font-size:14px">' + "".join(rows) + "</table>"


def conclusion(metrics: dict[str, Any]) -> str:
    """Markdown summary for one language, generated from the numbers."""
    name, scores = metrics["language"]["name"], metrics["scores"]
    written = {r: s["written"]["Bleu_4"] for r, s in scores.items()}
    routes = [r for r in ("native", "translate-train", "translate-test") if r in written]
    best = max(routes, key=written.get)
    lines = [
        f"**{name}**, {metrics['test_images']} test images, BLEU-4 against the captions written in {name} "
        f"({metrics['scoring']['tokenizer']} tokens; METEOR not computed, English only):",
        *(f"- {r}: **{written[r]:.3f}**" + _blind_gap(r, written) for r in routes),
        f"- Best route on written references: **{best}**.",
    ]
    translated = {r: s["translated"]["Bleu_4"] for r, s in scores.items() if "translated" in s}
    if translated:
        best_t = max((r for r in routes if r in translated), key=translated.get)
        lines.append(
            f"- Against human translations of the English captions the best is **{best_t}** "
            f"({translated[best_t]:.3f}): translated references favour routes that went through English."
        )
    held = metrics["translator"].get("held_out")
    if held:
        lines.append(
            f"- The translator scores BLEU-4 {held['scores']['Bleu_4']:.3f} on {held['sentences']} held-out "
            "English captions against their human translations."
        )
    return "\n".join(lines)


def _blind_gap(route: str, written: dict[str, float]) -> str:
    """', +0.41 over its image-blind twin' (translate-test against the native twin)."""
    twin = f"{route} blind" if f"{route} blind" in written else "native blind"
    if twin not in written:
        return ""
    return f" ({written[route] - written[twin]:+.3f} over the image-blind {twin.replace(' blind', '')} twin)"
