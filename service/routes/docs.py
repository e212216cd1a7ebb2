"""``/openapi.json``: the API's OpenAPI 3 description (built in service.openapi), no auth."""
from __future__ import annotations

from flask import Blueprint, jsonify

from service.openapi import build_document
from service.routes import services

blueprint = Blueprint("docs", __name__)


@blueprint.route("/openapi.json", methods=["GET"])
def openapi_document():
    return jsonify(build_document(services().settings.limits))
