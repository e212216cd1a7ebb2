"""The face library: users, groups and faces of each app in Redis.

Every write is one Lua script, so a face record, its memberships and its change-stream entry
land together or not at all (AOF makes them durable once acknowledged). After a write the
process catches its indexes up from the change stream before answering: the caller's next
identify sees the write (read-your-writes); other processes pick it up from the same stream.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import redis

from index.registry import IndexRegistry
from index.sync import IndexSync
from service import keys
from service.errors import FaceError

# Approximate cap of the change stream; a process further behind than this rebuilds.
STREAM_MAXLEN = 200_000

_PRELUDE = """
local face_prefix, app, uid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local groups_key, user_groups_key, seq_key, changes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local MAXLEN = %d

local function log_change(op, group, fid)
  redis.call('XADD', changes_key, 'MAXLEN', '~', MAXLEN, '*', 'app', app, 'op', op, 'group', group, 'fid', fid)
end

local function add_face(group, faces_key, model, digest, vec)
  local fid = redis.call('INCR', seq_key)
  redis.call('HSET', face_prefix .. fid, 'app', app, 'uid', uid, 'group', group, 'model', model,
             'digest', digest, 'created', now, 'vec', vec)
  redis.call('HSET', faces_key, fid, digest)
  log_change('add', group, fid)
end

local function drop_faces(group, faces_key)
  for _, fid in ipairs(redis.call('HKEYS', faces_key)) do
    redis.call('DEL', face_prefix .. fid)
    log_change('del', group, fid)
  end
  redis.call('DEL', faces_key)
end

local function join(group, members_key, user_key, info, set_info)
  if not redis.call('ZSCORE', members_key, uid) then
    redis.call('ZADD', members_key, redis.call('INCR', seq_key), uid)
    redis.call('HSET', user_key, 'created', now, 'user_info', info)
  elseif set_info then
    redis.call('HSET', user_key, 'user_info', info)
  end
  if not redis.call('ZSCORE', groups_key, group) then
    redis.call('ZADD', groups_key, redis.call('INCR', seq_key), group)
  end
  redis.call('SADD', user_groups_key, group)
end

local function leave(group, members_key, user_key, faces_key)
  drop_faces(group, faces_key)
  redis.call('DEL', user_key)
  redis.call('ZREM', members_key, uid)
  redis.call('SREM', user_groups_key, group)
  if redis.call('ZCARD', members_key) == 0 then
    redis.call('ZREM', groups_key, group)
  end
end

local function group_keys(i)
  local base = 4 + 3 * (i - 1)
  return KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
end
""" % STREAM_MAXLEN

# ARGV[5] model, [6] replace, [7] set_info, [8] info, [9] group count, groups..., face count,
# then digest, vector pairs. Returns 0 or a Baidu error code.
_PUT = _PRELUDE + """
local model, replace, set_info, info = ARGV[5], ARGV[6] == '1', ARGV[7] == '1', ARGV[8]
local ngroups = tonumber(ARGV[9])
local nfaces = tonumber(ARGV[10 + ngroups])
local first_face = 11 + ngroups
if not replace then
  for g = 1, ngroups do
    local _, _, faces_key = group_keys(g)
    local existing = {}
    for _, digest in ipairs(redis.call('HVALS', faces_key)) do existing[digest] = true end
    for f = 0, nfaces - 1 do
      if existing[ARGV[first_face + 2 * f]] then return 216616 end
    end
  end
end
for g = 1, ngroups do
  local group = ARGV[9 + g]
  local members_key, user_key, faces_key = group_keys(g)
  if replace then drop_faces(group, faces_key) end
  join(group, members_key, user_key, info, set_info)
  for f = 0, nfaces - 1 do
    add_face(group, faces_key, model, ARGV[first_face + 2 * f], ARGV[first_face + 2 * f + 1])
  end
end
return 0
"""

# ARGV[5] minimum groups the user must keep, [6] code when absent, [7] group count, groups...
_LEAVE = _PRELUDE + """
local keep, missing_code, ngroups = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local present = {}
for g = 1, ngroups do
  local members_key = group_keys(g)
  if redis.call('ZSCORE', members_key, uid) then table.insert(present, g) end
end
if #present == 0 then return missing_code end
if redis.call('SCARD', user_groups_key) - #present < keep then return 216619 end
for _, g in ipairs(present) do
  local members_key, user_key, faces_key = group_keys(g)
  leave(ARGV[7 + g], members_key, user_key, faces_key)
