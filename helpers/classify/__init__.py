"""CIFAR-100 classifiers on Keras-applications backbones: registry, input pipeline, training, evaluation.

The public entry points the notebooks and the demo use are re-exported here.
"""

from helpers.classify.backbones import BACKBONES, BackboneSpec, build_classifier, get_backbone
from helpers.classify.config import TrainConfig
from helpers.classify.inference import load_classifier, predict_probs, predict_topk
from helpers.classify.pipeline import make_dataset, preprocess_batch

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "TrainConfig",
    "build_classifier",
    "get_backbone",
    "load_classifier",
    "make_dataset",
    "predict_probs",
    "predict_topk",
    "preprocess_batch",
]
