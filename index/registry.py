"""All group indexes of a process, keyed by (app, group)."""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from index.group_index import RERANK_POOL, GroupIndex
from index.search import Enough, Hit

# How much wider each round of a search that was not ``enough`` looks.
WIDEN = 4


class IndexRegistry:
    """``approx_from``: faces from which a group is searched approximately (config.defaults.Index).
    ``lazy``: groups are held only once ``install``ed (index/lazy.py); changes of the others
    are ignored, to be replayed when they are loaded."""

    def __init__(self, dim: int, approx_from: int, lazy: bool = False) -> None:
        self.dim = dim
        self.approx_from = approx_from
        self.lazy = lazy
        self._groups: dict[tuple[str, str], GroupIndex] = {}
        self._lock = threading.Lock()

    def group(self, app: str, group: str) -> GroupIndex:
        """The group's index, created empty on first use."""
        with self._lock:
            index = self._groups.get((app, group))
            if index is None:
                index = self._groups[(app, group)] = GroupIndex(self.dim, self.approx_from)
            return index

    def size(self, app: str, group: str) -> int:
        index = self._groups.get((app, group))
        return len(index) if index else 0

    def holds(self, app: str, group: str) -> bool:
        return (app, group) in self._groups

    def held(self, app: str, group: str) -> Optional[GroupIndex]:
        return self._groups.get((app, group))

    def install(self, app: str, group: str, index: GroupIndex) -> None:
        with self._lock:
            self._groups[(app, group)] = index

    def evict(self, app: str, group: str) -> None:
        with self._lock:
            self._groups.pop((app, group), None)

    def add(self, app: str, group: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        index = self._groups.get((app, group)) if self.lazy else self.group(app, group)
        if index is not None:
            index.add(ids, vectors)

    def remove(self, app: str, group: str, ids: list[int]) -> None:
        index = self._groups.get((app, group))
        if index is not None:
            index.remove(ids)

    def search(self, app: str, groups: list[str], vector: np.ndarray, k: int, enough: Optional[Enough] = None) -> list[Hit]:
        """The k best faces over several groups: per-group top-k merged, best first; widened
        while ``enough`` says the hits do not suffice and the groups hold more."""
        while True:
            hits = self._search(app, groups, vector, k)
            if enough is None or len(hits) < k or enough(hits):
                return hits
            k *= WIDEN

    def _search(self, app: str, groups: list[str], vector: np.ndarray, k: int) -> list[Hit]:
        hits = []
        for name in groups:
            index = self._groups.get((app, name))
            if index is None:
                continue
            scores, ids, exact = index.search(vector, k)
            hits.extend(Hit(name, int(i), float(s), exact) for s, i in zip(scores, ids) if i >= 0)
        hits.sort(key=lambda h: h.similarity, reverse=True)
        return hits[: k if all(h.exact for h in hits) else max(k, RERANK_POOL)]

    def vector_bytes(self) -> int:
        """Bytes of face codes held by every group's index."""
        with self._lock:
            indexes = list(self._groups.values())
        return sum(index.vector_bytes for index in indexes)

    def memory_bytes(self) -> int:
        """What every group's index holds in memory (GroupIndex.memory_bytes)."""
        with self._lock:
            indexes = list(self._groups.values())
        return sum(index.memory_bytes for index in indexes)

    def groups(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._groups)

    def compact(self) -> int:
        """Drop every group's tombstones from FAISS; returns how many faces went."""
        with self._lock:
            indexes = list(self._groups.values())
        return sum(index.compact() for index in indexes)

    def to_arrays(self) -> tuple[list[tuple[str, str]], list[np.ndarray], list[np.ndarray]]:
        """(keys, serialised indexes, live ids) of every group, for a snapshot."""
        keys = self.groups()
        blobs, ids = zip(*(self._groups[key].to_bytes() for key in keys)) if keys else ((), ())
        return keys, list(blobs), list(ids)

    @classmethod
    def from_arrays(
        cls, dim: int, approx_from: int, keys: list[tuple[str, str]], blobs: list[np.ndarray], ids: list[np.ndarray]
    ) -> "IndexRegistry":
        registry = cls(dim, approx_from)
        for key, blob, group_ids in zip(keys, blobs, ids):
            registry._groups[key] = GroupIndex.from_bytes(dim, approx_from, blob, group_ids)
        return registry
