"""The OpenAPI 3 description of facesvc, served at ``/openapi.json``.

Built from two tables (parameters, endpoints) rather than kept as a JSON file, so that each
parameter and answer shape is written once although every endpoint takes GET (query string) and
POST (form or JSON body). Clients and fuzzers (schemathesis) read it; answers are always HTTP 200
with either the endpoint's result or Baidu's error object, as chapter 1 of the spec describes.
"""
from __future__ import annotations

from typing import Any

from config.defaults import Limits
from service.errors import ERRORS
from service.params import GROUP_MAX_BYTES, MAX_GROUP_IDS, MAX_IMAGES, UID_MAX_BYTES

Schema = dict[str, Any]

_GROUP = f"[A-Za-z0-9_]{{1,{GROUP_MAX_BYTES}}}"
LOG_ID: Schema = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1, "description": "unique id of the request"}
BASE = "/rest/2.0/face/v2"


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), closed: bool = True) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": not closed}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def parameters(limits: Limits) -> dict[str, Schema]:
    """Every request parameter facesvc reads, with the range it accepts."""
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
        "user_info": {"type": "string", "maxLength": limits.user_info_bytes, "description": "at most 256 bytes"},
        "action_type": {"type": "string", "enum": ["append", "replace"]},
        "max_face_num": {"type": "integer", "minimum": 1, "maximum": limits.max_faces},
        "face_fields": {"type": "string", "description": "comma-separated: age, expression, gender, landmark, qualities, ..."},
        "ext_fields": {"type": "string", "description": "faceliveness and/or qualities"},
        "image_liveness": {"type": "string", "description": "per image, comma-separated: faceliveness or empty"},
        "user_top_num": {"type": "integer", "minimum": 0, "maximum": 5, "description": "0 means the default, 1"},
        "face_top_num": {"type": "integer", "minimum": 1, "maximum": 100},
        "top_num": {"type": "integer", "minimum": 1, "maximum": 100},
        "start": {"type": "integer", "minimum": 0, "maximum": 2**31},
        "num": {"type": "integer", "minimum": 0, "maximum": 1000},
        "end": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "page size, as chapter 1 names it"},
    }


_POINT = _object({"x": {"type": "integer", "minimum": 0}, "y": {"type": "integer", "minimum": 0}}, ("x", "y"))
_FACE = _object(
    {
        "location": _object({k: {"type": "integer", "minimum": 0} for k in ("left", "top", "width", "height")}, ("left", "top", "width", "height")),
        "face_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "rotation_angle": {"type": "integer", "minimum": -180, "maximum": 180},
        **{k: {"type": "number", "minimum": -180, "maximum": 180} for k in ("yaw", "pitch", "roll")},
        "landmark": _array(_POINT),
        "landmark72": _array(_POINT),
    },
    ("location", "face_probability", "rotation_angle", "yaw", "pitch", "roll"),
    closed=False,  # the attributes asked for in face_fields come as further fields
)
_SCORE: Schema = {"type": "number", "minimum": 0, "maximum": 100}
_EXT_INFO = _array(_object({"faceliveness": {"type": "string"}, "qualities": {"type": "string"}}))


def _listing(items: Schema, ext_info: bool = False) -> Schema:
    properties = {"log_id": LOG_ID, "result_num": {"type": "integer", "minimum": 0}, "result": _array(items)}
    if ext_info:
        properties["ext_info"] = _EXT_INFO
    return _object(properties, ("log_id", "result_num", "result"))


ANSWERS: dict[str, Schema] = {
    "Faces": _listing(_FACE),
    "Pairs": _listing(_object({"index_i": {"type": "integer"}, "index_j": {"type": "integer"}, "score": _SCORE}, ("index_i", "index_j", "score")), ext_info=True),
    "Matches": _listing(
        _object(
            {"group_id": {"type": "string"}, "uid": {"type": "string"}, "user_info": {"type": "string"}, "scores": _array(_SCORE)},
            ("group_id", "uid", "user_info", "scores"),
        ),
        ext_info=True,
    ),
    "Scores": _listing(_SCORE, ext_info=True),
    "Done": _object({"log_id": LOG_ID}, ("log_id",)),
    "UserEntries": _listing(_object({"uid": {"type": "string"}, "user_info": {"type": "string"}, "group_id": {"type": "string"}}, ("uid", "user_info", "group_id"))),
    "Groups": _listing({"type": "string"}),
    "Users": _listing(_object({"uid": {"type": "string"}, "user_info": {"type": "string"}}, ("uid", "user_info"))),
    "Error": _object(
        {"error_code": {"type": "integer", "enum": sorted(ERRORS)}, "error_msg": {"type": "string"}, "log_id": LOG_ID},
        ("error_code", "error_msg", "log_id"),
    ),
    "Token": _object(
        {
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
            "session_key": {"type": "string"},
            "session_secret": {"type": "string"},
        },
        ("access_token", "expires_in", "scope"),
    ),
    "OAuthError": _object({"error": {"type": "string"}, "error_description": {"type": "string"}}, ("error", "error_description")),
}

