"""v3's request parameters and answer schemas (v3 spec §3, §5): the table the routes validate
with and that ``/openapi.json`` describes. Where Baidu's sources disagree on a maximum (spec §7.1)
the larger counts; a larger value than that is clamped, as in v2."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from config.defaults import Limits
from service.api.openapi import LOG_ID, array, closed_object
from service.api.params import Integer
from service.api.v3.controls import LEVELS
from service.errors import V3_ERRORS
from service.library.ids import GROUP_MAX_BYTES, UID_MAX_BYTES

Schema = dict[str, Any]

MAX_USER_NUM = 50  # search and multi-search: 20 or 50 by source (§7.1)
MAX_SEARCH_FACES = 10  # multi-search's max_face_num
MAX_GROUP_LIST = 20  # group_id_list: 10 (current docs) or 20 (2018-19): more -> 223104
MAX_PAGE = 1000
MAX_IMAGES = 10  # faceverify's array (its maximum is unpublished, §7.15)
MATCH_THRESHOLD = 80  # the SDKs' documented default (§7.2)
IMAGE_TYPES = ("BASE64", "URL", "FACE_TOKEN")
FACE_TYPES = ("LIVE", "IDCARD", "WATERMARK", "CERT", "INFRARED", "HYBRID")
ALL_GROUPS = "@ALL"  # user/get and user/delete: every group of the user
TOKEN_MAX_BYTES = 64
# face_field values answered (README, "v3"); the others Baidu lists are left out, never invented.
FACE_FIELDS = ("age", "expression", "gender", "landmark", "landmark72", "quality")
_ID = "^[A-Za-z0-9_]{1,%d}$"


@lru_cache(maxsize=4)
def integers(limits: Limits) -> dict[str, Integer]:
    """The count and offset parameters: documented maximum and default."""
    return {
        "max_face_num": Integer(limits.max_faces, 1),
        "max_user_num": Integer(MAX_USER_NUM, 1),
        "match_threshold": Integer(100, MATCH_THRESHOLD, zero_is_default=False, description="0-100: users below it are not returned"),
        "start": Integer(2**31, 0, zero_is_default=False, description="offset of the page"),
        "length": Integer(MAX_PAGE, 100),
    }


def schemas(limits: Limits) -> dict[str, Schema]:
    """Every parameter's JSON schema, for /openapi.json."""
    level = {"type": "string", "enum": list(LEVELS), "description": "NONE (default), LOW, NORMAL or HIGH (README: quality and liveness control)"}
    return {
        "image": {"type": "string", "description": "base64 of a PNG, JPEG or BMP; an http(s) URL; or a face_token, as image_type says"},
        "image_type": {"type": "string", "enum": list(IMAGE_TYPES)},
        "group_id": {"type": "string", "pattern": f"^({ALL_GROUPS}|[A-Za-z0-9_]{{1,{GROUP_MAX_BYTES}}})$", "description": f"{ALL_GROUPS}: every group (user/get, user/delete only)"},
        "group_id_list": {"type": "string", "description": f"up to {MAX_GROUP_LIST} group ids separated by commas"},
        "src_group_id": {"type": "string", "pattern": _ID % GROUP_MAX_BYTES},
        "dst_group_id": {"type": "string", "pattern": _ID % GROUP_MAX_BYTES},
        "user_id": {"type": "string", "pattern": _ID % UID_MAX_BYTES},
        "user_info": {"type": "string", "maxLength": limits.user_info_bytes},
        "face_token": {"type": "string", "maxLength": TOKEN_MAX_BYTES},
        "face_field": {"type": "string", "description": "comma-separated: " + ", ".join(FACE_FIELDS)},
        "face_type": {"type": "string", "enum": list(FACE_TYPES)},
        "quality_control": level,
        "liveness_control": level,
        "action_type": {"type": "string", "description": "user/add: APPEND (default) or REPLACE; user/update: UPDATE (default) or REPLACE"},
        "id_card_number": {"type": "string"},
        "name": {"type": "string"},
        **{name: spec.schema() for name, spec in integers(limits).items()},
    }


def _envelope(result: Schema | None) -> Schema:
    """v3's answer around a result schema (None: the call answers ``result: null``)."""
    return closed_object(
        {
            "error_code": {"type": "integer", "enum": [0]},
            "error_msg": {"type": "string", "enum": ["SUCCESS"]},
            "log_id": LOG_ID,
            "timestamp": {"type": "integer"},
            "cached": {"type": "integer"},
            "result": result if result is not None else {"type": "null"},
        },
        ("error_code", "error_msg", "log_id", "timestamp", "cached", "result"),
    )


