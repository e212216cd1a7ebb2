"""All group indexes of a process, keyed by (app, group)."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from index.group_index import GroupIndex


@dataclass(frozen=True)
class Hit:
    group: str
    face_id: int
    similarity: float


class IndexRegistry:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._groups: dict[tuple[str, str], GroupIndex] = {}
        self._lock = threading.Lock()

    def group(self, app: str, group: str) -> GroupIndex:
        """The group's index, created empty on first use."""
        with self._lock:
            index = self._groups.get((app, group))
            if index is None:
                index = self._groups[(app, group)] = GroupIndex(self.dim)
            return index

    def size(self, app: str, group: str) -> int:
        index = self._groups.get((app, group))
        return len(index) if index else 0

    def add(self, app: str, group: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.group(app, group).add(ids, vectors)

    def remove(self, app: str, group: str, ids: list[int]) -> None:
        index = self._groups.get((app, group))
        if index is not None:
            index.remove(ids)

    def search(self, app: str, groups: list[str], vector: np.ndarray, k: int) -> list[Hit]:
        """The k best faces over several groups: per-group top-k merged, best first."""
        hits = []
        for name in groups:
            index = self._groups.get((app, name))
            if index is None:
                continue
            scores, ids = index.search(vector, k)
            hits.extend(Hit(name, int(i), float(s)) for s, i in zip(scores, ids) if i >= 0)
        hits.sort(key=lambda h: h.similarity, reverse=True)
        return hits[:k]

    def groups(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._groups)
