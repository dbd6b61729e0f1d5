"""HTML for the demo's result cards: thumbnail, caption or error, a top-5 bar chart and the time taken.

Plain HTML with inline styles renders the same in JupyterLab, classic Notebook and Voila. Every piece of
text is escaped: file names come from the user and captions from a model.
"""

from __future__ import annotations

import base64
from html import escape

from helpers.demo.core import Result

_CARD = (
    "display:flex;gap:14px;align-items:flex-start;border:1px solid #d0d7de;border-radius:8px;"
    "padding:10px;margin:6px 0;max-width:760px;background:#fff;line-height:1.35"
)
_THUMB = "width:160px;min-width:160px;height:auto;border-radius:4px;background:#f3f4f6"
_BAR = "display:inline-block;height:10px;background:#4c78a8;border-radius:2px;vertical-align:middle"
_CAPTION = "font-size:115%;margin-top:4px"
_ERROR = "color:#b42318;background:#fef3f2;border-radius:4px;padding:6px 8px;margin-top:4px"
_NARRATIVE = "margin-top:6px;padding-left:8px;border-left:3px solid #4c78a8;color:#24292f"
_NOTICE = "color:#57606a;font-style:italic;margin-top:4px"
_BANNER = "background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 10px;margin:6px 0"

#: What the run's models learned from, per preset, for the banner (None: no banner).
TRAINED_ON = {
    "smoke": "synthetic pictures of coloured circles (and synthetic 32-pixel CIFAR-style classes)",
    "sample": "a few hundred real photos, from scratch (random-init encoder, small GPT-2)",
    "full": None,
}


def thumbnail_html(result: Result) -> str:
    """An <img> with the PNG thumbnail inlined, or a grey placeholder when the file did not decode."""
    if result.thumbnail is None:
        return f'<div class="demo-thumb" style="{_THUMB};height:90px"></div>'
    data = base64.b64encode(result.thumbnail).decode("ascii")
    alt = escape(result.caption or result.name)
    return f'<img class="demo-thumb" alt="{alt}" src="data:image/png;base64,{data}" style="{_THUMB}">'


def banner_html(preset: str) -> str:
    """A plain warning when the models come from the smoke or sample preset; '' for full (or unknown)."""
    seen = TRAINED_ON.get(preset)
    if not seen:
        return ""
    return (
        f'<div class="demo-banner" style="{_BANNER}"><b>These models come from the <code>{escape(preset)}'
        f"</code> preset</b>: they were trained on {escape(seen)}. Their captions and labels of real "
        "photos are not meaningful, they only show that everything runs. For real captions, run the "
        "series with the <code>full</code> preset (ImageNet weights, Flickr8k, GPT-2) on a GPU.</div>"
    )


def narrative_html(result: Result) -> str:
    """The sentences added after the caption (growing text), and the last action's notice."""
    html = ""
    if result.narrative is not None and len(result.narrative.sentences) > 1:
        spans = "".join(
            f'<span class="demo-sentence demo-{s.kind}">{escape(s.display())}</span> '
            for s in result.narrative.sentences[1:]
        )
        html += f'<div class="demo-narrative" style="{_NARRATIVE}">{spans}</div>'
    if result.notice:
        html += f'<div class="demo-notice" style="{_NOTICE}">{escape(result.notice)}</div>'
    return html


def overlay_html(result: Result) -> str:
    """The overlay picture with its title, or ''."""
    if result.overlay is None:
        return ""
    data = base64.b64encode(result.overlay).decode("ascii")
    title = escape(result.overlay_title)
    return (
        f'<div style="margin-top:6px"><img class="demo-overlay" alt="{title}" title="{title}" '
        f'src="data:image/png;base64,{data}" style="{_THUMB}">'
        f'<div style="font-size:85%;color:#57606a">{title}</div></div>'
    )


def top5_html(top5: list[tuple[str, float]], bar_px: int = 160) -> str:
    """A small horizontal bar chart: label, a bar as wide as the probability, the percentage."""
    rows = []
    for label, prob in top5:
        width = max(1, round(prob * bar_px))  # at least 1 px, so a tiny probability is still visible
        rows.append(
            f'<tr><td style="padding:1px 8px 1px 0;text-align:right">{escape(label)}</td>'
            f'<td style="padding:1px 0;width:{bar_px}px"><span style="{_BAR};width:{width}px"></span></td>'
            f'<td style="padding:1px 0 1px 8px;text-align:right">{prob:.1%}</td></tr>'
        )
    title = '<div style="font-size:85%;color:#57606a;margin-top:6px">CIFAR-100 top-5</div>'
    table = '<table class="demo-top5" style="font-size:85%;border-collapse:collapse">'
    return f"{title}{table}{''.join(rows)}</table>"


def meta_line(result: Result) -> str:
    """'name · 640x480 px · 0.42 s · beam, detailed'."""
    parts = [f"<b>{escape(result.name)}</b>"]
    if result.size:
        parts.append(f"{result.size[1]}x{result.size[0]} px")
    parts.append(f"{result.seconds:.2f} s")
    if result.ok:
        parts.append(f"{result.decoding}, {result.detail}")
    return f'<div class="demo-meta" style="color:#57606a">{" · ".join(parts)}</div>'


def card_html(result: Result) -> str:
    """One result card; class `demo-card-ok` or `demo-card-error` tells the two apart."""
    kind = "demo-card-ok" if result.ok else "demo-card-error"
    if result.ok:
        body = f'<div class="demo-caption" style="{_CAPTION}">{escape(result.caption or "")}</div>'
        body += narrative_html(result) + top5_html(result.top5)
    else:
        body = f'<div class="demo-error" style="{_ERROR}">{escape(result.error or "")}</div>'
    pictures = f"<div>{thumbnail_html(result)}{overlay_html(result)}</div>"
    return (
        f'<div class="demo-card {kind}" style="{_CARD}">{pictures}'
        f'<div style="flex:1">{meta_line(result)}{body}</div></div>'
    )


def summary_text(results: list[Result], seconds: float) -> str:
    """'2 images captioned, 1 not captioned, in 1.3 s.'"""
    good = sum(r.ok for r in results)
    bad = len(results) - good
    text = f"{good} image{'s' if good != 1 else ''} captioned"
    if bad:
        text += f", {bad} not captioned"
    return f"{text}, in {seconds:.1f} s."
