"""``create_app(settings)``: builds the Redis client, auth, pipeline and face library once and
hands them to the routes through ``app.extensions``."""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Optional

import redis
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from config.defaults import Settings
from index.group_index import set_threads
from index.registry import IndexRegistry
from index.snapshot import SnapshotStore
from index.sync import IndexSync
from service.auth import Auth, OAuthError
from service.changelog import RedisChangeSource, library_id, load_all_faces
from service.errors import FaceError
from service.library import Library
from service.metrics import Metrics, instrument_pipeline
from service.quota import Quota
from service.redis_server import EmbeddedRedis, connect, ensure_redis
from workers.pipeline import Pipeline

log = logging.getLogger(__name__)
access_log = logging.getLogger("facesvc.access")


@dataclass
class Services:
    """Everything a request handler may call, built once per process."""

    settings: Settings
    redis: redis.Redis
    auth: Auth
    quota: Quota
    pipeline: Pipeline
    library: Library
    sync: IndexSync
    metrics: Metrics
    embedded_redis: Optional[EmbeddedRedis] = None

    def close(self) -> None:
        self.sync.stop()
        if self.embedded_redis:
            self.embedded_redis.stop()


def create_app(settings: Settings, pipeline: Optional[Pipeline] = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    # Baidu bodies are form-encoded base64 images: let a form field be as large as the body.
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.limits.max_body_bytes
    app.json.sort_keys = False

    url, embedded = ensure_redis(settings.redis_url, settings.data_dir, settings.redis_appendfsync)
    client = connect(url)
    pipeline = pipeline or Pipeline.load(settings.model_cache, settings.models, settings.limits.max_image_pixels)
    sync = start_index_sync(client, pipeline.model_id, pipeline.embedder.dim, settings)
    metrics = Metrics(sync.registry)
    instrument_pipeline(pipeline, metrics)
    services = Services(
        settings=settings,
        redis=client,
        auth=Auth.from_settings(client, settings),
        quota=Quota(client, settings.quotas),
        pipeline=pipeline,
        library=Library(client, sync.registry, sync, pipeline.model_id),
        sync=sync,
        metrics=metrics,
        embedded_redis=embedded,
    )
    app.extensions["facesvc"] = services

    from service.routes import console, ops, register_routes

    register_routes(app)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(console.blueprint)
    _register_hooks(app)
    return app


def start_index_sync(client: redis.Redis, model_id: str, dim: int, settings: Settings) -> IndexSync:
    """Load the newest index snapshot, or else every face from Redis, then follow the change
    stream from the position the snapshot includes (from where the load began), so that
    writes made since are replayed rather than lost."""
    set_threads(settings.index.threads)
    source = RedisChangeSource(client, model_id)
    snapshots = SnapshotStore(settings.snapshot_dir, model_id, library_id(client))
    snapshot = snapshots.load(settings.index.approx_from, source.holds_after)
    if snapshot:
        registry, position = snapshot.registry, snapshot.position
    else:
        registry, position = IndexRegistry(dim, settings.index.approx_from), source.head()
        load_all_faces(client, registry, model_id)
    sync = IndexSync(
        registry, source, position, snapshots, settings.index.snapshot_seconds, position if snapshot else None
    )
    replayed = sync.catch_up()
    sync.start()
    faces = sum(registry.size(app, group) for app, group in registry.groups())
    origin = f"snapshot at {position} + {replayed} changes" if snapshot else "Redis"
    log.info("indexes loaded from %s: %d faces in %d groups", origin, faces, len(registry.groups()))
    return sync


def new_log_id() -> int:
    """A random 53-bit id: fits Baidu's uint64, and JavaScript clients (the Node SDK) parse it
    exactly, as JSON numbers beyond 2**53 lose their last digits in a double."""
    return secrets.randbits(53)


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        g.log_id = new_log_id()
        g.started = time.perf_counter()
        g.app_id = None
        g.error_code = 0

    @app.after_request
    def log_request(response):
        """One access line and one metrics sample per request. The endpoint is the matched
        route, never the URL, so a token in the query string never reaches a log."""
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        error_code = g.get("error_code", 0)
        app.extensions["facesvc"].metrics.observe_request(endpoint, error_code, seconds)
        fields = {
            "log_id": g.get("log_id"),
            "app": g.get("app_id"),
            "endpoint": endpoint,
            "status": response.status_code,
            "error_code": error_code,
            "latency_ms": round(seconds * 1000, 1),
        }
        access_log.info(" ".join(f"{k}=%s" for k in fields), *fields.values(), extra=fields)
        return response

    @app.errorhandler(FaceError)
    def face_error(error: FaceError):
        g.error_code = error.code
        if error.detail:
            log.info("log_id=%s error %s: %s", g.get("log_id"), error.code, error.detail)
        return jsonify(error_code=error.code, error_msg=error.message, log_id=g.get("log_id", new_log_id())), 200

    @app.errorhandler(OAuthError)
    def oauth_error(error: OAuthError):
        return jsonify(error=error.error, error_description=error.description), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        return face_error(FaceError(216202, "request body too large"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code in (404, 405):
            return face_error(FaceError(216102, f"{request.method} {request.path}"))
        return face_error(FaceError(216100, error.description))

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, redis.RedisError):
            log.exception("log_id=%s redis failure", g.get("log_id"))
            return face_error(FaceError(216300, type(error).__name__))
        log.exception("log_id=%s unexpected error", g.get("log_id"))
        return face_error(FaceError(216401, type(error).__name__))
