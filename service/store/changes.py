"""The change stream as the index sync reads it, and the start-up load of every face: the
store's side of ``index.sync.ChangeSource``."""
from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from typing import Optional

import numpy as np
import redis

from index.search import VectorSearch
from index.snapshot import stream_key
from index.sync import Change
from service.store import keys
from service.store.faces import FaceRecord, FaceStore

log = logging.getLogger(__name__)
READ_BATCH = 1000


class RedisChangeSource:
    """Reads ``fs:changes`` and attaches each added face's vector (when it is of our model)."""

    def __init__(self, store: FaceStore, model_id: str) -> None:
        self.store = store
        self.redis = store.redis
        self.model_id = model_id

    def head(self) -> str:
        newest = self.redis.xrevrange(keys.changes(), count=1)
        return newest[0][0].decode() if newest else "0-0"

    def holds_after(self, position: str) -> bool:
        """Whether the stream still holds every change after ``position``: trimming removes
        the oldest entries, so it does while the entry at ``position`` itself is kept."""
        oldest = self.redis.xrange(keys.changes(), count=1)
        if not oldest:
            return position == "0-0"
        return stream_key(oldest[0][0].decode()) <= stream_key(position) <= stream_key(self.head())

    def read(self, after: str, block_ms: Optional[int]) -> list[Change]:
        answer = self.redis.xread({keys.changes(): after}, count=READ_BATCH, block=block_ms)
        entries = answer[0][1] if answer else []
        fields = [{k.decode(): v.decode() for k, v in data.items()} for _, data in entries]
        adds = [(f["app"], int(f["fid"])) for f in fields if f["op"] == "add"]
        vectors = dict(zip(adds, self._vectors(adds)))
        return [
            Change(
                position=entry_id.decode(),
                app=f["app"],
                op=f["op"],
                group=f["group"],
                face_id=int(f["fid"]),
                vector=vectors.get((f["app"], int(f["fid"]))),
            )
            for (entry_id, _), f in zip(entries, fields)
        ]

    def _vectors(self, faces: list[tuple[str, int]]) -> list[Optional[np.ndarray]]:
        """The vector of each added (app, face id), in one round trip."""
        return [self._vector(record) for record in self.store.read_faces(faces, ("model", "vec"))]

    def _vector(self, record: Optional[FaceRecord]) -> Optional[np.ndarray]:
        if record is None or record.vector is None or record.model is None:
            return None  # deleted since; its "del" follows in the stream
        if record.model != self.model_id:
            log.warning("face of model %s skipped: this process embeds with %s", record.model, self.model_id)
            return None
        return record.vector


def library_id(client: redis.Redis) -> str:
    """The face library's random id, made on first use: index snapshots record it, so that a
    snapshot never outlives the data it was taken from (a new or emptied Redis)."""
    client.set(keys.library_id(), secrets.token_hex(8), nx=True)
    return client.get(keys.library_id()).decode()


def load_all_faces(store: FaceStore, index: VectorSearch, model_id: str) -> int:
    """Fill the index with every stored face of ``model_id``; returns how many."""
    loaded = skipped = 0
    for batch in store.scan_faces(("group", "model", "vec")):
        grouped: dict[tuple[str, str], tuple[list[int], list[np.ndarray]]] = defaultdict(lambda: ([], []))
        for record in batch:
            if record.vector is None:
                continue
            if record.model != model_id:
                skipped += 1
                continue
            ids, vectors = grouped[(record.app, record.group)]
            ids.append(record.face_id)
            vectors.append(record.vector)
        for (app, group), (ids, vectors) in grouped.items():
            index.add(app, group, np.asarray(ids, np.int64), np.stack(vectors))
            loaded += len(ids)
    if skipped:
        log.warning("%d stored faces were embedded by another model and are not searchable", skipped)
    return loaded
