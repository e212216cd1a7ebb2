"""Request parameters: one merged view of query string, form and JSON body, and the parsers
for Baidu's parameter types. Every problem raises ``FaceError`` with the spec's code.

Baidu field names live here and in the route modules only.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from flask import Request

from service.errors import FaceError
from service.library.ids import GROUP_MAX_BYTES, UID_MAX_BYTES, check_id

# At most this many group ids or images in one request: a 20 MB body of tiny items would
# otherwise mean a Redis script over millions of keys, or a million inferences, in one request.
MAX_GROUP_IDS = 100
MAX_IMAGES = 10
# Baidu's calls send at most a dozen fields; a form of more is refused unparsed.
MAX_FORM_FIELDS = 1000
FORM = "application/x-www-form-urlencoded"
# The ``param`` of an error about the body as a whole (v3: 222200, not JSON).
BODY = "body"
_DATA_URL = re.compile(r"data:[\w/+.-]*;base64,", re.IGNORECASE)
_URLSAFE = str.maketrans("-_", "+/")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Integer:
    """A count or offset parameter: its default when absent, and its documented maximum.

    Baidu's limits describe what is returned ("at most 5 users"), so a larger value counts as
    the maximum rather than being refused; 0 of a count means its default (the Python SDK's
    own example sends user_top_num=0). Negatives and non-numbers are refused (216100)."""

    high: int
    default: int
    zero_is_default: bool = True
    description: str = ""

    def schema(self) -> dict[str, Any]:
        words = [f"at most {self.high} (a larger value counts as {self.high})"]
        if self.zero_is_default:
            words.append(f"0 or absent: {self.default}")
        if self.description:
            words.append(self.description)
        return {"type": "integer", "minimum": 0, "description": "; ".join(words)}

    def read(self, value: int) -> int:
        if value == 0 and self.zero_is_default:
            return self.default
        return min(value, self.high)


class Params:
    """Parameters of one request. Body values win over query values of the same name;
    ``integers`` is the API version's table of integer parameters."""

    def __init__(
        self, values: Mapping[str, Any], integers: Optional[Mapping[str, Integer]] = None, items: Optional[list] = None
    ) -> None:
        self.values = values
        self.integers = integers or {}
        self.items = items  # a JSON array body's elements (v3 match, faceverify); None otherwise

    @classmethod
    def from_request(
        cls,
        request: Request,
        integers: Mapping[str, Integer],
        aliases: Optional[Mapping[str, str]] = None,
        signed_query: bool = False,
        json_any: bool = False,
    ) -> "Params":
        """Query string, then the form or JSON body over it. Names are trimmed (the Java
        chapter's own example sends " top_num"), and an alias counts as its parameter when
        that is absent (C# 3.2.2 sends "fcae_top_num").

        ``json_any`` (v3): the body is JSON whatever its Content-Type says, or else a form
        (``json_or_form``). ``signed_query``: the query is covered by a signature and the body is not, so a query
        value wins over the body's, and a name repeated in the query is refused (which of
        the repeats counts must not depend on an order the signature does not fix)."""
        query: dict[str, Any] = {k.strip(): v for k, v in request.args.items()}
        if signed_query and len(query) != len(list(request.args.items(multi=True))):
            raise FaceError(216100, "a parameter is repeated in the signed query string")
        values = dict(query)
        items = None
        if json_any:
            body, items = json_or_form(request)
        elif request.is_json:
            body = _json_object(request.get_data(cache=True))
        else:
            body = form_of(request)
        values.update({k.strip(): v for k, v in body.items() if v is not None})
        if signed_query:
            values.update(query)
        for alias, name in (aliases or {}).items():
            if alias in values and name not in values:
                values[name] = values.pop(alias)
        return cls(values, integers, items)

    def elements(self) -> list["Params"]:
        """A JSON array body's objects as parameters of their own (v3 match, faceverify); a
        body that is one object or a form counts as one element (old SDKs send those)."""
        if self.items is None:
            return [self]
        if not all(isinstance(item, dict) for item in self.items):
            raise FaceError(216100, "the array's elements must be objects", param=BODY)
        return [Params({k.strip(): v for k, v in item.items() if v is not None}, self.integers) for item in self.items]

    def text(self, *names: str, required: bool = True, default: Optional[str] = None) -> Optional[str]:
        """The first of ``names`` that is present and non-empty (SDKs differ: image/images)."""
        for name in names:
            value = self.values.get(name)
            if value is None or value == "":
                continue
            if isinstance(value, (list, dict)):
                raise FaceError(216100, f"{name} must be a string", param=name)
            return str(value)
        if required:
            raise FaceError(216101, f"missing {names[0]}", param=names[0])
        return default

    def present(self, name: str) -> bool:
        """Whether the parameter was sent at all, even empty."""
        return name in self.values

    def integer(self, name: str) -> int:
        """A count or offset as its table says (``Integer``); not a number or negative -> 216100."""
        spec = self.integers[name]
        raw = self.text(name, required=False)
        if raw is None:
            return spec.default
        text = str(raw).strip()
        if not (text.isascii() and text.isdigit()):
            raise FaceError(216100, f"{name} must be an unsigned integer", param=name)
        # Beyond 18 digits it is above every maximum (and int() of a huge string is slow).
        return spec.read(int(text) if len(text) <= 18 else spec.high)

    def choice(self, name: str, options: tuple[str, ...], default: str, upper: bool = False) -> str:
        """One of ``options``; ``upper``: whatever the case sent (v3's enums are upper case)."""
        value = self.text(name, required=False, default=default) or default
        if upper:
            value = value.upper()
        if value not in options:
            raise FaceError(216100, f"{name} must be one of {', '.join(options)}", param=name)
        return value

    def fields(self, name: str) -> set[str]:
        """A comma-separated list of option names (face_fields, ext_fields)."""
        raw = self.text(name, required=False, default="") or ""
        return {item.strip().lower() for item in raw.split(",") if item.strip()}

    def positional(self, name: str) -> list[str]:
        """A comma-separated list whose positions matter, empty items kept (image_liveness:
        ",faceliveness" asks for the second image only); [] when absent."""
        raw = self.text(name, required=False, default="") or ""
        return [item.strip() for item in raw.split(",")] if raw else []

    def uid(self, name: str = "uid") -> str:
        return check_id(self.text(name), UID_MAX_BYTES, name, code=216111)

    def user_info(self, limit: int, required: bool) -> Optional[str]:
        """user_info, which may be sent empty, of at most ``limit`` bytes; None when absent."""
        if not self.present("user_info"):
            if required:
                raise FaceError(216101, "missing user_info", param="user_info")
            return None
        info = self.text("user_info", required=False, default="") or ""
        if len(info.encode()) > limit:
            raise FaceError(216100, f"user_info longer than {limit} bytes", param="user_info")
        return info

    def group(self, name: str = "group_id") -> str:
        """One group id."""
        return check_id(self.text(name), GROUP_MAX_BYTES, name)

    def group_ids(self, name: str = "group_id", required: bool = True, too_many: int = 216103) -> list[str]:
        """Comma-separated group ids (spaces around a comma allowed, nothing else: see
        ``library.ids``); duplicates dropped, order kept. More than MAX_GROUP_IDS ->
        ``too_many`` (216631 where each group adds a user)."""
        raw = self.text(name, required=required)
        if raw is None:
            return []
        if raw.count(",") >= MAX_GROUP_IDS:
            raise FaceError(too_many, f"{name} names more than {MAX_GROUP_IDS} groups", param=name)
        groups = [check_id(g.strip(" "), GROUP_MAX_BYTES, name) for g in raw.split(",")]
        return list(dict.fromkeys(groups))

    def image(self, limit: int) -> bytes:
        """One image, sent as ``image`` (SDKs) or ``images`` (chapter 1)."""
        parts = self.encoded_images(limit)
        if len(parts) != 1:
            raise FaceError(216100, "only one image is accepted here")
        return decode_base64(parts[0])

    def encoded_images(self, limit: int) -> list[str]:
        """The base64 texts of comma-separated images (match, update); ``limit`` is for all of
        them. Decoding is left to the caller so that match can skip a bad image."""
        raw = self.text("image", "images", required=False)
        if raw is None:
            if self.present("image") or self.present("images"):
                raise FaceError(216200, "image is empty")  # §1.15: 216200 empty image
            raise FaceError(216101, "missing image")
        if len(raw) >= limit:
            raise FaceError(216202, f"encoded images must be smaller than {limit} bytes")
        # A data: header carries a comma of its own; base64 never contains ':' or ';' (so
        # without a ';' there is no header to look for: the scan costs 0.1 ms a photo).
        parts = (_DATA_URL.sub("", raw) if ";" in raw else raw).split(",")
        if len(parts) > MAX_IMAGES:
            raise FaceError(216103, f"more than {MAX_IMAGES} images")
        return parts


