"""Five-point face alignment to the 112x112 ArcFace template (pure geometry)."""
from __future__ import annotations

import cv2
import numpy as np

# Eye centres, nose tip, mouth corners in the 112x112 crop both embedders were trained on.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    Returns the 2x3 matrix for ``cv2.warpAffine``. A 2-D similarity is [[a, -b], [b, a]] plus a
    translation, so the least squares have a closed form: Umeyama's solution (never a
    reflection) without its SVD, a tenth of the cost.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    (x, y), (u, v) = (src - src_mean).T, (dst - dst_mean).T
    norm = float(x @ x + y @ y)
    a, b = (float(x @ u + y @ v) / norm, float(x @ v - y @ u) / norm) if norm > 0 else (1.0, 0.0)
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp the face with these five landmarks (x, y) into a size x size crop."""
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE * (size / 112.0))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
