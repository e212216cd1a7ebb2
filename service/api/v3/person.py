"""person/verify and person/idmatch (v3 spec §3.17): they compare with the national ID
authority's photos, which a self-hosted service has no access to, so a well-formed call answers
3 ("Unsupported openapi method"), as Baidu answers a call it does not offer."""
from __future__ import annotations

from flask import Blueprint

from service.api.params import Params
from service.api.v3 import API
from service.errors import FaceError

blueprint = Blueprint("v3_person", __name__)


@API.endpoint(blueprint, "/person/verify", "Done", ("image", "image_type", "id_card_number", "name"))
def person_verify(params: Params) -> None:
    """Compare a face with the ID authority's photo: not supported (v3 spec 3.17)"""
    for name in ("image", "image_type", "id_card_number", "name"):
        params.text(name)
    raise FaceError(3, "person/verify needs the ID authority's photos")


@API.endpoint(blueprint, "/person/idmatch", "Done", ("id_card_number", "name"))
def id_match(params: Params) -> None:
    """Check an ID number against a name: not supported (v3 spec 3.17)"""
    for name in ("id_card_number", "name"):
        params.text(name)
    raise FaceError(3, "person/idmatch needs the ID authority's records")
