"""Run folders with a captioner for the benchmarks that need one: a tiny random one, or smoke-trained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT

#: What `make run` writes: the default run folder of the benchmarks that read a trained captioner.
DEFAULT_RUN = ROOT / "runs" / "smoke"


def tiny_run(root: Path) -> Path:
    """A run folder with a tiny random captioner of the real format (quick modes)."""
    from helpers.caption.captioner import Captioner
    from helpers.caption.decode import DecodeConfig
    from helpers.caption.features import EncoderConfig, ImageEncoder
    from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner

    vision = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    vision |= {"patch_size": 16, "projection_dim": 32}
    encoder = ImageEncoder.build(EncoderConfig("clip", None, 32, vision=vision))  # torch, as the default
    gpt2 = dict(n_layer=1, n_head=2, n_embd=32, n_positions=32, bos_token_id=EOS_ID, eos_token_id=EOS_ID)
    model = build_captioner(PrefixConfig(feature_dim=encoder.feature_dim, prefix_length=2, gpt2=gpt2))
    Captioner(encoder, model, DecodeConfig("greedy", max_new_tokens=4)).save(root / "captions" / "model")
    return root


def smoke_run(root: Path) -> Path:
    """01 and 06 of the smoke preset into `root` (the captioner only)."""
    cmd = [sys.executable, "-m", "helpers", "run", "--preset", "smoke", "--only", "01,06"]
    subprocess.run([*cmd, "--run-dir", str(root)], cwd=ROOT, check=True)
    return root


def trained_run(from_run: str | None, scratch: Path) -> Path:
    """`from_run` (default runs/smoke) when it holds a trained captioner; else 01 and 06 (smoke) into
    `scratch` first."""
    run_dir = Path(from_run) if from_run else DEFAULT_RUN
    if not (run_dir / "captions" / "model").is_dir():
        print(f"{run_dir} has no trained captioner: running 01 and 06 (smoke) first", flush=True)
        run_dir = smoke_run(scratch)
    return run_dir.resolve()
