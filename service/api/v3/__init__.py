"""Baidu Face API v3 (../shared/spec/baidu-face-api-v3.md): its envelope and ``API``, the route
registrar; the parameter table is ``schema.py``, the resources ``detect``, ``search``,
``faceset`` and ``person``."""
from __future__ import annotations

import time
from typing import Optional

from flask import g

from service.api.endpoint import ApiVersion
from service.api.v3.errors import v3_code
from service.api.v3.schema import ANSWERS, integers, schemas
from service.errors import V3_ERRORS, FaceError, client_message


def envelope(code: int, message: str, result: Optional[dict]) -> dict:
    """v3's answer (spec §2.3): the same six fields on success and on every error."""
    return {
        "error_code": code,
        "error_msg": message,
        "log_id": g.log_id,
        "timestamp": int(time.time()),
        "cached": 0,
        "result": result,
    }


def success(result: Optional[dict]) -> dict:
    """``result`` is the endpoint's object, or None for calls that answer nothing."""
    return envelope(0, "SUCCESS", result)


def failure(error: FaceError) -> dict:
    code = v3_code(error)
    return envelope(code, client_message(V3_ERRORS[code], error), None)


API = ApiVersion(
    name="v3",
    prefixes=("/rest/2.0/face/v3",),
    success=success,
    failure=failure,
    integers=integers,
    schemas=schemas,
    answers=ANSWERS,
    json_bodies=True,
)
