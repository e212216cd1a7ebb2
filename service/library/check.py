"""Consistency check of the face library: Redis records, memberships, face tokens and indexes
agree; the group list holds exactly the groups with members and those v3 keeps while empty.

Used by ``facesvc check`` and by tests after crashes and hostile input.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

from index.registry import IndexRegistry
from service.store.faces import FaceStore


def check_library(store: FaceStore, registry: Optional[IndexRegistry] = None, model_id: Optional[str] = None) -> list[str]:
    """Every disagreement found, as readable lines; empty when the library is consistent."""
    problems: list[str] = []
    faces: dict[tuple[str, str, str], set[int]] = defaultdict(set)  # (app, group, uid) -> ids
    indexed: dict[tuple[str, str], set[int]] = defaultdict(set)
    tokens: dict[tuple[str, str], set[int]] = defaultdict(set)  # (app, face token) -> ids
    for batch in store.scan_faces(("group", "uid", "model", "token")):
        for record in batch:
            if None in (record.app, record.group, record.uid, record.model, record.token):
                problems.append(f"face {record.face_id} of app {record.app}: incomplete face record")
                continue
            faces[(record.app, record.group, record.uid)].add(record.face_id)
            tokens[(record.app, record.token)].add(record.face_id)
            if record.model == model_id:
                indexed[(record.app, record.group)].add(record.face_id)
    apps = set(store.apps()) | {app for app, _, _ in faces}
    for app in sorted(apps):
        for token, ids in store.token_sets(app):
            if ids != tokens.pop((app, token), set()):
                problems.append(f"app {app}: face token {token} lists faces {sorted(ids)}, not the faces that have it")
    problems += [f"app {app}: face token {token} of faces {sorted(ids)} is not indexed" for (app, token), ids in tokens.items()]
    for app in sorted(apps):
        problems += _check_app(store, app, {k[1:]: v for k, v in faces.items() if k[0] == app})
    if registry is not None:
        for app, group in set(registry.groups()) | set(indexed):
            have = registry.group(app, group).ids() if (app, group) in registry.groups() else set()
            if have != indexed.get((app, group), set()):
                problems.append(f"app {app} group {group}: index holds {len(have)} faces, Redis {len(indexed.get((app, group), ()))}")
    return problems


def _check_app(store: FaceStore, app: str, faces: dict[tuple[str, str], set[int]]) -> list[str]:
    problems = []
    listed_groups = set(store.list_groups(app))
    member_groups = set()
    memberships: dict[str, set[str]] = defaultdict(set)
    for group in listed_groups | {g for g, _ in faces}:
        members = store.list_members(app, group)
        if members:
            member_groups.add(group)
        pairs = [(group, uid) for uid in members]
        for uid, info, recorded in zip(members, store.user_infos(app, pairs), store.face_ids(app, pairs)):
            memberships[uid].add(group)
            if info is None:
                problems.append(f"app {app}: {uid} in {group} has no user record")
            if set(recorded) != faces.get((group, uid), set()):
                problems.append(f"app {app}: {uid} in {group} lists faces {recorded}, stored {sorted(faces.get((group, uid), set()))}")
    for group, uid in faces:
        if uid not in memberships or group not in memberships[uid]:
            problems.append(f"app {app}: faces of {uid} in {group} without membership")
    kept = store.kept_groups(app)
    if listed_groups != member_groups | kept:
        problems.append(f"app {app}: group list {sorted(listed_groups)} != groups with members or kept {sorted(member_groups | kept)}")
    for uid, groups in memberships.items():
        recorded = set(store.groups_of(app, uid))
        if recorded != groups:
            problems.append(f"app {app}: {uid} groups {sorted(recorded)} != memberships {sorted(groups)}")
    return problems
