"""An estimate of the `full` series on one T4: FLOPs of each training and inference pass, from the models.

Method: count multiply-accumulates layer by layer (convolutions, depthwise convolutions, dense layers for
the Keras backbones; the transformer's matrix products for GPT-2 and CLIP), 2 FLOPs each. A training step
costs 3x its forward pass (forward, gradients of activations, gradients of weights), a frozen-backbone step
only the forward pass. Time = FLOPs / (T4 peak x utilisation). The T4's peak is NVIDIA's published 65
TFLOPS for mixed-precision tensor-core math; the utilisation is an assumption, stated with the result, not
a measurement (no GPU was available). Work that does not scale with FLOPs (downloads, JPEG decoding,
caption decoding, METEOR) is taken from the rehearsal's measured CPU time instead.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any

T4_PEAK_FLOPS = (
    65e12  # FLOP/s: NVIDIA T4 datasheet, mixed precision (FP16 with FP32 accumulate), tensor cores
)
UTILISATION = 0.30  # assumed share of that peak a training step reaches (typical 25-40 % for these models)
FULL_SPLITS = {"train": 45_000, "val": 5_000, "test": 10_000}  # CIFAR-100 as 01 prepares it for `full`
FLICKR = {"images": 8_091, "train": 6_000, "val": 1_000, "test": 1_000, "captions_per_image": 5}
#: Karpathy's COCO with restval in train; 616,767 captions over 123,287 images (the real JSON's counts).
COCO = {
    "images": 123_287,
    "train": 113_287,
    "val": 5_000,
    "test": 5_000,
    "captions_per_image": 616_767 / 123_287,
}
#: Assumed share of linear speed-up per GPU count (docs/training-jobs.md): DDP over PCIe within one
#: instance 90 %, over two ml.g4dn.12xlarge (25-50 Gbit/s, no EFA) 80 %. Assumptions, not measurements.
GPU_SCALING = {1: 1.0, 4: 0.9, 8: 0.8}
INSTANCE_RAM = 16 * 2**30  # ml.g4dn.xlarge: 16 GiB, 4 vCPUs, one T4
INSTANCE_CORES = 4
#: caption tokens and padded width of a batch when no real captions are here, plain or length-bucketed
#: batches, rounded up from Flickr8k's normalized captions as 06 trains on them (official training list,
#: batch 40: 12.3 tokens, 22.6 / 12.7 padded; rehearsal.report.caption_shape)
ASSUMED_SHAPE = {False: {"mean_tokens": 14.0, "padded": 24.0}, True: {"mean_tokens": 14.0, "padded": 14.5}}


@functools.cache
def keras_macs(backbone: str, size: int) -> int:
    """Multiply-accumulates of one forward pass of the backbone (no top) at `size` x `size`."""
    import keras

    from helpers.classify import get_backbone

    model = get_backbone(backbone).constructor(include_top=False, weights=None, input_shape=(size, size, 3))
    macs = 0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * out[3] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            macs += out[1] * out[2] * out[3] * kh * kw * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * out[-1]
    keras.backend.clear_session()
    return int(macs)


def transformer_macs(layers: int, width: int, tokens: int, ffn: int | None = None) -> int:
    """Multiply-accumulates of `tokens` tokens through a pre-norm transformer stack (attention included)."""
    ffn = ffn or 4 * width
    per_token = layers * (4 * width * width + 2 * width * ffn)  # q, k, v, out projections; the MLP
    attention = layers * 2 * tokens * tokens * width  # scores and the weighted sum, full sequence
    return per_token * tokens + attention


@dataclass
class Estimate:
    """One notebook's GPU work on a T4."""

    notebook: str
    tflop: float  # total, 1e12 FLOPs
    seconds: float  # at T4_PEAK_FLOPS x UTILISATION
    note: str
    pipeline_images: int = 0  # images through the CPU input pipeline (resize to 224 and preprocess)


