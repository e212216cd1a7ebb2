"""The web console at ``/console``: plain HTML, JS and CSS from ``service/api/console/static/``, no build
step. The browser signs in with an API key and secret through ``/oauth/2.0/token`` and then
calls the Baidu endpoints with the token, like any client."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

blueprint = Blueprint("console", __name__)
FILES = Path(__file__).resolve().parent / "static"
# The page holds a secret while signing in: only its own scripts and styles may run, and
# photos are drawn from blob: URLs made in the page.
POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'"


@blueprint.route("/console", methods=["GET"])
@blueprint.route("/console/", methods=["GET"])
def page() -> Response:
    return asset("index.html")


@blueprint.route("/console/<path:name>", methods=["GET"])
def asset(name: str) -> Response:
    response = send_from_directory(FILES, name, max_age=0)
    response.headers["Content-Security-Policy"] = POLICY
    return response
