"""The smoke captioner's learning margins over several seeds, for trimming the smoke preset with evidence.

Runs notebooks 01 and 06 (smoke) once per seed, each in its own run folder, with the given knobs of 06,
and prints one row per seed: BLEU-4 and CIDEr of the captioner and of its image-blind twin, and how long
06 took. The test suite's bars are `SMOKE_BLEU_FLOOR` and `SMOKE_BLEU_ABOVE_BLIND` (BLEU-4, and its lead
over the blind twin; helpers/caption/config.py); a trim is safe when every seed clears them with room to
spare.

    python -m benchmarks.smoke_margins --seeds 0 1 2 --epochs 3 --out /tmp/margins
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers import artifacts
from helpers.caption.config import SMOKE_BLEU_ABOVE_BLIND, SMOKE_BLEU_FLOOR
from helpers.pipeline import run_series


def margins(run_dir: Path, seconds: float) -> dict[str, float]:
    """One seed's row from its run folder."""
    m = artifacts.read_json(run_dir / "captions" / "metrics.json")
    model, blind = m["model"], m["blind"]
    return {
        "bleu4": model["Bleu_4"],
        "blind_bleu4": blind["Bleu_4"],
        "above_blind": model["Bleu_4"] - blind["Bleu_4"],
        "cider": model["CIDEr"],
        "blind_cider": blind["CIDEr"],
        "seconds_06": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.smoke_margins", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="06's epochs (default: the preset's)")
    parser.add_argument("--study", action="store_true", help="also run the encoder study (default: skip it)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the run folders and margins.json")
    args = parser.parse_args(argv)
    extra: dict = {} if args.study else {"compare_encoders": []}
    if args.epochs is not None:
        extra["epochs"] = args.epochs
    rows = {}
    for seed in args.seeds:
        run_dir = args.out / f"seed{seed}"
        run_series("smoke", str(run_dir), only="01")
        seconds = run_series("smoke", str(run_dir), only="06", extra={**extra, "seed": seed})
        rows[seed] = margins(run_dir, next(iter(seconds.values())))
        print(f"seed {seed}: {rows[seed]}", flush=True)
    ok = all(
        r["bleu4"] >= SMOKE_BLEU_FLOOR and r["above_blind"] >= SMOKE_BLEU_ABOVE_BLIND for r in rows.values()
    )
    artifacts.write_json(args.out / "margins.json", {"knobs": extra, "seeds": rows, "clears_the_bars": ok})
    print("| seed | BLEU-4 | blind | above blind | CIDEr | blind CIDEr | 06 seconds |")
    print("|---|---|---|---|---|---|---|")
    for seed, r in rows.items():
        print(
            f"| {seed} | {r['bleu4']:.3f} | {r['blind_bleu4']:.3f} | {r['above_blind']:.3f} "
            f"| {r['cider']:.2f} | {r['blind_cider']:.2f} | {r['seconds_06']:.0f} |"
        )
    print(json.dumps({"clears_the_bars": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
