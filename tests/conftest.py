"""Shared fixtures: real models, a real embedded redis-server, the Flask app and a client that
speaks Baidu's form-encoded protocol. Each test starts with an empty Redis."""
from __future__ import annotations

from typing import Iterator

import pytest

from config.defaults import Enrolment, Quotas, load_settings
from service.app import create_app
from service.store.redis_server import EmbeddedRedis, connect
from service.inference import load_pipeline
from tests.helpers import ROOT, BaiduClient
from tests.live import TALLY, LiveServer, start_live_server, stop_live_server
from bench.redis_deployments import ClusterDeployment, SentinelDeployment
from workers.pipeline import Pipeline

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), "everysec").start()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """How many calls went through each official SDK and how many hostile requests were sent."""
    for name, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{name}: {count}")


@pytest.fixture(scope="session")
def live(tmp_path_factory) -> LiveServer:
    """facesvc under gunicorn (2 workers) with its own Redis, shared by the session's live tests;
    each test makes its own app there (``live.new_app()``)."""
    server = start_live_server(tmp_path_factory.mktemp("live"))
    yield server
    stop_live_server(server)


def live_on(deployment_class, tmp_path_factory, name: str) -> Iterator[LiveServer]:
    """facesvc under gunicorn on a Redis deployment of ``deployment_class``, both stopped after."""
    deployment = deployment_class(tmp_path_factory.mktemp(f"{name}-redis"))
    server = start_live_server(tmp_path_factory.mktemp(name), redis_url=deployment.url)
    server.deployment = deployment
    yield server
    stop_live_server(server)
    deployment.stop()


@pytest.fixture(scope="session")
def live_cluster(tmp_path_factory) -> Iterator[LiveServer]:
    """facesvc under gunicorn on a Redis Cluster of 3 primaries and 3 replicas."""
    yield from live_on(ClusterDeployment, tmp_path_factory, "cluster")


@pytest.fixture(scope="session")
def live_sentinel(tmp_path_factory) -> Iterator[LiveServer]:
    """facesvc under gunicorn on a primary with 2 replicas watched by 3 sentinels."""
    yield from live_on(SentinelDeployment, tmp_path_factory, "sentinel")


@pytest.fixture(params=["embedded", "cluster", "sentinel"])
def any_live(request) -> LiveServer:
    """The live server on each kind of Redis in turn: the SDK flows run on all three."""
    return request.getfixturevalue({"embedded": "live", "cluster": "live_cluster", "sentinel": "live_sentinel"}[request.param])


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    settings = load_settings(data_dir=ROOT / "var")
    return load_pipeline(settings)


@pytest.fixture
def settings(redis_server, tmp_path):
    return load_settings(redis_url=redis_server.url, data_dir=tmp_path, models_dir=ROOT / "var" / "models")


@pytest.fixture
def redis_client(redis_server):
    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.flushall()


@pytest.fixture
def app(settings, pipeline, redis_client):
    app = create_app(settings, pipeline=pipeline)
    yield app
    app.extensions["facesvc"].close()


@pytest.fixture
def services(app):
    return app.extensions["facesvc"]


@pytest.fixture
def app_with_quotas(settings, pipeline, redis_client):
    """``app_with_quotas(**quotas)``: another app on the test's Redis with those request quotas."""
    made = []

    def make(**quotas: int):
        made.append(create_app(settings.model_copy(update={"quotas": Quotas(**quotas)}), pipeline=pipeline))
        return made[-1]

    yield make
    for app in made:
        app.extensions["facesvc"].close()


@pytest.fixture
def gated_app(settings, pipeline, redis_client):
    """Another app on the test's Redis with the enrolment gate on at its default limits."""
    app = create_app(settings.model_copy(update={"enrolment": Enrolment(enabled=True)}), pipeline=pipeline)
    yield app
    app.extensions["facesvc"].close()


@pytest.fixture
def app_keys(services):
    return services.auth.create_keys()


@pytest.fixture
def token(services, app_keys) -> str:
    return services.auth.issue_token(app_keys.api_key, app_keys.secret_key)["access_token"]


@pytest.fixture
def api(app, token) -> BaiduClient:
    return BaiduClient(app.test_client(), token)


@pytest.fixture
def cli_env(monkeypatch, settings):
    """The CLI reads its settings from the environment: point it at the test Redis and models."""
    monkeypatch.setenv("FACESVC_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("FACESVC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FACESVC_MODELS_DIR", str(settings.model_cache))
