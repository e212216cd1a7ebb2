"""``facesvc export`` / ``restore``: one app's face library as a portable file.

The file is gzip'd JSON lines. Line 1 is a header::

    {"format": "facesvc-library", "version": 2, "app_id": "...", "exported_at": "...Z",
     "kept_groups": ["..."]}

then one line per (group, user), groups in creation order and users in the order they joined::

    {"group": "staff", "uid": "alice", "user_info": "Alice",
     "faces": [{"model": "sface+fr_feature", "digest": "<sha256 of the photo>",
                "token": "<v3 face token>", "vector": "<base64 of little-endian float32>"}]}

Embeddings travel as stored, with their model id, so a restore needs no photos and no models;
the digests keep 216616 ("image existed") working and the tokens keep v3's face tokens.
``kept_groups`` are the groups v3 keeps while empty (version 2; a version 1 file has neither
and restores with tokens made from the digests). Face ids and timestamps are not kept (they
are local to a Redis). A restore goes through ``Library.put_faces``, like any write, and skips
faces already there, so it can be rerun after an interruption.
"""
from __future__ import annotations

import base64
import gzip
import json
import time
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Callable, Iterator, Optional

from service.errors import FaceError
from service.library.face_library import Library, NewFace
from service.store.faces import FaceStore, decode_vector, encode_vector

FORMAT = "facesvc-library"
VERSION = 2
READABLE = (1, 2)
PAGE = 1000


@dataclass(frozen=True)
class StoredFace:
    model: str
    digest: str
    vector: bytes  # float32 (Redis holds float16: the file stays as it was)
    token: Optional[str] = None


@dataclass(frozen=True)
class UserRecord:
    group: str
    uid: str
    user_info: str
    faces: list[StoredFace]


@dataclass(frozen=True)
class Counts:
    users: int
    faces: int


def read_library(store: FaceStore, app: str) -> Iterator[UserRecord]:
    """Every (group, user) of the app with its faces, in creation and joining order."""
    for group in store.list_groups(app):
        start = 0
        while uids := store.list_members(app, group, start, PAGE):
            for uid in uids:
                yield _read_user(store, app, group, uid)
            start += PAGE


def _read_user(store: FaceStore, app: str, group: str, uid: str) -> UserRecord:
    (info,) = store.user_infos(app, [(group, uid)])
    (face_ids,) = store.face_ids(app, [(group, uid)])
    records = store.read_faces([(app, f) for f in face_ids], ("model", "digest", "token", "vec"))
    faces = [
        StoredFace(r.model, r.digest, encode_vector(r.vector), r.token) for r in records if r is not None and r.vector is not None
    ]
    return UserRecord(group, uid, info or "", faces)


def export_library(store: FaceStore, app: str, path: Path) -> Counts:
    """Write the app's library to ``path``. Pause writes for an exact copy: a live export reads
    user by user and may miss what changes meanwhile."""
    users = faces = 0
    with gzip.open(path, "wt", encoding="utf-8") as out:
        header = {"format": FORMAT, "version": VERSION, "app_id": app, "exported_at": _now(), "kept_groups": sorted(store.kept_groups(app))}
        out.write(json.dumps(header) + "\n")
        for record in read_library(store, app):
            out.write(json.dumps(_to_json(record), ensure_ascii=False) + "\n")
            users += 1
            faces += len(record.faces)
    return Counts(users, faces)


def read_export(path: Path) -> tuple[dict, Iterator[UserRecord]]:
    """The header and the records of an export file; ValueError when it is not one."""
    handle = gzip.open(path, "rt", encoding="utf-8")
    header = json.loads(handle.readline() or "{}")
    if header.get("format") != FORMAT or header.get("version") not in READABLE:
        handle.close()
        raise ValueError(f"{path} is not a {FORMAT} file of version {' or '.join(map(str, READABLE))}")

    def records() -> Iterator[UserRecord]:
        with handle:
            for line in handle:
                yield _from_json(json.loads(line))

    return header, records()


def restore_library(header: dict, records: Iterator[UserRecord], app: str, library_for: Callable[[str], Library]) -> Counts:
    """Write the header's kept groups and the records into ``app``; ``library_for(model_id)``
    stamps faces with their model. Faces whose photo digest the user already has in that group
    are skipped, and kept groups that exist already stay as they are."""
    for group in header.get("kept_groups", []):
        try:
            library_for("").add_group(app, group)
        except FaceError as error:
            if error.code != 223101:  # it exists: a rerun, or a group made since
                raise
    users = faces = 0
    for record in records:
        known = library_for("").photo_digests(app, record.group, record.uid)
        fresh = [f for f in record.faces if f.digest not in known]
        by_model = groupby(sorted(fresh, key=lambda f: f.model), key=lambda f: f.model)
        batches = [(model, list(group)) for model, group in by_model] or [("", [])]
        for model, batch in batches:
            new = [NewFace(f.digest, decode_vector(f.vector), f.token) for f in batch]
            library_for(model).put_faces(app, record.uid, [record.group], new, record.user_info, replace=False)
        users += 1
        faces += len(fresh)
    return Counts(users, faces)


def _to_json(record: UserRecord) -> dict:
    return {
        "group": record.group,
        "uid": record.uid,
        "user_info": record.user_info,
        "faces": [
            {"model": f.model, "digest": f.digest, "token": f.token, "vector": base64.b64encode(f.vector).decode()}
            for f in record.faces
        ],
    }


def _from_json(entry: dict) -> UserRecord:
    faces = [StoredFace(f["model"], f["digest"], base64.b64decode(f["vector"]), f.get("token")) for f in entry["faces"]]
    return UserRecord(entry["group"], entry["uid"], entry["user_info"], faces)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
