"""The face library's Redis schema, its one owner: the key names it uses (service/store/keys.py),
the Lua scripts that write it and every read of it. Everyone else calls ``FaceStore``.

The records, per app (every key under the app's hash tag, so one app is one cluster slot):

- ``face:<id>`` hash: app, uid, group, model (the embedding's model id), digest (sha256 of
  the photo), token (its face token, ``face_token``), created (unix seconds), v16 (the
  embedding, little-endian float16; ``vec`` float32 in faces stored before); ``token:<token>``
  set of the face ids with that token;
- ``faces:<group>:<uid>`` hash face id -> digest, the faces of a user in a group;
- ``user:<group>:<uid>`` hash: user_info, created (user_info is per group, as Baidu's user/get);
- ``members:<group>`` sorted set uid -> joining order; ``groups`` sorted set group -> creation
  order; ``keptgroups`` set of the groups v3 made, which stay when empty; ``groupsof:<uid>``
  set of the uid's groups; ``seq`` the counter of ids and orders;
- and one entry (op, group, fid) per face added or removed in the app's change stream
  ``changes``, followed by a hint in the global ``fs:changed`` that the app has news;
- apart from the library, detected faces (v3 face tokens) for an hour: ``detected:<token>``
  hash (model, digest, vec, face) with a TTL, and ``detected`` sorted set token -> expiry that
  bounds how many an app keeps.

Every write is one Lua script, so a face record, its memberships and its change-stream entry
land together or not at all (AOF makes them durable once acknowledged).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import redis
from redis.cluster import RedisCluster

from service.errors import ALREADY_ADDED, FaceError
from service.store import keys
from service.store.redis_server import RedisClient

SCAN_BATCH = 1000
FACE_FIELDS = ("app", "uid", "group", "model", "digest", "token", "created", "vec")
# A face's embedding: float16 (``v16``, half the bytes; re-ranking at 300,000 faces keeps its
# recall@1, bench/search.py) or, for faces stored before, float32 (``vec``). Reading "vec"
# reads either.
VEC, HALF = "vec", "v16"
# Users a group/delete removes per script call: a huge group never blocks Redis for long.
CLEAR_BATCH = 500

# Approximate cap of an app's change stream; a process further behind than this rebuilds.
STREAM_MAXLEN = 200_000
# Seconds a primary's count of connected replicas is trusted (FaceStore._required).
REPLICAS_TTL = 1.0
# Approximate cap of the hint stream: a follower only needs the hints since its last read.
HINT_MAXLEN = 10_000

# KEYS[1..4]: the app's group list, its kept groups, its counter, its change stream; scripts
# about one user add KEYS[5] (its groups) and a (members, user, faces) triple per group.
# ARGV[1..6]: face and token key prefixes, app, now, uid, whether groups created stay when
# empty (v3); a script's own arguments follow from ARGV[A + 1].
_PRELUDE = """
local face_prefix, token_prefix, app, now, uid, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1'
local groups_key, kept_key, seq_key, changes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local A = 6
local MAXLEN = %d

local function log_change(op, group, fid)
  redis.call('XADD', changes_key, 'MAXLEN', '~', MAXLEN, '*', 'op', op, 'group', group, 'fid', fid)
end

-- vec_field: 'v16' (float16, what writes store) or 'vec' (float32, a copy of an older face)
local function add_face(group, owner, faces_key, model, digest, token, vec_field, vec)
  local fid = redis.call('INCR', seq_key)
  redis.call('HSET', face_prefix .. fid, 'app', app, 'uid', owner, 'group', group, 'model', model,
             'digest', digest, 'created', now, vec_field, vec)
  if token and token ~= '' then
    redis.call('HSET', face_prefix .. fid, 'token', token)
    redis.call('SADD', token_prefix .. token, fid)
  end
  redis.call('HSET', faces_key, fid, digest)
  log_change('add', group, fid)
end

local function drop_face(group, faces_key, fid)
  local token = redis.call('HGET', face_prefix .. fid, 'token')
  if token then redis.call('SREM', token_prefix .. token, fid) end
  redis.call('DEL', face_prefix .. fid)
  redis.call('HDEL', faces_key, fid)
  log_change('del', group, fid)
