"""``create_app(settings)``: the composition root. Builds the Redis client, store, auth,
pipeline, vector search, face library and score map once per process, checks what can be
checked at start-up, and hands them to the routes through ``app.extensions``."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Optional

from flask import Flask, g, request

from config.defaults import Settings
from index.local import LocalIndexes
from service.api.blueprints import register_api
from service.api.endpoint import new_log_id
from service.api.scores import ScoreMap
from service.auth.credentials import Auth
from service.auth.quota import Quota
from service.inference import load_pipeline
from service.library.face_library import Library
from service.library.indexes import start_indexes
from service.ops.metrics import Metrics, instrument_pipeline
from service.store.faces import FaceStore
from service.store.redis_server import EmbeddedRedis, RedisClient, connect, ensure_redis
from workers.pipeline import Pipeline

log = logging.getLogger(__name__)
access_log = logging.getLogger("facesvc.access")


@dataclass
class Services:
    """Everything a request handler may call, built once per process."""

    settings: Settings
    redis: RedisClient
    auth: Auth
    quota: Quota
    pipeline: Pipeline
    score_map: ScoreMap
    library: Library
    indexes: LocalIndexes
    metrics: Metrics
    embedded_redis: Optional[EmbeddedRedis] = None

    def close(self) -> None:
        self.indexes.close()
        if self.embedded_redis:
            self.embedded_redis.stop()


def create_app(settings: Settings, pipeline: Optional[Pipeline] = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    # Baidu bodies are form-encoded base64 images: let a form field be as large as the body.
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.limits.max_body_bytes
    app.json.sort_keys = False
    # Werkzeug answers "//" in a path with a redirect to an absolute URL built from the Host
    # header (/console// -> http://<any host>/console/): no route here needs it.
    app.url_map.merge_slashes = False

    pipeline = pipeline or load_pipeline(settings)
    # Fails here, not on the first identify, when the model has no calibration.
    score_map = ScoreMap.for_model(pipeline.model_id)
    url, embedded = ensure_redis(settings.redis_url, settings.data_dir, settings.redis_appendfsync)
    client = connect(url)
    store = FaceStore(client, settings.redis_wait_replicas, settings.redis_wait_ms)
    indexes = start_indexes(store, pipeline.model_id, pipeline.embedder.dim, settings)
    metrics = Metrics(indexes.registry, settings.metrics_per_group)
    instrument_pipeline(pipeline, metrics)
    app.extensions["facesvc"] = Services(
        settings=settings,
        redis=client,
        auth=Auth.from_settings(client, settings),
        quota=Quota(client, settings.quotas),
        pipeline=pipeline,
        score_map=score_map,
        library=Library(store, indexes, pipeline.model_id),
        indexes=indexes,
        metrics=metrics,
        embedded_redis=embedded,
    )
    register_api(app)
    _register_hooks(app)
    return app


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
