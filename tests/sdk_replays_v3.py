"""Baidu's Java, C# and PHP SDKs of the v3 era (paths /rest/2.0/face/v3/), replayed: their
requests rebuilt byte for byte from their sources, as tests/sdk_replays.py does for v2, whose
machinery (tokens, signatures, sockets) this module reuses.

What each version sends, as read from its source (git commits of Baidu-AIP/php-sdk, java-sdk
and dotnet-sdk). The token request, the query, the headers and the signature are those of the
same SDK's v2-era replay (tests/sdk_replays.py) unless said otherwise, and so is the header
layout (order; PHP's one separator per request, where curl would write its own headers with
": " and the SDK's with ":"). "Options" are the call's optional map, merged after the
positional keys (an option of the same name replaces the value in place).

- PHP 2.2.3 (728dc3d, ``aipSdkVersion=2_2_3``): token by GET; query ``access_token=…&aipSdk=php&
  aipSdkVersion=2_2_3``. Every call but match posts a form (``http_build_query``, curl's form
  Content-Type); match posts ``json_encode($images)`` with its own ``Content-Type:
  application/json``, which the signature then covers (``content-type;host;x-bce-date``: the
  signer signs every header the call hands it). search has no group-list argument (it travels
  in the options), faceverify takes one image (``faceverify($image, $imageType, $options)``, a
  form), there is no multiSearch.
- PHP 2.2.17 (84e5936, ``2_2_17``): every face call posts ``json_encode`` of the merged array
  (flags none: "/" as ``\\/``, non-ASCII as ``\\uXXXX``; an empty array, getGroupList without
  options, as ``[]``) with ``Content-Type: application/json`` among the signed headers
  (``content-type;host;x-bce-date``); search and multiSearch take ``$groupIdList``; faceverify
  and match post the caller's array as it is.
- Java "4.3.0" (daa62bd; its pom still says 4.2.0, the spec's §6.1 infers 4.3.0): token by POST
  (a form); ``aipSdk=java``; every call posts a form of its ``HashMap`` (the map's iteration
  order, java.util.HashMap's, computed here; an empty value a bare key) with ``Content-Type:
  application/x-www-form-urlencoded``; match posts a ``JSONArray`` of ``MatchRequest`` objects
  (``image``, ``image_type``, and only when set ``face_type``, ``quality_control``,
  ``liveness_control``) under the same form Content-Type. Signing as 4.2.0: Content-MD5 (hex) of
  the body as sent, a 12-hour-clock x-bce-date, an empty signed-headers field. search has no
  group-list argument, faceverify takes one image (a form), there is no multiSearch.
- Java 4.12.0 (666981a): every call posts org.json's ``JSONObject`` text of its body map (keys
  in HashMap order, every option value a string: ``HashMap<String, String>``; "/" raw but after
  "<") still under ``Content-Type: application/x-www-form-urlencoded``, the Content-MD5 over
  that JSON text; search and multiSearch take ``groupIdList``; faceverify posts a ``JSONArray``
  of ``FaceVerifyRequest`` (``image``, ``image_type``, ``face_field`` when set); match as 4.3.0.
- C# 3.5.0 (171fbce, the first v3 commit; the csproj still says 3.3.2): token by GET;
  ``aipSdk=CSharp``; every call posts Newtonsoft's ``JsonConvert.SerializeObject`` of its
  ``Dictionary<string, object>`` (insertion order; options keep their JSON types; only
  control characters, U+0085, U+2028 and U+2029 escaped) with ``Content-Type:
  application/json``, which it signs: ``…/1200/content-type;host/SIG`` over
  ``content-type:application%2Fjson``; no Expect header. match posts the caller's ``JArray``;
  faceverify takes one image and posts a JSON *object* (``Faceverify(image, imageType,
  options)``); there is no MultiSearch.
- C# 3.6.14 (11d9669, the last commit changing Face.cs; master's last commit fcd8593 adds only
  ImageProcess; the csproj says 3.6.8): as 3.5.0, but ``Faceverify(JArray)`` posts the caller's
  array (since 3.5.1, 3bff3e6) and ``MultiSearch`` exists.

How the bodies of three calls look (``getGroupList()`` without options, ``match`` of two
BASE64 images, ``faceverify`` of one):

============  ==================  =======================================  ============================
version       getGroupList()      match                                    faceverify
============  ==================  =======================================  ============================
PHP 2.2.3     empty form          ``[{"image":"…","image_type":"BASE64"}    form ``image=…&image_type=…``
                                  ,…]`` ("/" as ``\\/``, application/json)
PHP 2.2.17    ``[]``              same                                     ``[{"image":…}]``
Java 4.3.0    empty form          ``[{"image":…,"image_type":…},…]``       form (HashMap order)
                                  under the form Content-Type
Java 4.12.0   ``{}``              same                                     ``[{"image":…,…}]``, form
                                                                           Content-Type
C# 3.5.0      ``{}``              the caller's JArray (application/json)   ``{"image":…,"image_type":…}``
C# 3.6.14     ``{}``              same                                     ``[{"image":…}]``
============  ==================  =======================================  ============================

The calls are those of the Python SDK 4.16.13 (detect, search, multiSearch, addUser, updateUser,
faceDelete, getUser, faceGetlist, getGroupUsers, userCopy, deleteUser, groupAdd, groupDelete,
getGroupList, match, faceverify, personVerify) with its arguments: images as ``Photo`` (sent in
base64) or strings, an options dict last; match and faceverify take a list of image dicts. A
call a version cannot express (multiSearch before it existed, faceverify of several images in
the one-image versions, a match or faceverify key Java's request classes lack) answers
``UNSUPPORTED`` (tests/sdk_flow_v3.py's ``run_flow`` has put earlier answers' values in).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from tests.sdk_replays import (
    FORM,
    UNSUPPORTED,
    CSharpSdk,
    Fields,
    JavaSdk,
    PhpSdk,
    ReplayedSdk,
    options_of,
)
from tests.sdks import Photo

__all__ = ["REPLAYED_V3_SDKS", "UNSUPPORTED", "CSharpV3", "JavaV3", "PhpV3", "JsonBody"]

API_V3 = "/rest/2.0/face/v3/"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class JsonBody:
    """A body an SDK posts as JSON text, serialised its way."""

    text: str


Payload = Union[Fields, JsonBody]

# The Python SDK 4.16.13's methods: the endpoint and the positional argument names in order; an
# options dict may follow. match and faceverify take one list of image dicts instead.
V3_CALLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "detect": ("detect", ("image", "image_type")),
    "search": ("search", ("image", "image_type", "group_id_list")),
    "multiSearch": ("multi-search", ("image", "image_type", "group_id_list")),
    "addUser": ("faceset/user/add", ("image", "image_type", "group_id", "user_id")),
    "updateUser": ("faceset/user/update", ("image", "image_type", "group_id", "user_id")),
    "faceDelete": ("faceset/face/delete", ("user_id", "group_id", "face_token")),
    "getUser": ("faceset/user/get", ("user_id", "group_id")),
    "faceGetlist": ("faceset/face/getlist", ("user_id", "group_id")),
    "getGroupUsers": ("faceset/group/getusers", ("group_id",)),
    "userCopy": ("faceset/user/copy", ("user_id",)),
    "deleteUser": ("faceset/user/delete", ("group_id", "user_id")),
    "groupAdd": ("faceset/group/add", ("group_id",)),
    "groupDelete": ("faceset/group/delete", ("group_id",)),
    "getGroupList": ("faceset/group/getlist", ()),
    "personVerify": ("person/verify", ("image", "image_type", "id_card_number", "name")),
}
IMAGE_LISTS = {"match": "match", "faceverify": "faceverify"}


# -- JSON as each SDK's library writes it ---------------------------------------------------------


def json_text(value: Any, quote: Callable[[str], str], empty_map: str = "{}") -> str:
    """Compact JSON of dicts (in their order), lists, strings (``quote``), numbers, booleans."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{quote(str(k))}:{json_text(v, quote, empty_map)}" for k, v in value.items()) + "}" if value else empty_map
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json_text(v, quote, empty_map) for v in value) + "]"
    if isinstance(value, str):
        return quote(value)
    return json.dumps(value)