end

local function drop_faces(group, faces_key)
  for _, fid in ipairs(redis.call('HKEYS', faces_key)) do drop_face(group, faces_key, fid) end
end

local function add_group(group)
  if not redis.call('ZSCORE', groups_key, group) then
    redis.call('ZADD', groups_key, redis.call('INCR', seq_key), group)
  end
  if keep then redis.call('SADD', kept_key, group) end
end

local function join(group, owner, members_key, user_key, user_groups_key, info, set_info)
  if not redis.call('ZSCORE', members_key, owner) then
    redis.call('ZADD', members_key, redis.call('INCR', seq_key), owner)
    redis.call('HSET', user_key, 'created', now, 'user_info', info)
  elseif set_info then
    redis.call('HSET', user_key, 'user_info', info)
  end
  add_group(group)
  redis.call('SADD', user_groups_key, group)
end

-- A group made by v3 (kept) stays when its last user leaves; one made by v2 goes.
local function leave(group, owner, members_key, user_key, faces_key, user_groups_key)
  drop_faces(group, faces_key)
  redis.call('DEL', user_key)
  redis.call('ZREM', members_key, owner)
  redis.call('SREM', user_groups_key, group)
  if redis.call('ZCARD', members_key) == 0 and redis.call('SISMEMBER', kept_key, group) == 0 then
    redis.call('ZREM', groups_key, group)
  end
end

local function group_keys(i)
  local base = 5 + 3 * (i - 1)
  return KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
end
""" % STREAM_MAXLEN

# Script arguments: model, replace, set_info, info, group count, groups..., face count, then
# (digest, token, vector) triples. Returns 0 or a Baidu error code.
_PUT = _PRELUDE + """
local model, replace, set_info, info = ARGV[A + 1], ARGV[A + 2] == '1', ARGV[A + 3] == '1', ARGV[A + 4]
local ngroups = tonumber(ARGV[A + 5])
local nfaces = tonumber(ARGV[A + 6 + ngroups])
local first_face = A + 7 + ngroups
if not replace then
  for g = 1, ngroups do
    local _, _, faces_key = group_keys(g)
    local existing = {}
    for _, digest in ipairs(redis.call('HVALS', faces_key)) do existing[digest] = true end
    for f = 0, nfaces - 1 do
      if existing[ARGV[first_face + 3 * f]] then return 216616 end
    end
  end
end
for g = 1, ngroups do
  local group = ARGV[A + 5 + g]
  local members_key, user_key, faces_key = group_keys(g)
  if replace then drop_faces(group, faces_key) end
  join(group, uid, members_key, user_key, KEYS[5], info, set_info)
  for f = 0, nfaces - 1 do
    local at = first_face + 3 * f
    add_face(group, uid, faces_key, model, ARGV[at], ARGV[at + 1], 'v16', ARGV[at + 2])
  end
end
return 0
"""

# Script arguments: minimum groups the user must keep, code when absent, group count, groups...
_LEAVE = _PRELUDE + """
local keep_min, missing_code, ngroups = tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2]), tonumber(ARGV[A + 3])
local present = {}
for g = 1, ngroups do
  local members_key = group_keys(g)
  if redis.call('ZSCORE', members_key, uid) then table.insert(present, g) end
end
if #present == 0 then return missing_code end
if redis.call('SCARD', KEYS[5]) - #present < keep_min then return 216619 end
for _, g in ipairs(present) do
  local members_key, user_key, faces_key = group_keys(g)
  leave(ARGV[A + 3 + g], uid, members_key, user_key, faces_key, KEYS[5])
end
return 0
"""

# Group 1 is the source. Script arguments: whether the targets must exist already (v3), group
# count (source included), groups...
_COPY = _PRELUDE + """
local targets_exist, ngroups = ARGV[A + 1] == '1', tonumber(ARGV[A + 2])
local src_members, src_user, src_faces = group_keys(1)
if targets_exist and not redis.call('ZSCORE', groups_key, ARGV[A + 3]) then return 223100 end
if not redis.call('ZSCORE', src_members, uid) then return 216611 end
for g = 2, ngroups do
  local members_key = group_keys(g)
  if targets_exist and not redis.call('ZSCORE', groups_key, ARGV[A + 2 + g]) then return 223111 end
  if redis.call('ZSCORE', members_key, uid) then return 216100 end
