"""Notebook 06's captioner training as a job: `python -m helpers.caption.job`, or under torchrun (the
SageMaker SDK's torchrun driver runs this file as its entry script, one process per GPU).

It trains the same `CaptionConfig` notebook 06 builds (`CaptionConfig.for_preset` with the same knobs),
from a feature cache computed once beforehand (notebook 06 writes it to ``run_dir/captions/features/``),
never recomputed per rank.

Hyperparameters (SageMaker passes them as ``--<name> <value>``; ``null`` means the preset default, booleans
are ``true``/``false``, lists are JSON): ``--preset`` (smoke | sample | full, default smoke), ``--encoder``,
``--mapper``, ``--prefix_length``, ``--freeze_gpt2``, ``--epochs``, ``--batch_size`` (the GLOBAL batch,
split across all ranks), ``--lr``, ``--mapper_lr``, ``--warmup``, ``--decoding``, ``--seed``,
``--max_steps``, ``--bucket_by_length``, ``--dataset``, ``--restval``, ``--checkpoint_dir``; ``--blind true``
trains the captioner's image-blind twin instead (same recipe, zero image features).

Input channels (environment, as SageMaker sets them):
- ``SM_CHANNEL_DATA``: the captions and splits the features were made from: ``dataset_job.json`` (the
  dataset exactly as notebook 06 read it, images left out and splits included, in Karpathy's format; the
  job needs no image files), or else the dataset's own folder, read as ``--dataset`` says.
- ``SM_CHANNEL_FEATURES``: the feature cache folder (``features.npy``, ``index.json``, ``config.json``,
  ``encoder.json`` + ``clip/`` or ``encoder.keras``); its encoder config must equal the job's.

Outputs:
- ``SM_MODEL_DIR`` (default /opt/ml/model): the captioner folder in the layout `Captioner.load` reads
  (``captioner.json``, ``config.json``, ``model.safetensors``, ``encoder.json`` + encoder), exactly what
  notebook 06 writes to ``run_dir/captions/model/``.
- ``SM_OUTPUT_DATA_DIR`` (default /opt/ml/output/data): ``history.csv`` and ``job.json`` (the config).
- Checkpoints: ``--checkpoint_dir``, else ``SM_CHECKPOINT_DIR``, else /opt/ml/checkpoints (SageMaker
  syncs it with the job's checkpoint S3 URI): ``model/checkpoint/`` holds the resume state; a restarted
  (spot) job resumes from it to the same weights as an uninterrupted run.

Rank 0 alone writes files; every rank reads the channels and the resume state.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

KNOBS = ("encoder", "mapper", "prefix_length", "freeze_gpt2", "epochs", "batch_size", "lr", "mapper_lr")
KNOBS += ("warmup", "decoding", "seed", "max_steps", "bucket_by_length", "dataset", "restval")
#: The dataset as notebook 06 read it (written by `export_dataset`), in the data channel.
JOB_DATA = "dataset_job.json"


def _value(text: str):
    """A hyperparameter as the SDK serialises it: JSON (numbers, true/false, null, lists) or a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The job's hyperparameters and folders."""
    parser = argparse.ArgumentParser(prog="python -m helpers.caption.job", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="smoke")
    for knob in KNOBS:
        parser.add_argument(f"--{knob}", type=_value, default=None)
    parser.add_argument("--blind", type=_value, default=False)
    parser.add_argument(
        "--checkpoint_dir", default=os.environ.get("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints")
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = 0
    return args


def _channel(name: str) -> Path:
    """An input channel's folder; a clear error when the job was started without it."""
    key = f"SM_CHANNEL_{name.upper()}"
    if key not in os.environ:
        raise SystemExit(f"{key} is not set: the job needs its '{name}' input channel")
    return Path(os.environ[key])


def export_dataset(dataset, dest: Path) -> Path:
    """`dataset` (a CaptionDataset) as the job's data channel: dest/dataset_job.json, no images."""
    from helpers.data.karpathy import write_karpathy

    return write_karpathy(dataset, dest, JOB_DATA.removeprefix("dataset_").removesuffix(".json"))


def load_job_data(cfg, folder: Path):
    """The data channel's dataset: the notebook's export when there is one, else the dataset's folder."""
    from helpers.data.karpathy import load_karpathy

    path = folder / JOB_DATA
    if not path.is_file():
        return cfg.load_data()
    data = load_karpathy(path, folder, check_images=False)
    # The job has the images' features, not the images: every exported image is present (06 left out the
    # missing and undecodable ones before exporting), so the splits are the file's, in its order.
    splits: dict[str, list[str]] = {}
    for entry in json.loads(path.read_text(encoding="utf-8"))["images"]:
        name = f"{entry['filepath']}/{entry['filename']}" if entry.get("filepath") else entry["filename"]
        splits.setdefault(entry["split"], []).append(name)
    return dataclasses.replace(data, splits=splits, missing_images=[], split_source="recorded")


def load_feature_cache(folder: Path, encoder_cfg):
    """The feature cache as notebook 06 wrote it; refused when another encoder made it."""

    from helpers import artifacts
    from helpers.caption.features import FeatureCache, ImageEncoder

    config = artifacts.read_json(folder / "config.json")
    want = json.loads(json.dumps(dataclasses.asdict(encoder_cfg)))
    if config.get("encoder") != want:
        raise SystemExit(f"{folder}: features of encoder {config.get('encoder')}, the job's is {want}")
    names = artifacts.read_json(folder / "index.json")["names"]
    feats = artifacts.load_npy(folder / "features.npy")
    return FeatureCache(feats, names, config, ImageEncoder.load(folder), reused=True)


def main(argv: list[str] | None = None) -> int:
    """Train the captioner from the channels; rank 0 writes the model folder and the records."""

    import pandas as pd

    from helpers import artifacts
    from helpers.caption import distributed, variants
    from helpers.caption.captioner import Captioner
    from helpers.caption.config import CaptionConfig
    from helpers.caption.tokenizer import gpt2_tokenizer

    args = parse_args(argv)
    ranks = distributed.current()
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    checkpoints = Path(args.checkpoint_dir)
    knobs = {k: getattr(args, k) for k in KNOBS if getattr(args, k) is not None}  # None: the preset's
    cfg = CaptionConfig.for_preset(args.preset, str(output_dir / "run"), str(_channel("data")), **knobs)
    flickr = load_job_data(cfg, _channel("data"))
    cache = load_feature_cache(_channel("features"), cfg.encoder)
    blind = bool(args.blind)
    model = variants.new_variant(cfg, cache, flickr, blind=blind)
    model, history = variants.train_variant(
        cfg,
        cache,
        flickr,
        gpt2_tokenizer(),
        blind=blind,
        device=distributed.device(ranks),
        model=model,
        out=checkpoints / ("blind" if blind else "model"),
    )
    if ranks.main:
        Captioner(cache.encoder, model.cpu(), cfg.decoding).save(model_dir, extra={"preset": cfg.preset})
        artifacts.write_text(output_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
        artifacts.write_json(
            output_dir / "job.json", {"config": cfg.to_dict(), "world_size": ranks.world, "blind": blind}
        )
    distributed.barrier(ranks)
    if ranks.active:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
