"""Face embedders: aligned 112x112 BGR crops -> L2-normalised vectors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.session import ModelSession


@dataclass(frozen=True)
class EmbedderSpec:
    """How one embedding model wants its input."""

    name: str
    rgb: bool  # channel order the model was trained on
    mean: float
    std: float
    dim: int


SFACE = EmbedderSpec("sface", rgb=True, mean=0.0, std=1.0, dim=128)  # normalises inside the graph
FR_FEATURE = EmbedderSpec("fr_feature", rgb=False, mean=127.0, std=128.0, dim=512)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Embedder:
    def __init__(self, spec: EmbedderSpec, session: ModelSession) -> None:
        self.spec = spec
        self.session = session

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) BGR uint8 crops -> (N, D) unit vectors."""
        planes = crops.transpose(0, 3, 1, 2)  # NCHW, still uint8: a quarter of the bytes to move
        # astype writes a new contiguous array, so the arithmetic can work in place.
        batch = (planes[:, ::-1] if self.spec.rgb else planes).astype(np.float32, order="C")
        if self.spec.mean:
            batch -= self.spec.mean
        if self.spec.std != 1.0:
            batch /= self.spec.std
        vectors = self.session.run(batch)[0]
        return l2_normalise(vectors.reshape(len(batch), -1).astype(np.float32))


def fused_model_id(specs: list[EmbedderSpec]) -> str:
    """The id stored with every embedding, naming the models that made it."""
    return "+".join(spec.name for spec in specs)


class FusedEmbedder:
    """Several embedders, each normalised, concatenated and scaled by 1/sqrt(k).

    The result has unit length and its inner product with another is the mean of the
    per-model cosines, so one flat inner-product index serves the fusion.
    """

    def __init__(self, parts: list[Embedder]) -> None:
        self.parts = parts
        self.model_id = fused_model_id([p.spec for p in parts])
        self.dim = sum(p.spec.dim for p in parts)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        fused = np.concatenate([p.embed(crops) for p in self.parts], axis=1)
        return (fused / np.sqrt(len(self.parts))).astype(np.float32)
