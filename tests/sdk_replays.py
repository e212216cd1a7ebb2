"""Baidu's Java, C# and PHP SDKs of the v2 era, replayed: their requests rebuilt byte for byte
from their sources, since CI cannot install them (they are not on PyPI or npm).

Written from the sources of Baidu-AIP/java-sdk (3.4.0 d6646b9, 4.2.0 e1e1569),
Baidu-AIP/dotnet-sdk (3.2.2 4da10c8, 3.4.0 f4b6ffc) and Baidu-AIP/php-sdk (1.6.9 56664f7,
2.2.2 d6c627b), and checked against their requests as captured from the real SDKs:

- Java: the token by POST (a form body); ``aipSdk=java`` in the query; a body of RFC 3986-encoded
  pairs (an empty value is a bare key); when signing, Content-MD5 (hex), x-bce-date with a
  12-hour clock, and ``bce-auth-v1/AK/TS/1800//SIG`` with an empty signed-headers field over
  content-length, content-md5, content-type, host (without its port) and x-bce-date.
- C#: the token by GET; ``aipSdk=CSharp``; values RFC 3986-encoded but for "/", keys raw;
  ``.../1200/content-type;host/SIG`` with x-bce-date sent unsigned; 3.2.2 sends
  ``Expect: 100-continue``, ``images`` on identify, the misspelt ``fcae_top_num``, paging as
  ``start``/``end``, and fetches one token per sub-client (face, user, group).
- PHP: the token by GET; ``aipSdk=php&aipSdkVersion=1_6_9``; a body of PHP ``urlencode`` pairs
  (space as "+"); headers written without a space after the colon, a lower-case
  ``authorization`` over ``host;x-bce-date``; curl of the time sent ``Expect: 100-continue``
  for bodies over 1 KiB; 1.6.9 trims whitespace bytes off an image before encoding it; in token
  mode an answer of 110 makes it fetch a new token and send the same request once more.

Each SDK is a ``ReplayedSdk`` with the interface of tests/sdks.py (``run(base, keys, calls,
signed)``), so the same documented flow runs through all of them. A call an SDK version cannot
express (C# 3.2.2's user/get takes no group, PHP 1.6.9's updateUser no options) answers
``UNSUPPORTED`` and the flow skips it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from service.auth.credentials import AppKeys
from tests.live import TALLY
from tests.sdks import Photo

API = "/rest/2.0/face/v2/"
UNSUPPORTED = {"replay": "this SDK version has no way to send this call"}
_UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PHP_RAW = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._")
FORM = "application/x-www-form-urlencoded"


def uri_encode(text: str, slash: bool = True) -> str:
    """BCE's encoding (Java ``Util.uriEncode``, PHP's signer, C# ``UriEncode``): every byte but
    A-Za-z0-9-._~ as %XX; ``slash=False`` leaves "/" raw."""
    encoded = "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())
    return encoded if slash else encoded.replace("%2F", "/")


def php_urlencode(text: str) -> str:
    """PHP's ``urlencode`` (``http_build_query``): A-Za-z0-9-_. raw, space as "+"."""
    return "".join(
        chr(b) if b in _PHP_RAW else "+" if b == 0x20 else f"%{b:02X}" for b in text.encode()
    )


def hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def bce_signature(secret: str, prefix: str, method: str, path: str, query: str, header_lines: list[str]) -> str:
    canonical = "\n".join([method, uri_encode(path, slash=False), query, "\n".join(sorted(header_lines))])
    return hmac_hex(hmac_hex(secret, prefix), canonical)


