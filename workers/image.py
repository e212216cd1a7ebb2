"""Image bytes -> BGR pixels: format sniffing, header size checks, decoding, resizing.

Pure functions. Whatever its bytes claim, an image costs bounded time and memory: the header is
read before decoding, so a pixel bomb (a tiny file that claims 30000x30000 pixels) is refused
without allocating its pixels; a JPEG with more scans than any encoder writes (each scan is a
pass over every block: 16,000 empty ones held a thread for a minute) is refused unread; a large
JPEG is decoded at 1/2, 1/4 or 1/8 by libjpeg's DCT scaling, which skips most of the work, as
long as its longest side stays at least ``full_side``; PNG and BMP, which cannot be decoded
scaled, have a lower pixel cap.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

FORMATS = ("jpeg", "png", "bmp")
# JPEG start-of-scan marker. Entropy-coded data never holds it (a 0xFF there is followed by 0x00
# or a restart marker), so counting it bounds the scans; an EXIF thumbnail adds its own few.
_START_OF_SCAN = b"\xff\xda"
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass(frozen=True)
class DecodeLimits:
    """What one image may cost (config.defaults.Limits says why each default)."""

    max_pixels: int  # any image: refused above this many pixels (header)
    max_lossless_pixels: int  # PNG and BMP, decoded at full size: refused above this
    max_jpeg_scans: int  # JPEG: refused with more scans than this
    full_side: int  # JPEG: decoded scaled down while its longest side stays >= this


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


def decode_image(data: bytes, limits: DecodeLimits) -> tuple[np.ndarray, int]:
    """Decode PNG/JPEG/BMP bytes into BGR uint8 pixels (EXIF orientation applied) and the
    factor they were scaled down by (1, 2, 4 or 8): a pixel of the result is that many of
    the photo's on each side."""
    if not data:
        raise ImageError("empty", "image is empty")
    fmt = sniff_format(data)
    width, height = read_dimensions(data, fmt)
    if width <= 0 or height <= 0:
        raise ImageError("size", f"image has no pixels ({width}x{height})")
    cap = limits.max_pixels if fmt == "jpeg" else min(limits.max_pixels, limits.max_lossless_pixels)
    if width * height > cap:
        raise ImageError("size", f"image too large ({width}x{height} pixels, at most {cap} for {fmt.upper()})")
    factor = 1
    if fmt == "jpeg":
        scans = data.count(_START_OF_SCAN)
        if scans > limits.max_jpeg_scans:
            raise ImageError("format", f"JPEG with {scans} scans (real encoders write at most a few dozen)")
        factor = reduction(width, height, limits.full_side)
    flags = _REDUCED[factor] if factor > 1 else cv2.IMREAD_COLOR
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.size == 0:
        raise ImageError("format", f"{fmt} data cannot be decoded")
    if pixels.shape[0] * pixels.shape[1] * factor * factor > cap:
        raise ImageError("size", "image too large")
    return pixels, factor


def reduction(width: int, height: int, full_side: int) -> int:
    """The largest of 8, 4, 2 that keeps the longest side at least ``full_side``, else 1."""
    longest = max(width, height)
    return next((factor for factor in (8, 4, 2) if longest // factor >= full_side), 1)


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
