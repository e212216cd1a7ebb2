"""Several facesvc nodes on one Redis Cluster: how soon a write answered by one node is found
by a search on the others.

Three nodes (gunicorn, one worker each, own data dir and port) behind HAProxy running the repo's
deploy/haproxy.cfg as it is, on a loopback Redis Cluster of 3 primaries + 3 replicas
(bench/redis_deployments.py). Per run, LFW people are registered one at a time through v3 on
node A; after each answer, nodes B and C are searched by the new face's token (no photo to
embed, so a search answers in a few ms) until it is found. The lag is from the write's answer
to the end of the first search that finds it: an upper bound (the index had the face earlier).
tests/test_nodes.py runs one measurement and the failure cases; this runs ``--runs`` of them.

    python -m bench.nodes [--runs 3] [--people 40] [--out bench/results/nodes.json]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from bench.debian import ensure_debian_packages
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR
from bench.redis_deployments import ClusterDeployment, wait_for
from config.defaults import load_settings
from service.auth.credentials import Auth
from service.ops.local_server import ROOT, free_port, start_gunicorn, stop_gunicorn
from service.store.redis_server import connect

HAPROXY = Path("/usr/sbin/haproxy")
CONFIG = ROOT / "deploy" / "haproxy.cfg"
GUARD_SECONDS = 10  # a node that never sees a write fails the run instead of hanging it


def ensure_haproxy() -> None:
    ensure_debian_packages({str(HAPROXY): "haproxy"})


class Nodes:
    """The nodes and the balancer; ``base`` is the balancer's URL."""

    def __init__(self, redis_url: str, directory: Path) -> None:
        self.redis_url, self.directory = redis_url, directory
        self.processes: list[subprocess.Popen] = []
        self.bases: list[str] = []
        for n in range(3):
            process, base = start_gunicorn(redis_url, directory / f"node{n}", workers=1, log_path=directory / f"node{n}.log")
            self.processes.append(process)
            self.bases.append(base)
        port = free_port()
        env = {**os.environ, "FACESVC_LISTEN": f"127.0.0.1:{port}"}
        env.update({f"FACESVC_NODE{n + 1}": base.removeprefix("http://") for n, base in enumerate(self.bases)})
        self.haproxy = subprocess.Popen([str(HAPROXY), "-f", str(CONFIG), "-db"], env=env, start_new_session=True,
                                        stdout=open(directory / "haproxy.log", "ab"), stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{self.base}/ready", timeout=2).status_code == 200, "haproxy")

    def kill(self, n: int) -> None:
        os.killpg(self.processes[n].pid, signal.SIGKILL)
        self.processes[n].wait()

    def restart(self, n: int) -> None:
        """Node n again, on its port (the balancer's configuration names it)."""
        port = int(self.bases[n].rsplit(":", 1)[1])
        self.processes[n], _ = start_gunicorn(self.redis_url, self.directory / f"node{n}", workers=1,
                                              log_path=self.directory / f"node{n}.log", port=port)

    def stop(self) -> None:
        self.haproxy.terminate()
        self.haproxy.wait(timeout=10)
        for process in self.processes:
            stop_gunicorn(process)


def people(count: int) -> list[tuple[str, str, str]]:
    """(name, enrolment photo, another photo), base64, of LFW people with two or more photos."""
    chosen = []
    for folder in sorted((LFW_DIR / "images").iterdir()):
        photos = sorted(folder.iterdir())
        if len(photos) >= 2:
            encoded = [base64.b64encode(photo.read_bytes()).decode() for photo in photos[:2]]
            chosen.append((re.sub(r"\W", "_", folder.name), *encoded))
        if len(chosen) == count:
            return chosen
    raise LookupError(count)


def v3(base: str, token: str, path: str, body: dict) -> dict:
    return requests.post(f"{base}/rest/2.0/face/v3/{path}", params={"access_token": token}, json=body, timeout=60).json()


def found(base: str, token: str, face_token: str, uid: str) -> bool:
    answer = v3(base, token, "search", {"image": face_token, "image_type": "FACE_TOKEN", "group_id_list": "g"})
    return answer["error_code"] == 0 and answer["result"]["user_list"][0]["user_id"] == uid


def visibility_lags(nodes: Nodes, token: str, count: int) -> list[float]:
    """Seconds from each registration answered by node A to a search on B and on C finding it
    (two per registration); asserts that A's own next search finds it (read-your-writes)."""
    lags: list[float] = []
    for n, (_, enrolled, _) in enumerate(people(count)):
        uid = f"u{n}"
        added = v3(nodes.bases[0], token, "faceset/user/add", {"image": enrolled, "image_type": "BASE64", "group_id": "g", "user_id": uid})
        answered = time.monotonic()
        face_token = added["result"]["face_token"]
        assert found(nodes.bases[0], token, face_token, uid), "node A did not read its own write"

        def watch(base: str) -> None:
            while not found(base, token, face_token, uid):
                if time.monotonic() - answered > GUARD_SECONDS:
                    raise TimeoutError(f"{base} never found {uid}")
            lags.append(time.monotonic() - answered)

        watchers = [threading.Thread(target=watch, args=(base,)) for base in nodes.bases[1:]]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            watcher.join()
    if len(lags) != 2 * count:
        raise TimeoutError("a node never saw a write")
    return lags


def visibility_run(directory: Path, count: int) -> dict:
    deployment = ClusterDeployment(directory / "redis")
    nodes = Nodes(deployment.url, directory)
    try:
        app = Auth.from_settings(connect(deployment.url), load_settings(data_dir=directory / "node0")).create_keys()
        grant = {"grant_type": "client_credentials", "client_id": app.api_key, "client_secret": app.secret_key}
        token = requests.post(f"{nodes.base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
        lags = visibility_lags(nodes, token, count)
    finally:
        nodes.stop()
        deployment.stop()
    return {"measurements": len(lags), "median_ms": 1000 * float(np.median(lags)), "p99_ms": 1000 * float(np.percentile(lags, 99)), "max_ms": 1000 * max(lags)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "nodes.json")
    args = parser.parse_args()
    ensure_haproxy()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as directory:
            runs.append(visibility_run(Path(directory), args.people))
    report = {"benchmark": "nodes", "git": git_revision(), "machine": machine_info(), "people": args.people, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'':<28} {'median':>8} {'p99':>8} {'max':>8}   (ms from a write answered on A to a search on B or C finding it)")
    for n, run in enumerate(runs):
        label = f"run {n + 1} ({run['measurements']} lags)"
        print(f"{label:<28} {run['median_ms']:>8.1f} {run['p99_ms']:>8.1f} {run['max_ms']:>8.1f}")
    medians = {name: float(np.median([run[name] for run in runs])) for name in ("median_ms", "p99_ms", "max_ms")}
    print(f"{'median of the runs':<28} {medians['median_ms']:>8.1f} {medians['p99_ms']:>8.1f} {medians['max_ms']:>8.1f}")


if __name__ == "__main__":
    main()
