"""``/oauth/2.0/token``: client_credentials grant -> access token (spec §1.2.1)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from service.auth.credentials import OAuthError
from service.api.endpoint import METHODS, services

blueprint = Blueprint("token", __name__)


@blueprint.route("/oauth/2.0/token", methods=METHODS)
def token():
    values = {**request.args.to_dict(), **request.form.to_dict()}
    if values.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "The authorization grant type is not supported", 400)
    if not values.get("client_id") or not values.get("client_secret"):
        raise OAuthError("invalid_request", "client_id and client_secret are required", 400)
    return jsonify(services().auth.issue_token(values["client_id"], values["client_secret"]))
