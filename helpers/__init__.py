"""Shared code for the image-captioning notebook series (CIFAR-100 classifiers, Flickr8k GPT-2 captioner)."""

import os

# TensorFlow 2.21 leaves oneDNN off on AVX2-only CPUs and trains 2-4x slower for it; the variable must be
# set before TensorFlow is first imported, so importing `helpers` first is enough.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The captioner holds TensorFlow (image encoder) and PyTorch (GPT-2) in one process: TensorFlow must take GPU
# memory as it needs it, not all of it up front. Read when TensorFlow first touches the GPU.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

__version__ = "0.1.0"

#: The Jupyter kernel every notebook's metadata, papermill and the SageMaker lifecycle script use.
KERNEL_NAME = "caption-workbench"
