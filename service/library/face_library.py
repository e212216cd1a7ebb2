"""The face library: users, groups and faces of each app, as the API versions use it.

Records live in Redis behind ``FaceStore`` (service/store/faces.py, the schema's one owner);
search goes through ``VectorSearch`` (index/search.py). After a write the library has the index
catch up from the change stream before answering: the caller's next identify sees the write
(read-your-writes); other processes pick it up from the same stream.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from index.search import Hit, VectorSearch
from service.errors import FaceError
from service.store.built_indexes import BuiltIndexStore
from service.store.faces import FaceRecord, FaceStore, TokenFace, face_token

# Candidates an identify asks the index for, per user and face wanted: each costs an owner read
# in Redis. An approximate group answers with a larger pool to re-rank (group_index.RERANK_POOL).
CANDIDATES_PER_RESULT = 10


@dataclass(frozen=True)
class NewFace:
    """A face to store: the sha256 of its photo, its embedding and its face token (None: the
    token of the photo's largest face, ``face_token(app, digest)``)."""

    digest: str
    vector: np.ndarray
    token: Optional[str] = None


def photo_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Match:
    """An identify result: one user of one group with its best face similarities."""

    group: str
    uid: str
    user_info: str
    similarities: list[float]


class Library:
    def __init__(self, store: FaceStore, index: VectorSearch, model_id: str) -> None:
        self.store = store
        self.index = index
        self.model_id = model_id
        self.built = BuiltIndexStore(store.redis, model_id)

    # -- writes ---------------------------------------------------------------------------

    def put_faces(
        self,
        app: str,
        uid: str,
        groups: list[str],
        faces: list[NewFace],
        user_info: Optional[str],
        replace: bool,
        keep_groups: bool = False,
    ) -> None:
        """Register faces for uid in each group (user/add, user/update).

        ``replace`` drops the uid's earlier faces in those groups first; otherwise a photo
        already registered for the uid in a group is refused with 216616. ``user_info`` None
        keeps what is stored (an unknown uid then gets an empty one). ``keep_groups`` (v3):
        a group this makes stays when its last user leaves.
        """
        triples = [(face.digest, face.token or face_token(app, face.digest), face.vector) for face in faces]
        self.store.put_faces(app, uid, groups, triples, self.model_id, user_info, replace, keep_groups)
        self.index.catch_up(app)

    def remove_user(
        self, app: str, uid: str, groups: Optional[list[str]], keep: int = 0, missing_code: int = 216611
    ) -> None:
        """Remove uid from the groups (all of its groups when None) with all its faces.

        ``missing_code`` when it is in none of them (the SDK docs answer 216612 on user/delete,
        216611 elsewhere); 216619 when fewer than ``keep`` groups would remain.
        """
        groups = groups if groups is not None else self.store.groups_of(app, uid)
        if not groups:
            raise FaceError(missing_code, f"uid {uid} not found")
        self.store.remove_user(app, uid, groups, keep, missing_code)
        self._forget_emptied(app, groups)
        self.index.catch_up(app)

    def copy_user(self, app: str, uid: str, source: str, targets: list[str], targets_exist: bool = False) -> None:
        """Copy uid with its user_info and faces from ``source`` into each target group;
        ``targets_exist`` (v3): the groups must exist already (``FaceStore.copy_user``)."""
        self.store.copy_user(app, uid, source, targets, targets_exist)
        self.index.catch_up(app)

    def delete_face(self, app: str, uid: str, group: str, token: str) -> None:
        """The face of uid in group with that token (223106 when none); the user leaves the
        group with its last face."""
        faces = self.store.user_faces(app, group, uid)
        match = next((f.face_id for f in faces if token_of(app, f) == token), None)
        if match is None and faces:
            raise FaceError(223106, f"face token {token} of {uid} in {group}")
        # No faces: the script says which is missing, the group (223100) or the user (223103).
        self.store.delete_face(app, uid, group, match if match is not None else 0)
        self._forget_emptied(app, [group])
        self.index.catch_up(app)

    def add_group(self, app: str, group: str) -> None:
        self.store.add_group(app, group)

    def delete_group(self, app: str, group: str) -> None:
        self.store.delete_group(app, group)
        self.built.drop(app, group)  # a lazily loaded index's stored copy (index/lazy.py)
        self.index.catch_up(app)

    def _forget_emptied(self, app: str, groups: list[str]) -> None:
        """Drop the stored index of each group a write left without a user (a v2 group is gone
        then, a v3 one empty): ~50 MB of Redis at 300k faces that no load would use. The copy is
        a cache, so a user arriving meanwhile costs only a rebuild from the faces."""
        for group, members in zip(groups, self.store.member_counts(app, groups)):
            if members == 0:
                self.built.drop(app, group)

    def remember_faces(self, app: str, faces: Sequence[tuple[str, str, str, np.ndarray, str, str]], ttl: int, cap: int) -> None:
        """Detected faces, usable by their tokens for ``ttl`` seconds (``FaceStore.remember_faces``)."""
        self.store.remember_faces(app, faces, ttl, cap)

    # -- reads ----------------------------------------------------------------------------

    def photo_digests(self, app: str, group: str, uid: str) -> set[str]:
        """Digests of the photos registered for uid in group (what 216616 compares)."""
        return self.store.photo_digests(app, group, uid)

    def groups_of(self, app: str, uid: str) -> list[str]:
        return self.store.groups_of(app, uid)

    def missing_groups(self, app: str, groups: list[str]) -> list[str]:
        return [g for g, exists in zip(groups, self.store.existing_groups(app, groups)) if not exists]

    def user_faces(self, app: str, group: str, uid: str) -> list[tuple[str, int]]:
        """(face token, created unix seconds) of uid's faces in group, oldest first."""
        return [(token_of(app, f), int(f.created or 0)) for f in self.store.user_faces(app, group, uid)]

    def token_face(self, app: str, token: str) -> Optional[TokenFace]:
        return self.store.token_face(app, token)

    def user_entries(self, app: str, uid: str, groups: Optional[list[str]]) -> list[tuple[str, str]]:
        """(group, user_info) for each of the uid's groups, optionally only the listed ones."""
        chosen = [g for g in self.store.groups_of(app, uid) if groups is None or g in groups]
        infos = self.store.user_infos(app, [(g, uid) for g in chosen])
        return [(g, info) for g, info in zip(chosen, infos) if info is not None]

    def list_groups(self, app: str, start: int, count: int) -> list[str]:
        return self.store.list_groups(app, start, count)

    def list_users(self, app: str, group: str, start: int, count: int) -> list[tuple[str, str]]:
        uids = self.store.list_members(app, group, start, count)
        infos = self.store.user_infos(app, [(group, uid) for uid in uids])
        return [(uid, info or "") for uid, info in zip(uids, infos)]

    def empty_groups(self, app: str, groups: list[str]) -> list[str]:
        """The groups without a user. A group the index holds faces of has users (a user
        leaves with its faces in one write), so only the others cost a Redis read."""
        unindexed = [g for g in groups if self.index.size(app, g) == 0]
        if not unindexed:
            return []
        return [g for g, n in zip(unindexed, self.store.member_counts(app, unindexed)) if n == 0]

    def identify(
        self, app: str, groups: list[str], vectors: Sequence[np.ndarray], users: int, faces_per_user: int
    ) -> list[Match]:
        """The ``users`` most similar (group, uid) pairs, each with its best face similarities.
        Several probe vectors (photos of one person) pool their similarities per user."""
        empty = self.empty_groups(app, groups)
        if empty:
            raise FaceError(216618, f"group {empty[0]} has no user")
        pooled: dict[tuple[str, str], list[float]] = {}
        for vector in vectors:
            for key, similarities in self._nearest_users(app, groups, vector, users, faces_per_user).items():
                pooled.setdefault(key, []).extend(similarities)
        ranked = [(key, sorted(similarities, reverse=True)) for key, similarities in pooled.items()]
        best = sorted(ranked, key=lambda item: item[1][0], reverse=True)[:users]
        infos = self.store.user_infos(app, [key for key, _ in best])
        return [Match(g, u, info or "", sims[:faces_per_user]) for ((g, u), sims), info in zip(best, infos)]

    def _nearest_users(
        self, app: str, groups: list[str], vector: np.ndarray, users: int, faces_per_user: int
    ) -> dict[tuple[str, str], list[float]]:
        """At least ``users`` (group, uid) pairs near the vector (fewer when the groups hold
        fewer), each with its faces' exact similarities, best first."""
        scored: dict[tuple[str, int], tuple[Optional[str], float]] = {}

        def enough(hits: Sequence[Hit]) -> bool:
            self._score(app, hits, vector, scored)
            return len(_best_per_user(hits, scored)) >= users

        k = users * faces_per_user * CANDIDATES_PER_RESULT
        hits = self.index.search(app, groups, vector, k, enough)
        self._score(app, hits, vector, scored)  # the last round when the groups ran out
        return _best_per_user(hits, scored)

    def _score(
        self, app: str, hits: Sequence[Hit], vector: np.ndarray, scored: dict[tuple[str, int], tuple[Optional[str], float]]
    ) -> None:
        """Owner and exact similarity of each hit not scored yet (None, -inf when deleted since),
        in one round trip. Exact hits keep the index's similarity; approximate ones are
        re-ranked with the stored vector, so the scores returned are always exact."""
        fresh = [h for h in hits if (h.group, h.face_id) not in scored]
        rerank = {h.face_id for h in fresh if not h.exact}
        records = self.store.read_owners(app, [h.face_id for h in fresh], rerank)
        for hit, record in zip(fresh, records):
            if record is None or record.uid is None:
                scored[(hit.group, hit.face_id)] = (None, float("-inf"))
            elif hit.exact:
                scored[(hit.group, hit.face_id)] = (record.uid, hit.similarity)
            else:
                scored[(hit.group, hit.face_id)] = (record.uid, float(record.vector @ vector.astype(np.float32)))

    def verify(self, app: str, uid: str, groups: list[str], vectors: Sequence[np.ndarray]) -> list[float]:
        """Similarities of each probe vector to every face of uid in the groups, best first."""
        face_ids = [f for ids in self.store.face_ids(app, [(g, uid) for g in groups]) for f in ids]
        if not face_ids:
            raise FaceError(216611, f"uid {uid} not in {','.join(groups)}")
        records = self.store.read_faces([(app, f) for f in face_ids], ("model", "vec"))
        stored = [r.vector for r in records if r is not None and r.vector is not None and r.model == self.model_id]
        if not stored:
            raise FaceError(216611, f"uid {uid} has no face of model {self.model_id}")
        return sorted((np.stack(stored) @ np.stack(vectors).T).ravel().tolist(), reverse=True)


def token_of(app: str, record: FaceRecord) -> str:
    """A stored face's token; faces stored before tokens existed get theirs from the digest."""
    return record.token or face_token(app, record.digest or "")


def _best_per_user(
    hits: Sequence[Hit], scored: dict[tuple[str, int], tuple[Optional[str], float]]
) -> dict[tuple[str, str], list[float]]:
    """(group, uid) -> similarities of its faces among the hits, best first; best users first."""
    per_user: dict[tuple[str, str], list[float]] = {}
    entries = [(scored[(h.group, h.face_id)], h.group) for h in hits]
    for (owner, similarity), group in sorted(entries, key=lambda entry: -entry[0][1]):
        if owner is not None:
            per_user.setdefault((group, owner), []).append(similarity)
    return per_user
