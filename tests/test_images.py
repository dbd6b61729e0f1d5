"""The one image decoder: unusual but valid pictures come out upright RGB, bad input gets a clear error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.data import ImageDecodeError, decode_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def halves(width: int = 40, height: int = 20) -> Image.Image:
    """Left half red, right half blue."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR is edited to claim `width` x `height` (CRC fixed up)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    # signature (8) + length (4) + b"IHDR" (4), then width and height as big-endian uint32
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# ---- valid but unusual pictures ---------------------------------------------------------------------
def test_rgb_png_round_trips_exactly():
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(arr), "PNG"))
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, arr)
    out[0, 0] = 0  # the result is a writable copy


def test_path_str_and_memoryview_sources(tmp_path: Path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(halves(), "PNG"))
    expected = decode_image(path)
    np.testing.assert_array_equal(decode_image(str(path)), expected)
    np.testing.assert_array_equal(decode_image(memoryview(path.read_bytes())), expected)  # FileUpload content


def test_grayscale_becomes_three_equal_channels():
    out = decode_image(encode(Image.new("L", (4, 3), 77), "PNG"))
    assert out.shape == (3, 4, 3) and (out == 77).all()


def test_one_by_one_image():
    out = decode_image(encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"))
    assert out.shape == (1, 1, 3) and out[0, 0].tolist() == [10, 20, 30]


def test_rgba_transparency_is_composited_on_white():
    img = Image.new("RGBA", (4, 2), (0, 0, 255, 0))  # fully transparent blue
    img.putpixel((0, 0), (255, 0, 0, 255))  # one opaque red pixel
    out = decode_image(encode(img, "PNG"))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[1, 3].tolist() == [255, 255, 255]


def test_gray_alpha_half_transparent():
    out = decode_image(encode(Image.new("LA", (2, 2), (0, 128)), "PNG"))
    assert abs(int(out[0, 0, 0]) - 127) <= 1 and (out[..., 0] == out[..., 2]).all()


def test_palette_with_transparent_index():
    img = Image.new("P", (3, 1), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((2, 0), 1)
    out = decode_image(encode(img, "PNG", transparency=0))  # index 0 (red) is transparent
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 2].tolist() == [0, 255, 0]


def test_16_bit_png_is_scaled_not_clipped():
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(arr), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really stored as 16-bit
    out = decode_image(data)
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg_converted():
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no cyan, full magenta + yellow: red
    out = decode_image(encode(img, "JPEG", quality=95))
    r, g, b = out[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_rotated_jpeg_comes_out_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: stored rotated, display turned 90 degrees clockwise
    out = decode_image(encode(halves(40, 20), "JPEG", quality=95, exif=exif.tobytes()))
    assert out.shape == (40, 20, 3)  # portrait after the turn
    top, bottom = out[5, 10].astype(int), out[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    out = decode_image(data)
    assert out[3, 3].tolist() == [255, 0, 0]


# ---- inputs that must be refused ----------------------------------------------------------------------
def test_empty_bytes_and_empty_file(tmp_path: Path):
    with pytest.raises(ImageDecodeError, match="file is empty"):
        decode_image(b"")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty.jpg: file is empty"):
        decode_image(tmp_path / "empty.jpg")


def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageDecodeError, match="no such file"):
        decode_image(tmp_path / "nope.png")
    with pytest.raises(ImageDecodeError, match="a folder, not a file"):
        decode_image(tmp_path)


def test_truncated_jpeg():
    data = encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)), "JPEG")
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_truncated_png():
    data = encode(Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), np.uint8)), "PNG")
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", r"not an image \(looks like HTML\)"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG drawing"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF document"),
        (b"just some words, not a picture\n", r"looks like text"),
        (bytes(range(7, 200)), "unknown format"),
    ],
    ids=["html", "svg", "pdf", "text", "binary"],
)
def test_non_images_are_named(payload: bytes, expected: str):
    with pytest.raises(ImageDecodeError, match=expected):
        decode_image(payload)


def test_decompression_bomb_refused_from_the_header():
    bomb = png_declaring(50_000, 50_000)
    assert len(bomb) < 100  # a few bytes claiming 2.5 gigapixels
    with pytest.raises(ImageDecodeError, match=r"2\.5 gigapixels, over the 40 megapixel limit"):
        decode_image(bomb)
    # above our limit but below PIL's own: our message names the dimensions
    with pytest.raises(ImageDecodeError, match=r"8000x6000 = 48\.0 megapixels, over the 40 megapixel limit"):
        decode_image(png_declaring(8000, 6000))
    # a raised limit still meets Pillow's own check, which is reported as such
    with pytest.raises(ImageDecodeError, match="Pillow's decompression-bomb limit"):
        decode_image(bomb, max_pixels=10**10)


def test_pixel_limit_is_configurable():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageDecodeError, match=r"100x100 = 10000 pixels, over the 0\.005 megapixel limit"):
        decode_image(data, max_pixels=5_000)


def test_byte_limit_checked_before_reading(tmp_path: Path):
    path = tmp_path / "big.png"
    path.write_bytes(
        encode(Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 300, 3), np.uint8)), "PNG")
    )
    with pytest.raises(ImageDecodeError, match=r"file is \d+\.\d kB, over the 10 kB limit"):
        decode_image(path, max_bytes=10_000)
    assert decode_image(path, max_bytes=10_000_000).shape == (300, 300, 3)


def test_one_exception_type_is_a_value_error():
    assert issubclass(ImageDecodeError, ValueError)
