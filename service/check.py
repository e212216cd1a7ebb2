"""Consistency check of the face library: Redis records, memberships and indexes agree.

Used by ``facesvc check`` and by tests after crashes and hostile input.
"""
from __future__ import annotations

from collections import defaultdict

import redis

from index.registry import IndexRegistry
from service import keys


def check_library(client: redis.Redis, registry: IndexRegistry | None = None, model_id: str | None = None) -> list[str]:
    """Every disagreement found, as readable lines; empty when the library is consistent."""
    problems: list[str] = []
    faces: dict[tuple[str, str, str], set[int]] = defaultdict(set)  # (app, group, uid) -> ids
    indexed: dict[tuple[str, str], set[int]] = defaultdict(set)
    for key in client.scan_iter(match=keys.face_pattern(), count=1000):
        app, group, uid, model = client.hmget(key, "app", "group", "uid", "model")
        face_id = int(key.rsplit(b":", 1)[1])
        if None in (app, group, uid, model):
            problems.append(f"{key.decode()}: incomplete face record")
            continue
        faces[(app.decode(), group.decode(), uid.decode())].add(face_id)
        if model.decode() == model_id:
            indexed[(app.decode(), group.decode())].add(face_id)
    apps = {a.decode() for a in client.hkeys(keys.apps())} | {app for app, _, _ in faces}
    for app in sorted(apps):
        problems += _check_app(client, app, {k[1:]: v for k, v in faces.items() if k[0] == app})
    if registry is not None:
        for app, group in set(registry.groups()) | set(indexed):
            have = registry.group(app, group).ids() if (app, group) in registry.groups() else set()
            if have != indexed.get((app, group), set()):
                problems.append(f"app {app} group {group}: index holds {len(have)} faces, Redis {len(indexed.get((app, group), ()))}")
    return problems


def _check_app(client: redis.Redis, app: str, faces: dict[tuple[str, str], set[int]]) -> list[str]:
    problems = []
    listed_groups = {g.decode() for g in client.zrange(keys.groups(app), 0, -1)}
    member_groups = set()
    memberships: dict[str, set[str]] = defaultdict(set)
    for group in listed_groups | {g for g, _ in faces}:
        members = {u.decode() for u in client.zrange(keys.group_users(app, group), 0, -1)}
        if members:
            member_groups.add(group)
        for uid in members:
            memberships[uid].add(group)
            if not client.exists(keys.user(app, group, uid)):
                problems.append(f"app {app}: {uid} in {group} has no user record")
            recorded = {int(f) for f in client.hkeys(keys.user_faces(app, group, uid))}
            if recorded != faces.get((group, uid), set()):
                problems.append(f"app {app}: {uid} in {group} lists faces {sorted(recorded)}, stored {sorted(faces.get((group, uid), set()))}")
    for group, uid in faces:
        if uid not in memberships or group not in memberships[uid]:
            problems.append(f"app {app}: faces of {uid} in {group} without membership")
    if listed_groups != member_groups:
        problems.append(f"app {app}: group list {sorted(listed_groups)} != groups with members {sorted(member_groups)}")
    for uid, groups in memberships.items():
        recorded = {g.decode() for g in client.smembers(keys.user_groups(app, uid))}
        if recorded != groups:
            problems.append(f"app {app}: {uid} groups {sorted(recorded)} != memberships {sorted(groups)}")
    return problems
