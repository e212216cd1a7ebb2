"""/health, /ready, /metrics and the access log: what an operator's tooling reads."""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service.api import scores
from service.api.scores import ScoreMap
from service.app import create_app
from service.auth.credentials import AppKeys, Auth
from service.ops import cli
from service.ops.files import announce_first_app, loose_modes
from service.ops.local_server import free_port
from service.ops.logs import JsonFormatter
from service.store.redis_server import EmbeddedRedis, connect
from tests.helpers import ROOT, b64, photo

DETECT = "/rest/2.0/face/v2/detect"
PHOTO = "images/person01/img11.jpg"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_health_answers_without_a_token(app):
    response = app.test_client().get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "up"}


def test_ready_when_models_redis_and_indexes_are_up(app):
    response = app.test_client().get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"models": True, "redis": True, "indexes": True}}


def test_not_ready_without_redis(app, services):
    services.redis = connect("redis://127.0.0.1:1/0")
    response = app.test_client().get("/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"models": True, "redis": False, "indexes": True}


def test_not_ready_when_the_index_no_longer_follows_the_stream(app, services):
    services.indexes.sync.stop()
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and response.get_json()["checks"]["indexes"] is False


def test_a_model_without_score_calibration_stops_the_start_not_the_first_identify(settings, pipeline, tmp_path, monkeypatch):
    """The calibration is looked up while the app is built: a missing one is a start-up error,
    never a 216401 on the first identify."""
    empty = tmp_path / "calibration.json"
    empty.write_text("{}")
    monkeypatch.setattr(scores, "CALIBRATION_FILE", empty)
    ScoreMap.for_model.cache_clear()
    try:
        with pytest.raises(KeyError, match="no score calibration"):
            create_app(settings, pipeline=pipeline)
    finally:
        ScoreMap.for_model.cache_clear()


def test_metrics_count_requests_per_endpoint_and_error_code(app, api, services):
    api.call("detect", image=b64(photo(PHOTO)))
    api.call("faceset/user/add", uid="ann", user_info="Ann", group_id="staff", image=b64(photo(PHOTO)))
    api.call("faceset/user/add", uid="ann", user_info="Ann", group_id="staff", image=b64(photo(PHOTO)))  # 216616
    app.test_client().post(f"{DETECT}?access_token=wrong")

    response = app.test_client().get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    found = samples(response.get_data(as_text=True))
    add = "/rest/2.0/face/v2/faceset/user/add"
    assert found[("facesvc_requests_total", (("endpoint", DETECT), ("error_code", "0")))] == 1
    assert found[("facesvc_requests_total", (("endpoint", add), ("error_code", "0")))] == 1
    assert found[("facesvc_requests_total", (("endpoint", add), ("error_code", "216616")))] == 1
    assert found[("facesvc_requests_total", (("endpoint", DETECT), ("error_code", "110")))] == 1
    assert found[("facesvc_request_seconds_count", (("endpoint", DETECT), ("error_code", "0")))] == 1


def test_metrics_time_each_model_stage_and_report_index_sizes(app, api, services, app_keys):
    api.call("faceset/user/add", uid="ann", user_info="Ann", group_id="staff", image=b64(photo(PHOTO)))
    api.call("detect", image=b64(photo(PHOTO)), face_fields="age,gender")

    found = samples(app.test_client().get("/metrics").get_data(as_text=True))
    for stage in ("detect", "embed", "dlib_age", "dlib_gender"):
        assert found[("facesvc_model_seconds_count", (("stage", stage),))] >= 1, stage
        assert found[("facesvc_model_seconds_sum", (("stage", stage),))] > 0, stage
    assert found[("facesvc_model_batch_size_sum", (("stage", "embed"),))] >= 1
    assert (found[("facesvc_index_faces", ())], found[("facesvc_index_groups", ())]) == (1, 1)
    assert found[("facesvc_index_vector_bytes", ())] == services.indexes.registry.dim * 4


def test_metrics_name_no_app_or_group_unless_per_group_series_are_asked_for(app, api, app_keys, settings, pipeline):
    """/metrics needs no token: by default it shows totals, never a tenant's ids or groups."""
    api.call("faceset/user/add", uid="ann", user_info="Ann", group_id="secret_group", image=b64(photo(PHOTO)))
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "secret_group" not in text and app_keys.app_id not in text
    per_group = create_app(settings.model_copy(update={"metrics_per_group": True}), pipeline=pipeline)
    try:
        found = samples(per_group.test_client().get("/metrics").get_data(as_text=True))
        assert found[("facesvc_group_faces", (("app", app_keys.app_id), ("group", "secret_group")))] == 1
        api.call("faceset/user/delete", uid="ann")
        per_group.extensions["facesvc"].indexes.catch_up()
        text = per_group.test_client().get("/metrics").get_data(as_text=True)
        assert "secret_group" not in text  # a deleted group's series goes
    finally:
        per_group.extensions["facesvc"].close()


def capture_json_logs() -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    return stream, handler


def test_json_access_lines_carry_the_request_and_never_a_secret_token_or_image(app, app_keys, caplog):
    caplog.set_level(logging.INFO)
    stream, handler = capture_json_logs()
    image = b64(photo(PHOTO))
    try:
        client = app.test_client()
        grant = {"grant_type": "client_credentials", "client_id": app_keys.api_key, "client_secret": app_keys.secret_key}
        token = client.post("/oauth/2.0/token", data=grant).get_json()["access_token"]
        client.post(f"{DETECT}?access_token={token}", data={"image": image})
        client.post(f"{DETECT}?access_token={token}", data={"image": "bm90IGFuIGltYWdl"})  # 216201
        client.post("/rest/2.0/face/v2/faceset/user/add", data={"access_token": token, "uid": "x", "image": image})
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    for secret in (app_keys.secret_key, token, image[:40], "bm90IGFuIGltYWdl"):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    access = [line for line in lines if line["logger"] == "facesvc.access"]
    assert [(a["endpoint"], a["error_code"]) for a in access] == [
        ("/oauth/2.0/token", 0),
        (DETECT, 0),
        (DETECT, 216201),
        ("/rest/2.0/face/v2/faceset/user/add", 216101),
    ]
    assert all(a["app"] == app_keys.app_id for a in access[1:])
    assert all(isinstance(a["log_id"], int) and a["latency_ms"] >= 0 and a["status"] == 200 for a in access)


@pytest.mark.slow
def test_serve_sums_metrics_over_gunicorn_workers_and_logs_json(tmp_path, redis_server, settings):
    """``facesvc serve`` with two workers: a scrape counts every worker's requests; the metrics
    folder of an earlier run is emptied; stderr is JSON with no secret or token in it."""
    client = connect(redis_server.url)
    client.flushall()
    keys = Auth.from_settings(client, settings).create_keys()
    stale = tmp_path / "metrics" / "counter_999.db"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    port = free_port()
    env = {
        **os.environ,
        "FACESVC_REDIS_URL": redis_server.url,
        "FACESVC_DATA_DIR": str(tmp_path),
        "FACESVC_MODELS_DIR": str(ROOT / "var" / "models"),
        "FACESVC_BIND": f"127.0.0.1:{port}",
        "FACESVC_WORKERS": "2",
        "FACESVC_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.ops.cli", "serve"], env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process)
        assert not stale.exists()
        token = requests.get(f"{base}/oauth/2.0/token", params={
            "grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key,
        }).json()["access_token"]
        image = b64(photo(PHOTO))

        def detect(_: int) -> None:
            requests.post(f"{base}{DETECT}?access_token={token}", data={"image": image}, headers={"Connection": "close"})

        sent = 0
        with ThreadPoolExecutor(6) as pool:  # concurrent, so that both workers take some
            while sent < 12 or (len(worker_files(tmp_path)) < 2 and sent < 120):
                list(pool.map(detect, range(6)))
                sent += 6
        assert len(worker_files(tmp_path)) == 2
        for _ in range(4):  # whichever worker answers the scrape
            found = samples(requests.get(f"{base}/metrics").text)
            assert found[("facesvc_requests_total", (("endpoint", DETECT), ("error_code", "0")))] == sent
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r["logger"] == "facesvc.access" and r["endpoint"] == DETECT for r in records)
    assert not any(keys.secret_key in line or token in line for line in lines)
    written = [tmp_path / "metrics", tmp_path / "index", tmp_path / "master.key"]
    assert all(path.exists() for path in written)
    assert [problem for path in written for problem in loose_modes(path)] == []  # 0700 folders, 0600 files


