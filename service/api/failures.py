"""Exceptions -> answers, for every route: a ``FaceError`` in the envelope of the API version
whose URL was called (HTTP 200, as Baidu answers), an ``OAuthError`` as RFC 6749 says, Redis
failures as 216300, anything else as 216401 with its traceback in the log."""
from __future__ import annotations

import logging

import redis
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service.api.endpoint import ApiVersion, new_log_id, version_of
from service.auth.credentials import OAuthError
from service.errors import FaceError

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask, versions: list[ApiVersion]) -> None:
    @app.errorhandler(FaceError)
    def face_error(error: FaceError):
        g.error_code = error.code
        if "log_id" not in g:
            g.log_id = new_log_id()
        if error.detail:
            log.info("log_id=%s error %s: %s", g.log_id, error.code, error.detail)
        return jsonify(version_of(request.path, versions).failure(error)), 200

    @app.errorhandler(OAuthError)
    def oauth_error(error: OAuthError):
        return jsonify(error=error.error, error_description=error.description), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        return face_error(FaceError(216202, "request body too large"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code in (404, 405):
            return face_error(FaceError(216102, f"{request.method} {request.path}"))
        return face_error(FaceError(216100, error.description))

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, redis.RedisError):
            log.exception("log_id=%s redis failure", g.get("log_id"))
            return face_error(FaceError(216300, type(error).__name__))
        log.exception("log_id=%s unexpected error", g.get("log_id"))
        return face_error(FaceError(216401, type(error).__name__))
