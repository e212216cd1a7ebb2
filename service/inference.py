"""The pipeline as the service uses it: built from settings, and its failures turned into
Baidu codes here, once. Each call goes down the pipeline once (decode, detect, align, embed)
and comes back with a result or one error."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from config.defaults import Settings
from service.errors import FaceError
from workers.image import DecodeLimits, ImageError
from workers.pipeline import Face, NoFaceError, Pipeline, PipelineOptions

IMAGE_ERROR_CODES = {"empty": 216200, "format": 216201, "size": 216202}


def pipeline_options(settings: Settings) -> PipelineOptions:
    models, limits = settings.models, settings.limits
    return PipelineOptions(
        profile=models.profile,
        detect_size=models.detect_size,
        detect_threshold=models.detect_threshold,
        threads=models.intra_op_threads,
        device=models.device,
        batch_size=models.batch_size,
        batch_wait_ms=models.batch_wait_ms,
        precision=models.precision,
        decode=DecodeLimits(
            max_pixels=limits.max_image_pixels,
            max_lossless_pixels=limits.max_lossless_pixels,
            max_jpeg_scans=limits.max_jpeg_scans,
            full_side=limits.full_decode_side,
        ),
    )


def load_pipeline(settings: Settings) -> Pipeline:
    """The process's pipeline, models verified and warmed up."""
    return Pipeline.load(settings.model_cache, pipeline_options(settings))


@contextmanager
def face_errors() -> Iterator[None]:
    """Unusable images and images without a face as Baidu's codes."""
    try:
        yield
    except ImageError as exc:
        raise FaceError(IMAGE_ERROR_CODES[exc.kind], str(exc)) from None
    except NoFaceError:
        raise FaceError(216402, "no face in the image") from None


def detect(pipeline: Pipeline, data: bytes, max_faces: int) -> list[Face]:
    """Faces of an image, largest first; 216402 when there is none."""
    with face_errors():
        faces = pipeline.detect_photo(data, max_faces)
    if not faces:
        raise FaceError(216402, "no face in the image")
    return faces


@dataclass(frozen=True)
class Probe:
    """The largest face of a photo and its embedding; the face's attributes (liveness,
    quality) run their heads only when read."""

    face: Face
    vector: np.ndarray


def probe(pipeline: Pipeline, data: bytes) -> Probe:
    """Embed the image's largest face."""
    with face_errors():
        face, vector = pipeline.embed_photo(data)
    return Probe(face, vector)


def embed_largest(pipeline: Pipeline, data: bytes) -> np.ndarray:
    """The embedding of the image's largest face."""
    return probe(pipeline, data).vector