def t4_seconds(flops: float) -> float:
    return flops / (T4_PEAK_FLOPS * UTILISATION)


def classifier_estimate(
    notebook: str, backbone: str, size: int, batch: int, head: int, finetune: int
) -> Estimate:
    """Head epochs (frozen backbone: forward only), fine-tune epochs (3x forward), validation, evaluation."""
    forward = 2 * keras_macs(backbone, size)  # FLOPs per image; the 100-way head is negligible
    steps = math.ceil(FULL_SPLITS["train"] / batch)
    train = steps * batch * forward * (head + 3 * finetune)
    validate = (head + finetune) * FULL_SPLITS["val"] * forward
    evaluate = sum(FULL_SPLITS.values()) * forward
    flops = train + validate + evaluate
    note = (
        f"{forward / 1e9:.1f} GFLOPs per image forward; {steps} steps of {batch} per epoch, "
        f"{head} head + {finetune} fine-tune epochs (an upper bound: early stopping may end sooner)"
    )
    images = (head + finetune) * (steps * batch + FULL_SPLITS["val"]) + sum(FULL_SPLITS.values())
    return Estimate(notebook, flops / 1e12, t4_seconds(flops), note, images)


def captioner_step_flops(batch: int, prefix: int, caption_tokens: float, padded: float) -> float:
    """GPT-2 small (12 x 768, 50,257-token head) training step: prefix + padded caption positions."""
    tokens = prefix + padded
    body = transformer_macs(12, 768, int(round(tokens))) * batch
    head = 768 * 50_257 * caption_tokens * batch  # the vocabulary projection only where a token is predicted
    return 3 * 2 * (body + head)


def encoder_forward_flops(spec: str, size: int = 224) -> tuple[float, str]:
    """FLOPs per image of one captioning encoder, and what was counted."""
    if spec == "clip":  # ViT-B/32: 49 patches + the class token through 12 x 768 layers, then the projection
        macs = 49 * 3 * 32 * 32 * 768 + transformer_macs(12, 768, 50) + 768 * 512
        return 2.0 * macs, "CLIP ViT-B/32"
    if spec == "best":  # 05's pick is not known before 02-05 run: VGG16, the costliest, as an upper bound
        return 2.0 * keras_macs("vgg16", size), "best classifier (VGG16 as the upper bound)"
    name = spec.removeprefix("classifier:")
    return 2.0 * keras_macs(name, size), name


def captioner_estimate(cap, shape: dict[str, float] | None, data: dict[str, float] = FLICKR) -> Estimate:
    """06: features of every encoder, the captioner and its blind twin, the encoder study, validation.

    The study trains one mapper per encoder in front of the blind twin's frozen GPT-2 for `study_epochs`:
    forward and activation gradients through GPT-2, no weight gradients (2/3 of a full step). `data`:
    image and split counts (`FLICKR` or `COCO`).
    """
    assumed = shape is None
    shape = shape or ASSUMED_SHAPE[cap.train.bucket_by_length]
    batch, pairs = cap.train.batch_size, data["captions_per_image"]
    step = captioner_step_flops(batch, cap.prefix.prefix_length, shape["mean_tokens"], shape["padded"])
    per_epoch = math.ceil(data["train"] * pairs / batch)
    val_step = math.ceil(data["val"] * pairs / batch) * step / 3  # forward only
    study = list(cap.compare_encoders)
    epochs = 2 * cap.train.epochs  # the captioner and its blind twin
    study_epochs = len(study) * cap.study_epochs
    train = per_epoch * step * (epochs + study_epochs * 2 / 3)
    validate = val_step * (epochs + study_epochs)
    feats = {spec: encoder_forward_flops(spec) for spec in dict.fromkeys([cap.encoder_spec, *study])}
    features = data["images"] * sum(f for f, _ in feats.values())
    flops = train + validate + features
    note = (
        f"{step / 1e12:.2f} TFLOPs per step of {batch} (GPT-2 small, prefix {cap.prefix.prefix_length} + "
        f"{shape['padded']:.1f} padded caption tokens"
        + (" in length-bucketed batches" if cap.train.bucket_by_length else "")
        + f", {shape['mean_tokens']:.1f} predicted"
        f"{', assumed' if assumed else ''}); {per_epoch} steps per epoch, {cap.train.epochs} epochs each for "
        "the captioner and its blind twin"
        + (
            f", {study_epochs} mapper-only epochs in the encoder study ({len(study)} encoders)"
            if study
            else ""
        )
        + "; features: "
        + ", ".join(f"{label} {f / 1e9:.1f} GFLOPs/image" for f, label in feats.values())
        + "; caption decoding and METEOR not included"
    )
    return Estimate("06", flops / 1e12, t4_seconds(flops), note)