@dataclass
class WireRequest:
    """One request as an SDK puts it on the wire."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    header_separator: str = ": "

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def send(base: str, request: WireRequest, timeout: float = 120.0) -> tuple[int, bytes]:
    """Send over a socket as the SDK's HTTP layer would: with ``Expect: 100-continue`` the body
    follows a "100 Continue" or, like curl and .NET, a short wait without one."""
    url = urlsplit(base)
    target = request.path + (f"?{request.query}" if request.query else "")
    head = f"{request.method} {target} HTTP/1.1\r\n"
    head += "".join(f"{k}{request.header_separator}{v}\r\n" for k, v in request.headers) + "\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        early = b""
        if request.header("Expect") == "100-continue" and request.body:
            sock.settimeout(1.0)
            try:
                early = sock.recv(65536)
            except socket.timeout:
                pass
            sock.settimeout(timeout)
            if early.startswith(b"HTTP/1.1 100"):
                early = early.split(b"\r\n\r\n", 1)[1]
        sock.sendall(request.body)
        return read_response(sock, early)


def read_response(sock: socket.socket, received: bytes) -> tuple[int, bytes]:
    """The final answer; an interim "100 Continue" that came after the wait is skipped, as
    curl and .NET skip it."""
    data = received
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before the answer: {data[:200]!r}")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status >= 200:
            break
        data = body
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), None)
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def b64(photo: Photo) -> str:
    return base64.b64encode(photo.data).decode()


def groups_text(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


Fields = list[tuple[str, Optional[str]]]


@dataclass
class Session:
    """What one SDK client object holds: keys, its mode, its tokens (one per sub-client for C#
    3.2.2), the server's base URL and the clock it signs with."""

    base: str
    keys: AppKeys
    signed: bool
    clock: Callable[[], float] = time.time
    tokens: dict[str, str] = field(default_factory=dict)


class ReplayedSdk:
    """The parts every replayed SDK shares; subclasses say how each call becomes fields, how
    the token is fetched and how a request is encoded and signed."""

    name = ""
    scopes: tuple[str, ...] = ("brain_all_scope",)
    api = API  # the path prefix of the API version the SDK calls

    def run(self, base: str, keys: AppKeys, calls: list[tuple[str, tuple]], signed: bool = False, timeout_ms: int = 0) -> tuple[list[Any], str]:
        session = Session(base, keys, signed)
        answers = [self.call(session, method, args) for method, args in calls]
        TALLY[f"calls through replayed SDK {self.name} ({'signature' if signed else 'token'})"] += len(calls)
        return answers, next(iter(session.tokens.values()), "")

    def call(self, session: Session, method: str, args: tuple) -> Any:
        built = self.fields(method, list(args))
        if built is None:
            return UNSUPPORTED
        endpoint, fields = built
        request = self.request(session, endpoint, fields)
        status, body = send(session.base, request)
        return json.loads(body) if status == 200 else {"http_status": status, "body": body.decode(errors="replace")}

    def request(self, session: Session, endpoint: str, fields: Fields) -> WireRequest:
        """The face request: with the session's token, or signed."""
        token = None if session.signed else self.token(session, self.sub_client(endpoint))
        return self.build(session, self.api + endpoint, fields, token)

    def sub_client(self, endpoint: str) -> str:
        return "face"

    def token(self, session: Session, sub_client: str) -> Optional[str]:
        """The sub-client's token, fetched once as the SDK fetches it; None when the answer's
        scope keeps the SDK from using it (it signs instead)."""
        if sub_client not in session.tokens:
            status, body = send(session.base, self.token_request(session))
            answer = json.loads(body) if status == 200 else {}
            if not set(answer.get("scope", "").split()) & set(self.scopes):
                session.signed = True
                return None
            session.tokens[sub_client] = answer["access_token"]
        return session.tokens[sub_client]

    def host(self, session: Session, with_port: bool) -> str:
        url = urlsplit(session.base)
        default = (url.scheme, url.port) in (("http", 80), ("https", 443), ("http", None), ("https", None))
        return url.hostname if default or not with_port else f"{url.hostname}:{url.port}"

    def fields(self, method: str, args: list) -> Optional[tuple[str, Fields]]:
        """The call's fields in the SDK's wire order (``order``), then its options."""
        endpoint, names = CALLS[method]
        values = dict(zip(names, args))
        fields = [(name, self.encode(values[name])) for name in self.order(method, names)]
        return endpoint, fields + [(k, self.encode(v)) for k, v in options_of(args, len(names)).items()]

    def encode(self, value: Any) -> str:
        """An argument as a field value: photos in base64, lists comma-joined."""
        if isinstance(value, Photo):
            return self.image(value)
        if isinstance(value, list):
            return ",".join(self.encode(item) if isinstance(item, Photo) else str(item) for item in value)
        return str(value)

    def image(self, photo: Photo) -> str:
        return b64(photo)

    def order(self, method: str, names: tuple[str, ...]) -> tuple[str, ...]:
        """The wire order of the call's fields (the SDK's, as captured)."""
        return names

    # -- per SDK ------------------------------------------------------------------------------

    def token_request(self, session: Session) -> WireRequest:
        raise NotImplementedError

    def build(self, session: Session, path: str, fields: Fields, token: Optional[str]) -> WireRequest:
        raise NotImplementedError


