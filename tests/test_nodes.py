"""Three facesvc nodes (each a gunicorn with its own data dir and port) on one Redis Cluster,
behind HAProxy running the repo's deploy/haproxy.cfg as it is (Debian's haproxy, installed here
as CI starts from a clean machine): a node reads its own writes at once, the others see them
soon after (the delays are recorded, not asserted: README, "Several machines"), the SDK flow
passes through the balancer, and a killed node loses nothing, is routed around, and catches up
when it returns."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from service.ops.local_server import free_port, start_gunicorn, stop_gunicorn
from tests.helpers import people
from tests.live import ROOT, TALLY
from bench.redis_deployments import wait_for
from tests.sdk_flow_v3 import check_flow, run_flow, v3_flow
from tests.sdks import PYTHON_SDK_V3, PythonSdk

HAPROXY = Path("/usr/sbin/haproxy")
CONFIG = ROOT / "deploy" / "haproxy.cfg"


def ensure_haproxy() -> None:
    if not HAPROXY.exists():
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], check=True, env=apt, timeout=900)


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


@pytest.fixture(scope="module")
def nodes(live_cluster, tmp_path_factory):
    ensure_haproxy()
    started = Nodes(live_cluster.redis_url, tmp_path_factory.mktemp("nodes"))
    yield started
    started.stop()


def call(base: str, token: str, path: str, **form) -> dict:
    return requests.post(f"{base}/rest/2.0/face/v2/{path}", params={"access_token": token}, data=form, timeout=60).json()


def search(base: str, token: str, face_token: str) -> dict:
    """v3 search by a registered face's token: no photo to embed, so the answer comes in a few
    ms and says when the node's index has the face."""
    body = {"image": face_token, "image_type": "FACE_TOKEN", "group_id_list": "g"}
    return requests.post(f"{base}/rest/2.0/face/v3/search", params={"access_token": token}, json=body, timeout=60).json()


def found(answer: dict, uid: str) -> bool:
    return answer["error_code"] == 0 and answer["result"]["user_list"][0]["user_id"] == uid


def test_a_write_on_one_node_is_seen_at_once_there_and_soon_on_the_others(nodes, live_cluster):
    app = live_cluster.new_app()
    token = live_cluster.token(app)
    lags: list[float] = []
    for n, (name, enrolled, _) in enumerate(people(20)):
        uid = f"u{n}"
        body = {"image": enrolled, "image_type": "BASE64", "group_id": "g", "user_id": uid}
        added = requests.post(f"{nodes.bases[0]}/rest/2.0/face/v3/faceset/user/add", params={"access_token": token}, json=body, timeout=60).json()
        answered = time.monotonic()
        face_token = added["result"]["face_token"]
        # Read-your-writes on the node that took the write: its very next search finds it.
        assert found(search(nodes.bases[0], token, face_token), uid)

        def watch(base: str) -> None:
            while not found(search(base, token, face_token), uid):
                assert time.monotonic() - answered < 10  # a guard against a node that never sees it
            lags.append(time.monotonic() - answered)  # an upper bound: the index had it earlier

        watchers = [threading.Thread(target=watch, args=(base,)) for base in nodes.bases[1:]]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            watcher.join()
    TALLY["nodes: ms from a write answered on one node to a search on another finding it, p99"] = int(float(np.percentile(lags, 99)) * 1000)
    TALLY["nodes: the same, median"] = int(float(np.median(lags)) * 1000)


def test_the_sdk_flow_passes_through_the_balancer(nodes, live_cluster):
    steps = v3_flow()
    check_flow(steps, run_flow(PythonSdk(PYTHON_SDK_V3), nodes.base, live_cluster.new_app(), steps, signed=False))


def test_a_killed_node_loses_nothing_is_routed_around_and_catches_up(nodes, live_cluster):
    app = live_cluster.new_app()
    token = live_cluster.token(app)
    # uid -> its photo, of the acknowledged registrations: identifying the very photo checks the
    # node's index, not recognition (another photo of a person may be taken for someone else).
    registered: dict[str, str] = {}
    failures: list[float] = []
    stop = threading.Event()
    everyone = people(600)  # more than can register in the 9 s: one uid per person

    def register_through_the_balancer() -> None:
        for uid, enrolled, _ in everyone:
            if stop.is_set():
                return
            try:
                answer = call(nodes.base, token, "faceset/user/add", uid=uid, user_info="", group_id="g", image=enrolled)
            except requests.RequestException:
                answer = {"error_code": -1}
            if "error_code" in answer:
                failures.append(time.monotonic())
            else:
                registered[uid] = enrolled

    writer = threading.Thread(target=register_through_the_balancer)
    writer.start()
    time.sleep(3)
    before = len(registered)
    killed_at = time.monotonic()
    nodes.kill(1)
    time.sleep(6)  # the balancer notices within 2 s; writes go on meanwhile
    stop.set()
    writer.join(timeout=120)
    assert len(registered) - before >= 5  # registrations went on while the node was down
    assert all(t - killed_at < 3 for t in failures), "the balancer kept sending to the dead node"
    assert len(failures) <= 1  # at most the request in flight on the dead node
    nodes.restart(1)
    # Back, the node has every registration made while it was down (from Redis and the streams).
    for uid, image in list(registered.items())[-10:]:
        assert call(nodes.bases[1], token, "identify", group_id="g", image=image)["result"][0]["uid"] == uid
    users = call(nodes.base, token, "faceset/group/getusers", group_id="g", num=1000)["result"]
    assert len(registered) < 1000
    assert set(registered) <= {entry["uid"] for entry in users}
    TALLY["nodes: requests failed through the balancer when a node was killed"] = len(failures)

