"""The face library as CLI commands (import, restore) use it: in-process against Redis, with
no index. Their writes go through the same Lua scripts and change stream as the service's;
serving processes pick them up from the stream, so holding an index here would only cost
memory."""
from __future__ import annotations

from typing import Optional

import numpy as np
import redis

from index.search import Enough, Hit
from service.library.face_library import Library
from service.store.faces import FaceStore


class WriteOnlyIndex:
    """``VectorSearch`` for a process that only writes: nothing to search or catch up."""

    def search(self, app: str, groups: list[str], vector: np.ndarray, k: int, enough: Optional[Enough] = None) -> list[Hit]:
        raise RuntimeError("a write-only library cannot search")

    def add(self, app: str, group: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        pass

    def remove(self, app: str, group: str, ids: list[int]) -> None:
        pass

    def size(self, app: str, group: str) -> int:
        return 0

    @property
    def ready(self) -> bool:
        return True

    def catch_up(self, app: Optional[str] = None) -> int:
        return 0


def offline_library(client: redis.Redis, model_id: str) -> Library:
    """A Library whose writes stamp faces with ``model_id``; identify is the service's."""
    return Library(FaceStore(client), WriteOnlyIndex(), model_id)
