"""``VectorSearch`` within a memory budget: a group's index is loaded on first use and the least
recently used ones are evicted (``FACESVC_INDEX__MEMORY_MB``).

A load never reads this node's disk. A large group (fast-scan PQ, from ``approx_from`` faces)
comes from its built index stored in Redis beside the faces (service/store/built_indexes.py)
plus the changes after it; a small one, or one whose stored index the change stream no longer
reaches, is built from its faces, and, once quantised, stored for the next load. A held group
follows the change stream like any other (index/sync.py); one that has taken many changes
since it was stored is stored again, so the replay on the next load stays short.

A search pins its groups while it runs, so loading one of them never evicts another; the
groups pinned at once may exceed the budget (one group larger than the whole budget is still
loaded and searched), and the budget is restored as they are released.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from contextlib import contextmanager
from typing import Iterator, Optional, Protocol

import numpy as np

from index.group_index import GroupIndex
from index.local import LocalIndexes
from index.registry import IndexRegistry
from index.search import Enough, Hit
from index.snapshot import stream_key
from index.sync import IndexSync, Positions

log = logging.getLogger(__name__)
# A held quantised group is stored again once it took this share of its size in changes.
RESTORE_SHARE = 0.1

Key = tuple[str, str]  # (app, group)


class Built(Protocol):
    blob: np.ndarray
    position: str


class BuiltIndexes(Protocol):
    """Where built indexes are kept for every node (service.store.built_indexes)."""

    def get(self, app: str, group: str) -> Optional[Built]: ...

    def put(self, app: str, group: str, blob: np.ndarray, position: str) -> bool: ...


class GroupSource(Protocol):
    """The library's faces and change streams (service.store.changes.RedisChangeSource)."""

    def heads(self, apps: list[str]) -> Positions: ...

    def holds_after(self, positions: Positions, every_app: bool = True) -> bool: ...

    def group_faces(self, app: str, group: str) -> tuple[np.ndarray, np.ndarray]: ...


class LazyIndexes(LocalIndexes):
    """``LocalIndexes`` on a lazy registry: ``size`` is 0 for a group not held (the library then
    asks Redis whether it has users)."""

    def __init__(
        self, registry: IndexRegistry, sync: IndexSync, source: GroupSource, built: BuiltIndexes, budget_bytes: int
    ) -> None:
        assert registry.lazy
        super().__init__(registry, sync)
        self.source = source
        self.built = built
        self.budget_bytes = budget_bytes
        self.loads: Counter[str] = Counter()  # "stored" / "faces": where loaded groups came from
        self.evictions = 0
        self._lock = threading.Lock()
        self._recent: OrderedDict[Key, None] = OrderedDict()  # held groups, least recently used first
        self._pins: Counter[Key] = Counter()
        self._loading: dict[Key, threading.Lock] = {}
        self._positions: dict[Key, str] = {}  # what a held group includes at least (its load)
        self._storing: set[Key] = set()

    def search(self, app: str, groups: list[str], vector: np.ndarray, k: int, enough: Optional[Enough] = None) -> list[Hit]:
        with self._using(app, groups):
            return self.registry.search(app, groups, vector, k, enough)

    def ensure(self, app: str, group: str) -> None:
        """Hold the group now (a node warmed before traffic), evicting others if need be."""
        with self._using(app, [group]):
            pass

    def evict(self, app: str, group: str) -> None:
        """Stop holding the group (the next search loads it again)."""
        with self._lock:
            self._drop((app, group))

    def _drop(self, key: Key) -> None:
        """Under ``_lock``, so that no search pins the group between the choice and the drop."""
        self._recent.pop(key, None)
        self._positions.pop(key, None)
        self.registry.evict(*key)

    @contextmanager
    def _using(self, app: str, groups: list[str]) -> Iterator[None]:
        keys = [(app, group) for group in dict.fromkeys(groups)]
        with self._lock:
            self._pins.update(keys)
        try:
            for key in keys:
                self._ensure(key)
            yield
        finally:
            with self._lock:
                self._pins.subtract(keys)
                for key in keys:
                    if key in self._recent:
                        self._recent.move_to_end(key)
            self._evict()
            for key in keys:
                self._store_if_changed(key)

    def _ensure(self, key: Key) -> None:
        """Hold the group, loading it unless held; one load per group at a time."""
        if self.registry.holds(*key):
            return
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            if not self.registry.holds(*key):
                self._load(key)
        with self._lock:
            self._loading.pop(key, None)
        self._evict()

    def _load(self, key: Key) -> None:
        app, group = key
        started = time.perf_counter()
        built = self.built.get(app, group)
        if built is not None and self.source.holds_after({app: built.position}, every_app=False):
            index = GroupIndex.from_bytes(self.registry.dim, self.registry.approx_from, built.blob)
            position, origin = built.position, "stored"
        else:
            # The head first: a face written while the faces are read is replayed after.
            position, origin = self.source.heads([app])[app], "faces"
            index = GroupIndex(self.registry.dim, self.registry.approx_from)
            ids, vectors = self.source.group_faces(app, group)
            if len(ids):
                index.add(ids, vectors)
        index.changes = 0 if origin == "stored" else len(index)  # quantised from faces: worth storing
        self.sync.load_group(app, group, index, position)
        with self._lock:
            self._recent[key] = None
            self._positions[key] = position
        self.loads[origin] += 1
        log.info(
            "group %s/%s loaded from %s: %d faces, %.0f ms", app, group, origin, len(index), 1000 * (time.perf_counter() - started)
        )

    def _evict(self) -> None:
        """Drop the least recently used unpinned groups while over the budget."""
        while self.registry.memory_bytes() > self.budget_bytes:
            with self._lock:
                victim = next((key for key in self._recent if self._pins[key] <= 0), None)
                if victim is None:
                    return
                self._drop(victim)
                self.evictions += 1
            log.info("group %s/%s evicted", *victim)

    def _store_if_changed(self, key: Key) -> None:
        """Store a held quantised group again once it took many changes since its load or
        last store, in a background thread (a 300k-face group is ~50 MB)."""
        index = self.registry.held(*key)
        if index is None or index.exact or index.changes < max(1, RESTORE_SHARE * len(index)):
            return
        with self._lock:
            if key in self._storing:
                return
            self._storing.add(key)
        threading.Thread(target=self._store, args=(key, index), name="index-store", daemon=True).start()

    def _store(self, key: Key, index: GroupIndex) -> None:
        app, group = key
        try:
            # What the group holds includes every change up to the later of its load's position
            # and the follower's; taken before serialising, so a change in between is replayed.
            with self._lock:
                loaded = self._positions.get(key, "0-0")
            position = max(loaded, self.sync.position(app), key=stream_key)
            changes = index.changes
            blob, _ = index.to_bytes()
            self.built.put(app, group, blob, position)
            index.changes -= changes
        except Exception:  # the group stays held and is stored at a later use
            log.exception("storing the index of %s/%s failed", app, group)
        finally:
            with self._lock:
                self._storing.discard(key)
