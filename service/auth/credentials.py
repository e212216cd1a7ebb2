"""API keys, access tokens, and the per-request check of a token (spec §1.2.1) or a
bce-auth-v1 signature (§1.2.2).

An API key pair belongs to one app. Its secret is stored as a salted PBKDF2 hash (checked by
the token grant) and sealed under the master key (a signature check needs the secret itself);
a Redis dump alone yields neither. A token is 128 random bits in Baidu's dotted layout; Redis
holds only its sha256.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import redis

from service.store import keys
from service.auth import signature
from service.errors import FaceError

PBKDF2_ROUNDS = 120_000
# Hashed against when the API key is unknown, so that it costs what a wrong secret costs.
_UNKNOWN_KEY_SALT = bytes(16)
# Expired tokens are remembered this long after expiry so callers get 111 (expired) rather
# than 110 (invalid).
EXPIRED_MEMORY = 30 * 86400
# The scope Baidu grants an app with face recognition enabled; the SDKs look for
# brain_all_scope to decide they may use the token.
SCOPE = "public brain_all_scope vis-faceverify_faceverify vis-faceattribute_faceattribute wise_adapt"


class OAuthError(Exception):
    """An OAuth 2.0 error (RFC 6749 §5.2), rendered as {"error", "error_description"}."""

    def __init__(self, error: str, description: str, status: int = 401) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@dataclass(frozen=True)
class AppKeys:
    app_id: str
    api_key: str
    secret_key: str


@dataclass(frozen=True)
class KeyInfo:
    """What an operator may see of a key pair: never its secret."""

    app_id: str
    api_key: str
    created: int


def _hash_secret(secret: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, PBKDF2_ROUNDS).hex()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_master_key(configured: Optional[str], data_dir: Path) -> bytes:
    """The configured key, else <data_dir>/master.key (created 0600 on first use)."""
    if configured:
        return bytes.fromhex(configured)
    path = data_dir / "master.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_hex(32)
        handle.write(key)
    return bytes.fromhex(key)


def _keystream(master: bytes, api_key: str, length: int) -> bytes:
    """HMAC-SHA256 in counter mode, keyed by the master key, one stream per API key."""
    blocks = (hmac.new(master, f"seal/{api_key}/{i}".encode(), hashlib.sha256).digest() for i in range(length // 32 + 1))
    return b"".join(blocks)[:length]


def seal(master: bytes, api_key: str, secret: str) -> str:
    data = secret.encode()
    return bytes(a ^ b for a, b in zip(data, _keystream(master, api_key, len(data)))).hex()


def unseal(master: bytes, api_key: str, sealed: str) -> str:
    data = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(data, _keystream(master, api_key, len(data)))).decode()


class Auth:
    def __init__(
        self,
        client: redis.Redis,
        token_ttl: int,
        master_key: bytes,
        max_signature_seconds: int = 1800,
        max_failed_grants: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.token_ttl = token_ttl
        self.master_key = master_key
        self.max_signature_seconds = max_signature_seconds
        self.max_failed_grants = max_failed_grants
        self.clock = clock

    @classmethod
    def from_settings(cls, client: redis.Redis, settings) -> "Auth":
        master_key = load_master_key(settings.master_key, settings.data_dir)
        return cls(client, settings.token_ttl, master_key, settings.signature_max_seconds, settings.max_failed_grants)

    def create_keys(self, app_id: Optional[str] = None) -> AppKeys:
        """A new API key pair for ``app_id`` (a new app when None)."""
        app_id = app_id or str(secrets.randbelow(90_000_000) + 10_000_000)
        api_key = secrets.token_hex(12)
        secret = secrets.token_hex(16)
        salt = secrets.token_bytes(16)
        now = int(time.time())
        # Two keys of two cluster slots: no transaction. The app is listed last, so a failure
        # between leaves an unusable key (its app unknown: 110), never a listed app without one.
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(
                keys.api_key(api_key),
                mapping={
                    "app_id": app_id,
                    "secret_hash": _hash_secret(secret, salt),
                    "salt": salt.hex(),
                    "sealed": seal(self.master_key, api_key, secret),
                    "created": now,
                },
            )
            pipe.hsetnx(keys.apps(), app_id, now)
            pipe.execute()
        return AppKeys(app_id, api_key, secret)

    def has_apps(self) -> bool:
        return self.redis.hlen(keys.apps()) > 0

    def list_keys(self) -> list[KeyInfo]:
        """Every key pair, oldest first."""
        found = []
        for key in self.redis.scan_iter(match=keys.api_key("*"), count=1000):
            app_id, created = self.redis.hmget(key, "app_id", "created")
            if app_id is not None:
                found.append(KeyInfo(app_id.decode(), key.decode().removeprefix(keys.api_key("")), int(created or 0)))
        return sorted(found, key=lambda k: (k.created, k.app_id, k.api_key))

    def revoke_key(self, api_key: str) -> bool:
        """Delete a key pair; its tokens stop working at once (each token records its key).
        The app and its face library stay. False when there was no such key."""
        return bool(self.redis.delete(keys.api_key(api_key)))

    def issue_token(self, api_key: str, secret: str, client: str = "") -> dict:
        """client_credentials grant -> Baidu's token JSON.

        An unknown API key and a wrong secret get the same answer after the same work (a
        PBKDF2 either way), so the endpoint does not tell which keys exist. After
        ``max_failed_grants`` failures in a minute from the ``client`` address, its grants are
        refused unchecked (429) until the minute ends: each costs ~30 ms of CPU. Not per API
        key: API keys sit in client configurations, and anyone who read one could then lock
        its owners out."""
        failures = keys.failed_grants(client)
        if self.max_failed_grants and int(self.redis.get(failures) or 0) >= self.max_failed_grants:
            raise OAuthError("slow_down", "too many failed grants; retry in a minute", 429)
        record = self.redis.hgetall(keys.api_key(api_key)) if api_key else {}
        salt = bytes.fromhex(record[b"salt"].decode()) if record else _UNKNOWN_KEY_SALT
        hashed = _hash_secret(secret, salt)
        if not record or not hmac.compare_digest(hashed, record[b"secret_hash"].decode()):
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(failures, 0, ex=60, nx=True)  # the minute starts at the first failure
                pipe.incr(failures)
                pipe.execute()
            raise OAuthError("invalid_client", "Client authentication failed")
        app_id = record[b"app_id"].decode()
        expires_at = int(time.time()) + self.token_ttl
        token = f"24.{secrets.token_hex(16)}.{self.token_ttl}.{expires_at}.{secrets.randbelow(900000) + 100000}-{app_id}"
        with self.redis.pipeline(transaction=True) as pipe:  # one key: one slot
            pipe.hset(keys.token(_digest(token)), mapping={"app_id": app_id, "api_key": api_key, "expires_at": expires_at})
            pipe.expire(keys.token(_digest(token)), self.token_ttl + EXPIRED_MEMORY)
            pipe.execute()
        return {
            "access_token": token,
            "refresh_token": f"25.{secrets.token_hex(16)}.{10 * self.token_ttl}.{expires_at}.{app_id}",
            "expires_in": self.token_ttl,
            "scope": SCOPE,
            "session_key": secrets.token_hex(32),
            "session_secret": secrets.token_hex(16),
        }

    def app_for_token(self, token: Optional[str]) -> str:
        """The app a token belongs to; 100 when absent, 110 when unknown or its key was
        revoked, 111 when expired."""
        if not token:
            raise FaceError(100, "access_token is missing")
        record = self.redis.hgetall(keys.token(_digest(token)))
        if not record:
            raise FaceError(110, "unknown access token")
        if int(record[b"expires_at"]) < time.time():
            raise FaceError(111, "access token expired")
        app_id = record[b"app_id"].decode()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hexists(keys.apps(), app_id)
            pipe.exists(keys.api_key(record.get(b"api_key", b"").decode()))
            app_exists, key_exists = pipe.execute()
        if not app_exists:
            raise FaceError(110, "the token's app no longer exists")
        if not key_exists:
            raise FaceError(110, "the token's API key was revoked")
        return app_id

    def app_for_signature(
        self, header: str, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """The app whose key signed this request; 110 when wrong or replayed, 111 when stale.

        An exact replay (same authorization header and same body) is refused until the
        signature's window ends, in Redis so that every worker and node shares it. The body
        is part of the key: an SDK signs identical strings for different bodies sent to one
        path within one second (the date has one-second resolution and the body is unsigned)."""
        now = self.clock()
        try:
            auth = signature.parse_authorization(header)
            record = self.redis.hmget(keys.api_key(auth.api_key), "app_id", "sealed")
            if record[0] is None or record[1] is None:
                raise signature.SignatureError("unknown API key")
            secret = unseal(self.master_key, auth.api_key, record[1].decode())
            verified = signature.verify(
                auth, secret, method, path, query, headers, now, lambda: body, self.max_signature_seconds
            )
        except signature.SignatureError as exc:
            raise FaceError(111 if exc.expired else 110, str(exc)) from None
        app_id = record[0].decode()
        if not self.redis.hexists(keys.apps(), app_id):
            raise FaceError(110, "the key's app no longer exists")
        seen = hashlib.sha256(f"{header.strip()}\n{hashlib.sha256(body).hexdigest()}".encode()).hexdigest()
        remember = max(1, math.ceil(verified.remember_until - now))
        if not self.redis.set(keys.replay(seen), 1, nx=True, ex=remember):
            raise FaceError(110, "replayed signature: this exact request was already answered")
        return app_id