_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _u(char: str) -> str:
    """``\\uXXXX`` (lower-case hex) of each UTF-16 unit of ``char``."""
    units = char.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def php_quote(text: str) -> str:
    """PHP ``json_encode`` without flags: "/" as ``\\/``, non-ASCII as ``\\uXXXX`` (UTF-16)."""
    out = []
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char == "/":
            out.append("\\/")
        elif char < " " or char > "\x7f":
            out.append(_u(char))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def org_json_quote(text: str) -> str:
    """org.json ``JSONObject.quote`` (20160810): "/" escaped only after "<"; control characters,
    U+0080-U+009F and U+2000-U+20FF as ``\\uXXXX``; anything else raw."""
    out, previous = [], ""
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char == "/":
            out.append("\\/" if previous == "<" else "/")
        elif char < " " or "\x80" <= char < "\xa0" or "\u2000" <= char < "\u2100":
            out.append(_u(char))
        else:
            out.append(char)
        previous = char
    return '"' + "".join(out) + '"'


def newtonsoft_quote(text: str) -> str:
    """Newtonsoft.Json's default escaping: control characters, U+0085, U+2028, U+2029."""
    out = []
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char < " " or char in "\x85\u2028\u2029":
            out.append(_u(char))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# -- java.util.HashMap's iteration order ----------------------------------------------------------