def test_check_warns_of_data_files_others_can_read(tmp_path, cli_env, settings, capsys):
    (settings.data_dir / "index").mkdir(parents=True, exist_ok=True)
    readable = settings.data_dir / "index" / "old.snapshot.npz"
    readable.write_bytes(b"x")
    readable.chmod(0o644)
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"warning: {readable}: mode 0644" in out


def test_the_first_apps_secret_goes_to_a_private_file_not_to_a_service_log(tmp_path):
    keys = AppKeys("123", "a" * 24, "s" * 32)
    log = io.StringIO()  # journald or docker logs: not a terminal
    path = announce_first_app(keys, tmp_path, log)
    assert keys.secret_key not in log.getvalue() and keys.api_key in log.getvalue() and str(path) in log.getvalue()
    assert keys.secret_key in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600


def worker_files(data_dir) -> set[str]:
    """The pids that wrote request counters into the multiprocess folder."""
    return {p.stem.rsplit("_", 1)[-1] for p in (data_dir / "metrics").glob("counter_*.db")}


def wait_until_ready(base: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "facesvc serve exited"
        try:
            if requests.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or workers still loading models
            pass
        time.sleep(0.3)
    raise AssertionError("facesvc serve did not become ready")


def serve(data_dir, port: int) -> subprocess.Popen:
    """``facesvc serve`` on its embedded Redis under ``data_dir``, in its own session."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "FACESVC_REDIS_URL"},
        "FACESVC_DATA_DIR": str(data_dir),
        "FACESVC_MODELS_DIR": str(ROOT / "var" / "models"),
        "FACESVC_BIND": f"127.0.0.1:{port}",
        "FACESVC_WORKERS": "1",
    }
    log = open(data_dir / "serve.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "serve"], env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    log.close()
    wait_until_ready(f"http://127.0.0.1:{port}", process)
    return process


def processes_under(data_dir) -> list[psutil.Process]:
    """Processes whose command line names ``data_dir`` (the embedded redis-server does)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(data_dir) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def gone(data_dir, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while processes_under(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not processes_under(data_dir)


@pytest.mark.slow
def test_the_embedded_redis_never_outlives_facesvc_nor_loses_its_aof(tmp_path):
    """kill -9 of serve: its redis-server gets SIGTERM from the kernel (AOF flushed) and goes;
    the next serve finds the library; a stray server of an older run is adopted and stopped."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve(tmp_path, port)
    keys = dict(line.split("=", 1) for line in (tmp_path / "first-app.keys").read_text().split())
    grant = {"grant_type": "client_credentials", "client_id": keys["API_KEY"], "client_secret": keys["SECRET_KEY"]}
    token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
    added = requests.post(f"{base}/rest/2.0/face/v2/faceset/user/add?access_token={token}", timeout=60,
                          data={"uid": "ann", "user_info": "", "group_id": "kept", "image": b64(photo(PHOTO))}).json()
    assert "error_code" not in added
    assert processes_under(tmp_path)
    os.kill(process.pid, signal.SIGKILL)  # serve alone, as the OOM killer would
    process.wait()
    assert gone(tmp_path), [p.info["cmdline"] for p in processes_under(tmp_path)]

    port = free_port()  # the killed serve's gunicorn may still be finishing on the old one
    base = f"http://127.0.0.1:{port}"
    process = serve(tmp_path, port)
    answer = requests.get(f"{base}/rest/2.0/face/v2/faceset/group/getlist", params={"access_token": token}, timeout=30).json()
    assert answer["result"] == ["kept"]
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    assert gone(tmp_path)

    stray = EmbeddedRedis(tmp_path, "everysec")
    subprocess.Popen(stray.command, stdin=subprocess.DEVNULL, start_new_session=True)  # no owner, no parent-death signal
    deadline = time.monotonic() + 30
    while not stray.socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process = serve(tmp_path, free_port())
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    assert gone(tmp_path)


def test_what_native_libraries_write_to_stderr_becomes_json_records_too(tmp_path):
    """libjpeg and libpng warn on file descriptor 2 themselves; in JSON mode every line of the
    log must still be one JSON object."""
    truncated = photo(PHOTO)[:20_000]
    (tmp_path / "cut.jpg").write_bytes(truncated)
    code = (
        "import logging, os, time, cv2, numpy as np\n"
        "from service.ops.logs import configure_logging\n"
        "configure_logging('json', capture_native=True)\n"
        "os.write(2, b'libpng warning: iCCP: known incorrect sRGB profile\\n')\n"
        f"cv2.imdecode(np.fromfile({str(tmp_path / 'cut.jpg')!r}, np.uint8), cv2.IMREAD_COLOR)\n"
        "logging.getLogger('facesvc').info('done')\n"
        "time.sleep(0.3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    records = [json.loads(line) for line in done.stderr.splitlines()]  # each line is JSON
    messages = {r["message"]: r["logger"] for r in records}
    assert messages["libpng warning: iCCP: known incorrect sRGB profile"] == "native"
    assert messages["done"] == "facesvc"
