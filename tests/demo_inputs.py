"""Files a person might upload to the demo, good and bad, generated in memory (no fixtures on disk)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

RED, BLUE = (230, 20, 20), (20, 20, 230)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    """PIL image -> file bytes in `fmt`."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def two_tone(width: int = 32, height: int = 64) -> Image.Image:
    """Upright test picture: red top half, blue bottom half."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: height // 2], arr[height // 2 :] = RED, BLUE
    return Image.fromarray(arr)


def noise_png(side: int, seed: int = 0) -> bytes:
    """Incompressible RGB noise: a PNG of about 3 * side**2 bytes."""
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)), "PNG")


def truncated_jpeg() -> bytes:
    """A real JPEG cut in half."""
    data = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)), "JPEG")
    return data[: len(data) // 2]


def png_16bit() -> bytes:
    """16-bit grayscale PNG whose values span 0..65535 (a naive conversion would clip them to white)."""
    ramp = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")  # uint16 arrays become mode I;16


def cmyk_jpeg() -> bytes:
    """CMYK JPEG, pure cyan (C=255): RGB (0, 255, 255)."""
    return encode(Image.new("CMYK", (40, 30), (255, 0, 0, 0)), "JPEG", quality=95)


def rgba_png() -> bytes:
    """RGBA PNG: left half opaque red, right half fully transparent."""
    arr = np.zeros((30, 40, 4), np.uint8)
    arr[:, :20] = (*RED, 255)
    return encode(Image.fromarray(arr, mode="RGBA"), "PNG")


def palette_gif() -> bytes:
    """Palette GIF of the two-tone picture."""
    return encode(two_tone().convert("P", palette=Image.Palette.ADAPTIVE, colors=4), "GIF")


def animated_gif() -> bytes:
    """Two-frame GIF: the first frame red, the second blue."""
    frames = [Image.new("RGB", (24, 24), c).convert("P") for c in (RED, BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    """The two-tone picture stored lying on its side, with EXIF orientation 6 ("rotate 90 CW to view")."""
    stored = two_tone().transpose(Image.Transpose.ROTATE_90)  # 64 wide x 32 tall, red on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif)


def one_pixel_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), RED), "PNG")


def pdf_document() -> bytes:
    """A real one-page PDF."""
    return encode(Image.new("RGB", (20, 20), RED), "PDF")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(side: int = 100_000) -> bytes:
    """A valid ~60-byte PNG header declaring side x side pixels (10 gigapixels at the default)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>\n'
HTML = b"<!DOCTYPE html>\n<html><head><title>not a photo</title></head><body>hello</body></html>\n"
TEXT = b"These are my holiday notes, saved with the wrong extension.\n"