end
local info = redis.call('HGET', src_user, 'user_info') or ''
local faces = redis.call('HGETALL', src_faces)
for g = 2, ngroups do
  local group = ARGV[A + 2 + g]
  local members_key, user_key, faces_key = group_keys(g)
  join(group, uid, members_key, user_key, KEYS[5], info, true)
  for f = 1, #faces, 2 do
    local record = redis.call('HMGET', face_prefix .. faces[f], 'model', 'v16', 'vec', 'token')
    if record[2] then add_face(group, uid, faces_key, record[1], faces[f + 1], record[4], 'v16', record[2])
    elseif record[3] then add_face(group, uid, faces_key, record[1], faces[f + 1], record[4], 'vec', record[3]) end
  end
end
return 0
"""

# One user, one group. Script arguments: the group, the face id. The user's last face takes
# the user out of the group with it (v3 face/delete).
_DROP_FACE = _PRELUDE + """
local group, fid = ARGV[A + 1], ARGV[A + 2]
local members_key, user_key, faces_key = group_keys(1)
if not redis.call('ZSCORE', groups_key, group) then return 223100 end
if not redis.call('ZSCORE', members_key, uid) then return 223103 end
if not redis.call('HEXISTS', faces_key, fid) then return 223106 end
drop_face(group, faces_key, fid)
if redis.call('HLEN', faces_key) == 0 then leave(group, uid, members_key, user_key, faces_key, KEYS[5]) end
return 0
"""

# Script argument: the group. An empty group that stays until deleted (v3 group/add).
_ADD_GROUP = _PRELUDE + """
if redis.call('ZSCORE', groups_key, ARGV[A + 1]) then return 223101 end
add_group(ARGV[A + 1])
return 0
"""

# KEYS[5] the group's members, then a (user, faces, user's groups) triple per uid. Script
# arguments: the group, uids... Removes those users from the group, and the group when no
# user is left; answers how many users are left (-1: no such group).
_CLEAR_GROUP = _PRELUDE + """
local group = ARGV[A + 1]
if not redis.call('ZSCORE', groups_key, group) then return -1 end
for i = 2, #ARGV - A do
  local owner = ARGV[A + i]
  local base = 5 + 3 * (i - 2)
  if redis.call('ZSCORE', KEYS[5], owner) then
    leave(group, owner, KEYS[5], KEYS[base + 1], KEYS[base + 2], KEYS[base + 3])
  end
end
local left = redis.call('ZCARD', KEYS[5])
if left == 0 then
  redis.call('ZREM', groups_key, group)
  redis.call('SREM', kept_key, group)
end
return left
"""

# KEYS[1] the app's detected-token index (token -> expiry). Script arguments: now, ttl, cap,
# then (token, model, digest, vector, face, pose) per face; an empty pose keeps the one stored (a
# search seeing a face again must not drop what detect answered of it). Keeps at most ``cap``
# tokens per app, dropping those that expire first.
_REMEMBER = """
local index, prefix = KEYS[1], ARGV[1]
local now, ttl, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 5, #ARGV, 6 do
  local key = prefix .. ARGV[i]
  redis.call('HSET', key, 'model', ARGV[i + 1], 'digest', ARGV[i + 2], 'vec', ARGV[i + 3], 'face', ARGV[i + 4])
  if ARGV[i + 5] ~= '' then redis.call('HSET', key, 'pose', ARGV[i + 5]) end
  redis.call('EXPIRE', key, ttl)
  redis.call('ZADD', index, now + ttl + i * 1e-9, ARGV[i])  -- unique, in order: the cap drops the oldest
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
local over = redis.call('ZCARD', index) - cap
if over > 0 then
  for _, token in ipairs(redis.call('ZRANGE', index, 0, over - 1)) do redis.call('DEL', prefix .. token) end
  redis.call('ZREMRANGEBYRANK', index, 0, over - 1)
