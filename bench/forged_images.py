"""Images built for hostile input (tests/test_hostile.py, bench/hostile_soak.py): headers that claim
any size, other formats, truncated files, polyglots, a JPEG of thousands of scans. Pure byte
builders; the real photos come from ../shared/data."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, pixels: bytes = b"\0" * 16) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB) over the compressed ``pixels``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(pixels)) + png_chunk(b"IEND", b"")


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, a baseline frame header (SOF0) claiming width x height, EOI: no scan at all."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def bmp_header(width: int, height: int, bits: int = 24) -> bytes:
    """BITMAPFILEHEADER + BITMAPINFOHEADER claiming width x height, no pixel rows."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def plain(width: int, height: int, ext: str = ".png", value: int = 128) -> bytes:
    """A uniform grey image (no face) in a format OpenCV writes."""
    return cv2.imencode(ext, np.full((height, width, 3), value, np.uint8))[1].tobytes()


def reencoded(photo: bytes, ext: str) -> bytes:
    """A photo in another format OpenCV writes (.png, .bmp, .jpg)."""
    return cv2.imencode(ext, cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()


def pillow(photo: bytes, fmt: str) -> bytes:
    """A photo as GIF, WEBP or TIFF (formats facesvc refuses, spec §1.1.4)."""
    out = io.BytesIO()
    Image.open(io.BytesIO(photo)).convert("RGB").save(out, fmt)
    return out.getvalue()


def png_lying_about_its_size(photo: bytes, width: int, height: int) -> bytes:
    """A real PNG of the photo whose IHDR is rewritten to claim another size (CRC fixed)."""
    data = reencoded(photo, ".png")
    ihdr = struct.pack(">II", width, height) + data[24:29]
    return data[:8] + png_chunk(b"IHDR", ihdr) + data[33:]


def jpeg_with_second_frame(photo: bytes, width: int, height: int) -> bytes:
    """A real JPEG with a second frame header claiming another size before its end marker."""
    sof = jpeg_header(width, height)[2:-2]
    return photo[:-2] + sof + b"\xff\xd9"


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each marker segment of a JPEG, a scan running to the next marker that
    is neither a stuffed 0xFF00 nor a restart."""
    segments, pos = [], 2
    while pos < len(data) - 1:
        marker = data[pos + 1]
        if marker == 0xD9:
            segments.append((pos, pos + 2))
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        end = pos + 2 + length
        if marker == 0xDA:  # entropy-coded data follows the scan header
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        segments.append((pos, end))
        pos = end
    return segments


def many_scan_jpeg(width: int, height: int, repeats: int) -> bytes:
    """A grey progressive JPEG whose last scan is repeated ``repeats`` times: each repeat is
    one more pass of libjpeg over every block, a few bytes each (the slow-decode attack)."""
    ok, encoded = cv2.imencode(".jpg", np.full((height, width), 128, np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    data = encoded.tobytes()
    segments = jpeg_segments(data)
    last_scan = [s for s in segments if data[s[0] + 1] == 0xDA][-1]
    scan = data[last_scan[0] : last_scan[1]]
    return data[: last_scan[1]] + scan * repeats + data[last_scan[1] :]
