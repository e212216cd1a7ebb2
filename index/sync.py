"""Keep a process's indexes in step with the change stream.

Every write appends (app, op, group, face id) to one stream. Each process follows it: the
process that took a write calls ``catch_up()`` before answering (read-your-writes), a
background thread blocks on the stream for everyone else's writes (replicas converge within
the block interval). Applying a change twice is harmless, so the two never need to agree on
who applied what.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from index.registry import IndexRegistry

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
    def __init__(self, registry: IndexRegistry, source: ChangeSource, position: str) -> None:
        self.registry = registry
        self.source = source
        self.position = position
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

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
            fresh = [c for c in changes if _stream_key(c.position) > _stream_key(self.position)]
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
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self, block_ms: int = 50) -> None:
        """Follow the stream in a daemon thread until ``stop()``."""
        self._thread = threading.Thread(target=self._follow, args=(block_ms,), name="index-sync", daemon=True)
        self._thread.start()

    def _follow(self, block_ms: int) -> None:
        while not self._stop.is_set():
            try:
                self._apply_all(self.source.read(self.position, block_ms))
            except Exception:  # a Redis hiccup must not end replication for good
                log.exception("index sync failed; retrying")
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def _stream_key(position: str) -> tuple[int, int]:
    millis, _, seq = position.partition("-")
    return int(millis), int(seq or 0)
