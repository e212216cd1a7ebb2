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