end
return 0
"""

# Group 1 is the source; ARGV[5] group count (source included), groups...
_COPY = _PRELUDE + """
local ngroups = tonumber(ARGV[5])
local src_members, src_user, src_faces = group_keys(1)
if not redis.call('ZSCORE', src_members, uid) then return 216611 end
for g = 2, ngroups do
  local members_key = group_keys(g)
  if redis.call('ZSCORE', members_key, uid) then return 216100 end
end
local info = redis.call('HGET', src_user, 'user_info') or ''
local faces = redis.call('HGETALL', src_faces)
for g = 2, ngroups do
  local group = ARGV[5 + g]
  local members_key, user_key, faces_key = group_keys(g)
  join(group, members_key, user_key, info, true)
  for f = 1, #faces, 2 do
    local record = redis.call('HMGET', face_prefix .. faces[f], 'model', 'vec')
    if record[2] then add_face(group, faces_key, record[1], faces[f + 1], record[2]) end
  end
end
return 0
"""


@dataclass(frozen=True)
class NewFace:
    """A face to store: the sha256 of its photo and its embedding."""

    digest: str
    vector: np.ndarray


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
    def __init__(self, client: redis.Redis, registry: IndexRegistry, sync: IndexSync, model_id: str) -> None:
        self.redis = client
        self.registry = registry
        self.sync = sync
        self.model_id = model_id
        self._put = client.register_script(_PUT)
        self._leave = client.register_script(_LEAVE)
        self._copy = client.register_script(_COPY)

    # -- writes ---------------------------------------------------------------------------

    def put_faces(
        self,
        app: str,
        uid: str,
        groups: list[str],
        faces: list[NewFace],
        user_info: Optional[str],
        replace: bool,
    ) -> None:
        """Register faces for uid in each group (user/add, user/update).

        ``replace`` drops the uid's earlier faces in those groups first; otherwise a photo
        already registered for the uid in a group is refused with 216616. ``user_info`` None
        keeps what is stored (an unknown uid then gets an empty one).
        """
        args = [self.model_id, int(replace), int(user_info is not None), user_info or "", len(groups), *groups]
        args.append(len(faces))
        for face in faces:
            args += [face.digest, face.vector.astype(np.float32).tobytes()]
        self._write(self._put, app, uid, groups, args)

    def remove_user(
        self, app: str, uid: str, groups: Optional[list[str]], keep: int = 0, missing_code: int = 216611
    ) -> None:
        """Remove uid from the groups (all of its groups when None) with all its faces.

        ``missing_code`` when it is in none of them (the SDK docs answer 216612 on user/delete,
        216611 elsewhere); 216619 when fewer than ``keep`` groups would remain.
        """
        groups = groups if groups is not None else self.groups_of(app, uid)
        if not groups:
            raise FaceError(missing_code, f"uid {uid} not found")
        self._write(self._leave, app, uid, groups, [keep, missing_code, len(groups), *groups])

    def copy_user(self, app: str, uid: str, source: str, targets: list[str]) -> None:
        """Copy uid with its user_info and faces from ``source`` into each target group."""
        groups = [source, *targets]
        self._write(self._copy, app, uid, groups, [len(groups), *groups])

    def _write(self, script, app: str, uid: str, groups: list[str], args: list) -> None:
        script_keys = [keys.groups(app), keys.user_groups(app, uid), keys.sequence(app), keys.changes()]
        for group in groups:
            script_keys += [keys.group_users(app, group), keys.user(app, group, uid), keys.user_faces(app, group, uid)]
        code = script(keys=script_keys, args=[keys.face_prefix(app), app, uid, int(time.time()), *args])
        if code:
            raise FaceError(int(code), f"uid {uid}, groups {','.join(groups)}")
        self.sync.catch_up()

    # -- reads ----------------------------------------------------------------------------

    def photo_digests(self, app: str, group: str, uid: str) -> set[str]:
        """Digests of the photos registered for uid in group (what 216616 compares)."""
        return {d.decode() for d in self.redis.hvals(keys.user_faces(app, group, uid))}

    def groups_of(self, app: str, uid: str) -> list[str]:
        return sorted(g.decode() for g in self.redis.smembers(keys.user_groups(app, uid)))

    def user_entries(self, app: str, uid: str, groups: Optional[list[str]]) -> list[tuple[str, str]]:
        """(group, user_info) for each of the uid's groups, optionally only the listed ones."""
        chosen = [g for g in self.groups_of(app, uid) if groups is None or g in groups]
        infos = self._user_infos(app, [(g, uid) for g in chosen])
        return [(g, info) for g, info in zip(chosen, infos) if info is not None]

    def list_groups(self, app: str, start: int, count: int) -> list[str]:
        return [g.decode() for g in self.redis.zrange(keys.groups(app), start, start + count - 1)]

    def list_users(self, app: str, group: str, start: int, count: int) -> list[tuple[str, str]]:
        uids = [u.decode() for u in self.redis.zrange(keys.group_users(app, group), start, start + count - 1)]
        infos = self._user_infos(app, [(group, uid) for uid in uids])
        return [(uid, info or "") for uid, info in zip(uids, infos)]

    def _user_infos(self, app: str, pairs: list[tuple[str, str]]) -> list[Optional[str]]:
        """user_info of each (group, uid); None where the user is not in the group."""
        with self.redis.pipeline(transaction=False) as pipe:
            for group, uid in pairs:
                pipe.hget(keys.user(app, group, uid), "user_info")
            return [info.decode() if info is not None else None for info in pipe.execute()]

    def empty_groups(self, app: str, groups: list[str]) -> list[str]:
        with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zcard(keys.group_users(app, group))
            counts = pipe.execute()
        return [g for g, n in zip(groups, counts) if n == 0]

    def identify(self, app: str, groups: list[str], vector: np.ndarray, users: int, faces_per_user: int) -> list[Match]:
        """The ``users`` most similar (group, uid) pairs, each with its best face similarities."""
        empty = self.empty_groups(app, groups)
        if empty:
            raise FaceError(216618, f"group {empty[0]} has no user")
        k = max(50, users * faces_per_user * 10)
        while True:
            hits = self.registry.search(app, groups, vector, k)
            owners, similarities = self._rescore(app, [h.face_id for h in hits], vector)
            per_user: dict[tuple[str, str], list[float]] = {}
            for order in np.argsort(-similarities, kind="stable"):
                if owners[order] is not None:
                    per_user.setdefault((hits[order].group, owners[order]), []).append(float(similarities[order]))
            exhausted = len(hits) < k
            if len(per_user) >= users or exhausted:
                break
            k *= 4
        best = sorted(per_user.items(), key=lambda item: item[1][0], reverse=True)[:users]
        infos = self._user_infos(app, [key for key, _ in best])
        return [Match(g, u, info or "", sims[:faces_per_user]) for ((g, u), sims), info in zip(best, infos)]

    def _rescore(self, app: str, face_ids: list[int], vector: np.ndarray) -> tuple[list[Optional[str]], np.ndarray]:
        """Owner uid and exact similarity of each face (None, -inf when deleted since).

        Large groups are searched approximately (index/group_index.py); the stored vectors
        come in the same round trip as the owners, so re-ranking the candidates exactly is
        nearly free and the scores returned are always exact."""
        with self.redis.pipeline(transaction=False) as pipe:
            for face_id in face_ids:
                pipe.hmget(keys.face(app, face_id), "uid", "vec")
            records = pipe.execute()
        owners = [uid.decode() if uid and vec else None for uid, vec in records]
        similarities = np.full(len(face_ids), -np.inf, np.float32)
        stored = [i for i, owner in enumerate(owners) if owner is not None]
        if stored:
            matrix = np.stack([np.frombuffer(records[i][1], np.float32) for i in stored])
            similarities[stored] = matrix @ vector.astype(np.float32)
        return owners, similarities

    def verify(self, app: str, uid: str, groups: list[str], vector: np.ndarray) -> list[float]:
        """Similarities of the probe to every face of uid in the groups, best first."""
        with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.hkeys(keys.user_faces(app, group, uid))
            face_ids = [int(f) for ids in pipe.execute() for f in ids]
        if not face_ids:
            raise FaceError(216611, f"uid {uid} not in {','.join(groups)}")
        with self.redis.pipeline(transaction=False) as pipe:
            for face_id in face_ids:
                pipe.hmget(keys.face(app, face_id), "model", "vec")
            records = pipe.execute()
        stored = [np.frombuffer(vec, np.float32) for model, vec in records if vec and model.decode() == self.model_id]
        if not stored:
            raise FaceError(216611, f"uid {uid} has no face of model {self.model_id}")
        return sorted((np.stack(stored) @ vector).tolist(), reverse=True)
