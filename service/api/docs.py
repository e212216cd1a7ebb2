"""``/openapi.json``: the API's OpenAPI 3 description (built in service.api.openapi), no auth."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from service.api.endpoint import services
from service.api.openapi import build_document

blueprint = Blueprint("docs", __name__)


@blueprint.route("/openapi.json", methods=["GET"])
def openapi_document():
    versions = current_app.extensions["facesvc_api_versions"]
    return jsonify(build_document(services().settings.limits, versions))
