"""What the face library needs of vector search, whatever holds the vectors.

``VectorSearch`` is the seam between the library (service/library/) and an index
implementation: ``index.local.LocalIndexes`` (every group in this process's memory, FAISS, in
step with the change stream) is one; the CLI's write-only library another
(service/library/offline.py). Face ids are the library's; an implementation only maps them to
vectors and back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class Hit:
    group: str
    face_id: int
    similarity: float
    exact: bool  # the similarity is exact (flat index), or approximate and worth re-ranking


# Called with the hits found so far (best first): whether they are enough, or k must widen.
Enough = Callable[[Sequence[Hit]], bool]


class VectorSearch(Protocol):
    def search(self, app: str, groups: list[str], vector: np.ndarray, k: int, enough: Optional[Enough] = None) -> list[Hit]:
        """The k best faces over the groups, best first; where similarities are approximate, a
        larger pool to re-rank. With ``enough``: while it says the hits do not suffice and the
        groups hold more, search again with k four times larger."""

    def add(self, app: str, group: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Make faces searchable (adding an id again is a no-op)."""

    def remove(self, app: str, group: str, ids: list[int]) -> None:
        """Hide faces from searches (removing an absent id is a no-op)."""

    def size(self, app: str, group: str) -> int:
        """Faces of the group this index can return."""

    @property
    def ready(self) -> bool:
        """Whether the index follows the library's writes (a readiness check)."""

    def catch_up(self, app: Optional[str] = None) -> int:
        """Apply every write acknowledged so far, of ``app`` or of every app, before returning
        (read-your-writes); returns how many changes were new."""
