"""Redis key names, one function per key family. Everything of an app lives under fs:{app}:."""
from __future__ import annotations


def apps() -> str:
    """Hash app_id -> creation time (unix seconds)."""
    return "fs:apps"


def api_key(key: str) -> str:
    """Hash: app_id, secret_hash, salt, created."""
    return f"fs:apikey:{key}"


def token(digest: str) -> str:
    """Hash: app_id, expires_at. Named by the token's sha256, never the token itself."""
    return f"fs:token:{digest}"


def replay(digest: str) -> str:
    """A signed request already answered, by the sha256 of its authorization header and body
    (service/auth/credentials.py); expires with the signature's window."""
    return f"fs:replay:{digest}"


def failed_grants(client: str) -> str:
    """Counter of failed token grants from one client address in the current minute."""
    return f"fs:grantfail:{client}"


def cluster_quota() -> str:
    """Hash of request counters shared by all apps (the cluster-wide QPS quota)."""
    return "fs:quota"


def libraries() -> str:
    """Set of the apps that have written to their face library (with API keys or not): the
    apps whose change streams a process follows."""
    return "fs:libraries"


def changed() -> str:
    """Stream of hints (field app) that an app's change stream has new entries: a process
    blocks on this one key instead of on every app's stream (a cluster cannot read streams of
    several slots at once). Written after each write, so it may miss one: followers also poll."""
    return "fs:changed"


def library_id() -> str:
    """A random id of this Redis's face library, recorded in index snapshots (index/snapshot.py)."""
    return "fs:library"


def app_prefix(app: str) -> str:
    """All keys of an app share the hash tag {app}: one Redis Cluster slot, so one app's
    multi-key transactions stay valid on a cluster."""
    return f"fs:{{{app}}}"


def groups(app: str) -> str:
    """Sorted set group_id -> creation order, for getlist paging."""
    return f"{app_prefix(app)}:groups"


def kept_groups(app: str) -> str:
    """Set of the groups v3 made (group/add, or a write through v3): they stay while empty."""
    return f"{app_prefix(app)}:keptgroups"


def token_prefix(app: str) -> str:
    """Prefix of the sets face token -> ids of the registered faces with that token."""
    return f"{app_prefix(app)}:token:"


def face_token(app: str, token: str) -> str:
    return f"{token_prefix(app)}{token}"


def tokens_given() -> str:
    """Set once every face stored before face tokens existed has its token (FaceStore.give_tokens)."""
    return "fs:tokens_given"


def detected_prefix(app: str) -> str:
    """Prefix of detected faces' hashes (model, digest, vec, face), kept for the token's TTL."""
    return f"{app_prefix(app)}:detected:"


def detected_face(app: str, token: str) -> str:
    return f"{detected_prefix(app)}{token}"


def detected(app: str) -> str:
    """Sorted set token -> expiry (unix seconds) of the app's detected faces, to bound them."""
    return f"{app_prefix(app)}:detected"


def group_users(app: str, group: str) -> str:
    """Sorted set uid -> order of joining the group, for getusers paging."""
    return f"{app_prefix(app)}:members:{group}"


def user(app: str, group: str, uid: str) -> str:
    """Hash: user_info, created. A uid's user_info is per group, as in Baidu's user/get."""
    return f"{app_prefix(app)}:user:{group}:{uid}"


def user_faces(app: str, group: str, uid: str) -> str:
    """Hash face id -> sha256 of the photo it came from (for 216616 "image existed")."""
    return f"{app_prefix(app)}:faces:{group}:{uid}"


def user_groups(app: str, uid: str) -> str:
    """Set of the groups a uid belongs to."""
    return f"{app_prefix(app)}:groupsof:{uid}"


def face_prefix(app: str) -> str:
    """Prefix of face hashes (app, uid, group, model, digest, token, created, v16 or vec): ``<prefix><id>``."""
    return f"{app_prefix(app)}:face:"


def face(app: str, face_id: int) -> str:
    return f"{face_prefix(app)}{face_id}"


def face_pattern() -> str:
    """SCAN pattern matching every face hash of every app."""
    return "fs:{*}:face:*"


def quota(app: str) -> str:
    """Hash of the app's request counters: per window length, its start and count."""
    return f"{app_prefix(app)}:quota"


def changes(app: str) -> str:
    """Stream of the app's face additions and removals (fields op, group, fid), written by the
    same script as the faces, that every process follows to keep its indexes in step."""
    return f"{app_prefix(app)}:changes"


def built_index(app: str, model: str, group: str) -> str:
    """Hash (gen, chunks, ms, seq, bytes): the group's stored built index of one model (a
    serialised FAISS index, service/store/built_indexes.py), the generation of its chunks and
    the change-stream position it includes."""
    return f"{app_prefix(app)}:built:{model}:{group}"


def built_chunk(app: str, model: str, group: str, generation: str, number: int) -> str:
    """One chunk of a built index's bytes."""
    return f"{built_index(app, model, group)}:{generation}:{number}"


def sequence(app: str) -> str:
    """Counter for face ids and ordering scores of an app."""
    return f"{app_prefix(app)}:seq"
