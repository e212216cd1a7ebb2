"""``VectorSearch`` over this process's own FAISS indexes (index/registry.py), kept in step with
the change streams by ``IndexSync`` (index/sync.py): every worker holds every group."""
from __future__ import annotations

from typing import Optional

import numpy as np

from index.registry import IndexRegistry
from index.search import Enough, Hit
from index.sync import IndexSync


class LocalIndexes:
    def __init__(self, registry: IndexRegistry, sync: IndexSync) -> None:
        self.registry = registry
        self.sync = sync

    def search(self, app: str, groups: list[str], vector: np.ndarray, k: int, enough: Optional[Enough] = None) -> list[Hit]:
        return self.registry.search(app, groups, vector, k, enough)

    def add(self, app: str, group: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.registry.add(app, group, ids, vectors)

    def remove(self, app: str, group: str, ids: list[int]) -> None:
        self.registry.remove(app, group, ids)

    def size(self, app: str, group: str) -> int:
        return self.registry.size(app, group)

    @property
    def ready(self) -> bool:
        return self.sync.following

    def catch_up(self, app: Optional[str] = None) -> int:
        return self.sync.catch_up(app)

    def close(self) -> None:
        """Stop following and write a last snapshot."""
        self.sync.stop()
