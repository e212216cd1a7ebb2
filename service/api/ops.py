"""Operations: ``/health`` (the process answers), ``/ready`` (it can serve: models loaded,
Redis reachable, indexes loaded and following the change stream) and ``/metrics``
(Prometheus). No token: load balancers and scrapers call them, and none reveals a library."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, jsonify

from service.api.endpoint import services

blueprint = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@blueprint.route("/health", methods=["GET", "HEAD"])
def health():
    return jsonify(status="up")


@blueprint.route("/ready", methods=["GET", "HEAD"])
def ready():
    """200 when every check passes, else 503 with the failing ones false."""
    svc = services()
    checks = {
        "models": svc.pipeline is not None,
        "redis": redis_reachable(svc.redis),
        "indexes": svc.indexes.ready,
    }
    ok = all(checks.values())
    return jsonify(status="ready" if ok else "not ready", checks=checks), 200 if ok else 503


def redis_reachable(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError) as exc:
        log.warning("readiness: redis unreachable: %s", type(exc).__name__)
        return False


@blueprint.route("/metrics", methods=["GET"])
def metrics():
    body, content_type = services().metrics.render()
    return Response(body, content_type=content_type)
