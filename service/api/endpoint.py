"""What every API version's handlers share: the process's services, authentication, and
``ApiVersion``, which registers ``handler(params) -> dict`` functions and wraps their results
and errors in that version's envelope."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import wraps
from typing import TYPE_CHECKING, Any, Callable, Mapping

from flask import Blueprint, current_app, g, jsonify, request

from config.defaults import Limits
from service.api.params import BODY, Integer, Params, form_of
from service.errors import FaceError

if TYPE_CHECKING:
    from service.app import Services

Handler = Callable[[Params], dict]
METHODS = ["GET", "POST"]  # the SDKs POST everything; chapter 1 documents GET for queries


def services() -> "Services":
    """The process's Services (see service.app)."""
    return current_app.extensions["facesvc"]


def app_id() -> str:
    """The app the request's token belongs to."""
    return g.app_id


def new_log_id() -> int:
    """A random 53-bit id: fits Baidu's uint64, and JavaScript clients (the Node SDK) parse it
    exactly, as JSON numbers beyond 2**53 lose their last digits in a double."""
    return secrets.randbits(53)


@dataclass(frozen=True)
class Operation:
    """One endpoint as /openapi.json describes it: its path under the version's prefixes, the
    first line of its handler's docstring, its parameters and the name of its answer schema."""

    path: str
    summary: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    answer: str
    array_body: bool = False


@dataclass(frozen=True)
class ApiVersion:
    """One Baidu API version: the URL prefixes it answers under, its answer envelope and its
    parameter table.

    ``success(result)`` and ``failure(error)`` build the JSON object of an answer; every answer
    of the version's endpoints, errors raised anywhere below included, goes through them.
    ``integers(limits)`` are the ranges ``Params.integer`` enforces, ``schemas(limits)`` every
    parameter's JSON schema, ``answers`` the answer schemas by name, ``aliases`` other names
    clients send for a parameter; ``json_bodies``: bodies are JSON whatever their
    Content-Type (v3); ``operations`` fills as route modules register endpoints."""

    name: str
    prefixes: tuple[str, ...]
    success: Callable[[dict], dict]
    failure: Callable[[FaceError], dict]
    integers: Callable[[Limits], Mapping[str, Integer]]
    schemas: Callable[[Limits], dict[str, dict[str, Any]]]
    answers: dict[str, dict[str, Any]]
    aliases: Mapping[str, str] = field(default_factory=dict)
    json_bodies: bool = False
    operations: list[Operation] = field(default_factory=list)

    def serves(self, path: str) -> bool:
        return path.startswith(tuple(prefix + "/" for prefix in self.prefixes))

    def endpoint(
        self,
        blueprint: Blueprint,
        path: str,
        answer: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
        array_body: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register ``handler(params) -> dict`` under ``path`` below every prefix:
        authenticate, admit under the quotas, parse parameters, wrap the result.
        ``array_body``: the body is a JSON array of objects (v3 match), whose fields
        ``required`` and ``optional`` then name."""

        def register(handler: Handler) -> Handler:
            @wraps(handler)
            def view():
                g.app_id = authenticate()
                services().quota.admit(g.app_id)
                integers = self.integers(services().settings.limits)
                params = Params.from_request(
                    request, integers, self.aliases, signed_query=g.get("signed", False), json_any=self.json_bodies
                )
                if params.items is not None and not array_body:
                    raise FaceError(216100, "this call takes a JSON object, not an array", param=BODY)
                return jsonify(self.success(handler(params)))

            for number, prefix in enumerate(self.prefixes):
                blueprint.add_url_rule(prefix + path, f"{handler.__name__}_{number}", view, methods=METHODS)
            summary = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            self.operations.append(Operation(path, summary, required, optional, answer, array_body))
            return handler

        return register


def authenticate() -> str:
    """The request's app: from its access token, or from its bce-auth-v1 signature, which the
    SDKs send instead when a token's scope lacks brain_all_scope."""
    auth = services().auth
    header = request.headers.get("authorization")
    # The query first: a token there needs no look at the body at all.
    token = request.args.get("access_token") or form_of(request).get("access_token")
    if not token and header:
        g.signed = True
        query = request.query_string.decode("latin-1")
        return auth.app_for_signature(header, request.method, request.path, query, request.headers, request.get_data())
    # The Node SDK appends "?aipSdk=node" to a URL that already ends in its token, so the
    # token arrives as "<token>?aipSdk=node"; a token never contains "?".
    return auth.app_for_token(token.split("?", 1)[0] if token else token)


def version_of(path: str, versions: list[ApiVersion]) -> ApiVersion:
    """The version whose URL was called; the first (the oldest) for any other URL."""
    return next((v for v in versions if v.serves(path)), versions[0])