def form_of(request: Request) -> Mapping[str, str]:
    """The request's form, refused (216100) before parsing when it has more fields than any
    Baidu call sends: millions of empty fields would cost seconds and a gigabyte to parse."""
    counted = "facesvc.form_fields_counted"  # authentication and Params both read the form
    if request.mimetype == FORM and counted not in request.environ:
        if request.get_data(cache=True).count(b"&") >= MAX_FORM_FIELDS:
            raise FaceError(216100, f"more than {MAX_FORM_FIELDS} form fields")
        request.environ[counted] = True
    return request.form


def json_or_form(request: Request) -> tuple[Mapping[str, Any], Optional[list]]:
    """v3's body (its spec §2.4): JSON whatever the Content-Type (Node and Java send JSON
    labelled as a form), else a real form (Python and PHP 2.2.3). Returns the object's values,
    or {} and the elements of an array; ``[]`` (PHP's empty options) is an empty object."""
    raw = request.get_data(cache=True)
    if raw.lstrip()[:1] in (b"{", b"["):
        parsed = _json(raw)
        if isinstance(parsed, list):
            return {}, parsed or None
        return parsed, None
    if raw.strip() and request.mimetype != FORM:
        raise FaceError(216100, "the body is neither JSON nor a form", param=BODY)
    return form_of(request), None


def _json(raw: bytes) -> Any:
    """A JSON object or array; anything else -> 216100 about the body (v3's 222200)."""
    try:
        parsed = json.loads(raw)
    except RecursionError:
        raise FaceError(216100, "JSON body nested too deeply", param=BODY) from None
    except ValueError:
        raise FaceError(216100, "the body is not valid JSON", param=BODY) from None
    if not isinstance(parsed, (dict, list)):
        raise FaceError(216100, "JSON body must be an object", param=BODY)
    return parsed


def _json_object(raw: bytes) -> Mapping[str, Any]:
    parsed = _json(raw) if raw.strip() else None
    if not isinstance(parsed, dict):
        raise FaceError(216100, "JSON body must be an object", param=BODY)
    return parsed


def decode_base64(text: str) -> bytes:
    """Base64 -> bytes. Tolerates whitespace, missing padding, the URL-safe alphabet, and '+'
    that a careless client sent un-encoded in a form (it arrives as a space)."""
    if text:
        try:  # the usual, well-formed text: none of the repairs below would change it
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    text = _WHITESPACE.sub("", text.strip().replace(" ", "+")).translate(_URLSAFE)
    if not text:
        raise FaceError(216200, "image is empty")
    text = text.rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FaceError(216200, "image is not valid base64") from None
