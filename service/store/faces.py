"""The face library's Redis schema, its one owner: the key names it uses (service/store/keys.py),
the Lua scripts that write it and every read of it. Everyone else calls ``FaceStore``.

The records, per app (every key under the app's hash tag, so one app is one cluster slot):

- ``face:<id>`` hash: app, uid, group, model (the embedding's model id), digest (sha256 of
  the photo), created (unix seconds), vec (the embedding, little-endian float32);
- ``faces:<group>:<uid>`` hash face id -> digest, the faces of a user in a group;
- ``user:<group>:<uid>`` hash: user_info, created (user_info is per group, as Baidu's user/get);
- ``members:<group>`` sorted set uid -> joining order; ``groups`` sorted set group -> creation
  order; ``groupsof:<uid>`` set of the uid's groups; ``seq`` the counter of ids and orders;
- and one change-stream entry (app, op, group, fid) per face added or removed.

Every write is one Lua script, so a face record, its memberships and its change-stream entry
land together or not at all (AOF makes them durable once acknowledged).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import redis

from service.errors import ALREADY_ADDED, FaceError
from service.store import keys

SCAN_BATCH = 1000
FACE_FIELDS = ("app", "uid", "group", "model", "digest", "vec")

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
class FaceRecord:
    """A stored face with the fields that were read (the others None); ``vector`` is None when
    it was not read. A face deleted meanwhile reads as None instead of a record."""

    face_id: int
    app: Optional[str] = None
    uid: Optional[str] = None
    group: Optional[str] = None
    model: Optional[str] = None
    digest: Optional[str] = None
    vector: Optional[np.ndarray] = None


def encode_vector(vector: np.ndarray) -> bytes:
    return vector.astype("<f4").tobytes()


def decode_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<f4")


def _record(face_id: int, fields: Sequence[str], values: list[Optional[bytes]]) -> Optional[FaceRecord]:
    """The record of an HMGET answer; None when the face is gone (no field came back)."""
    if all(v is None for v in values):
        return None
    found = {
        ("vector" if name == "vec" else name): (decode_vector(v) if name == "vec" else v.decode())
        for name, v in zip(fields, values)
        if v is not None
    }
    return FaceRecord(face_id, **found)


class FaceStore:
    """Reads and writes of the face library of every app in one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._put = client.register_script(_PUT)
        self._leave = client.register_script(_LEAVE)
        self._copy = client.register_script(_COPY)

    # -- writes ---------------------------------------------------------------------------

    def put_faces(
        self,
        app: str,
        uid: str,
        groups: list[str],
        faces: Sequence[tuple[str, np.ndarray]],
        model_id: str,
        user_info: Optional[str],
        replace: bool,
    ) -> None:
        """Store (digest, vector) faces of ``model_id`` for uid in each group; see
        ``Library.put_faces`` for what replace and user_info mean."""
        args = [model_id, int(replace), int(user_info is not None), user_info or "", len(groups), *groups]
        args.append(len(faces))
        for digest, vector in faces:
            args += [digest, encode_vector(vector)]
        self._write(self._put, app, uid, groups, args)

    def remove_user(self, app: str, uid: str, groups: list[str], keep: int, missing_code: int) -> None:
        self._write(self._leave, app, uid, groups, [keep, missing_code, len(groups), *groups])

    def copy_user(self, app: str, uid: str, source: str, targets: list[str]) -> None:
        """216611 when uid is not in ``source``; 216100 "already add" when it is in a target."""
        groups = [source, *targets]
        self._write(self._copy, app, uid, groups, [len(groups), *groups], {216100: ALREADY_ADDED})

    def _write(self, script, app: str, uid: str, groups: list[str], args: list, messages: Optional[dict[int, str]] = None) -> None:
        script_keys = [keys.groups(app), keys.user_groups(app, uid), keys.sequence(app), keys.changes()]
        for group in groups:
            script_keys += [keys.group_users(app, group), keys.user(app, group, uid), keys.user_faces(app, group, uid)]
        code = script(keys=script_keys, args=[keys.face_prefix(app), app, uid, int(time.time()), *args])
        if code:
            message = (messages or {}).get(int(code))
            raise FaceError(int(code), f"uid {uid}, groups {','.join(groups)}", message)

    # -- users and groups -----------------------------------------------------------------

    def apps(self) -> list[str]:
        """Every app with API keys."""
        return sorted(a.decode() for a in self.redis.hkeys(keys.apps()))

    def groups_of(self, app: str, uid: str) -> list[str]:
        return sorted(g.decode() for g in self.redis.smembers(keys.user_groups(app, uid)))

    def list_groups(self, app: str, start: int = 0, count: int = -1) -> list[str]:
        """Groups in creation order; ``count`` -1: all from ``start``."""
        end = start + count - 1 if count >= 0 else -1
        return [g.decode() for g in self.redis.zrange(keys.groups(app), start, end)]

    def list_members(self, app: str, group: str, start: int = 0, count: int = -1) -> list[str]:
        """uids of a group in joining order; ``count`` -1: all from ``start``."""
        end = start + count - 1 if count >= 0 else -1
        return [u.decode() for u in self.redis.zrange(keys.group_users(app, group), start, end)]

    def member_counts(self, app: str, groups: list[str]) -> list[int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zcard(keys.group_users(app, group))
            return pipe.execute()

    def user_infos(self, app: str, pairs: Sequence[tuple[str, str]]) -> list[Optional[str]]:
        """user_info of each (group, uid); None where the user is not in the group."""
        if not pairs:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for group, uid in pairs:
                pipe.hget(keys.user(app, group, uid), "user_info")
            return [info.decode() if info is not None else None for info in pipe.execute()]

    def photo_digests(self, app: str, group: str, uid: str) -> set[str]:
        """Digests of the photos registered for uid in group (what 216616 compares)."""
        return {d.decode() for d in self.redis.hvals(keys.user_faces(app, group, uid))}

    def face_ids(self, app: str, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """The face ids of each (group, uid), ascending."""
        with self.redis.pipeline(transaction=False) as pipe:
            for group, uid in pairs:
                pipe.hkeys(keys.user_faces(app, group, uid))
            return [sorted(int(f) for f in ids) for ids in pipe.execute()]

    # -- faces ----------------------------------------------------------------------------

    def read_faces(self, faces: Sequence[tuple[str, int]], fields: Sequence[str]) -> list[Optional[FaceRecord]]:
        """The given fields (of FACE_FIELDS) of each (app, face id), in one round trip."""
        return self._read([(face_id, keys.face(app, face_id), fields) for app, face_id in faces])

    def read_owners(self, app: str, face_ids: Sequence[int], with_vector: set[int]) -> list[Optional[FaceRecord]]:
        """The uid of each face, and its vector for the ids in ``with_vector``: identify's one
        round trip per round of candidates (vectors only where a re-rank needs them)."""
        return self._read(
            [(i, keys.face(app, i), ("uid", "vec") if i in with_vector else ("uid",)) for i in face_ids]
        )

    def scan_faces(self, fields: Sequence[str]) -> Iterator[list[FaceRecord]]:
        """Every face of every app, in batches; ``app`` is always among the fields read."""
        fields = tuple(dict.fromkeys(("app", *fields)))
        batch: list[tuple[int, bytes, Sequence[str]]] = []
        for key in self.redis.scan_iter(match=keys.face_pattern(), count=SCAN_BATCH):
            batch.append((int(key.rsplit(b":", 1)[1]), key, fields))
            if len(batch) >= SCAN_BATCH:
                yield [r for r in self._read(batch) if r is not None]
                batch = []
        if batch:
            yield [r for r in self._read(batch) if r is not None]

    def _read(self, requests: Sequence[tuple[int, str | bytes, Sequence[str]]]) -> list[Optional[FaceRecord]]:
        """(face id, key, fields) -> the record of each, in one pipelined round trip."""
        if not requests:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for _, key, fields in requests:
                pipe.hmget(key, *fields)
            answers = pipe.execute()
        return [_record(face_id, fields, values) for (face_id, _, fields), values in zip(requests, answers)]
