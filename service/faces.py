"""The pipeline as the routes see it: worker exceptions become Baidu codes here, once."""
from __future__ import annotations

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


def embed_largest(pipeline: Pipeline, data: bytes) -> np.ndarray:
    """The embedding of the image's largest face."""
    try:
        return pipeline.embed_largest(decode(pipeline, data))[1]
    except NoFaceError:
        raise FaceError(216402, "no face in the image") from None
