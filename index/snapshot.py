"""Registry snapshots on disk: every group's index with the change-stream positions (one per
app) it includes.

A restart loads the newest snapshot and replays only the streams after its positions, instead
of reading every face back from Redis. Several processes (gunicorn workers) share one directory:
each writes a complete file under a unique temporary name and renames it into place (atomic on
POSIX), so a reader sees whole snapshots only; the time it was taken is in the file name, so
any process picks the newest without opening the others. Older files are pruned, keeping a
spare for a reader that listed the directory just before the prune.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

Positions = dict[str, str]  # app -> stream id (index/sync.py)

import numpy as np

from index.registry import IndexRegistry

log = logging.getLogger(__name__)
KEEP = 2
SUFFIX = ".snapshot.npz"


@dataclass(frozen=True)
class Snapshot:
    positions: Positions
    registry: IndexRegistry


class SnapshotStore:
    """Snapshots of one embedding model's indexes of one face library.

    ``source_id`` names the library (a random id kept in Redis): a snapshot of another library,
    e.g. after Redis was emptied, is never loaded.
    """

    def __init__(self, directory: Path, model_id: str, source_id: str) -> None:
        self.directory = Path(directory)
        self.model_id = model_id
        self.source_id = source_id

    def save(self, dim: int, positions: Positions, groups: tuple[list, list, list]) -> Path:
        """Write ``IndexRegistry.to_arrays()`` taken at ``positions``; returns the file."""
        keys, blobs, ids = groups
        meta = {"model": self.model_id, "source": self.source_id, "positions": positions, "dim": dim, "groups": keys}
        arrays = {"meta": np.array(json.dumps(meta))}
        for i, (blob, group_ids) in enumerate(zip(blobs, ids)):
            arrays[f"index{i}"], arrays[f"ids{i}"] = blob, group_ids
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{self.model_id}.{time.time_ns()}-{secrets.token_hex(2)}{SUFFIX}"
        temporary = self.directory / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with open(temporary, "wb") as out:
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        self._prune()
        return final

    def newest(self) -> list[Path]:
        """This model's snapshot files, newest first."""
        files = self.directory.glob(f"{self.model_id}.*{SUFFIX}")
        return sorted(files, key=lambda p: taken_at(p.name), reverse=True)

    def load(self, approx_from: int, usable: Callable[[Positions], bool]) -> Optional[Snapshot]:
        """The newest snapshot of this library whose positions ``usable`` accepts (the streams
        still hold every change after them), or None: the caller rebuilds from Redis."""
        for path in self.newest():
            try:
                snapshot = self._read(path, approx_from)
            except FileNotFoundError:  # pruned by another process meanwhile: try the next one
                continue
            if snapshot is not None and not usable(snapshot.positions):
                log.info("snapshot %s is older than the change streams; rebuilding", path.name)
                return None
            return snapshot
        return None

    def _read(self, path: Path, approx_from: int) -> Optional[Snapshot]:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if "positions" not in meta:  # one position of the single stream before streams per app
                log.info("snapshot %s predates the change streams per app; rebuilding", path.name)
                return None
            if meta["source"] != self.source_id or meta["model"] != self.model_id:
                log.info("snapshot %s belongs to another library; rebuilding", path.name)
                return None
            count = len(meta["groups"])
            registry = IndexRegistry.from_arrays(
                meta["dim"], approx_from, [tuple(k) for k in meta["groups"]],
                [data[f"index{i}"] for i in range(count)], [data[f"ids{i}"] for i in range(count)],
            )
        return Snapshot(meta["positions"], registry)

    def _prune(self) -> None:
        for stale in self.newest()[KEEP:]:
            stale.unlink(missing_ok=True)


def taken_at(name: str) -> int:
    """When a snapshot was taken (ns), from its file name ``<model>.<ns>-<random>.snapshot.npz``;
    -1 for a file of an older naming (it sorts last and fails to load)."""
    stamp = name[: -len(SUFFIX)].rsplit(".", 1)[1].partition("-")[0]
    return int(stamp) if stamp.isdigit() else -1


def stream_key(position: str) -> tuple[int, int]:
    """A stream id as a sortable pair."""
    millis, _, seq = position.partition("-")
    return int(millis), int(seq or 0)
