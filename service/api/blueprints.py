"""Every blueprint of the HTTP API, registered in this one place: the version-less routes
(token, docs, operations, console) and each Baidu API version's."""
from __future__ import annotations

from flask import Flask

from service.api import docs, failures, ops, token
from service.api.console import routes as console
from service.api.endpoint import ApiVersion
from service.api.v2 import API as V2
from service.api.v2 import detect, faceset, search

# Oldest first: an URL of no version (a 404, the token endpoint) is answered in the first's envelope.
API_VERSIONS: list[ApiVersion] = [V2]
BLUEPRINTS = [
    token.blueprint,
    detect.blueprint,
    search.blueprint,
    faceset.blueprint,
    docs.blueprint,
    ops.blueprint,
    console.blueprint,
]


def register_api(app: Flask) -> None:
    """The routes and the error handlers of every API version."""
    app.extensions["facesvc_api_versions"] = API_VERSIONS
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    failures.register_error_handlers(app, API_VERSIONS)
