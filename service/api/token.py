"""``/oauth/2.0/token``: client_credentials grant -> access token (spec §1.2.1)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from service.auth.credentials import OAuthError
from service.api.endpoint import METHODS, services
from service.api.params import form_of
from service.errors import FaceError

blueprint = Blueprint("token", __name__)


@blueprint.route("/oauth/2.0/token", methods=METHODS)
def token():
    try:
        values = {**request.args.to_dict(), **form_of(request).to_dict()}
    except FaceError as error:
        raise OAuthError("invalid_request", error.detail or error.message, 400) from None
    if values.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "The authorization grant type is not supported", 400)
    if not values.get("client_id") or not values.get("client_secret"):
        raise OAuthError("invalid_request", "client_id and client_secret are required", 400)
    return jsonify(services().auth.issue_token(values["client_id"], values["client_secret"], request.remote_addr or ""))
