"""Drawing coloured, textured shapes on noisy backgrounds: the pictures of the synthetic datasets.

Shapes are drawn on a canvas a few times larger and averaged down, so edges and textures are anti-aliased
like a photo rather than hard pixel steps. All sizes and positions are in output pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross", "star")
#: Saturated base colours (RGB 0..255); backgrounds are low-saturation greys, so colour never blends in.
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 205, 30),
    "purple": (150, 60, 190),
}
TEXTURES = ("solid", "striped", "dotted", "checkered")
_CANVAS = 128  # pixels per side of the supersampled canvas to aim for (speed vs anti-aliasing)
_DARK = 0.3  # brightness of a texture's dark parts relative to the shape colour
_PERIOD = 4.0  # texture period in output pixels (stripes and checks 2 px wide)


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices of `shape` around (0, 0) with roughly unit radius, y pointing down."""

    def ring(n: int, start: float, radii: tuple[float, ...]) -> list[tuple[float, float]]:
        angles = [math.radians(start + 360.0 * k / n) for k in range(n)]
        return [
            (radii[k % len(radii)] * math.cos(a), radii[k % len(radii)] * math.sin(a))
            for k, a in enumerate(angles)
        ]

    if shape == "square":
        return ring(4, 45.0, (1.0,))
    if shape == "triangle":
        return ring(3, -90.0, (1.15,))
    if shape == "star":
        return ring(10, -90.0, (1.2, 0.5))
    if shape == "cross":
        w = 0.36  # half-width of an arm
        quarter = [(w, 1.0), (w, w), (1.0, w)]
        pts: list[tuple[float, float]] = []
        for k in range(4):  # the quarter outline turned a quarter-turn at a time, walking one way round
            pts += [_rot(x, y, -90.0 * k) for x, y in quarter]
        return pts
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def _rot(x: float, y: float, degrees: float) -> tuple[float, float]:
    a = math.radians(degrees)
    return x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)


@dataclass(frozen=True)
class Blob:
    """One shape to draw: centre and radius in output pixels, rotation in degrees, RGB colour."""

    shape: str
    cx: float
    cy: float
    radius: float
    colour: tuple[float, float, float]
    angle: float = 0.0
    texture: str = "solid"


def supersample(side: int) -> int:
    """Canvas pixels per output pixel: 4 for a 32-pixel picture, 1 from 128 pixels up."""
    return max(1, min(4, _CANVAS // side))


def _mask(blob: Blob, side: int) -> np.ndarray:
    """Coverage of `blob` on the supersampled canvas, 0..1."""
    s = supersample(side)
    canvas = Image.new("L", (side * s, side * s), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = blob.cx * s, blob.cy * s, blob.radius * s
    if blob.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        pts = [_rot(x, y, blob.angle) for x, y in _unit_polygon(blob.shape)]
        draw.polygon([(cx + x * r, cy + y * r) for x, y in pts], fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _pattern(blob: Blob, side: int) -> np.ndarray | float:
    """Texture brightness on the supersampled canvas: 1 = full colour, `_DARK` = dark part."""
    if blob.texture == "solid":
        return 1.0
    s = supersample(side)
    t = (np.arange(side * s, dtype=np.float32) + 0.5) / s
    dx, dy = t[None, :] - blob.cx, t[:, None] - blob.cy
    a = math.radians(blob.angle)  # the texture turns with the shape
    u, v = dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)
    half = _PERIOD / 2
    if blob.texture == "striped":
        on = np.floor(u / half) % 2 == 0
    elif blob.texture == "checkered":
        on = (np.floor(u / half) + np.floor(v / half)) % 2 == 0
    elif blob.texture == "dotted":
        du, dv = (u % _PERIOD) - half, (v % _PERIOD) - half
        on = du * du + dv * dv > 1.1**2  # dark dots of radius 1.1 px
    else:
        raise ValueError(f"unknown texture {blob.texture!r}; choose from {', '.join(TEXTURES)}")
    return np.where(on, 1.0, _DARK).astype(np.float32)


def render(
    side: int, blobs: list[Blob], background: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw `blobs` over `background` ((3,) or (side, side, 3)), add Gaussian noise of sigma `noise`."""
    s = supersample(side)
    hi = np.empty((side * s, side * s, 3), dtype=np.float32)
    hi[:] = np.repeat(np.repeat(np.broadcast_to(background, (side, side, 3)), s, 0), s, 1)
    for blob in blobs:
        m = _mask(blob, side)[..., None]
        fg = np.asarray(blob.colour, np.float32) * np.expand_dims(_pattern(blob, side), -1)
        hi = hi * (1.0 - m) + fg * m
    lo = hi.reshape(side, s, side, s, 3).mean(axis=(1, 3))
    lo += rng.normal(0.0, noise, lo.shape)
    return np.clip(np.round(lo), 0, 255).astype(np.uint8)


def background(side: int, rng: np.random.Generator) -> np.ndarray:
    """A low-saturation grey (60..200) with per-channel tint and a gentle linear gradient, (side, side, 3)."""
    grey = rng.uniform(60, 200)
    tint = rng.uniform(-18, 18, size=3)
    ramp = np.linspace(-1.0, 1.0, side, dtype=np.float32)
    gx, gy = rng.uniform(-15, 15, size=2)  # gradient strength, 0..255 units from edge to centre
    base = grey + tint[None, None, :] + (gx * ramp[None, :, None] + gy * ramp[:, None, None])
    return np.clip(base, 0, 255).astype(np.float32)


def jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: float = 20.0) -> tuple[float, ...]:
    """The named colour with each channel moved by up to `amount` (0..255 units)."""
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in colour)
