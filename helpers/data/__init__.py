"""Datasets in their canonical formats: CIFAR-100, Flickr8k, their synthetic stand-ins, and image decoding."""

from helpers.data.captions import CaptionDataset, CaptionFormatError
from helpers.data.cifar import (
    CIFAR100_COARSE_LABELS,
    CIFAR100_FINE_LABELS,
    CifarData,
    CifarFormatError,
    UnsafePickleError,
    load_cifar100,
    save_cifar100,
)
from helpers.data.flickr import (
    DownloadError,
    Flickr8k,
    FlickrFormatError,
    fetch_flickr8k,
    load_flickr8k,
    normalize_caption,
)
from helpers.data.images import ImageDecodeError, decode_image
from helpers.data.prepared import SPLITS, Prepared, Split, load_prepared, save_prepared, split_indices
from helpers.data.sources import load_dataset, parse_dataset
from helpers.data.synthetic import (
    captions_for,
    cifar_class,
    ensure_synthetic_cifar,
    ensure_synthetic_flickr,
    write_synthetic_cifar,
    write_synthetic_flickr,
)

__all__ = [
    "CIFAR100_COARSE_LABELS",
    "CaptionDataset",
    "CaptionFormatError",
    "CIFAR100_FINE_LABELS",
    "SPLITS",
    "CifarData",
    "CifarFormatError",
    "DownloadError",
    "Flickr8k",
    "FlickrFormatError",
    "ImageDecodeError",
    "Prepared",
    "Split",
    "UnsafePickleError",
    "captions_for",
    "cifar_class",
    "decode_image",
    "ensure_synthetic_cifar",
    "ensure_synthetic_flickr",
    "fetch_flickr8k",
    "load_cifar100",
    "load_dataset",
    "load_flickr8k",
    "load_prepared",
    "normalize_caption",
    "parse_dataset",
    "save_cifar100",
    "save_prepared",
    "split_indices",
    "write_synthetic_cifar",
    "write_synthetic_flickr",
]
