"""Acknowledged writes survive restarts and crashes of facesvc and of Redis."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from config.defaults import load_settings
from service.app import create_app
from service.store import keys
from service.auth.credentials import Auth
from service.library.check import check_library
from service.store.faces import FaceStore
from service.store.redis_server import EmbeddedRedis, connect
from tests.helpers import ROOT, BaiduClient, b64, photo
from service.ops.local_server import start_gunicorn

PROBE = "images/person01/img5.jpg"
PHOTOS = ["images/person01/img11.jpg", "images/person02/img12.jpg", "images/person05/img62.jpg"]


def register_people(api: BaiduClient) -> None:
    for number, path in enumerate(PHOTOS):
        answer = api.call("faceset/user/add", uid=f"u{number}", user_info=f"person {number}", group_id="staff", image=b64(photo(path)))
        assert "error_code" not in answer, answer


def assert_library_intact(api: BaiduClient, services) -> None:
    assert api.call("faceset/group/getusers", group_id="staff")["result_num"] == len(PHOTOS)
    found = api.call("identify", group_id="staff", image=b64(photo(PROBE)))
    assert found["result"][0]["uid"] == "u0" and found["result"][0]["scores"][0] >= 80
    assert check_library(services.library.store, services.indexes.registry, services.pipeline.model_id) == []


def test_library_survives_a_restart_of_the_service(settings, pipeline, redis_client):
    first = create_app(settings, pipeline=pipeline)
    services = first.extensions["facesvc"]
    credentials = services.auth.create_keys()
    token = services.auth.issue_token(credentials.api_key, credentials.secret_key)["access_token"]
    register_people(BaiduClient(first.test_client(), token))
    services.close()

    second = create_app(settings, pipeline=pipeline)
    try:
        assert_library_intact(BaiduClient(second.test_client(), token), second.extensions["facesvc"])
    finally:
        second.extensions["facesvc"].close()


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_library_survives_a_restart_or_crash_of_redis(tmp_path, pipeline, stop):
    server = EmbeddedRedis(tmp_path, "always").start()
    settings_kwargs = dict(redis_url=server.url, data_dir=tmp_path, models_dir=ROOT / "var" / "models")
    app = create_app(load_settings(**settings_kwargs), pipeline=pipeline)
    services = app.extensions["facesvc"]
    credentials = services.auth.create_keys()
    token = services.auth.issue_token(credentials.api_key, credentials.secret_key)["access_token"]
    register_people(BaiduClient(app.test_client(), token))
    services.close()
    getattr(server.process, stop)()
    server.process.wait()
    server.start()
    try:
        app = create_app(load_settings(**settings_kwargs), pipeline=pipeline)
        assert_library_intact(BaiduClient(app.test_client(), token), app.extensions["facesvc"])
        app.extensions["facesvc"].close()
    finally:
        server.stop()


def test_embedded_redis_waits_for_a_long_load_of_its_data(tmp_path):
    """Reading a large AOF back can outlast the start timeout: loading is progress, so start()
    waits for it instead of giving up (a 300,000-face library takes minutes)."""
    server = EmbeddedRedis(tmp_path, "everysec").start()
    client = connect(server.url)
    fill = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'k' .. i, ARGV[2]) end"
    client.eval(fill, 0, 1_500_000, "x" * 32)
    client.bgrewriteaof()
    while client.info("persistence")["aof_rewrite_in_progress"] or client.info("persistence")["aof_rewrite_scheduled"]:
        time.sleep(0.1)
    server.stop()
    started = time.monotonic()
    server.start(timeout=0.05)
    try:
        assert time.monotonic() - started > 0.05  # it did have to wait for the load
        assert connect(server.url).dbsize() == 1_500_000
    finally:
        server.stop()


@pytest.mark.slow
def test_sigkill_during_registrations_loses_no_acknowledged_write(tmp_path):
    server = EmbeddedRedis(tmp_path, "always").start()
    client = connect(server.url)
    credentials = Auth.from_settings(client, load_settings(data_dir=tmp_path)).create_keys()
    process, base = start_gunicorn(server.url, tmp_path)
    try:
        token = requests.get(
            f"{base}/oauth/2.0/token",
            params={"grant_type": "client_credentials", "client_id": credentials.api_key, "client_secret": credentials.secret_key},
        ).json()["access_token"]
        images = [b64(photo(p)) for p in PHOTOS]
        acknowledged: list[str] = []
        enough = threading.Event()

        def register(worker: int) -> None:
            for number in range(200):
                uid = f"w{worker}_{number}"
                try:
                    answer = requests.post(
                        f"{base}/rest/2.0/face/v2/faceset/user/add?access_token={token}",
                        data={"uid": uid, "user_info": uid, "group_id": "crash", "image": images[number % len(images)]},
                        timeout=30,
                    ).json()
                except requests.RequestException:
                    return
                assert "error_code" not in answer, answer
                acknowledged.append(uid)
                if len(acknowledged) >= 12:
                    enough.set()

        threads = [threading.Thread(target=register, args=(w,)) for w in range(3)]
        for thread in threads:
            thread.start()
        assert enough.wait(120)
        os.killpg(process.pid, signal.SIGKILL)
        for thread in threads:
            thread.join()

        stored = {u.decode() for u in client.zrange(keys.group_users(credentials.app_id, "crash"), 0, -1)}
        assert set(acknowledged) <= stored
        assert check_library(FaceStore(client)) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        server.stop()
