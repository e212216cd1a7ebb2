"""v2's request parameters and answer schemas. The parameter table is the one the routes
validate with (``Params``) and that ``/openapi.json`` describes. Sizes that are settings come
from ``config.defaults.Limits``; the rest are Baidu's limits (spec chapter 1)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from config.defaults import Limits
from service.api.openapi import LOG_ID, array, closed_object
from service.api.params import MAX_GROUP_IDS, MAX_IMAGES, Integer
from service.library.ids import GROUP_MAX_BYTES, UID_MAX_BYTES
from service.errors import ERRORS

Schema = dict[str, Any]

MAX_USER_TOP = 5  # §1.5.2: at most 5 users
MAX_FACE_TOP = 100
MAX_PAGE = 1000  # §1.11.2: at most 1000 per page
_GROUP = f"[A-Za-z0-9_]{{1,{GROUP_MAX_BYTES}}}"
# Other names official SDKs send for a parameter: C# 3.2.2's identify misspells face_top_num.
ALIASES = {"fcae_top_num": "face_top_num"}


@lru_cache(maxsize=4)
def integers(limits: Limits) -> dict[str, Integer]:
    """The count and offset parameters: documented maximum and default."""
    return {
        "max_face_num": Integer(limits.max_faces, 1),
        "user_top_num": Integer(MAX_USER_TOP, 1),
        "face_top_num": Integer(MAX_FACE_TOP, 1),
        "top_num": Integer(MAX_FACE_TOP, 1),
        "start": Integer(2**31, 0, zero_is_default=False, description="offset of the page"),
        "num": Integer(MAX_PAGE, 100),
        "end": Integer(MAX_PAGE, 100, description="page size, as chapter 1 names it"),
    }


def schemas(limits: Limits) -> dict[str, Schema]:
    """Every parameter's JSON schema, for /openapi.json."""
    return {
        "image": {"type": "string", "format": "byte", "description": "base64 of one PNG, JPEG or BMP, no data: header"},
        "images": {"type": "string", "description": f"up to {MAX_IMAGES} base64 images separated by commas"},
        "uid": {"type": "string", "pattern": f"^[A-Za-z0-9_]{{1,{UID_MAX_BYTES}}}$"},
        "group_id": {
            "type": "string",
            "pattern": f"^{_GROUP}(,{_GROUP}){{0,{MAX_GROUP_IDS - 1}}}$",
            "description": "one group id, or several separated by commas",
        },
        "src_group_id": {"type": "string", "pattern": f"^{_GROUP}$"},
        "user_info": {
            "type": "string",
            "maxLength": limits.user_info_bytes,
            "description": f"at most {limits.user_info_bytes} bytes",
        },
        "action_type": {"type": "string", "enum": ["append", "replace"]},
        "face_fields": {"type": "string", "description": "comma-separated: age, expression, gender, landmark, qualities, ..."},
        "ext_fields": {"type": "string", "description": "faceliveness and/or qualities"},
        "image_liveness": {"type": "string", "description": "per image, comma-separated: faceliveness or empty"},
        **{name: spec.schema() for name, spec in integers(limits).items()},
    }


_POINT = closed_object({"x": {"type": "integer", "minimum": 0}, "y": {"type": "integer", "minimum": 0}}, ("x", "y"))
_FACE = closed_object(
    {
        "location": closed_object({k: {"type": "integer", "minimum": 0} for k in ("left", "top", "width", "height")}, ("left", "top", "width", "height")),
        "face_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "rotation_angle": {"type": "integer", "minimum": -180, "maximum": 180},
        **{k: {"type": "number", "minimum": -180, "maximum": 180} for k in ("yaw", "pitch", "roll")},
        "landmark": array(_POINT),
        "landmark72": array(_POINT),
    },
    ("location", "face_probability", "rotation_angle", "yaw", "pitch", "roll"),
    closed=False,  # the attributes asked for in face_fields come as further fields
)
_SCORE: Schema = {"type": "number", "minimum": 0, "maximum": 100}
_EXT_INFO = array(closed_object({"faceliveness": {"type": "string"}, "qualities": {"type": "string"}}))


def _listing(items: Schema, ext_info: bool = False) -> Schema:
    properties = {"log_id": LOG_ID, "result_num": {"type": "integer", "minimum": 0}, "result": array(items)}
    if ext_info:
        properties["ext_info"] = _EXT_INFO
    return closed_object(properties, ("log_id", "result_num", "result"))


ANSWERS: dict[str, Schema] = {
    "Faces": _listing(_FACE),
    "Pairs": _listing(closed_object({"index_i": {"type": "integer"}, "index_j": {"type": "integer"}, "score": _SCORE}, ("index_i", "index_j", "score")), ext_info=True),
    "Matches": _listing(
        closed_object(
            {"group_id": {"type": "string"}, "uid": {"type": "string"}, "user_info": {"type": "string"}, "scores": array(_SCORE)},
            ("group_id", "uid", "user_info", "scores"),
        ),
        ext_info=True,
    ),
    "Scores": _listing(_SCORE, ext_info=True),
    "Done": closed_object({"log_id": LOG_ID}, ("log_id",)),
    "UserEntries": _listing(closed_object({"uid": {"type": "string"}, "user_info": {"type": "string"}, "group_id": {"type": "string"}}, ("uid", "user_info", "group_id"))),
    "Groups": _listing({"type": "string"}),
    "Users": _listing(closed_object({"uid": {"type": "string"}, "user_info": {"type": "string"}}, ("uid", "user_info"))),
    "Error": closed_object(
        {"error_code": {"type": "integer", "enum": sorted(ERRORS)}, "error_msg": {"type": "string"}, "log_id": LOG_ID},
        ("error_code", "error_msg", "log_id"),
    ),
}
