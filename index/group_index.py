"""One group's face vectors under their 64-bit face ids, searched by inner product."""
from __future__ import annotations

import threading

import faiss
import numpy as np


class GroupIndex:
    """Exact inner-product search. Adding an id twice or removing an absent id is a no-op, so
    changes can be replayed from the stream without bookkeeping."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ids: set[int] = set()
        # FAISS allows concurrent searches but not a search during an add or remove.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._ids

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            fresh = np.array([i not in self._ids for i in ids.tolist()], dtype=bool)
            if not fresh.any():
                return
            ids, vectors = ids[fresh], vectors[fresh]
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
            self._ids.update(ids.tolist())

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            present = [i for i in ids if i in self._ids]
            if present:
                self._index.remove_ids(np.asarray(present, dtype=np.int64))
                self._ids.difference_update(present)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the k nearest faces, best first."""
        with self._lock:
            k = min(k, len(self._ids))
            if k == 0:
                return np.empty(0, np.float32), np.empty(0, np.int64)
            scores, ids = self._index.search(vector.reshape(1, -1).astype(np.float32), k)
        return scores[0], ids[0]

    def vectors(self, ids: list[int]) -> np.ndarray:
        """The stored vectors of these ids (each must be present)."""
        with self._lock:
            return np.stack([self._index.reconstruct(int(i)) for i in ids])
