"""Keep a process's indexes in step with the change stream.

Every write appends (app, op, group, face id) to one stream. Each process follows it: the
process that took a write calls ``catch_up()`` before answering (read-your-writes), a
background thread blocks on the stream for everyone else's writes (replicas converge within
the block interval). Applying a change twice is harmless, so the two never need to agree on
who applied what.

A second thread does the upkeep: it compacts deleted faces out of FAISS and, every
``snapshot_seconds`` when anything changed, writes a snapshot with the position it includes
(index/snapshot.py); ``stop()`` writes a last one.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from index.registry import IndexRegistry
from index.snapshot import SnapshotStore, stream_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    position: str  # stream id
    app: str
    op: str  # "add" or "del"
    group: str
    face_id: int
    vector: Optional[np.ndarray]  # for "add"; None when the face was deleted since


class ChangeSource(Protocol):
    def head(self) -> str:
        """The position of the newest change (a start point for a fresh index)."""

    def read(self, after: str, block_ms: Optional[int]) -> list[Change]:
        """Changes after ``after``, waiting up to block_ms for one when there are none."""


class IndexSync:
    def __init__(
        self,
        registry: IndexRegistry,
        source: ChangeSource,
        position: str,
        snapshots: Optional[SnapshotStore] = None,
        snapshot_seconds: float = 300.0,
        snapshot_position: Optional[str] = None,
    ) -> None:
        """``snapshot_position``: that of the snapshot the registry was loaded from, if any
        (nothing new to write until the position moves on)."""
        self.registry = registry
        self.source = source
        self.position = position
        self.snapshots = snapshots
        self.snapshot_seconds = snapshot_seconds
        self._saved_position = position if snapshots is None else snapshot_position
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def catch_up(self) -> int:
        """Apply every change written so far; returns how many were new to this process."""
        applied = 0
        while True:
            fresh = self._apply_all(self.source.read(self.position, None))
            if not fresh:
                return applied
            applied += fresh

    def _apply_all(self, changes: list[Change]) -> int:
        # Reads happen outside the lock (the follower blocks in one); whatever another
        # caller applied meanwhile is filtered out by position here.
        with self._apply_lock:
            fresh = [c for c in changes if stream_key(c.position) > stream_key(self.position)]
            for change in fresh:
                self._apply(change)
            if fresh:
                self.position = fresh[-1].position
            return len(fresh)

    def _apply(self, change: Change) -> None:
        if change.op == "del":
            self.registry.remove(change.app, change.group, [change.face_id])
        elif change.vector is not None:
            ids = np.array([change.face_id], dtype=np.int64)
            self.registry.add(change.app, change.group, ids, change.vector[None])

    @property
    def following(self) -> bool:
        """Whether the follower thread runs, i.e. other processes' writes keep arriving."""
        return bool(self._threads) and self._threads[0].is_alive() and not self._stop.is_set()

    def start(self, block_ms: int = 50, upkeep_seconds: float = 1.0) -> None:
        """Follow the stream and keep the indexes up in daemon threads until ``stop()``."""
        self._threads = [
            threading.Thread(target=self._follow, args=(block_ms,), name="index-sync", daemon=True),
            threading.Thread(target=self._upkeep, args=(upkeep_seconds,), name="index-upkeep", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _follow(self, block_ms: int) -> None:
        while not self._stop.is_set():
            try:
                self._apply_all(self.source.read(self.position, block_ms))
            except Exception:  # a Redis hiccup must not end replication for good
                log.exception("index sync failed; retrying")
                self._stop.wait(1.0)

    def _upkeep(self, every: float) -> None:
        last_snapshot = time.monotonic()
        while not self._stop.wait(every):
            try:
                self.registry.compact()
                if time.monotonic() - last_snapshot >= self.snapshot_seconds:
                    self.save_snapshot()
                    last_snapshot = time.monotonic()
            except Exception:  # a full disk must not stop compaction or replication
                log.exception("index upkeep failed; retrying")

    def save_snapshot(self) -> bool:
        """Write a snapshot when anything changed since the last one; returns whether it did.

        The indexes are serialised under the apply lock, so the snapshot holds exactly the
        changes up to its position (plus, after a start-up load, some later ones: replaying
        those is harmless); the file is written outside it."""
        if self.snapshots is None:
            return False
        with self._apply_lock:
            position = self.position
            if position == self._saved_position:
                return False
            groups = self.registry.to_arrays()
        path = self.snapshots.save(self.registry.dim, position, groups)
        self._saved_position = position
        log.info("index snapshot %s written", path.name)
        return True

    def stop(self) -> None:
        """Stop both threads and write a last snapshot."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        try:
            self.save_snapshot()
        except Exception:
            log.exception("final index snapshot failed")
