"""05-compare: gather every classifier's metrics.json into one table, pick the best, explain the result."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from helpers import artifacts
from helpers.classify.backbones import BACKBONES
from helpers.classify.callbacks import read_history
from helpers.config import RunPaths

#: Columns of the comparison table (and comparison.csv), in order.
COLUMNS = [
    "train_top1",
    "val_top1",
    "test_top1",
    "test_top5",
    "test_loss",
    "overfit_gap",
    "params_millions",
    "epochs_run",
    "epoch_seconds",
    "images_per_second",
    "input_size",
    "weights",
]


def collect(
    paths: RunPaths, names: list[str] | None = None
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[str]]:
    """(table indexed by model name, histories, names whose metrics.json is missing)."""
    names = list(BACKBONES) if names is None else names
    rows, histories, missing = [], {}, []
    for name in names:
        path = paths.model(name) / "metrics.json"
        if not path.is_file():
            missing.append(name)
            continue
        m = artifacts.read_json(path)
        rows.append(
            {
                "model": name,
                **{k: m[k] for k in COLUMNS if k in m},
                "overfit_gap": m["train_top1"] - m["val_top1"],
                "params_millions": m["params"] / 1e6,
                "input_size": m["config"]["input_size"],
                "weights": m["config"]["weights"] or "none",
            }
        )
        histories[name] = read_history(paths.model(name) / "history.csv")
    table = pd.DataFrame(rows, columns=["model", *COLUMNS]).set_index("model")
    return table, histories, missing


def pick_best(table: pd.DataFrame, paths: RunPaths) -> dict[str, Any]:
    """The model with the highest validation top-1 (test only breaks ties: it is reported, not tuned on)."""
    if table.empty:
        raise ValueError(f"no classifier metrics under {paths.models}: run 02, 03 or 04 first")
    name = table.sort_values(["val_top1", "test_top1"], ascending=False).index[0]
    row = table.loc[name]
    return {
        "name": name,
        "model_dir": paths.relative(paths.model(name)),  # stays valid when the run folder moves
        "selected_by": "val_top1",
        **{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
    }


def write_outputs(paths: RunPaths, table: pd.DataFrame, best: dict[str, Any]) -> None:
    """run_dir/compare/comparison.csv and best.json."""
    buf = io.StringIO()
    table.to_csv(buf)
    artifacts.write_text(paths.compare / "comparison.csv", buf.getvalue())
    artifacts.write_json(paths.best, best)


def conclusion(table: pd.DataFrame, missing: list[str], best: dict[str, Any]) -> str:
    """Markdown: who wins and by how much, how much each overfits, what is missing."""
    ranked = table.sort_values("test_top1", ascending=False)
    lines = []
    if len(ranked) > 1:
        first, second = ranked.index[0], ranked.index[1]
        lead = 100 * (ranked.loc[first, "test_top1"] - ranked.loc[second, "test_top1"])
        lines.append(
            f"**{first}** has the best test top-1, **{ranked.loc[first, 'test_top1']:.1%}**, "
            f"{lead:.1f} points ahead of {second} ({ranked.loc[second, 'test_top1']:.1%})."
        )
    else:
        lines.append(
            f"Only **{ranked.index[0]}** has been trained: {ranked['test_top1'].iloc[0]:.1%} test top-1."
        )
    gaps = ", ".join(f"{n} {100 * g:+.1f}" for n, g in ranked["overfit_gap"].items())
    most = f"; {ranked['overfit_gap'].idxmax()} overfits the most" if len(ranked) > 1 else ""
    lines.append(f"- Train minus validation top-1, in points: {gaps}{most}.")
    fastest = ranked["images_per_second"].idxmax()
    lines.append(
        f"- Fastest at inference: {fastest} ({ranked.loc[fastest, 'images_per_second']:.0f} images/s); "
        f"smallest: {ranked['params_millions'].idxmin()} "
        f"({ranked['params_millions'].min():.1f} M parameters)."
    )
    lines.append(
        f"- Chosen for the demo (highest validation top-1): **{best['name']}**, "
        "written to `compare/best.json`."
    )
    if missing:
        lines.append(f"- Not trained yet (no metrics.json): {', '.join(missing)}.")
    return "\n".join(lines)