def java_hash(key: str) -> int:
    """``String.hashCode`` spread as ``HashMap.hash`` does (h ^ h >>> 16), as an unsigned int."""
    h = 0
    units = key.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h ^ (h >> 16)


class JavaHashMap:
    """A java.util.HashMap (Java 8) as far as its iteration order goes: buckets by hash and
    capacity, each in insertion order; the table doubles past three quarters full (a split keeps
    the order); ``putAll`` into a map with no table sizes it for the other map first."""

    def __init__(self) -> None:
        self.buckets: list[list[str]] = []
        self.values: dict[str, Any] = {}

    def put(self, key: str, value: Any) -> None:
        if not self.buckets:
            self._rehash(16)
        new = key not in self.values
        self.values[key] = value
        if new:
            self.buckets[java_hash(key) & (len(self.buckets) - 1)].append(key)
            if len(self.values) > len(self.buckets) * 3 // 4:
                self._rehash(len(self.buckets) * 2)

    def put_all(self, other: "JavaHashMap") -> None:
        if not self.buckets and other.values:
            wanted = int(len(other.values) / 0.75 + 1.0)
            self._rehash(max(1, 1 << (wanted - 1).bit_length()))
        for key, value in other.items():
            self.put(key, value)

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self.values[key]) for bucket in self.buckets for key in bucket]

    def _rehash(self, capacity: int) -> None:
        keys = [key for bucket in self.buckets for key in bucket]
        self.buckets = [[] for _ in range(capacity)]
        for key in keys:
            self.buckets[java_hash(key) & (capacity - 1)].append(key)


def java_map(pairs: list[tuple[str, Any]]) -> JavaHashMap:
    mapped = JavaHashMap()
    for key, value in pairs:
        mapped.put(key, value)
    return mapped


