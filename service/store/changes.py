"""The change streams as the index sync reads them (one per app, and the hint stream that says
which app has news), and the start-up load of every face: the store's side of
``index.sync.ChangeSource``."""
from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from typing import Iterable, Optional

import numpy as np
import redis

from index.search import VectorSearch
from index.snapshot import stream_key
from index.sync import Change, Positions, Wanted
from service.store import keys
from service.store.faces import STREAM_MAXLEN, FaceRecord, FaceStore

log = logging.getLogger(__name__)
READ_BATCH = 1000


class RedisChangeSource:
    """Reads the apps' change streams and attaches each added face's vector (when it is of our
    model); ``wait`` blocks on the hint stream for the apps that have news."""

    def __init__(self, store: FaceStore, model_id: str) -> None:
        self.store = store
        self.redis = store.redis
        self.model_id = model_id

    def apps(self) -> set[str]:
        """Every app with a face library or API keys."""
        return self.store.libraries() | set(self.store.apps())

    def heads(self, apps: Iterable[str]) -> Positions:
        """The position of each app's newest change ("0-0" for an app without any)."""
        apps = sorted(apps)
        with self.redis.pipeline(transaction=False) as pipe:
            for app in apps:
                pipe.xrevrange(keys.changes(app), count=1)
            newest = pipe.execute()
        return {app: entries[0][0].decode() if entries else "0-0" for app, entries in zip(apps, newest)}

    def holds_after(self, positions: Positions, every_app: bool = True) -> bool:
        """Whether each app's stream (with ``every_app``, apps missing from ``positions`` from
        its start) still holds every change after that app's position. Trimming cuts a stream
        back to about STREAM_MAXLEN entries only once it is longer, so a shorter stream holds
        all it ever had; a longer one holds the changes after its oldest entry."""
        apps = sorted(set(positions) | self.apps()) if every_app else sorted(positions)
        with self.redis.pipeline(transaction=False) as pipe:
            for app in apps:
                pipe.xlen(keys.changes(app))
                pipe.xrange(keys.changes(app), count=1)
                pipe.xrevrange(keys.changes(app), count=1)
            answers = pipe.execute()
        for i, app in enumerate(apps):
            length, oldest, newest = answers[3 * i : 3 * i + 3]
            position = stream_key(positions.get(app, "0-0"))
            if newest and position > stream_key(newest[0][0].decode()):
                return False  # ahead of the stream: another library's position
            if length >= STREAM_MAXLEN and position < stream_key(oldest[0][0].decode()):
                return False
        return True

    def read(self, positions: Positions, wanted: Optional[Wanted] = None) -> list[Change]:
        """Up to READ_BATCH changes of each app after its position, in one round trip, and the
        vectors of the additions (only to the groups ``wanted`` accepts) in another."""
        apps = sorted(positions)
        with self.redis.pipeline(transaction=False) as pipe:
            for app in apps:
                pipe.xrange(keys.changes(app), min=f"({positions[app]}", count=READ_BATCH)
            answers = pipe.execute()
        entries = [(app, entry_id.decode(), {k.decode(): v.decode() for k, v in data.items()}) for app, found in zip(apps, answers) for entry_id, data in found]
        fetched = [wanted is None or wanted(app, f["group"]) for app, _, f in entries]
        adds = [(app, int(f["fid"])) for (app, _, f), fetch in zip(entries, fetched) if fetch and f["op"] == "add"]
        vectors = dict(zip(adds, self._vectors(adds)))
        return [
            Change(position, app, f["op"], f["group"], int(f["fid"]), vectors.get((app, int(f["fid"]))), fetch)
            for (app, position, f), fetch in zip(entries, fetched)
        ]

    def group_faces(self, app: str, group: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every face of our model in the group, read member by member."""
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        members = self.store.list_members(app, group)
        for start in range(0, len(members), READ_BATCH):
            pairs = [(group, uid) for uid in members[start : start + READ_BATCH]]
            faces = [(app, face_id) for user_ids in self.store.face_ids(app, pairs) for face_id in user_ids]
            for (_, face_id), vector in zip(faces, self._vectors(faces)):
                if vector is not None:
                    ids.append(face_id)
                    vectors.append(vector)
        return np.asarray(ids, np.int64), np.stack(vectors) if vectors else np.empty((0, 0), np.float32)

    def hint_head(self) -> str:
        newest = self.redis.xrevrange(keys.changed(), count=1)
        return newest[0][0].decode() if newest else "0-0"

    def wait(self, after: str, block_ms: int) -> tuple[str, set[str]]:
        """The apps hinted after ``after`` (waiting up to block_ms for one) and the new hint position."""
        answer = self.redis.xread({keys.changed(): after}, count=READ_BATCH, block=block_ms)
        entries = answer[0][1] if answer else []
        if not entries:
            return after, set()
        return entries[-1][0].decode(), {data[b"app"].decode() for _, data in entries}

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


def load_all_faces(store: FaceStore, index: VectorSearch, model_id: str) -> set[str]:
    """Fill the index with every stored face of ``model_id``; returns the apps they belong to."""
    apps: set[str] = set()
    skipped = 0
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
            apps.add(app)
    if skipped:
        log.warning("%d stored faces were embedded by another model and are not searchable", skipped)
    return apps
