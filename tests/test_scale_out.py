"""facesvc on Redis deployments that shard and fail over (tests/redis_deployments.py): the CLI
and quotas on a Redis Cluster, and a primary SIGKILLed during three concurrent registration
streams on a Cluster and on Sentinel: every acknowledged registration survives, the failover
window answers 216300 (no 5xx, no hang), and service resumes by itself (how fast is recorded,
not asserted: README, "Several machines"). The SDK flows run on both deployments too
(test_sdks.py, test_sdks_v3.py: ``any_live``)."""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from config.defaults import Quotas, load_settings
from service.app import create_app
from service.library.check import check_library
from service.ops import cli
from service.store import keys
from service.store.faces import FaceStore
from service.store.redis_server import connect
from tests.helpers import b64, client_of, photo
from tests.live import ROOT, TALLY, start_live_server, stop_live_server
from tests.redis_deployments import ClusterDeployment, SentinelDeployment, wait_for

PHOTOS = [b64(photo(f"images/person0{n}/{name}")) for n, name in ((1, "img5.jpg"), (2, "img12.jpg"), (3, "img51.jpg"))]
RESUME_GUARD = 30  # seconds after a promotion by which writes must succeed again: a hang guard


def test_cli_and_quotas_work_on_a_cluster(live_cluster, pipeline, tmp_path, monkeypatch, capsys):
    """check, export, restore, import and the keys commands, and the quota script, with no
    CROSSSLOT error: every key an app's script touches is in the app's slot."""
    settings = load_settings(redis_url=live_cluster.redis_url, data_dir=tmp_path, models_dir=ROOT / "var" / "models")
    monkeypatch.setenv("FACESVC_REDIS_URL", live_cluster.redis_url)
    monkeypatch.setenv("FACESVC_DATA_DIR", str(live_cluster.data_dir))
    monkeypatch.setenv("FACESVC_MODELS_DIR", str(ROOT / "var" / "models"))
    app = live_cluster.new_app()
    token = live_cluster.token(app)
    base = f"{live_cluster.base}/rest/2.0/face/v3"
    for n, image in enumerate(PHOTOS):
        answer = requests.post(f"{base}/faceset/user/add", params={"access_token": token}, timeout=60,
                               json={"image": image, "image_type": "BASE64", "group_id": "g", "user_id": f"u{n}"}).json()
        assert answer["error_code"] == 0, answer
    assert cli.main(["check"]) == 0
    backup = tmp_path / "library.jsonl.gz"
    assert cli.main(["export", "--app-id", app.app_id, str(backup)]) == 0
    assert cli.main(["restore", "--app-id", "restored", str(backup)]) == 0
    folder = tmp_path / "photos" / "ann"
    folder.mkdir(parents=True)
    (folder / "1.jpg").write_bytes(photo("images/person05/img62.jpg"))
    assert cli.main(["import", str(tmp_path / "photos"), "--group", "imported", "--app-id", app.app_id]) == 0
    assert cli.main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "3 users" in out and app.api_key in out
    store = FaceStore(connect(live_cluster.redis_url))
    assert store.list_members("restored", "g") == ["u0", "u1", "u2"]
    assert store.list_members(app.app_id, "imported") == ["ann"]
    assert check_library(store) == []
    quoted = create_app(settings.model_copy(update={"quotas": Quotas(app_qps=1)}), pipeline=pipeline)
    try:
        client = client_of(quoted)
        answers = [client.call("faceset/group/getlist") for _ in range(3)]
        assert 18 in [a.get("error_code") for a in answers]
    finally:
        quoted.extensions["facesvc"].close()


@dataclass
class Streams:
    """Three clients registering new users, one request at a time each, until stopped."""

    base: str
    token: str
    answers: list[tuple[float, str, int]] = field(default_factory=list)  # (time, uid, code)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, stream: int) -> None:
        n = 0
        while not self.stop.is_set():
            uid = f"s{stream}_{n}"
            n += 1
            try:
                answer = requests.post(f"{self.base}/rest/2.0/face/v2/faceset/user/add", params={"access_token": self.token},
                                       data={"uid": uid, "user_info": "", "group_id": "g", "image": PHOTOS[stream]}, timeout=70)
                assert answer.status_code == 200, answer.text[:200]
                code = answer.json().get("error_code", 0)
            except requests.RequestException as error:
                code = -1  # a dropped connection: counted, and fails the test below
                print(error)
            self.answers.append((time.monotonic(), uid, code))

    def acknowledged(self) -> set[str]:
        return {uid for _, uid, code in self.answers if code == 0}


