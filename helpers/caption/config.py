"""Notebook 06's configuration: every knob with its per-preset default, derived in one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.caption.decode import DecodeConfig
from helpers.caption.features import EncoderConfig
from helpers.caption.model import SMALL_GPT2, PrefixConfig
from helpers.caption.train import TrainConfig
from helpers.config import RunPaths, preset_knobs, require_data_source
from helpers.data.sources import parse_dataset

#: The synthetic Flickr8k-style world of the smoke preset (helpers.data.ensure_synthetic_flickr kwargs):
#: 600 pictures (480 train / 60 val / 60 test), five captions each, of one or two circles in four colours
#: and four relations. Circles only, because the random-init smoke encoder cannot see shape: a linear
#: probe on its features names the shape of an object near chance (0.20 of five, 0.45 of three)
#: while it names colours (~0.9) and the layout (~0.96) well. With shapes the captions would be partly
#: unlearnable for this encoder; the full preset's ImageNet features have no such limit.
SMOKE_FLICKR = {"num_images": 600, "seed": 0, "image_size": 96, "shapes": ("circle",)}

#: What the smoke captioner must reach on the synthetic world, the bars of the test suite and of
#: benchmarks/smoke_margins.py (which sizes the smoke preset against them): BLEU-4 on the test split at
#: least SMOKE_BLEU_FLOOR, and at least SMOKE_BLEU_ABOVE_BLIND above its image-blind twin.
SMOKE_BLEU_FLOOR, SMOKE_BLEU_ABOVE_BLIND = 0.5, 0.2

#: Decodings every run scores on the test split (the `decoding` knob picks the headline one).
SWEEP = ("greedy", "beam3", "beam5")

DEFAULTS: dict[str, dict[str, Any]] = {
    # CLIP's image embedding is what ClipCap conditions GPT-2 on (its Flickr8k reproductions reach BLEU-4
    # ~0.26); it also keeps captioning on PyTorch alone, without TensorFlow.
    "encoder": {"smoke": "clip", "sample": "clip", "full": "clip"},
    # No weights can be downloaded offline: smoke and sample start the encoder from a seeded random init
    # (a small CLIP, helpers.caption.clip.SMALL_CLIP); full loads openai's CLIP or ImageNet weights.
    "pretrained": {"smoke": False, "sample": False, "full": True},
    # Pixels per side. At 64 the random-init ResNet50 tells colours apart better than at 32 (linear probe,
    # colour of the second object: 0.82 vs 0.62) for ~2x the feature time; CLIP ViT-B/32 takes 224.
    "input_size": {"smoke": 64, "sample": 64, "full": 224},
    "gpt2": {"smoke": SMALL_GPT2, "sample": SMALL_GPT2, "full": "gpt2"},
    "prefix_length": {"smoke": 4, "sample": 4, "full": 10},
    "freeze_gpt2": {"smoke": False, "sample": False, "full": False},
    # full: ClipCap's recipe (train.py: 10 epochs, batch 40, AdamW 2e-5, 5,000 warmup steps, linear decay)
    # fitted to Flickr8k's size. Its 6,000 training images x 5 captions = 30,000 pairs make 750 steps an
    # epoch at batch 40, 7,500 in 10 epochs, where ClipCap takes ~140,000 on COCO (~567k pairs).
    # Best-validation weights are kept: no overfit risk. smoke: 3 epochs clear the test suite's BLEU-4 bars
    # over three seeds (benchmarks/smoke_margins.py, README); 2 do not. sample is a format check: one epoch.
    "epochs": {"smoke": 3, "sample": 1, "full": 10},
    "batch_size": {"smoke": 32, "sample": 32, "full": 40},  # ClipCap's; gpt2 at 40+10 tokens fits a T4
    # GPT-2's peak rate. From-scratch small GPT-2 needs a large rate; pretrained GPT-2 is fine-tuned gently
    # (ClipCap's 2e-5 for every parameter): a higher rate would bend it towards 30k captions too fast.
    "lr": {"smoke": 1e-3, "sample": 1e-3, "full": 2e-5},
    # The new mapper's peak rate. Adam moves a weight by about lr a step, so ClipCap's mapper can travel
    # ~2e-5 x 140k = 2.8 over its training; with 7,500 steps the same reach needs ~4e-4. Half of that, 2e-4
    # (10x GPT-2's), reaches ~1.5 and keeps the tanh MLP's updates moderate. An estimate to check on a GPU.
    # smoke/sample: GPT-2 is from scratch too, so both parts share one rate.
    "mapper_lr": {"smoke": 1e-3, "sample": 1e-3, "full": 2e-4},
    # Share of all steps spent warming up. ClipCap warms 5,000 of ~140k steps (3.6 %); 0.05 of 7,500 is 375
    # steps, enough for AdamW's moment estimates to settle. smoke: 22 of 225 steps.
    "warmup": {"smoke": 0.1, "sample": 0.1, "full": 0.05},
    "decoding": {"smoke": "beam3", "sample": "beam3", "full": "beam3"},
    "max_tokens": {"smoke": 24, "sample": 40, "full": 40},  # GPT-2 tokens per caption, end included
    # Training batches of similar caption length (helpers.caption.batching): every pair still once an
    # epoch, padded only to its batch's longest caption. Off by default: at full shapes it cuts a step's
    # FLOPs 1.44x (22.7 -> 12.7 padded caption tokens; benchmarks/results.md, section 6), but on the smoke
    # captioner it broke the learning bars on all three seeds (BLEU-4 0.52 / 0.47 / 0.33, 0.04 / 0.15 /
    # -0.03 above the blind twin; benchmarks.smoke_margins, 2026-12-07), where a caption's length picks its
    # wording; its effect on real captions is unmeasured here, and ClipCap's recipe draws plain batches.
    "bucket_by_length": {"smoke": False, "sample": False, "full": False},
    "max_new_tokens": {"smoke": 24, "sample": 30, "full": 30},
    # Training images used (None: all of the split); the sample preset is a quick format check.
    "max_train_images": {"smoke": None, "sample": 200, "full": None},
    # The encoder study (helpers.caption.study): encoders compared with GPT-2 frozen, mapper only. "best":
    # 05-compare's best CIFAR-100 classifier, when it exists. sample is a format check: no study.
    "compare_encoders": {"smoke": ("clip", "resnet50"), "sample": (), "full": ("clip", "resnet50", "best")},
    # Epochs of each study training: a comparison, not a final model (full: ~1 min an epoch on a T4, est.).
    "study_epochs": {"smoke": 1, "sample": 1, "full": 5},
    # After epoch 1, compare the captioner's validation loss with its blind twin's and warn in bold when it
    # is not below. Off where GPT-2 starts from scratch: it learns the caption language before it uses the
    # picture (smoke, ResNet50 encoder, epoch 1: captioner 0.974 vs blind 0.957; epoch 4: 0.367 vs 0.612),
    # so a warning there would be a false alarm.
    "check_first_epoch": {"smoke": False, "sample": False, "full": True},
}


@dataclass
class CaptionConfig:
    """Everything notebook 06 does, resolved from its parameters."""

    preset: str
    paths: RunPaths
    data_source: str | None  # Flickr8k folder; None: synthetic (smoke) or the public archive (full)
    encoder_spec: str  # "clip", "resnet50" or "classifier:<name>"
    encoder: EncoderConfig
    pretrained: bool  # encoders start from openai's CLIP / ImageNet weights (False: seeded random init)
    prefix: PrefixConfig  # feature_dim is filled in once the features exist
    train: TrainConfig
    decoding: DecodeConfig
    seed: int = 0
    max_train_images: int | None = None  # None: every training image
    sweep: tuple[str, ...] = SWEEP
    synthetic: dict[str, Any] = field(default_factory=dict)
    compare_encoders: tuple[str, ...] = ()  # the encoder study's encoders (specs, or "best")
    study_epochs: int = 1  # epochs of each encoder-study training
    check_first_epoch: bool = False  # after epoch 1, warn when the captioner is not below its blind twin
    dataset: str = "flickr8k"  # flickr8k | karpathy:<coco|flickr30k|flickr8k> | folder:<path>
    restval: str = "train"  # where Karpathy's COCO restval images go: train | val | exclude

    @classmethod
    def for_preset(
        cls,
        preset: str,
        run_dir: str | None = None,
        data_source: str | None = None,
        encoder: str | None = None,
        prefix_length: int | None = None,
        freeze_gpt2: bool | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        mapper_lr: float | None = None,
        warmup: float | None = None,
        decoding: str | None = None,
        seed: int = 0,
        mapper: str = "mlp",
        max_steps: int | None = None,
        compare_encoders: list[str] | tuple[str, ...] | None = None,
        study_epochs: int | None = None,
        check_first_epoch: bool | None = None,
        bucket_by_length: bool | None = None,
        dataset: str = "flickr8k",
        restval: str = "train",
    ) -> CaptionConfig:
        """Knobs left as None take the preset's default (`max_steps` None: no cap)."""
        paths = RunPaths.for_run(preset, run_dir)
        parse_dataset(dataset)  # an unknown dataset string fails here, before any work
        require_data_source(preset, data_source, "a Flickr8k-style folder (e.g. <data-dir>/flickr8k)")
        knobs = preset_knobs(
            preset,
            DEFAULTS,
            encoder=encoder,
            prefix_length=prefix_length,
            freeze_gpt2=freeze_gpt2,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            mapper_lr=mapper_lr,
            warmup=warmup,
            decoding=decoding,
            compare_encoders=None if compare_encoders is None else tuple(compare_encoders),
            check_first_epoch=check_first_epoch,
            study_epochs=study_epochs,
            bucket_by_length=bucket_by_length,
        )
        enc = EncoderConfig.from_spec(
            knobs["encoder"], paths.models, knobs["pretrained"], knobs["input_size"], seed
        )
        prefix = PrefixConfig(
            feature_dim=1,  # placeholder until the encoder is built
            prefix_length=knobs["prefix_length"],
            mapper=mapper,
            gpt2=knobs["gpt2"],
            freeze_gpt2=knobs["freeze_gpt2"],
        )
        train = TrainConfig(
            epochs=knobs["epochs"],
            batch_size=knobs["batch_size"],
            lr=knobs["lr"],
            mapper_lr=knobs["mapper_lr"],
            warmup_fraction=knobs["warmup"],
            max_tokens=knobs["max_tokens"],
            seed=seed,
            max_steps=max_steps,
            bucket_by_length=knobs["bucket_by_length"],
        )
        dec = DecodeConfig.parse(knobs["decoding"], max_new_tokens=knobs["max_new_tokens"])
        return cls(
            preset,
            paths,
            data_source,
            knobs["encoder"],
            enc,
            knobs["pretrained"],
            prefix,
            train,
            dec,
            seed,
            max_train_images=knobs["max_train_images"],
            synthetic=dict(SMOKE_FLICKR, seed=seed) if preset == "smoke" else {},
            compare_encoders=tuple(knobs["compare_encoders"]),
            study_epochs=knobs["study_epochs"],
            check_first_epoch=knobs["check_first_epoch"],
            dataset=dataset,
            restval=restval,
        )

    def decodings(self) -> list[DecodeConfig]:
        """The sweep, plus the headline decoding when it is not already in it."""
        decs = [DecodeConfig.parse(d, max_new_tokens=self.decoding.max_new_tokens) for d in self.sweep]
        return decs if self.decoding.name in [d.name for d in decs] else [*decs, self.decoding]

    def train_names(self, flickr) -> list[str]:
        """The training images used: all, or a seeded subset of `max_train_images`."""
        names = flickr.splits["train"]
        if self.max_train_images is None or len(names) <= self.max_train_images:
            return list(names)
        rng = np.random.default_rng(self.seed)
        return sorted(names[i] for i in rng.choice(len(names), self.max_train_images, replace=False))

    def resolve_data(self) -> Path:
        """The folder the dataset is read from: given (an s3:// URI is pulled into run_dir/sources/s3),
        synthetic (smoke, written once) or downloaded (full: Flickr8k, and what a Karpathy split lacks)."""
        from helpers.data import ensure_synthetic_flickr, fetch_flickr8k
        from helpers.data.sources import fetch_karpathy

        kind, arg = parse_dataset(self.dataset)
        given = None
        if self.data_source is not None and self.data_source.startswith("s3://"):
            given = _pull_s3(self.data_source, self.paths.sources / "s3")
        elif self.data_source is not None:
            given = Path(self.data_source).expanduser()
        if kind == "karpathy" and self.preset == "full":
            return fetch_karpathy(arg, self.paths.sources, given)
        if given is not None:
            return given
        if kind == "folder" and arg:
            return Path(arg).expanduser()
        if self.preset == "smoke":
            return _synthetic_source(ensure_synthetic_flickr(self.paths.sources, **self.synthetic), kind, arg)
        if kind == "flickr8k":
            return fetch_flickr8k(self.paths.sources)
        raise ValueError(
            f"dataset {self.dataset!r} needs data_source: a folder or s3:// URI with the files "
            "docs/datasets.md names (karpathy:<name>: dataset_<name>.json and its images; folder: images + "
            "metadata.jsonl or captions.csv)"
        )

    def load_data(self, check_images: bool = True):
        """The run's CaptionDataset; a seeded folder split is written to (and reused from) captions/."""
        from helpers.data.sources import load_dataset

        split_file = self.paths.captions / "splits.json"
        return load_dataset(
            self.dataset,
            self.resolve_data(),
            seed=self.seed,
            restval=self.restval,
            split_file=split_file,
            check_images=check_images,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the configuration, stored in every metrics file."""
        return {
            "preset": self.preset,
            "run_dir": str(self.paths.root),
            "data_source": self.data_source,
            "encoder_spec": self.encoder_spec,
            "encoder": dataclasses.asdict(self.encoder),
            "pretrained": self.pretrained,
            "prefix": dataclasses.asdict(self.prefix),
            "train": dataclasses.asdict(self.train),
            "decoding": dataclasses.asdict(self.decoding),
            "sweep": list(self.sweep),
            "seed": self.seed,
            "synthetic": self.synthetic,
            "max_train_images": self.max_train_images,
            "compare_encoders": list(self.compare_encoders),
            "study_epochs": self.study_epochs,
            "check_first_epoch": self.check_first_epoch,
            "dataset": self.dataset,
            "restval": self.restval,
        }


def recorded_config(paths: RunPaths) -> dict[str, Any] | None:
    """The `config` notebook 06 recorded in this run folder's captions/metrics.json, or None before 06."""
    from helpers import artifacts

    metrics = paths.captions / "metrics.json"
    return artifacts.read_json(metrics)["config"] if metrics.is_file() else None


def recorded_dataset(paths: RunPaths, check_images: bool = False):
    """The caption dataset notebook 06 trained on in this run folder, read again as its metrics.json
    records it (dataset, data_source, preset, seed, restval), or None when 06 has not run here.

    What reads 06's outputs (07's studies, 08) takes the dataset from here, not from a folder name. Read
    once per metrics.json version in a process: 07 asks twice (its examples and its studies), and COCO's
    Karpathy JSON takes seconds and a GiB to parse (rehearsal/results.md).
    """
    metrics = paths.captions / "metrics.json"
    if not metrics.is_file():
        return None
    key = (str(metrics.resolve()), metrics.stat().st_mtime_ns, check_images)
    if key not in _RECORDED:
        _RECORDED.clear()  # one dataset held at a time
        _RECORDED[key] = _read_recorded(paths, check_images)
    return _RECORDED[key]


_RECORDED: dict[tuple, Any] = {}


def _read_recorded(paths: RunPaths, check_images: bool):
    config = recorded_config(paths)
    if config is None:
        return None
    cfg = CaptionConfig.for_preset(
        config["preset"],
        str(paths.root),
        data_source=config.get("data_source"),
        seed=config.get("seed", 0),
        dataset=config.get("dataset", "flickr8k"),
        restval=config.get("restval", "train"),
    )
    return cfg.load_data(check_images=check_images)


def _synthetic_source(flickr_dir: Path, kind: str, name: str) -> Path:
    """The smoke world in the layout `kind` reads: the Flickr8k folder, or a Karpathy JSON / own folder
    written from it (same images, captions and splits)."""
    if kind == "flickr8k":
        return flickr_dir
    from helpers.data import load_flickr8k
    from helpers.data.folder import write_folder
    from helpers.data.karpathy import write_karpathy

    dest = flickr_dir.parent / (f"karpathy-{name}" if kind == "karpathy" else "folder")
    if not dest.is_dir():
        flickr = load_flickr8k(flickr_dir)
        write_folder(flickr, dest)
        if kind == "karpathy":
            write_karpathy(flickr, dest, name)
    return dest


def _pull_s3(uri: str, dest: Path) -> Path:
    """Sync an S3 prefix into `dest/<bucket>/<prefix>` (helpers.aws, checksums verified) and return it."""
    from helpers.aws.context import connect
    from helpers.aws.s3sync import pull, split_s3_uri

    bucket, prefix = split_s3_uri(uri)
    local = dest / bucket / prefix.strip("/")
    pull(connect(), uri, local)
    return local
