"""The OpenAPI 3 description of facesvc, served at ``/openapi.json``.

Built from what the routes themselves use: each API version's operations (registered by its
``endpoint`` decorators), its parameter table and its answer schemas (``service/api/<version>/
schema.py``), so a limit cannot drift between a route and its description. Every endpoint takes
GET (query string) and POST (form or JSON body); answers are always HTTP 200 with either the
endpoint's result or the version's error object, as Baidu answers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from config.defaults import Limits

if TYPE_CHECKING:
    from service.api.endpoint import ApiVersion, Operation

Schema = dict[str, Any]

LOG_ID: Schema = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1, "description": "unique id of the request"}


def closed_object(properties: dict[str, Schema], required: tuple[str, ...] = (), closed: bool = True) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": not closed}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


TOKEN_ANSWERS: dict[str, Schema] = {
    "Token": closed_object(
        {
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
            "session_key": {"type": "string"},
            "session_secret": {"type": "string"},
        },
        ("access_token", "expires_in", "scope"),
    ),
    "OAuthError": closed_object({"error": {"type": "string"}, "error_description": {"type": "string"}}, ("error", "error_description")),
}


# gunicorn refuses a request line over 4,094 bytes before facesvc sees it: a GET whose query
# is that long gets this, and a POST carries its parameters in the body instead.
URI_TOO_LONG = {"414": {"description": "request line over 4,094 bytes: send the parameters in the body"}}


def endpoints(versions: list["ApiVersion"]) -> Iterator[tuple[str, "ApiVersion", "Operation"]]:
    """(URL path, version, operation) of every endpoint of every version, under each prefix."""
    for version in versions:
        for prefix in version.prefixes:
            for operation in version.operations:
                yield prefix + operation.path, version, operation


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _operations(
    operation_id: str, summary: str, fields: dict[str, Schema], required: tuple[str, ...], answers: dict, array_body: bool = False
) -> dict:
    """GET with the parameters in the query string, POST with them in a form or JSON body
    (``array_body``: a JSON array of such objects, v3's match and faceverify)."""
    body = closed_object(fields, required, closed=False)
    if array_body:
        body = array(body)
    query = [{"name": n, "in": "query", "required": n in required, "schema": s} for n, s in fields.items()]
    return {
        "get": {"operationId": f"{operation_id}_get", "summary": summary, "parameters": query, "responses": {**answers, **URI_TOO_LONG}},
        "post": {
            "operationId": f"{operation_id}_post",
            "summary": summary,
            "requestBody": {
                "required": bool(required),
                "content": {"application/x-www-form-urlencoded": {"schema": body}, "application/json": {"schema": body}},
            },
            "responses": answers,
        },
    }


def _json(schema: Schema, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_document(limits: Limits, versions: list["ApiVersion"]) -> dict:
    """The whole OpenAPI 3.0 document. Answer schemas are named ``<version>.<name>``."""
    paths = {}
    schemas: dict[str, Schema] = dict(TOKEN_ANSWERS)
    for version in versions:
        schemas.update({f"{version.name}.{name}": schema for name, schema in version.answers.items()})
    for path, version, operation in endpoints(versions):
        known = version.schemas(limits)
        fields = {name: known[name] for name in operation.required + operation.optional}
        answer = {"oneOf": [_ref(f"{version.name}.{operation.answer}"), _ref(f"{version.name}.Error")]}
        answers = {"200": _json(answer, "the result, or a Baidu error")}
        operation_id = path.removeprefix("/rest/2.0/face/").replace("/", "_")
        paths[path] = _operations(operation_id, operation.summary, fields, operation.required, answers, operation.array_body)
    grant = {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string", "description": "the API key"},
        "client_secret": {"type": "string", "description": "the secret key"},
    }
    token_answers = {
        "200": _json(_ref("Token"), "an access token valid for 30 days"),
        "400": _json(_ref("OAuthError"), "a missing parameter or another grant type"),
        "401": _json(_ref("OAuthError"), "unknown API key or wrong secret"),
    }
    paths["/oauth/2.0/token"] = _operations("token", "Access token for an API key pair (spec 1.2.1)", grant, tuple(grant), token_answers)
    for operation in paths["/oauth/2.0/token"].values():
        operation["security"] = []
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "facesvc",
            "version": ", ".join(v.name for v in versions),
            "description": "Baidu Face API v2 and v3, self-hosted. Errors are HTTP 200 with error_code, error_msg and log_id (v3: in its full envelope).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "access_token": {"type": "apiKey", "in": "query", "name": "access_token"},
                "bce_auth_v1": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "bce-auth-v1/{ak}/{timestamp}/{expiration}/{signed headers}/{signature} (spec 1.2.2)",
                },
            },
        },
        "security": [{"access_token": []}, {"bce_auth_v1": []}],
    }