def failover(server, kill, promoted, name: str) -> None:
    """Registrations before, during and after ``kill()``; ``promoted()`` says when a replica
    has taken over. Asserts nothing acknowledged is lost and service resumes in time."""
    app = server.new_app()
    streams = Streams(server.base, server.token(app))
    threads = [threading.Thread(target=streams.run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3)
        killed_at = time.monotonic()
        kill(keys.groups(app.app_id))
        wait_for(promoted, "a promoted replica", timeout=60)
        promoted_at = time.monotonic()
        # Until each stream has had 2 s of successes after the promotion (or the bound passed).
        wait_for(lambda: all(_succeeding_since(streams, f"s{i}_", promoted_at) for i in range(3)), "service", timeout=RESUME_GUARD)
    finally:
        streams.stop.set()
        for thread in threads:
            thread.join()
    codes = [code for _, _, code in streams.answers]
    failures = [t for t, _, code in streams.answers if code]
    assert set(codes) <= {0, 216300}, sorted(set(codes))
    resumed = min(t for t, _, code in streams.answers if code == 0 and t > promoted_at) - promoted_at
    present = _users(server, app)
    lost = streams.acknowledged() - present
    assert not lost, f"acknowledged registrations lost: {sorted(lost)[:10]}"
    TALLY[f"failover on {name}: registrations acknowledged"] = len(streams.acknowledged())
    TALLY[f"failover on {name}: 216300 answers"] = len(failures)
    TALLY[f"failover on {name}: ms from the kill to the promotion"] = int(1000 * (promoted_at - killed_at))
    TALLY[f"failover on {name}: ms of failed writes (first to last)"] = int(1000 * (max(failures) - min(failures))) if failures else 0
    TALLY[f"failover on {name}: ms from the promotion to the next success"] = int(1000 * max(0.0, resumed))


def _succeeding_since(streams: Streams, prefix: str, since: float) -> bool:
    mine = [(t, code) for t, uid, code in list(streams.answers) if uid.startswith(prefix) and t > since]
    return bool(mine) and mine[-1][1] == 0 and mine[-1][0] - min(t for t, code in mine if code == 0) >= 2


def _users(server, app) -> set[str]:
    """Every uid of group g, read through the API."""
    token, uids, start = server.token(app), set(), 0
    while True:
        answer = requests.post(f"{server.base}/rest/2.0/face/v2/faceset/group/getusers", params={"access_token": token},
                               data={"group_id": "g", "start": start, "num": 1000}, timeout=60).json()
        page = [entry["uid"] for entry in answer.get("result", [])]
        uids.update(page)
        if len(page) < 1000:
            return uids
        start += 1000


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_a_killed_primary_loses_no_acknowledged_registration(kind, tmp_path):
    deployment = (ClusterDeployment if kind == "cluster" else SentinelDeployment)(tmp_path / "redis")
    server = start_live_server(tmp_path / "facesvc", redis_url=deployment.url)
    try:
        if kind == "cluster":
            state: dict[str, int] = {}

            def kill(key: str) -> None:
                state["key_port"] = deployment.kill_primary(key)
                state["key"] = key

            def promoted() -> bool:
                return deployment.primary_of(state["key"]) != state["key_port"]
        else:
            first = deployment.current_primary()

            def kill(key: str) -> None:
                deployment.kill_primary()

            def promoted() -> bool:
                return deployment.current_primary() != first

        failover(server, kill, promoted, kind)
    finally:
        stop_live_server(server)
        deployment.stop()


def test_a_write_is_answered_only_once_a_replica_has_it(live_sentinel):
    """With the replicas stopped (connected, not acknowledging), a registration waits
    FACESVC_REDIS_WAIT_MS for one and answers 216300; once they run again, writes succeed."""
    deployment = live_sentinel.deployment
    app = live_sentinel.new_app()
    token = live_sentinel.token(app)

    def register(uid: str) -> dict:
        return requests.post(f"{live_sentinel.base}/rest/2.0/face/v2/faceset/user/add", params={"access_token": token},
                             data={"uid": uid, "user_info": "", "group_id": "g", "image": PHOTOS[0]}, timeout=60).json()

    assert "error_code" not in register("before")
    for port in deployment.replicas:
        deployment.processes[port].send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert register("during").get("error_code") == 216300
        assert time.monotonic() - started >= 1.0  # it waited for a replica
    finally:
        for port in deployment.replicas:
            deployment.processes[port].send_signal(signal.SIGCONT)
    wait_for(lambda: "error_code" not in register(f"after_{time.monotonic_ns()}"), "writes with replicas back", timeout=30)
