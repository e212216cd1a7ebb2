"""Baidu's resources, one module each. ``endpoint`` wraps a handler with auth and log_id."""
from __future__ import annotations

from functools import wraps
from typing import Callable, Optional

from flask import Blueprint, Flask, current_app, g, jsonify, request

from service import signature
from service.params import Params

Handler = Callable[[Params], dict]
METHODS = ["GET", "POST"]  # the SDKs POST everything; chapter 1 documents GET for queries


def services():
    """The process's Services (see service.app)."""
    return current_app.extensions["facesvc"]


def app_id() -> str:
    """The app the request's token belongs to."""
    return g.app_id


def liveness_info(scores: list[Optional[float]]) -> list[dict]:
    """Baidu's ``ext_info`` for faceliveness: one string of comma-joined per-image scores, "0"
    where an image was not scored (spec §1.4.3: "0,0.9999" = first image not checked)."""
    return [{"faceliveness": ",".join("0" if score is None else f"{score:.6f}" for score in scores)}]


def endpoint(blueprint: Blueprint, *paths: str) -> Callable[[Handler], Handler]:
    """Register ``handler(params) -> dict`` under each path: authenticate the access token,
    parse parameters, add ``log_id`` to the answer."""

    def register(handler: Handler) -> Handler:
        @wraps(handler)
        def view():
            g.app_id = authenticate()
            services().quota.admit(g.app_id)
            result = handler(Params.from_request(request))
            return jsonify({"log_id": g.log_id, **result})

        for number, path in enumerate(paths):
            blueprint.add_url_rule(path, endpoint=f"{handler.__name__}_{number}", view_func=view, methods=METHODS)
        return handler

    return register


def authenticate() -> str:
    """The request's app: from its access token, or from its bce-auth-v1 signature, which the
    SDKs send instead when a token's scope lacks brain_all_scope."""
    auth = services().auth
    header = request.headers.get("authorization")
    if header and signature.BODY_DIGEST in header.lower():
        request.get_data()  # cache the body now: reading the form below would consume it unsaved
    token = request.args.get("access_token") or request.form.get("access_token")
    if not token and header:
        query = request.query_string.decode("latin-1")
        return auth.app_for_signature(header, request.method, request.path, query, request.headers, request.get_data)
    # The Node SDK appends "?aipSdk=node" to a URL that already ends in its token, so the
    # token arrives as "<token>?aipSdk=node"; a token never contains "?".
    return auth.app_for_token(token.split("?", 1)[0] if token else token)


def register_routes(app: Flask) -> None:
    from service.routes import detect, docs, faceset, search, token

    for module in (token, detect, search, faceset, docs):
        app.register_blueprint(module.blueprint)
