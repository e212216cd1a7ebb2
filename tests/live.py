"""facesvc under gunicorn on a loopback port, for tests that need the real server: crashes,
the official SDKs, hostile input, concurrency. One server per test session (``live`` fixture in
conftest) with its own Redis, so the per-test ``flushall`` of the in-process tests never touches
it; each test makes its own app (key pair) there."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import psutil
import requests

from config.defaults import load_settings
from service.auth.credentials import AppKeys, Auth
from service.store.redis_server import EmbeddedRedis, connect

ROOT = Path(__file__).resolve().parent.parent
# Calls the SDK and hostile-input suites made, by kind; conftest prints them after the run.
TALLY: Counter[str] = Counter()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    redis_url: str, data_dir, workers: int = 1, log_path: Optional[Path] = None, env: Optional[dict[str, str]] = None
) -> tuple[subprocess.Popen, str]:
    """facesvc under gunicorn on a free loopback port, in its own process group; its output
    goes to ``log_path`` (discarded when None)."""
    port = free_port()
    environment = {
        **os.environ,
        "FACESVC_REDIS_URL": redis_url,
        "FACESVC_BIND": f"127.0.0.1:{port}",
        "FACESVC_WORKERS": str(workers),
        "FACESVC_THREADS": "4",
        "FACESVC_DATA_DIR": str(data_dir),
        "FACESVC_MODELS_DIR": str(ROOT / "var" / "models"),
        **(env or {}),
    }
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py")],
        env=environment, cwd=ROOT, start_new_session=True, stdout=output, stderr=output,
    )
    if log_path:
        output.close()  # the child holds its own descriptor
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/rest/2.0/face/v2/detect", timeout=1)
            return process, base
        except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker yet
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("gunicorn did not start")


def stop_gunicorn(process: subprocess.Popen) -> None:
    """SIGTERM the process group (graceful), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class LiveServer:
    """A running gunicorn with its Redis, data directory and log file."""

    base: str
    process: subprocess.Popen
    redis: EmbeddedRedis
    data_dir: Path
    log_path: Path

    def new_app(self) -> AppKeys:
        """A fresh app with its key pair, sealed under the server's master key."""
        return Auth.from_settings(connect(self.redis.url), load_settings(data_dir=self.data_dir)).create_keys()

    def token(self, keys: AppKeys) -> str:
        grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
        return requests.post(f"{self.base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]

    def worker_rss(self) -> int:
        """Resident memory of the gunicorn workers together, in bytes."""
        return sum(child.memory_info().rss for child in psutil.Process(self.process.pid).children())

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_live_server(data_dir: Path, workers: int = 2) -> LiveServer:
    redis = EmbeddedRedis(data_dir, "everysec").start()
    log_path = data_dir / "gunicorn.log"
    process, base = start_gunicorn(redis.url, data_dir, workers=workers, log_path=log_path)
    return LiveServer(base, process, redis, data_dir, log_path)


def stop_live_server(server: LiveServer) -> None:
    stop_gunicorn(server.process)
    server.redis.stop()