end
return 0
"""


def face_token(app: str, digest: str, index: int = 0) -> str:
    """A face's token: 32 hex digits from the app, the photo's sha256 and the face's rank in
    the photo (0 the largest). The same photo always gives the same token, and a registered
    face has the token its photo's largest face gets on detect."""
    return hashlib.sha256(f"{app}\0{digest}\0{index}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TokenFace:
    """What a face token stands for: the embedding, its model, the photo's digest and, for a
    detected face, what was answered about it (JSON of its placement and, once detect answered
    it, of its pose; None for a registered face)."""

    model: str
    digest: str
    vector: np.ndarray
    face: Optional[str]
    pose: Optional[str] = None


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
    token: Optional[str] = None
    created: Optional[str] = None
    vector: Optional[np.ndarray] = None


def encode_vector(vector: np.ndarray) -> bytes:
    """float32 bytes: exports and detected faces' tokens."""
    return vector.astype("<f4").tobytes()


def decode_vector(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<f4")


def _record(face_id: int, fields: Sequence[str], values: list[Optional[bytes]]) -> Optional[FaceRecord]:
    """The record of an HMGET answer; None when the face is gone (no field came back). The
    vector comes as float32 whether the face holds it in float16 (``v16``) or float32 (``vec``,
    faces stored before float16)."""
    if all(v is None for v in values):
        return None
    found: dict = {}
    for name, value in zip(fields, values):
        if value is None:
            continue
        if name == VEC:
            found["vector"] = decode_vector(value)
        elif name == HALF:
            found["vector"] = np.frombuffer(value, "<f2").astype(np.float32)
        else:
            found[name] = value.decode()
    return FaceRecord(face_id, **found)


class FaceStore:
    """Reads and writes of the face library of every app in one Redis (a server, a Sentinel's
    primary or a Cluster). ``wait_replicas``: replicas a write must reach before it returns
    (Redis WAIT, up to ``wait_ms``); fewer is 216300. None: one while the write's primary has
    a replica connected, none while it has none (a lone server, or a primary promoted by a
    failover whose replicas are still to come back)."""

    def __init__(self, client: RedisClient, wait_replicas: Optional[int] = 0, wait_ms: int = 1000) -> None:
        self.redis = client
        self.wait_replicas = wait_replicas
        self.wait_ms = wait_ms
        self._replicas: dict[str, tuple[int, float]] = {}  # primary -> (replicas, when read)
        self._put = client.register_script(_PUT)
        self._leave = client.register_script(_LEAVE)
        self._copy = client.register_script(_COPY)
        self._drop_face = client.register_script(_DROP_FACE)
        self._add_group = client.register_script(_ADD_GROUP)
        self._clear_group = client.register_script(_CLEAR_GROUP)
        self._remember = client.register_script(_REMEMBER)

    # -- writes ---------------------------------------------------------------------------

    def put_faces(
        self,
        app: str,
        uid: str,
        groups: list[str],
        faces: Sequence[tuple[str, str, np.ndarray]],
        model_id: str,
        user_info: Optional[str],
        replace: bool,
        keep_groups: bool = False,
    ) -> None:
        """Store (digest, token, vector) faces of ``model_id`` for uid in each group; see
        ``Library.put_faces`` for what replace, user_info and keep_groups mean."""
        args = [model_id, int(replace), int(user_info is not None), user_info or "", len(groups), *groups]
        args.append(len(faces))
        for digest, token, vector in faces:
            args += [digest, token, vector.astype("<f2").tobytes()]
        self._write(self._put, app, uid, groups, args, keep_groups=keep_groups)

    def remove_user(self, app: str, uid: str, groups: list[str], keep: int, missing_code: int) -> None:
        self._write(self._leave, app, uid, groups, [keep, missing_code, len(groups), *groups])

    def copy_user(self, app: str, uid: str, source: str, targets: list[str], targets_exist: bool = False) -> None:
        """216611 when uid is not in ``source``; 216100 "already add" when it is in a target.
        ``targets_exist`` (v3): 223100 when the source group, 223111 when a target group does
        not exist, instead of making it."""
        groups = [source, *targets]
        args = [int(targets_exist), len(groups), *groups]
        self._write(self._copy, app, uid, groups, args, {216100: ALREADY_ADDED}, keep_groups=targets_exist)

    def delete_face(self, app: str, uid: str, group: str, face_id: int) -> None:
        """One face of uid in group; the user leaves the group with its last face (223100,
        223103, 223106 when the group, the user or the face is not there)."""
        self._write(self._drop_face, app, uid, [group], [group, face_id], keep_groups=True)

    def add_group(self, app: str, group: str) -> None:
        """An empty group that stays until deleted; 223101 when it exists."""
        code = self._run(self._add_group, app, "", [], [group], keep_groups=True)
        if code:
            raise FaceError(code, f"group {group}")

    def delete_group(self, app: str, group: str) -> None:
        """The group with all its users and their faces in it, CLEAR_BATCH users per script
        call; 223100 when there is no such group."""
        first = True
        while True:
            uids = self.list_members(app, group, 0, CLEAR_BATCH)
            extra = [keys.group_users(app, group)]
            for uid in uids:
                extra += [keys.user(app, group, uid), keys.user_faces(app, group, uid), keys.user_groups(app, uid)]
            left = self._run(self._clear_group, app, "", extra, [group, *uids], keep_groups=True)
            if left == -1 and first:
                raise FaceError(223100, f"group {group}")
            if left <= 0:
                return
            first = False

    def remember_faces(
        self, app: str, faces: Sequence[tuple[str, str, str, np.ndarray, str, str]], ttl: int, cap: int
    ) -> None:
        """Detected faces as (token, model, digest, vector, face JSON, pose JSON or ""), usable
        by their token for ``ttl`` seconds; at most ``cap`` per app are kept, the oldest
        dropped first."""
        if not faces:
            return
        args: list = [keys.detected_prefix(app), repr(time.time()), ttl, cap]
        for token, model, digest, vector, face, pose in faces:
            args += [token, model, digest, encode_vector(vector), face, pose]
        self._remember(keys=[keys.detected(app)], args=args)

    def give_tokens(self) -> int:
        """Give every face stored before face tokens existed (facesvc < v3) its token, once
        per Redis (``keys.tokens_given`` marks it done); returns how many were given."""
        if self.redis.exists(keys.tokens_given()):
            return 0
        given = 0
        for batch in self.scan_faces(("digest", "token")):
            with self.redis.pipeline(transaction=False) as pipe:
                for record in batch:
                    if record.token is None and record.digest is not None:
                        token = face_token(record.app, record.digest)
                        pipe.hset(keys.face(record.app, record.face_id), "token", token)
                        pipe.sadd(keys.face_token(record.app, token), record.face_id)
                        given += 1
                pipe.execute()
        self.redis.set(keys.tokens_given(), int(time.time()))
        return given

    def _write(
        self, script, app: str, uid: str, groups: list[str], args: list, messages: Optional[dict[int, str]] = None, keep_groups: bool = False
    ) -> None:
        extra = [keys.user_groups(app, uid)]
        for group in groups:
            extra += [keys.group_users(app, group), keys.user(app, group, uid), keys.user_faces(app, group, uid)]
        code = self._run(script, app, uid, extra, args, keep_groups)
        if code:
            message = (messages or {}).get(int(code))
            raise FaceError(int(code), f"uid {uid}, groups {','.join(groups)}", message)

    def _replicated(self, app: str, script, script_keys: list[str], args: list) -> int:
        """The script's answer once the replicas required hold its writes. WAIT counts the
        writes of its own connection, so both go down one connection: a pipeline of this
        client, or of the app's primary in a cluster."""
        client = self.redis
        if isinstance(client, RedisCluster) and self.wait_replicas != 0:
            client = client.get_node_from_key(script_keys[0]).redis_connection
        required = self._required(client)
        if not required:
            return int(script(keys=script_keys, args=args))
        try:
            with client.pipeline(transaction=False) as pipe:
                script(keys=script_keys, args=args, client=pipe)
                pipe.execute_command("WAIT", required, self.wait_ms)
                code, replicas = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            if isinstance(self.redis, RedisCluster):
                self.redis.nodes_manager.initialize()  # a failover moved the slot: learn where
            raise
        if int(replicas) < required:
            self._replicas.clear()  # a replica may have gone: count again next time
            raise FaceError(216300, f"the write of app {app} reached {replicas} of {required} replicas in {self.wait_ms} ms")
        return int(code)

    def _required(self, client: redis.Redis) -> int:
        """Replicas a write on ``client``'s primary must reach: the setting, or (None) one when
        that primary has a replica connected, counted at most once a second."""
        if self.wait_replicas is not None:
            return self.wait_replicas
        name = repr(client.connection_pool)
        count, when = self._replicas.get(name, (0, 0.0))
        if time.monotonic() - when > REPLICAS_TTL:
            count = int(client.info("replication").get("connected_slaves", 0))
            self._replicas[name] = (count, time.monotonic())
        return min(1, count)

    def _run(self, script, app: str, uid: str, extra_keys: list[str], args: list, keep_groups: bool) -> int:
        script_keys = [keys.groups(app), keys.kept_groups(app), keys.sequence(app), keys.changes(app), *extra_keys]
        prelude = [keys.face_prefix(app), keys.token_prefix(app), app, int(time.time()), uid, int(keep_groups)]
        code = self._replicated(app, script, script_keys, [*prelude, *args])
        # Other slots than the app's, so not in the script: a hint lost here (a crash) only
        # delays other processes until their next poll of every app's stream, and the next
        # write of the app lists it again.
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.libraries(), app)
            pipe.xadd(keys.changed(), {"app": app}, maxlen=HINT_MAXLEN, approximate=True)
            pipe.execute()
        return code

    # -- users and groups -----------------------------------------------------------------

    def apps(self) -> list[str]:
        """Every app with API keys."""
        return sorted(a.decode() for a in self.redis.hkeys(keys.apps()))

    def libraries(self) -> set[str]:
        """Every app that has written to its face library."""
        return {a.decode() for a in self.redis.smembers(keys.libraries())}

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

    def existing_groups(self, app: str, groups: list[str]) -> list[bool]:
        """Whether each group exists (has users, or was made by v3 and not deleted)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zscore(keys.groups(app), group)
            return [score is not None for score in pipe.execute()]

    def kept_groups(self, app: str) -> set[str]:
        return {g.decode() for g in self.redis.smembers(keys.kept_groups(app))}

    def token_sets(self, app: str) -> Iterator[tuple[str, set[int]]]:
        """(token, face ids) of every registered face token of the app."""
        prefix = keys.token_prefix(app)
        for key in self.redis.scan_iter(match=prefix + "*", count=SCAN_BATCH):
            yield key.decode()[len(prefix):], {int(i) for i in self.redis.smembers(key)}

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

    def user_faces(self, app: str, group: str, uid: str) -> list[FaceRecord]:
        """uid's faces in group (token, created), oldest first."""
        ids = self.face_ids(app, [(group, uid)])[0]
        records = self.read_faces([(app, i) for i in ids], ("digest", "token", "created"))
        return [r for r in records if r is not None]

    def token_face(self, app: str, token: str) -> Optional[TokenFace]:
        """The face a token stands for: a detected face not expired yet, else a registered
        face; None when neither."""
        fields = self.redis.hmget(keys.detected_face(app, token), "model", "digest", "vec", "face", "pose")
        model, digest, vec, face, pose = fields
        if vec is not None:
            return TokenFace(model.decode(), digest.decode(), decode_vector(vec), face.decode(), pose and pose.decode())
        ids = self.redis.srandmember(keys.face_token(app, token), 3) or ()
        records = self.read_faces([(app, int(face_id)) for face_id in ids], ("model", "digest", "vec"))
        found = next((r for r in records if r is not None and r.vector is not None), None)
        return TokenFace(found.model, found.digest, found.vector, None) if found else None

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
        asked = [(face_id, key, (*fields, HALF) if VEC in fields else tuple(fields)) for face_id, key, fields in requests]
        with self.redis.pipeline(transaction=False) as pipe:
            for _, key, fields in asked:
                pipe.hmget(key, *fields)
            answers = pipe.execute()
        return [_record(face_id, fields, values) for (face_id, _, fields), values in zip(asked, answers)]
