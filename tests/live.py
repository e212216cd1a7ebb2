"""facesvc under gunicorn on a loopback port, for tests that need the real server: crashes,
the official SDKs, hostile input, concurrency. One server per test session (``live`` fixture in
conftest) with its own Redis, so the per-test ``flushall`` of the in-process tests never touches
it; each test makes its own app (key pair) there. ``live_cluster`` and ``live_sentinel`` are the
same on a Redis Cluster and on a Sentinel-watched primary (bench/redis_deployments.py)."""
from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import psutil
import requests

from config.defaults import load_settings
from service.auth.credentials import AppKeys, Auth
from service.ops.local_server import start_gunicorn, stop_gunicorn
from service.store.redis_server import EmbeddedRedis, connect

ROOT = Path(__file__).resolve().parent.parent
# Calls the SDK and hostile-input suites made, by kind; conftest prints them after the run.
TALLY: Counter[str] = Counter()


@dataclass
class LiveServer:
    """A running gunicorn with its Redis, data directory and log file."""

    base: str
    process: subprocess.Popen
    redis_url: str
    data_dir: Path
    log_path: Path
    embedded: Optional[EmbeddedRedis] = None  # stopped with the server
    deployment: Any = None  # the Redis Cluster or Sentinel deployment it runs on, if any

    def new_app(self) -> AppKeys:
        """A fresh app with its key pair, sealed under the server's master key."""
        return Auth.from_settings(connect(self.redis_url), load_settings(data_dir=self.data_dir)).create_keys()

    def token(self, keys: AppKeys) -> str:
        grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
        return requests.post(f"{self.base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]

    def worker_rss(self) -> int:
        """Resident memory of the gunicorn workers together, in bytes."""
        return sum(child.memory_info().rss for child in psutil.Process(self.process.pid).children())

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_live_server(data_dir: Path, workers: int = 2, redis_url: Optional[str] = None) -> LiveServer:
    """The server on ``redis_url``, or on an embedded Redis of its own."""
    data_dir.mkdir(parents=True, exist_ok=True)
    embedded = None if redis_url else EmbeddedRedis(data_dir, "everysec").start()
    redis_url = redis_url or embedded.url
    log_path = data_dir / "gunicorn.log"
    # Every test client is 127.0.0.1 and the SDK suites send wrong secrets on purpose: no
    # failed-grant limit here (tests/test_token.py tests it).
    # Short read timeouts, so that the slow-client tests see a trickler dropped.
    env = {"FACESVC_MAX_FAILED_GRANTS": "0", "FACESVC_REQUEST_HEADER_TIMEOUT": "3", "FACESVC_REQUEST_READ_TIMEOUT": "6"}
    process, base = start_gunicorn(redis_url, data_dir, workers=workers, log_path=log_path, env=env)
    return LiveServer(base, process, redis_url, data_dir, log_path, embedded)


def stop_live_server(server: LiveServer) -> None:
    stop_gunicorn(server.process)
    if server.embedded:
        server.embedded.stop()
