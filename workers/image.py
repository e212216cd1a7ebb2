"""Image bytes -> BGR pixels: format sniffing, header size checks, decoding, resizing.

Pure functions. The header is read before decoding so that a pixel bomb (a tiny file that
claims 30000x30000 pixels) is refused without allocating its pixels.
"""
from __future__ import annotations

import struct

import cv2
import numpy as np

FORMATS = ("jpeg", "png", "bmp")


class ImageError(ValueError):
    """An image that cannot be used. ``kind``: "empty", "format" or "size"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def sniff_format(data: bytes) -> str:
    """Name the container from its magic bytes; GIF, WebP etc. are refused (spec §1.1.4)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        raise ImageError("format", "GIF images are not supported")
    raise ImageError("format", "unsupported image format (PNG, JPG, JPEG or BMP expected)")


def read_dimensions(data: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) from the header alone. A header that is not the format's own (a magic
    number followed by garbage) is a format error, not a size to judge."""
    try:
        if fmt == "png":
            if data[12:16] != b"IHDR":
                raise ImageError("format", "PNG without an IHDR chunk")
            width, height = struct.unpack(">II", data[16:24])
        elif fmt == "bmp":
            width, height = _bmp_dimensions(data)
        else:
            width, height = _jpeg_dimensions(data)
    except struct.error as exc:
        raise ImageError("format", "truncated image header") from exc
    return width, height


# DIB header sizes: BITMAPCOREHEADER (16-bit sizes), then INFO, V2, V3, V4 and V5 headers.
_BMP_CORE_HEADER = 12
_BMP_INFO_HEADERS = (40, 52, 56, 108, 124)


def _bmp_dimensions(data: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == _BMP_CORE_HEADER:
        return struct.unpack("<HH", data[18:22])
    if header_size not in _BMP_INFO_HEADERS:
        raise ImageError("format", f"BMP with an unknown header size {header_size}")
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise ImageError("format", "JPEG without a frame header")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode PNG/JPEG/BMP bytes into a BGR uint8 array (EXIF orientation applied)."""
    if not data:
        raise ImageError("empty", "image is empty")
    fmt = sniff_format(data)
    width, height = read_dimensions(data, fmt)
    if width <= 0 or height <= 0:
        raise ImageError("size", f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError("size", f"image too large ({width}x{height} pixels, at most {max_pixels})")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise ImageError("format", f"{fmt} data cannot be decoded")
    if pixels.shape[0] * pixels.shape[1] > max_pixels:
        raise ImageError("size", "image too large")
    return pixels


def fit_within(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Downscale so the longest side is at most ``size``; return (image, scale <= 1)."""
    height, width = image.shape[:2]
    scale = min(1.0, size / max(height, width))
    if scale == 1.0:
        return image, 1.0
    resized = cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    return resized, scale
