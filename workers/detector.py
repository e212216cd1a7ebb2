"""YuNet face detector: boxes, scores and five landmarks in the caller's pixel coordinates."""
from __future__ import annotations

from dataclasses import dataclass
import cv2
import numpy as np

from workers.image import fit_within
from workers.session import ModelSession

STRIDES = (8, 16, 32)
INPUT_SIZE = 640  # the 2023mar ONNX export's input; the largest canvas the detector uses
NMS_IOU = 0.3
CANVAS_MARGIN = 96  # pixels of zero padding right of and below the image (canvas_size)


@dataclass(frozen=True)
class Detection:
    """One face. ``box`` is (left, top, width, height); ``landmarks`` is 5x2 (x, y):
    image-left eye, image-right eye, nose tip, image-left and image-right mouth corner."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


class Detector:
    def __init__(self, session: ModelSession, threshold: float, max_side: int = INPUT_SIZE) -> None:
        self.session = session
        self.threshold = threshold
        self.max_side = min(max_side, INPUT_SIZE)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces above the threshold, largest first, in ``image``'s coordinates."""
        feed, scale = self.canvas(image)
        outputs = self.session.run(feed)
        boxes, scores, points = decode_yunet(outputs, feed.shape[-1], self.threshold)
        faces = nms(boxes, scores, points, self.threshold)
        faces = [
            Detection(tuple(float(v) / scale for v in box), score, pts / scale)
            for box, score, pts in faces
        ]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def canvas(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The model's (1, 3, S, S) input for ``image`` (``canvas_size``) and the scale the
        image was fitted into it at."""
        small, scale = fit_within(image, self.max_side)
        size = canvas_size(small.shape[:2])
        canvas = np.zeros((size, size, 3), np.float32)
        canvas[: small.shape[0], : small.shape[1]] = small
        return canvas.transpose(2, 0, 1)[None], scale


def canvas_size(shape: tuple[int, int]) -> int:
    """The square the image is padded into: its longer side plus CANVAS_MARGIN, rounded up to
    YuNet's largest stride. A 250 px LFW photo costs a 352x352 pass, 3.3x less than 640x640.

    The margin keeps the zero padding the 640 canvas gave the network's deep layers
    (bench/canvas.py, LFW View 2): with 96 px the largest face's box and points are the 640
    canvas's to 0.01 px on 99.3 % of photos (128 px: 99.8 %) and View 2's accuracy is the same,
    for 0.55 ms less a photo; the rest, turned faces mostly, move by 1 px or more. With 64 px
    every photo's move (0.44 px median) and View 2 loses 0.07 points; with none, 1.1 px."""
    stride = STRIDES[-1]
    return min(INPUT_SIZE, -(-(max(shape) + CANVAS_MARGIN) // stride) * stride)


def decode_yunet(outputs: list[np.ndarray], size: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YuNet's 12 outputs (cls, obj, bbox, kps per stride) -> boxes (x, y, w, h), scores, 5x2
    points of the anchors scoring at least ``threshold`` (only those are decoded: a 352 canvas
    has 2,541 anchors and an LFW photo a median of 9 above the threshold)."""
    count = len(STRIDES)
    boxes, scores, points = [], [], []
    for i, stride in enumerate(STRIDES):
        score = np.sqrt(np.clip(outputs[i].reshape(-1), 0, 1) * np.clip(outputs[count + i].reshape(-1), 0, 1))
        index = np.flatnonzero(score >= threshold)
        bbox = outputs[2 * count + i].reshape(-1, 4)[index]
        kps = outputs[3 * count + i].reshape(-1, 5, 2)[index]
        cols = size // stride
        grid = np.stack([index % cols, index // cols], axis=1).astype(np.float32)
        centre = (grid + bbox[:, :2]) * stride
        wh = np.exp(bbox[:, 2:]) * stride
        boxes.append(np.concatenate([centre - wh / 2, wh], axis=1))
        scores.append(score[index])
        points.append((grid[:, None, :] + kps) * stride)
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)


def nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, threshold: float):
    """The candidates ``decode_yunet`` kept, overlapping ones merged into the best."""
    if not len(scores):
        return []
    chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, NMS_IOU)
    return [(boxes[i], float(scores[i]), points[i]) for i in np.asarray(chosen).reshape(-1)]