def options_of(args: list, index: int) -> dict:
    return args[index] if len(args) > index and isinstance(args[index], dict) else {}


# The flow's calls, named as tests/sdks.py names them (the Python SDK's methods): the endpoint
# and the argument names in order; an options dict may follow the arguments.
CALLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "detect": ("detect", ("image",)),
    "match": ("match", ("images",)),
    "addUser": ("faceset/user/add", ("uid", "user_info", "group_id", "image")),
    "updateUser": ("faceset/user/update", ("uid", "user_info", "group_id", "image")),
    "deleteUser": ("faceset/user/delete", ("uid",)),
    "getUser": ("faceset/user/get", ("uid",)),
    "verifyUser": ("verify", ("uid", "group_id", "image")),
    "identifyUser": ("identify", ("group_id", "image")),
    "getGroupList": ("faceset/group/getlist", ()),
    "getGroupUsers": ("faceset/group/getusers", ("group_id",)),
    "addGroupUser": ("faceset/group/adduser", ("src_group_id", "group_id", "uid")),
    "deleteGroupUser": ("faceset/group/deleteuser", ("group_id", "uid")),
}


# -- Java -------------------------------------------------------------------------------------------


class JavaSdk(ReplayedSdk):
    """com.baidu.aip:java-sdk 3.4.0 or 4.2.0 (BaseClient, DevAuth, CloudAuth, AipFace)."""

    scopes = ("audio_voice_assistant_get", "audio_tts_post", "brain_all_scope")

    def __init__(self, version: str) -> None:
        self.version = version
        self.name = f"java-{version}"

    # Wire orders as captured (java.util.HashMap's, not the calls' argument order).
    ORDERS = {
        "addUser": ("uid", "image", "user_info", "group_id"),
        "updateUser": ("uid", "image", "user_info", "group_id"),
        "verifyUser": ("uid", "image", "group_id"),
        "identifyUser": ("image", "group_id"),
        "addGroupUser": ("uid", "group_id", "src_group_id"),
        "deleteGroupUser": ("uid", "group_id"),
    }

    def order(self, method: str, names: tuple[str, ...]) -> tuple[str, ...]:
        if method == "updateUser" and self.version == "3.4.0":
            return ("uid", "image", "group_id", "user_info")
        return self.ORDERS.get(method, names)

    @staticmethod
    def body(fields: Fields) -> bytes:
        """``AipRequest.getBodyStr``: uriEncode'd pairs; an empty value is the bare key."""
        pairs = [uri_encode(k) if v in (None, "") else f"{uri_encode(k)}={uri_encode(str(v))}" for k, v in fields]
        return "&".join(pairs).encode()

    @staticmethod
    def timestamp(now: float) -> str:
        """``Util.getCanonicalTime``: "yyyy-MM-dd'T'hh:mm:ss'Z'" in UTC, a 12-hour clock."""
        return time.strftime("%Y-%m-%dT%I:%M:%SZ", time.gmtime(now))

    def token_request(self, session: Session) -> WireRequest:
        # HashMap order of grant_type, client_id, client_secret, as captured.
        body = self.body([("grant_type", "client_credentials"), ("client_secret", session.keys.secret_key), ("client_id", session.keys.api_key)])
        headers = [("User-Agent", "Java/1.8.0_151"), ("Host", self.host(session, True)), ("Accept", "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"),
                   ("Connection", "keep-alive"), ("Content-type", FORM), ("Content-Length", str(len(body)))]
        return WireRequest("POST", "/oauth/2.0/token", "", headers, body)

    def build(self, session: Session, path: str, fields: Fields, token: Optional[str]) -> WireRequest:
        body = self.body(fields)
        common = [("Content-Type", FORM), ("accept", "*/*")]
        wire = [("User-Agent", "Java/1.8.0_151"), ("Host", self.host(session, True)), ("Connection", "keep-alive"), ("Content-Length", str(len(body)))]
        if token is not None:
            return WireRequest("POST", path, f"access_token={token}&aipSdk=java", common + wire, body)
        stamp = self.timestamp(session.clock())
        md5 = hashlib.md5(body).hexdigest()
        signed = {"content-length": str(len(body)), "content-md5": md5, "content-type": FORM, "host": self.host(session, False), "x-bce-date": stamp}
        prefix = f"bce-auth-v1/{session.keys.api_key}/{stamp}/1800"
        lines = [f"{uri_encode(k)}:{uri_encode(v.strip())}" for k, v in signed.items()]
        signature = bce_signature(session.keys.secret_key, prefix, "POST", path, "aipSdk=java", lines)
        headers = [("Authorization", f"{prefix}//{signature}"), *common, ("Content-MD5", md5), ("x-bce-date", stamp), *wire]
        return WireRequest("POST", path, "aipSdk=java", headers, body)