_NUMBER: Schema = {"type": "number"}
_SCORE: Schema = {"type": "number", "minimum": 0, "maximum": 100}
_TOKEN: Schema = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_POINT = closed_object({"x": _NUMBER, "y": _NUMBER}, ("x", "y"))
_LOCATION = closed_object(
    {"left": _NUMBER, "top": _NUMBER, "width": {"type": "integer"}, "height": {"type": "integer"}, "rotation": {"type": "integer"}},
    ("left", "top", "width", "height", "rotation"),
)
_TYPED = closed_object({"type": {"type": "string"}, "probability": {"type": "number", "minimum": 0, "maximum": 1}}, ("type", "probability"))
FACE = closed_object(
    {
        "face_token": _TOKEN,
        "location": _LOCATION,
        "face_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "angle": closed_object({"yaw": _NUMBER, "pitch": _NUMBER, "roll": _NUMBER}, ("yaw", "pitch", "roll")),
        "age": _NUMBER,
        "expression": _TYPED,
        "gender": _TYPED,
        "landmark": array(_POINT),
        "landmark72": array(_POINT),
        "quality": closed_object(
            {"blur": _NUMBER, "illumination": _NUMBER, "completeness": {"type": "integer", "enum": [0, 1]}},
            ("blur", "illumination", "completeness"),
        ),
        "liveness": closed_object({"livemapscore": {"type": "number", "minimum": 0, "maximum": 1}}, ("livemapscore",)),
    },
    ("face_token", "location", "face_probability", "angle"),
)
_USER = closed_object(
    {"group_id": {"type": "string"}, "user_id": {"type": "string"}, "user_info": {"type": "string"}, "score": _SCORE},
    ("group_id", "user_id", "user_info", "score"),
)
_REGISTERED = closed_object({"face_token": _TOKEN, "location": _LOCATION}, ("face_token", "location"))

ANSWERS: dict[str, Schema] = {
    "Faces": _envelope(closed_object({"face_num": {"type": "integer"}, "face_list": array(FACE)}, ("face_num", "face_list"))),
    "Match": _envelope(
        closed_object({"score": _SCORE, "face_list": array(closed_object({"face_token": _TOKEN}, ("face_token",)))}, ("score", "face_list"))
    ),
    "Search": _envelope(closed_object({"face_token": _TOKEN, "user_list": array(_USER)}, ("face_token", "user_list"))),
    "MultiSearch": _envelope(
        closed_object(
            {
                "face_num": {"type": "integer"},
                "face_list": array(
                    closed_object({"face_token": _TOKEN, "location": _LOCATION, "user_list": array(_USER)}, ("face_token", "location", "user_list"))
                ),
            },
            ("face_num", "face_list"),
        )
    ),
    "Registered": _envelope(_REGISTERED),
    "Done": _envelope(None),
    "UserGroups": _envelope(
        closed_object({"user_list": array(closed_object({"user_info": {"type": "string"}, "group_id": {"type": "string"}}, ("user_info", "group_id")))}, ("user_list",))
    ),
    "FaceList": _envelope(
        closed_object(
            {"face_list": array(closed_object({"face_token": _TOKEN, "ctime": {"type": "string"}}, ("face_token", "ctime")))},
            ("face_list",),
        )
    ),
    "UserIds": _envelope(closed_object({"user_id_list": array({"type": "string"})}, ("user_id_list",))),
    "GroupIds": _envelope(closed_object({"group_id_list": array({"type": "string"})}, ("group_id_list",))),
    "Liveness": _envelope(
        closed_object(
            {
                "face_liveness": {"type": "number", "minimum": 0, "maximum": 1},
                "thresholds": closed_object({k: _NUMBER for k in ("frr_1e-4", "frr_1e-3", "frr_1e-2")}, ("frr_1e-4", "frr_1e-3", "frr_1e-2")),
                "face_list": array(FACE),
            },
            ("face_liveness", "thresholds", "face_list"),
        )
    ),
    "Error": closed_object(
        {
            "error_code": {"type": "integer", "enum": sorted(V3_ERRORS)},
            "error_msg": {"type": "string"},
            "log_id": LOG_ID,
            "timestamp": {"type": "integer"},
            "cached": {"type": "integer"},
            "result": {"type": "null"},
        },
        ("error_code", "error_msg", "log_id", "timestamp", "cached", "result"),
    ),
}
