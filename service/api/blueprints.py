"""Every blueprint of the HTTP API, registered in this one place: the version-less routes
(token, docs, operations, console) and each Baidu API version's."""
from __future__ import annotations

from flask import Flask

from service.api import docs, failures, ops, token
from service.api.console import routes as console
from service.api.endpoint import ApiVersion
from service.api.v2 import API as V2
from service.api.v2 import detect, faceset, search
from service.api.v3 import API as V3
from service.api.v3 import detect as v3_detect
from service.api.v3 import faceset as v3_faceset
from service.api.v3 import person as v3_person
from service.api.v3 import search as v3_search

# Oldest first: an URL of no version (a 404, the token endpoint) is answered in the first's envelope.
API_VERSIONS: list[ApiVersion] = [V2, V3]
BLUEPRINTS = [
    token.blueprint,
    detect.blueprint,
    search.blueprint,
    faceset.blueprint,
    v3_detect.blueprint,
    v3_search.blueprint,
    v3_faceset.blueprint,
    v3_person.blueprint,
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
