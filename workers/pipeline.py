"""Decode -> detect -> align -> embed, with the sessions built once per process."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx

from config.defaults import Models
from workers.align import align_face
from workers.attributes import Face
from workers.batcher import Batcher
from workers.detector import Detector
from workers.embedder import FR_FEATURE, SFACE, Embedder, EmbedderSpec, FusedEmbedder
from workers.graphs import any_batch, any_size_input
from workers.heads import HEADS, Heads, landmarks68
from workers.image import decode_image
from workers.landmarks import arcface_five
from workers.models import verify_models
from workers.session import Backend, ModelSession, open_session, uses_gpu

log = logging.getLogger(__name__)

PROFILES: dict[str, tuple[EmbedderSpec, ...]] = {
    "fused": (SFACE, FR_FEATURE),
    "fast": (FR_FEATURE,),
}
# Fastest CPU runtime per model, measured on 2 cores (DESIGN.md §6, bench/attributes.py); a
# GPU always uses ORT.
BACKENDS: dict[str, Backend] = {
    "yunet": "ort",
    "sface": "opencv",
    "fr_feature": "opencv",
    "fr_landmark": "ort",
    "fr_pose": "ort",
    "fr_expression": "ort",
    "fr_liveness": "opencv",
    "dlib_age": "ort",
    "dlib_gender": "ort",
}
# The models every identify runs: opened for any batch size, and micro-batched across
# concurrent requests when batching is on.
BATCHED = ("yunet", "fr_landmark", "sface", "fr_feature")
GPU_BATCH_SIZE = 16


class NoFaceError(ValueError):
    """The image holds no detectable face."""


class Pipeline:
    def __init__(self, detector: Detector, embedder: FusedEmbedder, heads: Heads, max_pixels: int) -> None:
        self.detector = detector
        self.embedder = embedder
        self.heads = heads
        self.max_pixels = max_pixels

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @classmethod
    def load(cls, cache, models: Models, max_pixels: int) -> "Pipeline":
        specs = PROFILES[models.profile]
        paths = verify_models(cache, ("yunet",) + tuple(s.name for s in specs) + HEADS)
        batch_size = models.batch_size or (GPU_BATCH_SIZE if uses_gpu(models.device) else 1)

        def session(name: str) -> ModelSession:
            opened = open_model(name, paths[name], models)
            if batch_size == 1 or name not in BATCHED:
                return opened
            return Batcher(opened, batch_size, models.batch_wait_ms / 1000, name)

        detector = Detector(session("yunet"), models.detect_threshold, models.detect_size)
        embedder = FusedEmbedder([Embedder(spec, session(spec.name)) for spec in specs])
        # Attribute heads are verified now but opened on first use (workers/heads.py).
        pipeline = cls(detector, embedder, Heads(session), max_pixels)
        pipeline.warm_up()
        log.info(
            "pipeline ready: profile %s, embedding %s (%d-d), batches of up to %d",
            models.profile, embedder.model_id, embedder.dim, batch_size,
        )
        return pipeline

    def warm_up(self) -> None:
        """One dummy run of the detector, the landmark head that aligns faces and the embedders,
        so the first request does not pay for lazy initialisation (the other attribute heads
        load on first use instead)."""
        blank = np.zeros((112, 112, 3), np.uint8)
        self.detector.detect(blank)
        landmarks68(self.heads, blank, (0.0, 0.0, 112.0, 112.0))
        self.embedder.embed(blank[None])

    def decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, self.max_pixels)

    def detect(self, image: np.ndarray, max_faces: int) -> list[Face]:
        """Up to ``max_faces`` faces, largest first; their attributes are computed when read."""
        return [Face(d, image, self.heads) for d in self.detector.detect(image)[:max_faces]]

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The face aligned to the embedders' 112x112 template by its 68-point landmarks."""
        return align_face(image, arcface_five(face.landmarks68))

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(len(faces), dim) unit vectors."""
        return self.embedder.embed(np.stack([self.crop(image, f) for f in faces]))

    def embed_largest(self, image: np.ndarray) -> tuple[Face, np.ndarray]:
        """The largest face and its embedding; NoFaceError when there is none."""
        faces = self.detect(image, 1)
        if not faces:
            raise NoFaceError("no face found")
        return faces[0], self.embed(image, faces)[0]


def open_model(name: str, path: Path, models: Models) -> ModelSession:
    """``name``'s session on its backend; the models every identify runs take any batch size
    (and YuNet any canvas size)."""
    if name not in BATCHED:
        return open_session(path, BACKENDS[name], models.intra_op_threads, models.device)
    graph = any_batch(onnx.load(str(path)))
    if name == "yunet":
        graph = any_size_input(graph)
    return open_session(graph, BACKENDS[name], models.intra_op_threads, models.device)
