"""Registry snapshots on disk: every group's index with the change-stream position it includes.

A restart loads the newest snapshot and replays only the stream after its position, instead of
reading every face back from Redis. Several processes (gunicorn workers) share one directory:
each writes a complete file under a unique temporary name and renames it into place (atomic on
POSIX), so a reader sees whole snapshots only; the position is in the file name, so any
process picks the newest without opening the others. Older files are pruned, keeping a
spare for a reader that listed the directory just before the prune.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from index.registry import IndexRegistry

log = logging.getLogger(__name__)
KEEP = 2
SUFFIX = ".snapshot.npz"


@dataclass(frozen=True)
class Snapshot:
    position: str
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

    def save(self, dim: int, position: str, groups: tuple[list, list, list]) -> Path:
        """Write ``IndexRegistry.to_arrays()`` taken at ``position``; returns the file."""
        keys, blobs, ids = groups
        meta = {"model": self.model_id, "source": self.source_id, "position": position, "dim": dim, "groups": keys}
        arrays = {"meta": np.array(json.dumps(meta))}
        for i, (blob, group_ids) in enumerate(zip(blobs, ids)):
            arrays[f"index{i}"], arrays[f"ids{i}"] = blob, group_ids
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{self.model_id}.{position}{SUFFIX}"
        temporary = self.directory / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with open(temporary, "wb") as out:
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        self._prune()
        return final

    def newest(self) -> list[Path]:
        """This model's snapshot files, newest position first."""
        files = self.directory.glob(f"{self.model_id}.*{SUFFIX}")
        return sorted(files, key=lambda p: stream_key(position_of(p.name)), reverse=True)

    def load(self, approx_from: int, usable: Callable[[str], bool]) -> Optional[Snapshot]:
        """The newest snapshot of this library whose position ``usable`` accepts (the stream
        still holds every change after it), or None: the caller rebuilds from Redis."""
        for path in self.newest():
            if not usable(position_of(path.name)):
                log.info("snapshot %s is older than the change stream; rebuilding", path.name)
                return None
            try:
                return self._read(path, approx_from)
            except FileNotFoundError:  # pruned by another process meanwhile: try the next one
                continue
        return None

    def _read(self, path: Path, approx_from: int) -> Optional[Snapshot]:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta["source"] != self.source_id or meta["model"] != self.model_id:
                log.info("snapshot %s belongs to another library; rebuilding", path.name)
                return None
            count = len(meta["groups"])
            registry = IndexRegistry.from_arrays(
                meta["dim"], approx_from, [tuple(k) for k in meta["groups"]],
                [data[f"index{i}"] for i in range(count)], [data[f"ids{i}"] for i in range(count)],
            )
        return Snapshot(meta["position"], registry)

    def _prune(self) -> None:
        for stale in self.newest()[KEEP:]:
            stale.unlink(missing_ok=True)


def position_of(name: str) -> str:
    """The stream position in a snapshot file name ``<model>.<millis>-<seq>.snapshot.npz``."""
    return name[: -len(SUFFIX)].rsplit(".", 1)[1]


def stream_key(position: str) -> tuple[int, int]:
    """A stream id as a sortable pair."""
    millis, _, seq = position.partition("-")
    return int(millis), int(seq or 0)
