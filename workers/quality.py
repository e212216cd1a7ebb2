"""Face quality measures that need no model (pure functions): blur, illumination, completeness."""
from __future__ import annotations

import cv2
import numpy as np

from workers.align import ARCFACE_TEMPLATE, similarity_transform

BLUR_FILTER = 11  # re-blurring filter length of Crété-Roffet et al. (as in skimage.measure.blur_effect)
# The face from brow to chin and cheek to cheek in the 112x112 ArcFace template's frame.
FACE_REGION = (8.0, 8.0, 104.0, 112.0)  # left, top, right, bottom
# A face with more of FACE_REGION than this outside the photo is cut off. The detector's box
# cannot tell: it shrinks to the visible part (a face cut through the middle gets a box that
# ends at the border), while its five points extrapolate to where the face is.
CUT_FRACTION = 0.05


def blur_effect(grey: np.ndarray, length: int = BLUR_FILTER) -> float:
    """Perceptual blur in [0, 1] (0 sharp, 1 blurred) of a greyscale image.

    Crété-Roffet, Dolmiere, Ladret, Nicolas (2007), "The blur effect: perception and estimation
    with a new no-reference perceptual blur metric": re-blur the image with a ``length``-tap
    box filter along each axis and measure how much of the variation between neighbouring
    pixels the re-blurring removes. A sharp image loses much of it, a blurred one little. The
    larger of the two axes' values is returned; an image without any variation counts as 1.
    """
    image = np.asarray(grey, dtype=np.float64)
    inner = (slice(2, image.shape[0] - 1), slice(2, image.shape[1] - 1))
    values = []
    for axis, kernel in ((0, (1, length)), (1, (length, 1))):
        reblurred = cv2.blur(image, kernel, borderType=cv2.BORDER_REFLECT)
        sharp_variation = np.abs(np.diff(image, axis=axis))
        blur_variation = np.abs(np.diff(reblurred, axis=axis))
        kept = np.maximum(0.0, sharp_variation - blur_variation)
        total = sharp_variation[inner].sum()
        values.append(1.0 if total == 0 else float(abs(total - kept[inner].sum()) / total))
    return max(values)


def illumination(image: np.ndarray, box: tuple[float, float, float, float]) -> int:
    """Mean luma (0-255) of the face box's pixels inside the photo; 0 for an empty box."""
    height, width = image.shape[:2]
    x, y, w, h = box
    left, top = max(0, int(x)), max(0, int(y))
    right, bottom = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    if right <= left or bottom <= top:
        return 0
    region = image[top:bottom, left:right]
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    return int(round(float(grey.mean())))


def completeness(points: np.ndarray, width: int, height: int) -> int:
    """0 when the face lies in the ``width`` x ``height`` photo, 1 when the photo cuts it off:
    FACE_REGION is placed by the detector's five points (the inverse of the alignment) and
    sampled on a grid; more than CUT_FRACTION of it outside the photo counts as cut off."""
    to_image = cv2.invertAffineTransform(similarity_transform(points, ARCFACE_TEMPLATE))
    left, top, right, bottom = FACE_REGION
    xs, ys = np.meshgrid(np.linspace(left, right, 25), np.linspace(top, bottom, 25))
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1) @ to_image[:, :2].T + to_image[:, 2]
    outside = (grid[:, 0] < 0) | (grid[:, 1] < 0) | (grid[:, 0] > width) | (grid[:, 1] > height)
    return int(outside.mean() > CUT_FRACTION)
