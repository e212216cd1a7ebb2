"""Keep a process's indexes in step with the change streams.

Every write appends (op, group, face id) to its app's stream, then a hint naming the app to one
shared hint stream. Each process follows them: the process that took a write calls
``catch_up(app)`` before answering (read-your-writes); a background thread blocks on the hints
and reads the hinted apps' streams (other processes converge within the block interval), and
every ``poll_seconds`` reads every app's stream, for a hint lost by a writer that died between
its write and its hint. A position per app says what has been applied; applying a change twice
is harmless, so readers never need to agree on who applied what.

A second thread does the upkeep: it compacts deleted faces out of FAISS and, every
``snapshot_seconds`` when anything changed, writes a snapshot with the position it includes
(index/snapshot.py); ``stop()`` writes a last one.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Protocol

import numpy as np

from index.group_index import GroupIndex
from index.registry import IndexRegistry
from index.snapshot import SnapshotStore, stream_key

log = logging.getLogger(__name__)


# app -> the stream id of its last change applied ("0-0": none)
Positions = dict[str, str]


@dataclass(frozen=True)
class Change:
    position: str  # stream id in its app's stream
    app: str
    op: str  # "add" or "del"
    group: str
    face_id: int
    vector: Optional[np.ndarray]  # for "add"; None when the face was deleted since, or not fetched
    fetched: bool = True  # whether the vector was asked for (only for groups ``wanted``)


# Whether changes of (app, group) need their vectors: a lazy registry's held groups.
Wanted = Callable[[str, str], bool]


class ChangeSource(Protocol):
    def apps(self) -> set[str]:
        """The apps known to have a library (others are learnt from hints)."""

    def heads(self, apps: Iterable[str]) -> Positions:
        """The position of each app's newest change (start points for a fresh index)."""

    def read(self, positions: Positions, wanted: Optional[Wanted] = None) -> list[Change]:
        """Changes of each app after its position (a batch of each; call again for more);
        with ``wanted``, vectors only of the groups it accepts."""

    def hint_head(self) -> str:
        """The position of the newest hint."""

    def wait(self, after: str, block_ms: int) -> tuple[str, set[str]]:
        """The apps hinted after ``after``, waiting up to block_ms, and the new hint position."""


class IndexSync:
    def __init__(
        self,
        registry: IndexRegistry,
        source: ChangeSource,
        positions: Positions,
        snapshots: Optional[SnapshotStore] = None,
        snapshot_seconds: float = 300.0,
        snapshot_positions: Optional[Positions] = None,
    ) -> None:
        """``snapshot_positions``: those of the snapshot the registry was loaded from, if any
        (nothing new to write until they move on)."""
        self.registry = registry
        self.source = source
        self.positions = dict(positions)
        self.snapshots = snapshots
        self.snapshot_seconds = snapshot_seconds
        self._saved_positions = dict(self.positions) if snapshots is None else snapshot_positions
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def catch_up(self, app: Optional[str] = None) -> int:
        """Apply every change written so far, of one app or of every app known; returns how
        many were new to this process."""
        apps = [app] if app is not None else sorted(set(self.positions) | self.source.apps())
        return self._catch_up(apps)

    def _catch_up(self, apps: Iterable[str]) -> int:
        apps, applied = set(apps), 0
        wanted = self.registry.holds if self.registry.lazy else None
        while True:
            with self._apply_lock:
                positions = {app: self.positions.get(app, "0-0") for app in apps}
            fresh, more = self._apply_all(self.source.read(positions, wanted))
            applied += fresh
            if not fresh and not more:
                return applied

    def _apply_all(self, changes: list[Change]) -> tuple[int, bool]:
        """(changes applied, whether to read again at once). Reads happen outside the lock;
        whatever another caller applied meanwhile is filtered out by position here. An
        addition read without its vector to a group loaded since stops the batch: the next
        read fetches it."""
        with self._apply_lock:
            fresh = [c for c in changes if stream_key(c.position) > stream_key(self.positions.get(c.app, "0-0"))]
            for applied, change in enumerate(fresh):
                if not change.fetched and self.registry.holds(change.app, change.group):
                    return applied, True
                apply(self._target(change), change)
                self.positions[change.app] = change.position
            return len(fresh), False

    def _target(self, change: Change) -> Optional[GroupIndex]:
        """The index a change goes to: a lazy registry's held group, or any group (created by
        an addition)."""
        if self.registry.lazy or change.op == "del":
            return self.registry.held(change.app, change.group)
        return self.registry.group(change.app, change.group)

    def load_group(self, app: str, group: str, index: GroupIndex, position: str) -> None:
        """Hold ``index``, built with the group's changes up to ``position`` (lazy registries):
        the changes since are replayed, the last ones under the apply lock so that none falls
        between this replay and the follower's."""
        position = self._replay(app, group, index, position)
        with self._apply_lock:
            self._replay(app, group, index, position)
            self.registry.install(app, group, index)

    def _replay(self, app: str, group: str, index: GroupIndex, position: str) -> str:
        """Apply the group's changes after ``position`` to ``index``; returns the last read."""
        while changes := self.source.read({app: position}, lambda _, name: name == group):
            for change in changes:
                if change.group == group:
                    apply(index, change)
            position = changes[-1].position
        return position

    @property
    def following(self) -> bool:
        """Whether the follower thread runs, i.e. other processes' writes keep arriving."""
        return bool(self._threads) and self._threads[0].is_alive() and not self._stop.is_set()

    def start(self, block_ms: int = 50, upkeep_seconds: float = 1.0, poll_seconds: float = 2.0) -> None:
        """Follow the streams and keep the indexes up in daemon threads until ``stop()``."""
        self._threads = [
            threading.Thread(target=self._follow, args=(block_ms, poll_seconds), name="index-sync", daemon=True),
            threading.Thread(target=self._upkeep, args=(upkeep_seconds,), name="index-upkeep", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _follow(self, block_ms: int, poll_seconds: float) -> None:
        hint = self.source.hint_head()
        self.catch_up()  # what was written before the hint position was taken
        polled = time.monotonic()
        while not self._stop.is_set():
            try:
                hint, apps = self.source.wait(hint, block_ms)
                if time.monotonic() - polled >= poll_seconds:
                    self.catch_up()
                    polled = time.monotonic()
                elif apps:
                    self._catch_up(apps)
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

    def position(self, app: str) -> str:
        """The position up to which every change of ``app`` is applied to the held groups."""
        with self._apply_lock:
            return self.positions.get(app, "0-0")

    def save_snapshot(self) -> bool:
        """Write a snapshot when anything changed since the last one; returns whether it did.

        The indexes are serialised under the apply lock, so the snapshot holds exactly the
        changes up to its positions (plus, after a start-up load, some later ones: replaying
        those is harmless); the file is written outside it."""
        if self.snapshots is None:
            return False
        with self._apply_lock:
            positions = dict(self.positions)
            if positions == self._saved_positions:
                return False
            groups = self.registry.to_arrays()
        path = self.snapshots.save(self.registry.dim, positions, groups)
        self._saved_positions = positions
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


def apply(index: Optional[GroupIndex], change: Change) -> None:
    """One change to a group's index (None: a group not held)."""
    if index is None:
        return
    if change.op == "del":
        index.remove([change.face_id])
    elif change.vector is not None:
        index.add(np.array([change.face_id], dtype=np.int64), change.vector[None])
