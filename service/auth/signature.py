"""bce-auth-v1 request signatures (spec §1.2.2), verified exactly as Baidu's SDKs build them.

    authorization: bce-auth-v1/{ak}/{timestamp}/{expiration}/{signed headers}/{signature}
    signing key  = hex(HMAC-SHA256(sk, "bce-auth-v1/{ak}/{timestamp}/{expiration}"))
    signature    = hex(HMAC-SHA256(signing key, canonical request))
    canonical    = METHOD \\n quoted path \\n sorted query pairs \\n sorted "name:value" lines

What each SDK signs (read from their sources; tests/sdk_replays.py replays them):
- Python and PHP sign ``host;x-bce-date``, Node ``host;content-type;x-bce-date``, C#
  ``content-type;host`` (its x-bce-date goes unsigned) with an expiration of 1200 s.
- Java (≤ 4.2) leaves the signed-headers field empty (``bce-auth-v1/AK/TS/1800//SIG``): BCE then
  signs its default set, ``host``, ``content-length``, ``content-type``, ``content-md5`` and
  every ``x-bce-*`` header the request carries. Its Content-MD5 is hex and is signed as sent.
  It writes the timestamp with a 12-hour clock (``hh``): in the afternoon (UTC) it claims a
  time 12 hours early, just after midnight 12 hours late. For this form only, a timestamp
  outside its window is read in the other half of the day (01-11 as 13-23, 12 as 00) when that
  puts it inside. These signatures are kept in the replay cache 12 hours longer
  (service/auth/credentials.py), so a morning request cannot be replayed in the afternoon.
- Java signs the host without its port (the HTTP layer then sends ``host:port``): a Host with a
  port is also tried without it.

The query is taken as sent (its "k=v" parts sorted), which is what the SDKs sign. No SDK signs
a body digest, so their signatures do not cover the form body; a client that also signs
``x-bce-content-sha256`` (hex sha256 of the body) gets the body checked too.
Pure functions: the secret lookup, the body and the clock are the caller's.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional
from urllib.parse import quote

PREFIX = "bce-auth-v1"
BODY_DIGEST = "x-bce-content-sha256"
# How far a client clock may run ahead of ours.
CLOCK_SKEW = 300
# What BCE signs when the signed-headers field is empty (the Java SDK's form).
DEFAULT_SIGNED = ("host", "content-length", "content-type", "content-md5")
BCE_HEADERS = "x-bce-"
HALF_DAY = 12 * 3600
_HEX = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9-]+")
_EXPIRATION = re.compile(r"[0-9]{1,20}")


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
    signed_headers: list[str]  # empty: BCE's default set (the Java SDK's form)
    signature: str

    @property
    def default_headers(self) -> bool:
        return not self.signed_headers


@dataclass(frozen=True)
class Verified:
    """A signature that checked out, with the end of the window it was accepted in and how long
    a replay cache must remember it (longer for a 12-hour-clock timestamp)."""

    expires_at: float
    remember_until: float


def parse_authorization(header: str) -> Authorization:
    parts = header.strip().split("/")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise SignatureError("authorization is not bce-auth-v1/ak/timestamp/expiration/headers/signature")
    _, api_key, timestamp, expiration, signed, signature = parts
    if not _EXPIRATION.fullmatch(expiration):
        raise SignatureError("malformed expiration")
    names = signed.lower().split(";") if signed else []
    if not all(_HEADER_NAME.fullmatch(name) for name in names):
        raise SignatureError("malformed signed headers")
    if not _HEX.fullmatch(signature.lower()):
        raise SignatureError("malformed signature")
    return Authorization(api_key, timestamp, int(expiration), names, signature.lower())


def headers_to_sign(auth: Authorization, headers: Mapping[str, str]) -> list[str]:
    """The signed header names: as listed, or BCE's default set among those present."""
    if not auth.default_headers:
        return auth.signed_headers
    present = {name.lower() for name in headers.keys()}
    return sorted(n for n in present if n in DEFAULT_SIGNED or n.startswith(BCE_HEADERS))


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
    max_expiration: int,
) -> Verified:
    """Raise SignatureError unless the signature matches and is within its time window (its
    expiration, at most ``max_expiration`` seconds); return how long to remember it.

    ``body`` is called only when the client signed a body digest."""
    signed = headers_to_sign(auth, headers)
    if "host" not in signed:
        raise SignatureError("the host header must be signed")
    signed_at = _parse_time(auth.timestamp)
    if signed_at is None:
        raise SignatureError("timestamp is not YYYY-MM-DDThh:mm:ssZ")
    window = min(auth.expiration, max_expiration)
    if auth.default_headers and not _inside(signed_at, window, now):
        signed_at = _twelve_hour_reading(auth.timestamp, signed_at, window, now)
    if signed_at > now + CLOCK_SKEW:
        raise SignatureError("timestamp is in the future")
    if now > signed_at + window:
        raise SignatureError("signature expired", expired=True)
    if not any(hmac.compare_digest(sign(secret, auth, canonical), auth.signature) for canonical in _canonicals(method, path, query, headers, signed)):
        raise SignatureError("signature mismatch")
    if BODY_DIGEST in signed:
        digest = hashlib.sha256(body()).hexdigest()
        if not hmac.compare_digest(digest, headers[BODY_DIGEST].strip().lower()):
            raise SignatureError("body does not match the signed x-bce-content-sha256")
    # A Java-form timestamp is valid at two times 12 hours apart: remember it past both.
    remember = signed_at + window + (HALF_DAY if auth.default_headers else 0)
    return Verified(signed_at + window, remember)


def _twelve_hour_reading(timestamp: str, signed_at: float, window: int, now: float) -> float:
    """The time a Java "hh" timestamp meant, when the other half of the day puts it inside the
    window: hours 01-11 are also 13-23, and 12 is also 00."""
    hour = timestamp[11:13]
    other = signed_at + HALF_DAY if hour < "12" else signed_at - HALF_DAY if hour == "12" else None
    return other if other is not None and _inside(other, window, now) else signed_at


def _canonicals(method: str, path: str, query: str, headers: Mapping[str, str], signed: list[str]):
    """The canonical request as sent, then with the Host's port dropped (Java signs the bare
    host name while its HTTP layer sends host:port)."""
    yield canonical_request(method, path, query, headers, signed)
    host = headers.get("host", "")
    if "host" in signed and re.fullmatch(r"[^:\[\]]+:[0-9]+", host):
        bare = {name.lower(): value for name, value in headers.items()}
        bare["host"] = host.rsplit(":", 1)[0]
        yield canonical_request(method, path, query, bare, signed)


def _inside(signed_at: float, window: int, now: float) -> bool:
    return signed_at <= now + CLOCK_SKEW and now <= signed_at + window


def _parse_time(text: str) -> Optional[float]:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
