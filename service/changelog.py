"""The change stream as the index sync reads it, and the start-up load of every face."""
from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from typing import Optional

import numpy as np
import redis

from index.registry import IndexRegistry
from index.snapshot import stream_key
from index.sync import Change
from service import keys

log = logging.getLogger(__name__)
READ_BATCH = 1000


class RedisChangeSource:
    """Reads ``fs:changes`` and attaches each added face's vector (when it is of our model)."""

    def __init__(self, client: redis.Redis, model_id: str) -> None:
        self.redis = client
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
        with self.redis.pipeline(transaction=False) as pipe:
            for app, face_id in faces:
                pipe.hmget(keys.face(app, face_id), "model", "vec")
            records = pipe.execute()
        return [self._vector(model, vec) for model, vec in records]

    def _vector(self, model: Optional[bytes], vec: Optional[bytes]) -> Optional[np.ndarray]:
        if vec is None or model is None:
            return None  # deleted since; its "del" follows in the stream
        if model.decode() != self.model_id:
            log.warning("face of model %s skipped: this process embeds with %s", model.decode(), self.model_id)
            return None
        return np.frombuffer(vec, np.float32)


def library_id(client: redis.Redis) -> str:
    """The face library's random id, made on first use: index snapshots record it, so that a
    snapshot never outlives the data it was taken from (a new or emptied Redis)."""
    client.set(keys.library_id(), secrets.token_hex(8), nx=True)
    return client.get(keys.library_id()).decode()


def load_all_faces(client: redis.Redis, registry: IndexRegistry, model_id: str) -> int:
    """Fill the registry with every stored face of ``model_id``; returns how many."""
    loaded = skipped = 0
    batch: list[bytes] = []

    def flush() -> None:
        nonlocal loaded, skipped
        with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hmget(key, "app", "group", "model", "vec")
            records = pipe.execute()
        grouped: dict[tuple[str, str], tuple[list[int], list[np.ndarray]]] = defaultdict(lambda: ([], []))
        for key, (app, group, model, vec) in zip(batch, records):
            if vec is None:
                continue
            if model.decode() != model_id:
                skipped += 1
                continue
            ids, vectors = grouped[(app.decode(), group.decode())]
            ids.append(int(key.rsplit(b":", 1)[1]))
            vectors.append(np.frombuffer(vec, np.float32))
        for (app, group), (ids, vectors) in grouped.items():
            registry.add(app, group, np.asarray(ids, np.int64), np.stack(vectors))
            loaded += len(ids)
        batch.clear()

    for key in client.scan_iter(match=keys.face_pattern(), count=READ_BATCH):
        batch.append(key)
        if len(batch) >= READ_BATCH:
            flush()
    if batch:
        flush()
    if skipped:
        log.warning("%d stored faces were embedded by another model and are not searchable", skipped)
    return loaded