# -- C# ---------------------------------------------------------------------------------------------


class CSharpSdk(ReplayedSdk):
    """Baidu.Aip 3.2.2 (Face.User / Face.Group sub-clients) or 3.4.0 (one generated Face)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.name = f"csharp-{version}"

    def sub_client(self, endpoint: str) -> str:
        if self.version != "3.2.2":
            return "face"
        return "group" if endpoint.startswith("faceset/group") else "user" if endpoint.startswith(("faceset/user", "verify", "identify")) else "face"

    def fields(self, method: str, args: list) -> Optional[tuple[str, Fields]]:
        return self._fields_322(method, args) if self.version == "3.2.2" else super().fields(method, args)

    def _fields_322(self, method: str, args: list) -> Optional[tuple[str, Fields]]:
        """The 3.2.2 methods: Register, Update, Verify, Identify, GetInfo, GetAllGroups, ..."""
        if method == "detect":
            return "detect", [("image", b64(args[0])), *options_of(args, 1).items()]
        if method == "match":
            return "match", [("images", ",".join(b64(p) for p in args[0])), *options_of(args, 1).items()]
        if method == "addUser":  # User.Register(image, uid, userInfo, groupIds, actionType)
            uid, info, groups, photo = args[:4]
            action = options_of(args, 4).get("action_type")
            return "faceset/user/add", [("image", b64(photo)), ("group_id", groups_text(groups)), ("uid", uid), *([("action_type", action)] if action else []), ("user_info", info)]
        if method == "updateUser":  # User.Update(image, uid, groupId, userInfo, actionType)
            uid, info, group, photo = args[:4]
            action = options_of(args, 4).get("action_type")
            return "faceset/user/update", [("image", b64(photo)), ("uid", uid), ("group_id", group), ("user_info", info), *([("action_type", action)] if action else [])]
        if method == "deleteUser":
            groups = options_of(args, 1).get("group_id")
            return "faceset/user/delete", [("uid", args[0]), *([("group_id", groups_text(groups))] if groups else [])]
        if method == "verifyUser":  # User.Verify(image, uid, groupIds, topNum = 1, extFields)
            uid, groups, photo = args[:3]
            options = options_of(args, 3)
            extra = [("ext_fields", options["ext_fields"])] if "ext_fields" in options else []
            return "verify", [("image", b64(photo)), ("group_id", groups_text(groups)), ("uid", uid), ("top_num", str(options.get("top_num", 1))), *extra]
        if method == "identifyUser":  # User.Identify(image, groupIds, userTopNum = 1, faceTopNum = 1)
            groups, photo = args[:2]
            options = options_of(args, 2)
            extra = [("ext_fields", options["ext_fields"])] if "ext_fields" in options else []
            return "identify", [("images", b64(photo)), ("group_id", groups_text(groups)), ("user_top_num", str(options.get("user_top_num", 1))),
                                ("fcae_top_num", str(options.get("face_top_num", 1))), *extra]
        if method == "getUser":  # User.GetInfo(uid): no group filter
            return None if options_of(args, 1) else ("faceset/user/get", [("uid", args[0])])
        if method == "getGroupList":  # Group.GetAllGroups(start = 0, end = 100)
            options = options_of(args, 0)
            return "faceset/group/getlist", [("start", str(options.get("start", 0))), ("end", str(options.get("num", 100)))]
        if method == "getGroupUsers":  # Group.GetUsers(groupId, start = 0, end = 100)
            options = options_of(args, 1)
            return "faceset/group/getusers", [("group_id", args[0]), ("start", str(options.get("start", 0))), ("end", str(options.get("num", 100)))]
        if method == "addGroupUser":  # Group.AddUser(groupIds, uid, srcGroupId)
            source, targets, uid = args[:3]
            return "faceset/group/adduser", [("group_id", groups_text(targets)), ("uid", uid), ("src_group_id", source)]
        if method == "deleteGroupUser":  # Group.DeleteUser(groupIds, uid)
            groups, uid = args[:2]
            return "faceset/group/deleteuser", [("group_id", groups_text(groups)), ("uid", uid)]
        raise ValueError(method)

    def token_request(self, session: Session) -> WireRequest:
        query = f"grant_type=client_credentials&client_id={session.keys.api_key}&client_secret={session.keys.secret_key}"
        return WireRequest("GET", "/oauth/2.0/token", query, [("Host", self.host(session, True))], b"")

    def body(self, fields: Fields) -> bytes:
        return "&".join(f"{k}={uri_encode(str(v), slash=False)}" for k, v in fields).encode()

    def content_type(self, fields: Fields) -> str:
        return FORM

    def build(self, session: Session, path: str, fields: Fields, token: Optional[str]) -> WireRequest:
        body, content_type = self.body(fields), self.content_type(fields)
        expect = [("Expect", "100-continue")] if self.version == "3.2.2" else []
        wire = [("Content-Length", str(len(body))), *expect, ("Host", self.host(session, True))]
        if token is not None:
            return WireRequest("POST", path, f"aipSdk=CSharp&access_token={token}", [("Content-Type", content_type), *wire], body)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.clock()))
        prefix = f"bce-auth-v1/{session.keys.api_key}/{stamp}/1200"
        lines = [f"content-type:{uri_encode(content_type)}", f"host:{uri_encode(self.host(session, True), slash=False)}"]
        signature = bce_signature(session.keys.secret_key, prefix, "POST", path, "aipSdk=CSharp", lines)
        headers = [("Content-Type", content_type), ("x-bce-date", stamp), ("Authorization", f"{prefix}/content-type;host/{signature}"), *wire]
        return WireRequest("POST", path, "aipSdk=CSharp", headers, body)


# -- PHP --------------------------------------------------------------------------------------------


class PhpSdk(ReplayedSdk):
    """baidu-aip PHP SDK 1.6.9 or 2.2.2 (AipBase, AipHttpClient, AipBCEUtil, AipFace)."""

    # Bodies above this went out with "Expect: 100-continue" from the libcurl of the time.
    CURL_EXPECT_THRESHOLD = 1024

    def __init__(self, version: str) -> None:
        self.version = version
        self.name = f"php-{version}"
        self.sdk_version = version.replace(".", "_")

    def fields(self, method: str, args: list) -> Optional[tuple[str, Fields]]:
        if method == "updateUser" and self.version == "1.6.9" and options_of(args, 4):
            return None  # 1.6.9's updateUser($uid, $userInfo, $groupId, $image) takes no options
        return super().fields(method, args)

    def image(self, photo: Photo) -> str:
        """1.6.9 encodes ``trim($image)``: whitespace and NUL bytes at either end are dropped."""
        data = photo.data.strip(b" \t\n\r\0\x0b") if self.version == "1.6.9" else photo.data
        return base64.b64encode(data).decode()

    def query(self, token: Optional[str]) -> str:
        sdk = f"aipSdk=php&aipSdkVersion={self.sdk_version}"
        return f"access_token={php_urlencode(token)}&{sdk}" if token is not None else sdk

    def token_request(self, session: Session) -> WireRequest:
        query = "&".join(f"{k}={php_urlencode(v)}" for k, v in (("grant_type", "client_credentials"), ("client_id", session.keys.api_key), ("client_secret", session.keys.secret_key)))
        return WireRequest("GET", "/oauth/2.0/token", query, [("Host", self.host(session, True)), ("Accept", "*/*")], b"")

    def body(self, fields: Fields) -> bytes:
        return "&".join(f"{php_urlencode(k)}={php_urlencode(str(v))}" for k, v in fields if v is not None).encode()

    def own_headers(self, fields: Fields) -> list[tuple[str, str]]:
        """Headers the call hands to ``AipBase::request`` (none in v2); a Content-Type among them
        replaces curl's, and a signature signs them all."""
        return []

    def build(self, session: Session, path: str, fields: Fields, token: Optional[str]) -> WireRequest:
        body, own = self.body(fields), self.own_headers(fields)
        curl = [("Accept", "*/*"), ("Content-Length", str(len(body)))]
        if not any(k.lower() == "content-type" for k, _ in own):
            curl.append(("Content-Type", FORM))
        if len(body) > self.CURL_EXPECT_THRESHOLD:
            curl.append(("Expect", "100-continue"))
        if token is not None:
            return WireRequest("POST", path, self.query(token), [("Host", self.host(session, True)), *own, *curl], body)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.clock()))
        signed = [*own, ("Host", self.host(session, True)), ("x-bce-date", stamp)]
        prefix = f"bce-auth-v1/{session.keys.api_key}/{stamp}/1800"
        lines = [f"{uri_encode(k.lower())}:{uri_encode(v)}" for k, v in signed]
        signature = bce_signature(session.keys.secret_key, prefix, "POST", path, self.query(None), lines)
        names = ";".join(k.lower() for k, _ in signed)
        headers = [*signed, ("authorization", f"{prefix}/{names}/{signature}"), *curl]
        return WireRequest("POST", path, self.query(None), headers, body, header_separator=":")

    def call(self, session: Session, method: str, args: tuple) -> Any:
        """``AipBase::request``: in token mode, an answer of 110 fetches a new token and sends the
        same request once more."""
        answer = super().call(session, method, args)
        if not session.signed and isinstance(answer, dict) and answer.get("error_code") == 110:
            session.tokens.clear()
            answer = super().call(session, method, args)
        return answer


REPLAYED_SDKS: dict[str, Callable[[], ReplayedSdk]] = {
    "java-3.4.0": lambda: JavaSdk("3.4.0"),
    "java-4.2.0": lambda: JavaSdk("4.2.0"),
    "csharp-3.2.2": lambda: CSharpSdk("3.2.2"),
    "csharp-3.4.0": lambda: CSharpSdk("3.4.0"),
    "php-1.6.9": lambda: PhpSdk("1.6.9"),
    "php-2.2.2": lambda: PhpSdk("2.2.2"),
}