def captioner_only_seconds(cap, shape: dict[str, float], data: dict[str, float]) -> tuple[float, int]:
    """(T4 seconds, steps) of one captioner's training alone: `cap.train.epochs` epochs, no validation."""
    batch = cap.train.batch_size
    step = captioner_step_flops(batch, cap.prefix.prefix_length, shape["mean_tokens"], shape["padded"])
    steps = math.ceil(data["train"] * data["captions_per_image"] / batch) * cap.train.epochs
    return t4_seconds(steps * step), steps


def on_gpus(seconds: float, gpus: int) -> float:
    """`seconds` on one T4 spread over `gpus` T4s at the assumed `GPU_SCALING` efficiency."""
    return seconds / (gpus * GPU_SCALING[gpus])


def coco_projections(parse: dict[str, Any], feats: dict[str, Any]) -> dict[str, Any]:
    """Estimates (not measurements) for the notebook instance and the T4, from the FLOP counts and rates."""
    from helpers.caption.config import CaptionConfig
    from rehearsal.report import REAL_TOKENS, caption_shape

    with tempfile.TemporaryDirectory() as tmp:
        cap = CaptionConfig.for_preset("full", tmp)
    shape = (
        caption_shape(REAL_TOKENS, cap.train.batch_size, cap.train.max_tokens, cap.train.bucket_by_length)
        if REAL_TOKENS.is_file()
        else None
    )
    rows = {name: vars(captioner_estimate(cap, shape, data))
            for name, data in (("Flickr8k", FLICKR), ("COCO", COCO))}  # fmt: skip
    alone = {}
    for name, data in (("Flickr8k", FLICKR), ("COCO", COCO)):
        seconds, steps = captioner_only_seconds(cap, shape or ASSUMED_SHAPE[cap.train.bucket_by_length], data)
        hours = {str(g): round(on_gpus(seconds, g) / 3600, 2) for g in GPU_SCALING}
        alone[name] = {"steps": steps, "epochs": cap.train.epochs, "hours": hours}
    gpu_rate = T4_PEAK_FLOPS * UTILISATION / encoder_forward_flops("clip")[0]
    cores = os.cpu_count() or 1
    cpu_rate = min(feats["decode_per_second"] * INSTANCE_CORES / cores, feats["preprocess_per_second"])
    images = COCO["images"]
    check_rate = feats["decode_check_per_second"] * INSTANCE_CORES / cores
    return {
        "caption_shape": shape,
        "t4_rows": rows,
        "captioner_alone": alone,
        "feature_cache_bytes": images * feats["bytes_per_image"],
        "feature_cache_bytes_resnet50": images * 2048 * 2,
        "t4_feature_images_per_second": round(gpu_rate),
        "instance_feed_images_per_second": round(cpu_rate, 1),
        "instance_feature_hours": round(images / min(gpu_rate, cpu_rate) / 3600, 2),
        "instance_decode_check_minutes": round(images / check_rate / 60, 1),
        "peak_rss_share_of_instance": parse["peak_rss"] / INSTANCE_RAM,
    }
