"""Baidu's face geometry, shared by the API versions: the face box in the photo's pixels, and
the landmark layouts ``landmark`` (4 points) from the detector's five and ``landmark72`` from
the 68-point head (iBUG 300-W layout, described in workers/landmarks.py). Pure geometry; how
well they match Baidu's is in the README.
"""
from __future__ import annotations

import numpy as np

from workers.attributes import Face


def photo_box(face: Face) -> tuple[float, float, float, float]:
    """(left, top, width, height) of the face in the photo's pixels (a large photo was decoded
    scaled down by ``face.scale``), boxed within the photo: a face cut by the photo's edge
    gets a box that ends there (Baidu's fields are unsigned)."""
    left, top, width, height = (value * face.scale for value in face.detection.box)
    image_height, image_width = (side * face.scale for side in face.image.shape[:2])
    right, bottom = min(float(image_width), left + width), min(float(image_height), top + height)
    left, top = max(0.0, left), max(0.0, top)
    return left, top, max(0.0, right - left), max(0.0, bottom - top)

# Baidu's landmark72 groups (the grouping Baidu's drawing examples use): 0-12 contour from the
# image-left ear over the chin (6); 13-20 image-left eye ring, 21 its centre; 22-29 image-left
# eyebrow ring; 30-37 image-right eye ring, 38 its centre; 39-46 image-right eyebrow ring;
# 47-56 nose outline, 57 nose tip; 58-65 outer lip ring from the image-left corner (58) over
# the upper lip to the right corner (62) and back; 66-68 upper inner lip and 69-71 lower inner
# lip. Each Baidu point is a weighted mean of 68-point landmarks:
# - contour: 13 points evenly spaced (by index) along the 17-point jaw line;
# - eye ring: the 6 eye points with the middle of each lid added, clockwise from the image-left
#   corner; eye centre: the mean of the 6 eye points;
# - eyebrow ring: the 68-point layout marks one line per eyebrow, so the ring goes out along it
#   (5 points) and comes back over it (3 points at the 2nd-4th brow points): zero thickness;
# - nose: down the bridge line (27, 28, 29; the 68 layout has no bridge sides), the bottom
#   (31, 32, 34, 35), back up the bridge line; tip = 30;
# - mouth: outer corners 48 and 54, upper-lip points 50, 51, 52, lower-lip points 56, 57, 58,
#   inner upper 61, 62, 63, inner lower 65, 66, 67.
_EYE_RING = ((0,), (1,), (1, 2), (2,), (3,), (4,), (4, 5), (5,))
_BROW_RING = ((0,), (1,), (2,), (3,), (4,), (3,), (2,), (1,))


def _baidu72_weights() -> np.ndarray:
    """(72, 68) matrix W with Baidu's points = W @ 68 points."""
    rows: list[dict[int, float]] = []
    for k in range(13):
        position = k * 16 / 12
        low = int(position)
        high = min(low + 1, 16)
        rows.append({low: 1 - (position - low), high: position - low} if high != low else {low: 1.0})
    for eye, brow in ((36, 17), (42, 22)):
        rows += [{eye + i: 1 / len(group) for i in group} for group in _EYE_RING]
        rows.append({eye + i: 1 / 6 for i in range(6)})
        rows += [{brow + i: 1.0} for (i,) in _BROW_RING]
    rows += [{i: 1.0} for i in (27, 28, 29, 31, 32, 34, 35, 29, 28, 27, 30)]
    rows += [{i: 1.0} for i in (48, 50, 51, 52, 54, 56, 57, 58, 61, 62, 63, 65, 66, 67)]
    weights = np.zeros((72, 68))
    for row, entries in enumerate(rows):
        for column, weight in entries.items():
            weights[row, column] += weight
    return weights


_BAIDU72 = _baidu72_weights()


def baidu_landmark72(points68: np.ndarray) -> np.ndarray:
    """(72, 2) points in Baidu's landmark72 layout from (68, 2) iBUG points."""
    return _BAIDU72 @ np.asarray(points68, dtype=np.float64)


def baidu_landmark4(points: np.ndarray) -> np.ndarray:
    """Baidu's ``landmark``: left eye centre, right eye centre, nose tip, mouth centre, from
    the detector's five points (eyes, nose tip, mouth corners)."""
    return np.stack([points[0], points[1], points[2], (points[3] + points[4]) / 2])
