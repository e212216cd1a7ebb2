"""bce-auth-v1 request signatures (spec §1.2.2), verified exactly as Baidu's SDKs build them.

    authorization: bce-auth-v1/{ak}/{timestamp}/{expiration}/{signed headers}/{signature}
    signing key  = hex(HMAC-SHA256(sk, "bce-auth-v1/{ak}/{timestamp}/{expiration}"))
    signature    = hex(HMAC-SHA256(signing key, canonical request))
    canonical    = METHOD \\n quoted path \\n sorted query pairs \\n sorted "name:value" lines

The query is taken as sent (its "k=v" parts sorted), which is what the SDKs sign. The SDKs
sign no body digest (Python: host and x-bce-date; Node: host, content-type and x-bce-date), so
their signatures do not cover the form body; a client that also signs ``x-bce-content-sha256``
(hex sha256 of the body) gets the body checked too.
Pure functions: the secret lookup, the body and the clock are the caller's.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional
from urllib.parse import quote

PREFIX = "bce-auth-v1"
BODY_DIGEST = "x-bce-content-sha256"
# How far a client clock may run ahead of ours.
CLOCK_SKEW = 300


class SignatureError(ValueError):
    """``expired`` tells a stale signature (111) from a wrong one (110)."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Authorization:
    api_key: str
    timestamp: str
    expiration: int
    signed_headers: list[str]
    signature: str


def parse_authorization(header: str) -> Authorization:
    parts = header.strip().split("/")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise SignatureError("authorization is not bce-auth-v1/ak/timestamp/expiration/headers/signature")
    _, api_key, timestamp, expiration, signed, signature = parts
    if not expiration.isdigit() or not signed:
        raise SignatureError("malformed expiration or signed headers")
    return Authorization(api_key, timestamp, int(expiration), signed.lower().split(";"), signature.lower())


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], signed: list[str]) -> str:
    pairs = "&".join(sorted(part for part in query.split("&") if part))
    lines = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            raise SignatureError(f"signed header {name} is missing")
        lines.append(f"{quote(name.strip(), '').lower()}:{quote(value.strip(), '')}")
    return f"{method.upper()}\n{quote(path)}\n{pairs}\n" + "\n".join(sorted(lines))


def sign(secret: str, auth: Authorization, canonical: str) -> str:
    prefix = f"{PREFIX}/{auth.api_key}/{auth.timestamp}/{auth.expiration}"
    signing_key = hmac.new(secret.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    return hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def verify(
    auth: Authorization,
    secret: str,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    now: float,
    body: Callable[[], bytes],
) -> None:
    """Raise SignatureError unless the signature matches and is within its time window.

    ``body`` is called only when the client signed a body digest."""
    if "host" not in auth.signed_headers:
        raise SignatureError("the host header must be signed")
    signed_at = _parse_time(auth.timestamp)
    if signed_at is None:
        raise SignatureError("timestamp is not YYYY-MM-DDThh:mm:ssZ")
    if signed_at > now + CLOCK_SKEW:
        raise SignatureError("timestamp is in the future")
    if now > signed_at + auth.expiration:
        raise SignatureError("signature expired", expired=True)
    expected = sign(secret, auth, canonical_request(method, path, query, headers, auth.signed_headers))
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError("signature mismatch")
    if BODY_DIGEST in auth.signed_headers:
        digest = hashlib.sha256(body()).hexdigest()
        if not hmac.compare_digest(digest, headers[BODY_DIGEST].strip().lower()):
            raise SignatureError("body does not match the signed x-bce-content-sha256")


def _parse_time(text: str) -> Optional[float]:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
