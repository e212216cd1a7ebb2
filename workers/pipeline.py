"""Decode -> detect -> align -> embed, with the sessions built once per process.

``workers/`` takes plain values (``PipelineOptions``), never the service's settings, and knows
nothing of any API's field names: the service shapes what it returns.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnx

from workers.align import align_face
from workers.attributes import Face
from workers.batcher import Batcher
from workers.detector import Detector
from workers.embedder import FR_FEATURE, SFACE, Embedder, EmbedderSpec, FusedEmbedder
from workers.graphs import any_batch, any_size_input
from workers.detector import Detection
from workers.heads import HEADS, Heads, landmarks68
from workers.image import DecodeLimits, decode_image
from workers.landmarks import arcface_five
from workers.models import MODELS, verify_models
from workers.session import Backend, ModelSession, open_session, uses_gpu

log = logging.getLogger(__name__)

PROFILES: dict[str, tuple[EmbedderSpec, ...]] = {
    "fused": (SFACE, FR_FEATURE),
    "fast": (FR_FEATURE,),
}
# Each embedder's int8 graph (workers/quantize.py) by the model it is made from: the ones
# workers/models.py quantises. They run when the precision is "int8": SFace 15.2 -> 6.6 ms a face,
# fr_feature 5.9 -> 3.4 ms, LFW View 2 fused 99.60 % against fp32's 99.57 % (bench/int8.py,
# bench/lfw.py; README "Performance").
INT8_GRAPHS: dict[str, str] = {spec.quantize_as: spec.name for spec in MODELS.values() if spec.quantize_as}
INT8 = tuple(INT8_GRAPHS)
# Fastest CPU runtime per model, measured on 2 cores (bench/attributes.py; README,
# "Performance"); a GPU always uses ORT.
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
    # int8 QDQ graphs: ONNX Runtime's QLinearConv is the int8 path that pays on CPU (OpenCV
    # DNN's new engine cannot import them, its classic one runs them no faster than fp32).
    **{graph: "ort" for graph in INT8_GRAPHS.values()},
}
# The models every identify runs: opened for any batch size, and micro-batched across
# concurrent requests when batching is on.
BATCHED = ("yunet", "fr_landmark", "sface", "fr_feature", *INT8_GRAPHS.values())


class NoFaceError(ValueError):
    """The image holds no detectable face."""


@dataclass(frozen=True)
class PipelineOptions:
    """How to build a pipeline: which embedders, the detector's input and threshold, threads
    and device of every session, micro-batching (None: off, on a GPU too: bench/gpu.py),
    what decoding one image may cost, and the embedders' precision on CPU ("int8" or "fp32";
    a GPU always runs fp32)."""

    profile: str  # a key of PROFILES
    detect_size: int
    detect_threshold: float
    threads: int
    device: str  # "auto", "cpu" or "cuda" (workers/session.py)
    batch_size: Optional[int]
    batch_wait_ms: float
    decode: DecodeLimits
    precision: str = "fp32"


def model_file(name: str, precision: str) -> str:
    """The cached model file that runs model ``name`` at ``precision``."""
    return INT8_GRAPHS.get(name, name) if precision == "int8" else name


class Pipeline:
    def __init__(
        self, detector: Detector, embedder: FusedEmbedder, heads: Heads, decode_limits: DecodeLimits, precision: str = "fp32"
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.heads = heads
        self.decode_limits = decode_limits
        self.precision = precision  # of the embedders' graphs, "int8" or "fp32"

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @classmethod
    def load(cls, cache: Path, options: PipelineOptions) -> "Pipeline":
        specs = PROFILES[options.profile]
        gpu = uses_gpu(options.device)
        # "int8" only where a model of the profile has an int8 graph: the fast profile stays fp32.
        int8 = options.precision == "int8" and not gpu and any(spec.name in INT8 for spec in specs)
        precision = "int8" if int8 else "fp32"
        files = {spec.name: model_file(spec.name, precision) for spec in specs}
        paths = verify_models(cache, ("yunet",) + tuple(files.values()) + HEADS)
        batch_size = options.batch_size or 1

        def session(name: str) -> ModelSession:
            opened = open_model(name, paths[name], options.threads, options.device)
            if batch_size == 1 or name not in BATCHED:
                return opened
            return Batcher(opened, batch_size, options.batch_wait_ms / 1000, name)

        detector = Detector(session("yunet"), options.detect_threshold, options.detect_size)
        embedder = FusedEmbedder([Embedder(spec, session(files[spec.name])) for spec in specs])
        # Attribute heads are verified now but opened on first use (workers/heads.py).
        pipeline = cls(detector, embedder, Heads(session), options.decode, precision)
        pipeline.warm_up()
        log.info(
            "pipeline ready: profile %s, embedding %s (%d-d, %s), batches of up to %d",
            options.profile, embedder.model_id, embedder.dim, precision, batch_size,
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
        """The photo's pixels, scaled down when it is far larger than needed (workers/image.py)."""
        return decode_image(data, self.decode_limits)[0]

    def detect(self, image: np.ndarray, max_faces: int, scale: float = 1.0) -> list[Face]:
        """Up to ``max_faces`` faces, largest first; their attributes are computed when read.
        ``scale``: photo pixels per pixel of ``image`` (it was decoded scaled down)."""
        return [Face(d, image, self.heads, scale=scale) for d in self.detector.detect(image)[:max_faces]]

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The face aligned to the embedders' 112x112 template by its 68-point landmarks."""
        return align_face(image, arcface_five(face.landmarks68))

    def embed(self, image: np.ndarray, faces: list[Face]) -> np.ndarray:
        """(len(faces), dim) unit vectors."""
        return self.embedder.embed(np.stack([self.crop(image, f) for f in faces]))

    def embed_largest(self, image: np.ndarray) -> tuple[Face, np.ndarray]:
        """The largest face and its embedding; NoFaceError when there is none. One pass down:
        detect, 68 points, align, embed; the Face returned keeps the points it was aligned by."""
        detections: list[Detection] = self.detector.detect(image)[:1]
        if not detections:
            raise NoFaceError("no face found")
        points = landmarks68(self.heads, image, detections[0].box)
        vector = self.embedder.embed(align_face(image, arcface_five(points))[None])[0]
        return Face(detections[0], image, self.heads, points), vector

    def embed_photo(self, data: bytes) -> tuple[Face, np.ndarray]:
        """``embed_largest`` of encoded photo bytes: ImageError or NoFaceError when unusable."""
        return self.embed_largest(self.decode(data))

    def detect_photo(self, data: bytes, max_faces: int) -> list[Face]:
        """``detect`` of encoded photo bytes, faces knowing the scale they were decoded at:
        ImageError when the bytes are unusable."""
        image, factor = decode_image(data, self.decode_limits)
        return self.detect(image, max_faces, float(factor))


def open_model(name: str, path: Path, threads: int, device: str) -> ModelSession:
    """``name``'s session on its backend."""
    return open_session(model_source(name, path), BACKENDS[name], threads, device)


def model_source(name: str, path: Path) -> Path | onnx.ModelProto:
    """What ``name``'s session is opened from: the models every identify runs take any batch
    size (and YuNet any canvas size)."""
    if name not in BATCHED:
        return path
    graph = any_batch(onnx.load(str(path)))
    return any_size_input(graph) if name == "yunet" else graph
