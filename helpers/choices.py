"""What a user may choose of the captioner, and the image size the models see: one home for the demo and
the endpoint. Dependency-light (numpy and Pillow only): the endpoint's image installs little."""

from __future__ import annotations

import numpy as np

DECODINGS = ("greedy", "beam")  # the captioner's decodings a user can pick
DETAILS = ("short", "detailed")  # caption lengths: "detailed" is a longer beam search
#: Longest side (pixels) handed to the models; both resize to <= 224 anyway, and shrinking a 40-megapixel
#: photo first keeps their float32 copies small (~3 MB instead of ~480 MB).
MODEL_MAX_SIDE = 1024


def fit_within(image: np.ndarray, side: int = MODEL_MAX_SIDE) -> np.ndarray:
    """Shrink (never enlarge) so the longest side is at most `side` pixels, keeping the aspect ratio."""
    if max(image.shape[:2]) <= side:
        return image
    from PIL import Image

    pil = Image.fromarray(image)
    pil.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(pil)
