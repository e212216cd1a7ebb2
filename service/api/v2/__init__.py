"""Baidu Face API v2 (spec chapter 1), also served under its v1 URLs (the spec's own
authentication example calls v1). ``API`` is the version's envelope and route registrar."""
from __future__ import annotations

from flask import g

from service.api.endpoint import ApiVersion
from service.api.v2.schema import ALIASES, ANSWERS, integers, schemas
from service.errors import FaceError, client_message


def success(result: dict) -> dict:
    """A v2 answer: the request's ``log_id`` first, then the endpoint's fields."""
    return {"log_id": g.log_id, **result}


def failure(error: FaceError) -> dict:
    """A v2 error: ``error_code``, the table's ``error_msg`` verbatim (an enrolment refusal adds
    what failed), ``log_id``."""
    return {"error_code": error.code, "error_msg": client_message(error.message, error), "log_id": g.log_id}


API = ApiVersion(
    name="v2",
    prefixes=("/rest/2.0/face/v2", "/rest/2.0/face/v1"),
    success=success,
    failure=failure,
    integers=integers,
    schemas=schemas,
    answers=ANSWERS,
    aliases=ALIASES,
)
