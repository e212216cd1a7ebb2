"""facesvc on Redis deployments that shard and fail over (bench/redis_deployments.py): the CLI
and quotas on a Redis Cluster, and a primary SIGKILLed during three concurrent registration
streams on a Cluster and on Sentinel (bench/scale_out.py's run): every acknowledged
registration survives, the failover window answers 216300 (no 5xx, no hang), and service
resumes by itself (how fast is printed, not asserted: README, "Several machines"). The SDK
flows run on both deployments too (test_sdks.py, test_sdks_v3.py: ``any_live``)."""
from __future__ import annotations

import signal
import time

import pytest
import requests

from config.defaults import Quotas, load_settings
from service.app import create_app
from service.library.check import check_library
from service.ops import cli
from service.store.faces import FaceStore
from service.store.redis_server import connect
from tests.helpers import client_of, photo
from tests.live import ROOT, TALLY
from bench.redis_deployments import wait_for
from bench.scale_out import PHOTOS, failover_run


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


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_a_killed_primary_loses_no_acknowledged_registration(kind, tmp_path):
    """bench/scale_out.py's run: registrations before, during and after the kill; the figures
    are printed (python -m bench.scale_out measures several runs)."""
    result = failover_run(kind, tmp_path)
    assert result["lost"] == [], f"acknowledged registrations lost: {result['lost'][:10]}"
    assert set(result["codes"]) <= {0, 216300}, result["codes"]
    assert result["acknowledged"] > 0 and result["failed_answers"] > 0
    for name in ("acknowledged", "failed_answers"):
        TALLY[f"failover on {kind}: {name}"] = result[name]
    for name in ("kill_to_promotion_s", "failed_writes_first_to_last_s", "promotion_to_next_success_s"):
        TALLY[f"failover on {kind}: {name.removesuffix('_s')} (ms)"] = int(1000 * result[name])


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
