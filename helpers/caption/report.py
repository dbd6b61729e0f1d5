"""What notebook 06 shows from its metrics: the score table and the conclusion, generated from the numbers."""

from __future__ import annotations

from typing import Any

import pandas as pd


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Rows: each decoding of the model, then the blind baseline; columns: the metrics."""
    rows = {f"model {k}": v for k, v in metrics["sweep"].items()}
    rows[f"blind {metrics['decoding']}"] = metrics["blind"]
    return pd.DataFrame(rows).T.astype(float)


def conclusion(metrics: dict[str, Any], names: int) -> str:
    """Markdown summary generated from the numbers."""
    m, b, dec = metrics["model"], metrics["blind"], metrics["decoding"]
    best = max(metrics["sweep"], key=lambda k: metrics["sweep"][k]["CIDEr"])
    meteor = "not computed (no Java)" if m["METEOR"] is None else f"{m['METEOR']:.3f}"
    lines = [
        f"On **{names}** test images with {dec} decoding the captioner scores "
        f"**BLEU-4 {m['Bleu_4']:.3f}** and "
        f"**CIDEr {m['CIDEr']:.3f}**; the image-blind baseline scores BLEU-4 {b['Bleu_4']:.3f} and CIDEr "
        f"{b['CIDEr']:.3f}, so the picture adds {m['Bleu_4'] - b['Bleu_4']:+.3f} BLEU-4 and "
        f"{m['CIDEr'] - b['CIDEr']:+.3f} CIDEr.",
        f"- METEOR: {meteor}; ROUGE-L {m['ROUGE_L']:.3f}.",
        f"- Best decoding by CIDEr: **{best}** ({metrics['sweep'][best]['CIDEr']:.3f}).",
    ]
    return "\n".join(lines)
