"""The pipeline as the routes see it: worker exceptions become Baidu codes here, once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from service.errors import FaceError
from workers.image import ImageError
from workers.pipeline import Face, NoFaceError, Pipeline

IMAGE_ERROR_CODES = {"empty": 216200, "format": 216201, "size": 216202}


def decode(pipeline: Pipeline, data: bytes) -> np.ndarray:
    try:
        return pipeline.decode(data)
    except ImageError as exc:
        raise FaceError(IMAGE_ERROR_CODES[exc.kind], str(exc)) from None


def detect(pipeline: Pipeline, data: bytes, max_faces: int) -> list[Face]:
    """Faces of an image, largest first; 216402 when there is none."""
    faces = pipeline.detect(decode(pipeline, data), max_faces)
    if not faces:
        raise FaceError(216402, "no face in the image")
    return faces


@dataclass(frozen=True)
class Probe:
    """The largest face's embedding and, when asked for, its liveness score."""

    vector: np.ndarray
    liveness: Optional[float]


def probe(pipeline: Pipeline, data: bytes, liveness: bool) -> Probe:
    """Embed the image's largest face; score its liveness only when ``liveness``."""
    try:
        face, vector = pipeline.embed_largest(decode(pipeline, data))
    except NoFaceError:
        raise FaceError(216402, "no face in the image") from None
    return Probe(vector, face.liveness if liveness else None)


def embed_largest(pipeline: Pipeline, data: bytes) -> np.ndarray:
    """The embedding of the image's largest face."""
    return probe(pipeline, data, liveness=False).vector
