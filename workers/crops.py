"""Face crops for the attribute heads (pure geometry): a region around the detector's box, and
a chip aligned to dlib's five-point template.
"""
from __future__ import annotations

import cv2
import numpy as np

from workers.align import similarity_transform

# dlib's get_face_chip_details template for its five-point shape (image-right eye outer and
# inner corner, image-left eye outer and inner corner, subnasale) in a unit square.
DLIB_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

Region = tuple[int, int, int, int]  # left, top, width, height in pixels


def fit_region(box: tuple[float, float, float, float], scale: float, width: int, height: int) -> Region:
    """The box scaled by ``scale`` about its centre, shrunk to fit a ``width`` x ``height``
    photo and moved (never cut) to lie inside it.

    This is how the heads' own code crops (faceplugin's JS, Silent-Face's CropImage): the heads
    were trained on such crops, so padding with black would show them borders they never saw.
    """
    x, y, w, h = box
    w, h = max(w, 1.0), max(h, 1.0)
    s = min((height - 1) / h, (width - 1) / w, scale)
    crop_w, crop_h = w * s, h * s
    left = min(max(x + w / 2 - crop_w / 2, 0.0), width - 1 - crop_w)
    top = min(max(y + h / 2 - crop_h / 2, 0.0), height - 1 - crop_h)
    return int(left), int(top), max(1, int(crop_w)), max(1, int(crop_h))


def box_crop(image: np.ndarray, box: tuple[float, float, float, float], scale: float, size: int) -> tuple[np.ndarray, Region]:
    """``fit_region``'s pixels resized to size x size, and the region they came from."""
    left, top, width, height = fit_region(box, scale, image.shape[1], image.shape[0])
    crop = cv2.resize(image[top : top + height, left : left + width], (size, size), interpolation=cv2.INTER_LINEAR)
    return crop, (left, top, width, height)


def dlib_chip(image: np.ndarray, points: np.ndarray, size: int, padding: float = 0.2) -> np.ndarray:
    """A size x size chip with dlib's five points (``landmarks.dlib_five``) where
    ``dlib.get_face_chip_details(shape, size, padding)`` puts them: the alignment the dlib age
    and gender networks were trained on."""
    template = (padding + DLIB_TEMPLATE) / (2 * padding + 1) * size
    matrix = similarity_transform(points, template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