# path, summary, required parameters, optional parameters, answer.
ENDPOINTS: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    (f"{BASE}/detect", "Faces of an image with the attributes asked for (spec 1.3)", ("image",), ("max_face_num", "face_fields"), "Faces"),
    ("/rest/2.0/face/v1/detect", "detect under its v1 path", ("image",), ("max_face_num", "face_fields"), "Faces"),
    (f"{BASE}/match", "Scores of every pair of images (spec 1.4)", ("images",), ("ext_fields", "image_liveness"), "Pairs"),
    (f"{BASE}/identify", "Most similar users in the groups (spec 1.5)", ("group_id", "image"), ("user_top_num", "face_top_num", "ext_fields"), "Matches"),
    (f"{BASE}/verify", "Scores of the image against one user (spec 1.6)", ("uid", "group_id", "image"), ("top_num", "ext_fields"), "Scores"),
    (f"{BASE}/faceset/user/add", "Register a face of a user in groups (spec 1.7)", ("uid", "user_info", "group_id", "image"), ("action_type",), "Done"),
    (f"{BASE}/faceset/user/update", "Replace a user's faces (spec 1.8)", ("uid", "image"), ("user_info", "group_id", "action_type"), "Done"),
    (f"{BASE}/faceset/user/delete", "Delete a user from all or some groups (spec 1.9)", ("uid",), ("group_id",), "Done"),
    (f"{BASE}/faceset/user/get", "A user's user_info per group (spec 1.10)", ("uid",), ("group_id",), "UserEntries"),
    (f"{BASE}/faceset/group/getlist", "Groups in creation order (spec 1.11)", (), ("start", "num", "end"), "Groups"),
    (f"{BASE}/faceset/group/getusers", "Users of a group (spec 1.12)", ("group_id",), ("start", "num", "end"), "Users"),
    (f"{BASE}/faceset/group/adduser", "Copy a user into groups (spec 1.13)", ("uid", "src_group_id", "group_id"), (), "Done"),
    (f"{BASE}/faceset/group/deleteuser", "Remove a user from groups (spec 1.14)", ("uid", "group_id"), (), "Done"),
]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _operations(operation_id: str, summary: str, fields: dict[str, Schema], required: tuple[str, ...], answers: dict) -> dict:
    """GET with the parameters in the query string, POST with them in a form or JSON body."""
    body = _object(fields, required, closed=False)
    query = [{"name": n, "in": "query", "required": n in required, "schema": s} for n, s in fields.items()]
    return {
        "get": {"operationId": f"{operation_id}_get", "summary": summary, "parameters": query, "responses": answers},
        "post": {
            "operationId": f"{operation_id}_post",
            "summary": summary,
            "requestBody": {
                "required": bool(required),
                "content": {"application/x-www-form-urlencoded": {"schema": body}, "application/json": {"schema": body}},
            },
            "responses": answers,
        },
    }


def _json(schema: Schema, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_document(limits: Limits) -> dict:
    """The whole OpenAPI 3.0 document."""
    known = parameters(limits)
    paths = {}
    for path, summary, required, optional, answer in ENDPOINTS:
        fields = {name: known[name] for name in required + optional}
        answers = {"200": _json({"oneOf": [_ref(answer), _ref("Error")]}, "the result, or a Baidu error (spec 1.15)")}
        operation_id = path.removeprefix("/rest/2.0/face/").replace("/", "_")
        paths[path] = _operations(operation_id, summary, fields, required, answers)
    grant = {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string", "description": "the API key"},
        "client_secret": {"type": "string", "description": "the secret key"},
    }
    token_answers = {
        "200": _json(_ref("Token"), "an access token valid for 30 days"),
        "400": _json(_ref("OAuthError"), "a missing parameter or another grant type"),
        "401": _json(_ref("OAuthError"), "unknown API key or wrong secret"),
    }
    paths["/oauth/2.0/token"] = _operations("token", "Access token for an API key pair (spec 1.2.1)", grant, tuple(grant), token_answers)
    for operation in paths["/oauth/2.0/token"].values():
        operation["security"] = []
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "facesvc",
            "version": "2",
            "description": "Baidu Face API v2, self-hosted. Errors are HTTP 200 with error_code, error_msg and log_id.",
        },
        "paths": paths,
        "components": {
            "schemas": ANSWERS,
            "securitySchemes": {
                "access_token": {"type": "apiKey", "in": "query", "name": "access_token"},
                "bce_auth_v1": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "bce-auth-v1/{ak}/{timestamp}/{expiration}/{signed headers}/{signature} (spec 1.2.2)",
                },
            },
        },
        "security": [{"access_token": []}, {"bce_auth_v1": []}],
    }
