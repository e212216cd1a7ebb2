"""A Docker engine of its own for the deployment tests and the image benchmark: Debian's docker.io
(with debootstrap and docker-compose) installed when missing, a dockerd on its own socket, data
root and exec root under a temporary folder, and everything it made removed when it stops.

Docker Hub cannot be reached from CI, so the images the deployment files name are stood in for
by images built from Debian packages (deploy/stand-in-base.sh) and passed as build arguments or
compose variables. Builds reach PyPI, npm and the Debian mirror through the engine's default
bridge network (NAT by the engine's iptables rules); its MTU is the host's, since a container
MTU above the path's stalls TLS downloads (1400 on the CI machines)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import requests

from bench.debian import ensure_debian_packages

ROOT = Path(__file__).resolve().parent.parent
STAND_IN = ROOT / "deploy" / "stand-in-base.sh"
# docker.io's own client: the static one some machines have in /usr/local/bin is newer and
# wants a buildx plugin for BuildKit builds.
DOCKER = "/usr/bin/docker"
COMPOSE = "/usr/bin/docker-compose"
DOCKERD = "/usr/sbin/dockerd"
PACKAGES = {DOCKERD: "docker.io", DOCKER: "docker.io", COMPOSE: "docker-compose", "/usr/sbin/debootstrap": "debootstrap"}
BASE_TAG = "facesvc-stand-in/python:3.11-bookworm"
REDIS_TAG = "facesvc-stand-in/redis:7-bookworm"


def host_mtu() -> int:
    """MTU of the interface of the default route."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return int(Path(f"/sys/class/net/{fields[0]}/mtu").read_text())
    return 1500


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Seconds until ``condition()`` holds (connection errors count as not yet)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return time.monotonic() - started
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


def wait_ready(base: str, timeout: float = 180) -> float:
    """Seconds until facesvc at ``base`` answers /ready with 200 (models loaded, Redis, indexes)."""
    return wait_until(lambda: requests.get(f"{base}/ready", timeout=2).status_code == 200, f"{base}/ready", timeout)


class DockerEngine:
    """A dockerd of its own; ``run``/``compose`` are its clients."""

    def __init__(self) -> None:
        ensure_debian_packages(PACKAGES)
        # Short paths: unix socket paths (containerd's is under the exec root) have 108 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="facesvc-docker-"))
        self.socket = self.directory / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "1",
                    "COMPOSE_DOCKER_CLI_BUILD": "1", "PATH": f"/usr/bin:{os.environ.get('PATH', '')}"}
        self.log = self.directory / "dockerd.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [DOCKERD, "--data-root", str(self.directory / "root"), "--exec-root", str(self.directory / "exec"),
                 "--pidfile", str(self.directory / "dockerd.pid"), "-H", f"unix://{self.socket}",
                 "--mtu", str(host_mtu())],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_until(lambda: self.run("version", check=False).returncode == 0, "dockerd", 60)
        except TimeoutError:
            self.stop()
            raise

    def run(self, *args: str, check: bool = True, timeout: float = 300, input: Optional[str] = None) -> subprocess.CompletedProcess:
        """``docker <args>`` on this engine; output as text."""
        return self._client([DOCKER, *args], check, timeout, input)

    def compose(self, project: Path, name: str, *args: str, env: Optional[dict[str, str]] = None,
                check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """``docker-compose -p name <args>`` on ``project``'s docker-compose.yml, with ``env``
        for its variables."""
        command = [COMPOSE, "--project-directory", str(project), "-f", str(project / "docker-compose.yml"), "-p", name, *args]
        return self._client(command, check, timeout, None, env)

    def _client(self, command: list[str], check: bool, timeout: float, input: Optional[str],
                env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
        done = subprocess.run(command, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, input=input)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def stand_ins(self) -> None:
        """The stand-in python and redis images (deploy/stand-in-base.sh)."""
        subprocess.run([str(STAND_IN), BASE_TAG, REDIS_TAG], env=self.env, check=True, timeout=900)

    def build(self, tag: str, context: Path = ROOT, *args: str) -> float:
        """Seconds to build the Dockerfile of ``context`` on the stand-in base as ``tag``."""
        started = time.monotonic()
        self.run("build", "--build-arg", f"BASE={BASE_TAG}", "--tag", tag, *args, str(context), timeout=1800)
        return time.monotonic() - started

    def inspect(self, thing: str) -> dict:
        return json.loads(self.run("inspect", thing).stdout)[0]

    def port(self, container: str, private: int = 8080) -> str:
        """The loopback base URL that ``private`` of ``container`` is published on."""
        binding = self.run("port", container, str(private)).stdout.split()[0]
        return f"http://127.0.0.1:{binding.rpartition(':')[2]}"

    def wait_healthy(self, container: str, timeout: float = 180) -> float:
        """Seconds until the image's HEALTHCHECK calls ``container`` healthy."""
        def healthy() -> bool:
            state = self.inspect(container)["State"]
            if state["Status"] in ("exited", "dead"):
                logs = self.run("logs", "--tail", "50", container, check=False)
                raise RuntimeError(f"{container} exited {state['ExitCode']}: {logs.stdout}{logs.stderr}")
            return state["Health"]["Status"] == "healthy"

        return wait_until(healthy, f"{container} healthy", timeout)

    def stop(self) -> None:
        """Remove every container, volume, network and image, stop dockerd, delete its folder."""
        if self.process.poll() is None:
            if self.run("version", check=False).returncode == 0:
                containers = self.run("ps", "-aq", check=False).stdout.split()
                if containers:
                    self.run("rm", "-f", "-v", *containers, check=False)
                self.run("system", "prune", "-af", "--volumes", check=False, timeout=600)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # dockerd unmounts what it mounted when it stops; a mount left over keeps its folder.
        subprocess.run(["umount", "-R", "-l", str(self.directory / "exec")], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)
