"""One safe image decoder for every picture the project reads: path or bytes -> (H, W, 3) uint8 RGB.

It applies EXIF orientation, converts every common mode (grayscale, alpha, palette, 16-bit, CMYK) to RGB,
takes the first frame of animations, refuses decompression bombs from the header alone (before any pixel
is decoded) and raises one exception type, `ImageDecodeError`, with a message a person can act on.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Default pixel budget: a 40-megapixel RGB image is 120 MB decoded, enough for any camera photo.
DEFAULT_MAX_PIXELS = 40_000_000

# Modes holding more than 8 bits per sample; their values are scaled from 0..65535 down to 0..255.
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# What PIL raises on corrupt or truncated data while decoding pixels.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


class ImageDecodeError(ValueError):
    """The input is not an image this project can decode (empty, truncated, too big, not an image...)."""


def _size(n: float, limit: bool = False) -> str:
    """Bytes for people: "30.0 MB"; a limit is shown without decimals when round ("20 MB")."""
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:g} {unit}" if limit else f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def _pixels(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} gigapixels"
    if n >= 1e6:
        return f"{n / 1e6:.1f} megapixels"
    return f"{n} pixels"


def _read(src: str | Path | bytes | bytearray | memoryview, max_bytes: int | None) -> tuple[bytes, str]:
    """The raw bytes and a name for messages; the size limit is checked before reading a file."""
    if isinstance(src, bytes | bytearray | memoryview):
        data, name = bytes(src), "image bytes"
    else:
        path = Path(src)
        name = str(path)
        if not path.is_file():
            raise ImageDecodeError(f"{name}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:  # checked before reading it into memory
            raise ImageDecodeError(f"{name}: file is {_size(size)}, over the {_size(max_bytes, True)} limit")
        data = path.read_bytes()
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageDecodeError(f"{name}: file is {_size(len(data))}, over the {_size(max_bytes, True)} limit")
    if not data:
        raise ImageDecodeError(f"{name}: file is empty")
    return data, name


def _sniff_non_image(data: bytes) -> str | None:
    """Name the kind of document when the bytes are clearly not a picture (a saved web page, a PDF...)."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf"):
        return "a PDF document"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "HTML"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "an SVG drawing (vector images are not supported; export it as PNG or JPEG)"
    if head.startswith(b"<?xml"):
        return "XML"
    return None


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def _bomb(name: str, err: Exception, max_pixels: int) -> ImageDecodeError:
    """PIL's own bomb check fired first (it reads the header before we can): say which limit was hit."""
    found = re.search(r"\((\d+) pixels\)", str(err))
    if found is not None and int(found.group(1)) > max_pixels:
        pixels = _pixels(int(found.group(1)))
        return ImageDecodeError(f"{name}: image is {pixels}, over the {max_pixels / 1e6:g} megapixel limit")
    return ImageDecodeError(f"{name}: refused by Pillow's decompression-bomb limit ({err})")


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open the header only and check the pixel count before anything is decoded."""
    with warnings.catch_warnings():
        # PIL's own bomb check warns (or raises) at ~89 megapixels; make both an error here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise _bomb(name, err, max_pixels) from err
        except UnidentifiedImageError as err:
            kind = (
                "looks like text" if _looks_like_text(data) else f"unknown format, starts with {data[:8]!r}"
            )
            raise ImageDecodeError(f"{name}: not an image ({kind})") from err
        except _DECODE_ERRORS as err:
            raise ImageDecodeError(f"{name}: corrupt image header ({err})") from err
    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{name}: image is {width}x{height} = {_pixels(width * height)}, "
            f"over the {max_pixels / 1e6:g} megapixel limit"
        )
    return img


def _wide_to_rgb(img: Image.Image) -> Image.Image:
    """16/32-bit grayscale -> 8-bit RGB by scaling 0..65535 to 0..255 (PIL's convert would clip at 255)."""
    arr = np.asarray(img, dtype=np.float64)
    arr = np.round(np.clip(arr, 0, 65535) / 257.0).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparent areas are composited on white, as a viewer shows them."""
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in _WIDE_MODES:
        return _wide_to_rgb(img)
    if img.mode == "F":
        # float images: values are taken as 0..255 and clipped, as PIL does for "F" -> "L"
        return img.convert("L").convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def decode_image(
    src: str | Path | bytes | bytearray | memoryview,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Decode a path or bytes to an upright (H, W, 3) uint8 RGB array, or raise `ImageDecodeError`.

    Bytes may also be a memoryview, as an ipywidgets FileUpload hands them over.
    """
    data, name = _read(src, max_bytes)
    kind = _sniff_non_image(data)
    if kind is not None:
        raise ImageDecodeError(f"{name}: not an image (looks like {kind})")
    img = _open(data, name, max_pixels)
    fmt = img.format or "image"
    try:
        img.seek(0)  # animated GIF/WebP/APNG: the first frame
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as err:
        raise _bomb(name, err, max_pixels) from err
    except _DECODE_ERRORS as err:
        raise ImageDecodeError(f"{name}: {fmt} data is truncated or corrupt ({err})") from err
    try:
        rgb = _to_rgb(img)
    except ValueError as err:  # e.g. LAB: PIL has no conversion to RGB for it
        raise ImageDecodeError(
            f"{name}: cannot convert {fmt} pixels in mode {img.mode} to RGB ({err})"
        ) from err
    arr = np.array(rgb, dtype=np.uint8)  # a fresh, writable copy
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ImageDecodeError(f"{name}: decoded to an unexpected shape {arr.shape}")
    return arr
