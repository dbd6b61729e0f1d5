"""Training knobs of the classifier notebooks (02, 03, 04) and their per-preset, per-backbone defaults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from helpers.classify.backbones import get_backbone
from helpers.config import RunPaths, check_preset

# Per backbone and preset. smoke: random init at 32x32, sized so 02-04 run in about a minute each on
# 2 CPU cores. sample: the same on the real miniature (no weights download needed). full: ImageNet
# weights at the backbone's 224x224, epochs sized for one T4 (ml.g4dn.xlarge, see the README).
# VGG16 from random weights needs a 10x smaller learning rate than the BatchNorm nets to move at all.
_SMALL = {"input_size": 32, "weights": None, "batch_size": 32}
_FULL = {"input_size": 224, "weights": "imagenet", "head_epochs": 2, "lr": 1e-3}
PRESET_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "vgg16": {
        "smoke": {**_SMALL, "head_epochs": 1, "finetune_epochs": 1, "lr": 1e-4},
        "sample": {**_SMALL, "head_epochs": 1, "finetune_epochs": 1, "lr": 1e-4},
        "full": {**_FULL, "batch_size": 64, "finetune_epochs": 6},
    },
    "resnet50": {
        "smoke": {**_SMALL, "head_epochs": 1, "finetune_epochs": 1, "lr": 1e-3},
        "sample": {**_SMALL, "head_epochs": 1, "finetune_epochs": 1, "lr": 1e-3},
        "full": {**_FULL, "batch_size": 64, "finetune_epochs": 8},
    },
    "mobilenet_v2": {
        "smoke": {**_SMALL, "head_epochs": 4, "finetune_epochs": 2, "lr": 3e-3},
        "sample": {**_SMALL, "head_epochs": 2, "finetune_epochs": 1, "lr": 3e-3},
        "full": {**_FULL, "batch_size": 128, "finetune_epochs": 10},
    },
}


#: How the learning rate grows with the global batch on k devices (batch x k). Adam's rule is the square
#: root (Malladi et al., NeurIPS 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms";
#: Hoffer et al. 2017); "linear" is Goyal et al.'s rule for SGD (2017), which needs a warm-up Adam lacks here.
LR_SCALING = {"sqrt": math.sqrt, "linear": float, "none": lambda k: 1.0}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a classifier run; saved as config.json beside the model."""

    preset: str
    run_dir: str
    backbone: str  # "vgg16", "resnet50" or "mobilenet_v2"; also the model folder's name
    input_size: int  # pixels per side fed to the backbone (images are resized on the fly)
    weights: str | None  # "imagenet" or None (random init)
    head_epochs: int  # phase 1: head on a frozen backbone (whole net when weights is None)
    finetune_epochs: int  # phase 2: backbone unfrozen at lr * finetune_lr_scale
    batch_size: int  # images per step on one device; on several: the global batch, see on_replicas
    lr: float  # Adam learning rate of phase 1; cosine-decayed per epoch within each phase
    seed: int
    finetune_lr_scale: float = 0.1  # phase-2 learning rate relative to `lr`
    unfreeze_top: int | None = None  # phase 2 unfreezes only the top N backbone layers (None: all)
    dropout: float = 0.3  # before the classification layer
    patience: int = 3  # phase-2 early stopping: epochs without a val_accuracy gain
    mixed_precision: bool | None = None  # float16 compute, float32 softmax; None: on when a GPU is present
    max_steps: int | None = None  # training steps per epoch; None: the whole training split (a rehearsal cap)
    jit_compile: bool | None = None  # XLA; None: Keras' choice (GPU: on; CPU: off, oneDNN is faster)
    lr_scaling: str = "sqrt"  # lr on several devices: "sqrt" (of the batch growth), "linear" or "none"
    replicas: int = 1  # devices batch_size and lr are scaled for (on_replicas sets it)
    preprocessing: str = "in-model"  # "in-model": tf.data ships uint8, the model resizes etc.; "pipeline"

    def __post_init__(self) -> None:
        check_preset(self.preset)
        get_backbone(self.backbone).check_input_size(self.input_size)
        if self.weights not in (None, "imagenet"):
            raise ValueError(f"weights must be 'imagenet' or None, got {self.weights!r}")
        if self.head_epochs < 0 or self.finetune_epochs < 0 or self.head_epochs + self.finetune_epochs < 1:
            raise ValueError("need head_epochs >= 0, finetune_epochs >= 0 and at least one epoch in all")
        if self.batch_size < 1 or self.lr <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("need batch_size >= 1, lr > 0 and 0 <= dropout < 1")
        if self.lr_scaling not in LR_SCALING or self.replicas < 1:
            raise ValueError(f"lr_scaling must be one of {', '.join(LR_SCALING)} and replicas >= 1")
        if self.preprocessing not in ("in-model", "pipeline"):
            raise ValueError(f"preprocessing must be 'in-model' or 'pipeline', got {self.preprocessing!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be None or >= 1, got {self.max_steps}")

    @classmethod
    def for_preset(cls, preset: str, backbone: str, run_dir: str | None = None, **knobs: Any) -> TrainConfig:
        """The preset's defaults for `backbone`, overridden by every knob that is not None.

        `weights` may also be the string "none" (random init), since None means "the preset's default".
        """
        check_preset(preset)
        get_backbone(backbone)
        values = {**PRESET_DEFAULTS[backbone][preset], "seed": 0}
        values.update({k: v for k, v in knobs.items() if v is not None})
        if isinstance(values["weights"], str) and values["weights"].lower() == "none":
            values["weights"] = None
        root = RunPaths.for_run(preset, run_dir).root
        return cls(preset=preset, run_dir=str(root), backbone=backbone, **values)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(Path(self.run_dir))

    @property
    def model_dir(self) -> Path:
        return self.paths.model(self.backbone)

    @property
    def epochs(self) -> int:
        return self.head_epochs + self.finetune_epochs

    def on_replicas(self, replicas: int) -> TrainConfig:
        """The recipe on `replicas` devices (MirroredStrategy): each device keeps the recipe's batch, so the
        global batch is batch_size x replicas and lr grows by `lr_scaling` of that factor (phase 2 follows,
        at lr x finetune_lr_scale). The same config on one device is returned as it is."""
        if replicas == self.replicas:
            return self
        if self.replicas != 1:
            raise ValueError(f"this config is already scaled for {self.replicas} replicas")
        growth = LR_SCALING[self.lr_scaling](replicas)
        return replace(self, batch_size=self.batch_size * replicas, lr=self.lr * growth, replicas=replicas)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