def java_string(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# -- the calls of the v3 era ----------------------------------------------------------------------


def b64(value: Any) -> Any:
    return base64.b64encode(value.data).decode() if isinstance(value, Photo) else value


class V3Calls(ReplayedSdk):
    """What the v3-era SDKs share: the v3 paths, the Python SDK 4.16.13's calls and arguments.
    Each version says what it can express and how a body is serialised."""

    api = API_V3
    has_multi_search = True  # multiSearch exists
    faceverify_list = True  # faceverify takes a list of images (else one image and options)
    search_group_list = True  # search takes the group list as an argument (else in the options)

    def fields(self, method: str, args: list) -> Optional[tuple[str, Payload]]:
        if method in IMAGE_LISTS:
            images = [{k: b64(v) for k, v in image.items()} for image in args[0]]
            payload = self.match_body(images) if method == "match" else self.faceverify_body(images)
            return None if payload is None else (IMAGE_LISTS[method], payload)
        endpoint, names = V3_CALLS[method]
        positional = [(name, b64(value)) for name, value in zip(names, args)]
        options = list(options_of(args, len(names)).items())
        if method == "multiSearch" and not self.has_multi_search:
            return None
        if method == "search" and not self.search_group_list:
            positional, options = positional[:2], positional[2:] + options  # search($image, $type, $options)
        return endpoint, self.payload(positional, options)

    def faceverify_body(self, images: list[dict]) -> Optional[Payload]:
        if self.faceverify_list:
            return self.image_list(images)
        if len(images) != 1:
            return None
        image = dict(images[0])
        return self.payload([("image", image.pop("image", None)), ("image_type", image.pop("image_type", None))], list(image.items()))

    def match_body(self, images: list[dict]) -> Optional[Payload]:
        return self.image_list(images)

    # -- per SDK ------------------------------------------------------------------------------

    def payload(self, positional: list[tuple[str, Any]], options: list[tuple[str, Any]]) -> Payload:
        """The body of a call: its positional keys, then its options merged in."""
        raise NotImplementedError

    def image_list(self, images: list[dict]) -> Optional[Payload]:
        """The body of match (and faceverify where it takes a list)."""
        raise NotImplementedError


def merged(positional: list[tuple[str, Any]], options: list[tuple[str, Any]]) -> dict[str, Any]:
    """``array_merge`` / ``Bodys[key] = value``: an option replaces a positional value in place."""
    return dict(positional + options)


# -- PHP --------------------------------------------------------------------------------------------


class PhpV3(V3Calls, PhpSdk):
    """baidu-aip PHP SDK 2.2.3 (forms) or 2.2.17 (JSON)."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.json = version != "2.2.3"
        self.has_multi_search = self.faceverify_list = self.search_group_list = self.json

    def payload(self, positional, options) -> Payload:
        body = merged(positional, options)
        if self.json:
            return JsonBody(json_text(body, php_quote, empty_map="[]"))
        return [(k, php_form_value(v)) for k, v in body.items()]

    def image_list(self, images):
        return JsonBody(json_text(images, php_quote, empty_map="[]"))

    def body(self, fields: Payload) -> bytes:
        return fields.text.encode() if isinstance(fields, JsonBody) else super().body(fields)

    def own_headers(self, fields: Payload) -> list[tuple[str, str]]:
        return [("Content-Type", JSON_TYPE)] if isinstance(fields, JsonBody) else []


def php_form_value(value: Any) -> Optional[str]:
    """A value as ``http_build_query`` writes it (true as 1, false as 0, null left out)."""
    if value is None:
        return None
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


# -- Java -------------------------------------------------------------------------------------------


class JavaV3(V3Calls, JavaSdk):
    """com.baidu.aip:java-sdk at daa62bd ("4.3.0": forms) or 4.12.0 (JSON under the form type)."""

    MATCH_KEYS = ("image", "image_type", "face_type", "quality_control", "liveness_control")  # MatchRequest
    FACEVERIFY_KEYS = ("image", "image_type", "face_field")  # FaceVerifyRequest

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.json = version != "4.3.0"
        self.has_multi_search = self.faceverify_list = self.search_group_list = self.json

    def payload(self, positional, options) -> Payload:
        """``request.addBody`` of each argument, then ``addBody(options)`` (``putAll`` of the
        caller's ``HashMap<String, String>``); 4.12.0 copies the map into a ``JSONObject``."""
        body = java_map([(k, v) for k, v in positional if v is not None])
        body.put_all(java_map([(k, java_string(v)) for k, v in options if v is not None]))
        if self.json:
            return JsonBody(json_text(dict(java_map(body.items()).items()), org_json_quote))
        return [(k, java_string(v)) for k, v in body.items()]

    def image_list(self, images):
        return self._requests(images, self.FACEVERIFY_KEYS)

    def match_body(self, images):
        return self._requests(images, self.MATCH_KEYS)

    def _requests(self, images: list[dict], keys: tuple[str, ...]) -> Optional[JsonBody]:
        """A ``JSONArray`` of the request objects' ``toJsonObject()``: only their fields, set ones."""
        if any(set(image) - set(keys) for image in images):
            return None
        objects = [dict(java_map([(k, java_string(image[k])) for k in keys if image.get(k) is not None]).items()) for image in images]
        return JsonBody(json_text(objects, org_json_quote))

    def body(self, fields: Payload) -> bytes:
        return fields.text.encode() if isinstance(fields, JsonBody) else JavaSdk.body(fields)


# -- C# ---------------------------------------------------------------------------------------------


class CSharpV3(V3Calls, CSharpSdk):
    """Baidu.AI (dotnet-sdk) 3.5.0 or 3.6.14: JSON with ``Content-Type: application/json``."""

    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.has_multi_search = self.faceverify_list = version != "3.5.0"

    def payload(self, positional, options) -> Payload:
        return JsonBody(json_text(merged(positional, options), newtonsoft_quote))

    def image_list(self, images):
        return JsonBody(json_text(images, newtonsoft_quote))

    def body(self, fields: Payload) -> bytes:
        return fields.text.encode() if isinstance(fields, JsonBody) else super().body(fields)

    def content_type(self, fields: Payload) -> str:
        return JSON_TYPE if isinstance(fields, JsonBody) else FORM


REPLAYED_V3_SDKS: dict[str, Callable[[], ReplayedSdk]] = {
    "php-2.2.3": lambda: PhpV3("2.2.3"),
    "php-2.2.17": lambda: PhpV3("2.2.17"),
    "java-4.3.0": lambda: JavaV3("4.3.0"),
    "java-4.12.0": lambda: JavaV3("4.12.0"),
    "csharp-3.5.0": lambda: CSharpV3("3.5.0"),
    "csharp-3.6.14": lambda: CSharpV3("3.6.14"),
}
