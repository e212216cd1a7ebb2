"""``facesvc import`` (resumable, with a summary) and ``export`` -> ``restore`` round trips."""
from __future__ import annotations

import gzip
import json
import shutil
import time

import cv2
import numpy as np
import pytest

from service.ops import cli
from service.app import create_app
from service.library.check import check_library
from tests.helpers import SMOKE, BaiduClient, b64, photo, smoke_identities


def wait_for_users(api: BaiduClient, group: str, count: int, seconds: float = 10) -> None:
    """CLI writes reach the service through the change stream, within its follow interval."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = api.call("faceset/group/getusers", group_id=group)
        if answer.get("result_num") == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{group} never had {count} users")


@pytest.fixture
def photo_folder(tmp_path):
    """people/<uid>/ folders from faces-smoke (each person's last photo held out), plus a photo
    with no face, a file that is no image, and a folder whose name is not a uid."""
    people = smoke_identities()
    root = tmp_path / "people"
    for person in ("person01", "person02", "person03"):
        (root / person).mkdir(parents=True)
        for path in people[person][:2]:
            shutil.copy(SMOKE / path, root / person)
    cv2.imwrite(str(root / "person03" / "wall.png"), np.full((200, 300, 3), 180, np.uint8))
    (root / "person02" / "notes.txt").write_text("not a photo")
    (root / "not-a-uid").mkdir()
    shutil.copy(SMOKE / people["person04"][0], root / "not-a-uid")
    csv = tmp_path / "users.csv"
    csv.write_text("uid,user_info\nperson01,Ann\nperson02,\"Bob, Jr.\"\n")
    return root, csv


def test_import_registers_each_folder_as_a_uid_and_summarises_what_it_could_not(app, api, app_keys, cli_env, photo_folder, capsys):
    root, csv = photo_folder
    assert cli.main(["import", str(root), "--group", "staff", "--user-info", str(csv), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "registered 6, already there 0, without a face 1, unreadable 1, folders skipped 1" in out
    assert f"no face: {root / 'person03' / 'wall.png'}" in out
    assert f"unreadable: {root / 'person02' / 'notes.txt'}" in out

    wait_for_users(api, "staff", 3)
    users = api.call("faceset/group/getusers", group_id="staff")["result"]
    assert {u["uid"]: u["user_info"] for u in users} == {"person01": "Ann", "person02": "Bob, Jr.", "person03": ""}
    held_out = smoke_identities()["person02"][-1]
    found = api.call("identify", group_id="staff", image=b64(photo(held_out)))["result"][0]
    assert (found["uid"], found["user_info"]) == ("person02", "Bob, Jr.") and found["scores"][0] >= 80


def test_import_resumes_by_skipping_photos_already_registered(app, api, app_keys, cli_env, photo_folder, capsys):
    root, _ = photo_folder
    assert cli.main(["import", str(root), "--group", "staff"]) == 0
    extra = smoke_identities()["person01"][2]
    shutil.copy(SMOKE / extra, root / "person01")
    capsys.readouterr()
    assert cli.main(["import", str(root), "--group", "staff"]) == 0
    assert "registered 1, already there 6," in capsys.readouterr().out


def test_import_needs_an_app_id_when_there_are_several(app, services, cli_env, photo_folder):
    services.auth.create_keys()
    services.auth.create_keys()
    assert cli.main(["import", str(photo_folder[0]), "--group", "staff"]) == 1


PROBES = [smoke_identities()[person][-1] for person in ("person01", "person02", "person03")]


def register_library(api: BaiduClient) -> None:
    """Two groups, a user in both, a user with two photos, non-ASCII user_info."""
    calls = [
        ("faceset/user/add", dict(uid="ann", user_info="Ann", group_id="staff", image=photo("images/person01/img1.jpg"))),
        ("faceset/user/add", dict(uid="ann", user_info="Ann", group_id="staff", image=photo("images/person01/img2.jpg"))),
        ("faceset/user/add", dict(uid="bob", user_info="Bob", group_id="staff", image=photo("images/person02/img3.jpg"))),
        ("faceset/user/add", dict(uid="zoe", user_info="Zoë ∂", group_id="vip", image=photo("images/person03/img8.jpg"))),
        ("faceset/group/adduser", dict(uid="ann", src_group_id="staff", group_id="vip")),
    ]
    for path, params in calls:
        if "image" in params:
            params["image"] = b64(params["image"])
        answer = api.call(path, **params)
        assert "error_code" not in answer, answer


def library_answers(api: BaiduClient) -> list:
    """Everything a client can see of the library, log_ids left out."""
    calls = [("faceset/group/getlist", {})]
    calls += [("faceset/group/getusers", {"group_id": g}) for g in ("staff", "vip")]
    calls += [("faceset/user/get", {"uid": u}) for u in ("ann", "bob", "zoe")]
    calls += [("identify", {"group_id": "staff,vip", "user_top_num": 3, "image": b64(photo(p))}) for p in PROBES]
    calls += [("verify", {"uid": "ann", "group_id": "vip", "image": b64(photo(PROBES[0]))})]
    answers = []
    for path, params in calls:
        answer = api.call(path, **params)
        answer.pop("log_id")
        answers.append((path, answer))
    return answers


def test_export_then_restore_into_an_empty_redis_gives_identical_answers(
    settings, pipeline, redis_client, app, api, app_keys, services, cli_env, tmp_path, capsys
):
    register_library(api)
    before = library_answers(api)
    assert [(p, a) for p, a in before if "error_code" in a] == []
    assert [a["result"][0]["uid"] for path, a in before if path == "identify"] == ["ann", "bob", "zoe"]
    backup = tmp_path / "library.jsonl.gz"
    assert cli.main(["export", str(backup)]) == 0
    assert "4 users, 6 faces" in capsys.readouterr().out  # (group, user) pairs: ann is in two groups

    lines = [json.loads(line) for line in gzip.open(backup, "rt")]
    assert lines[0]["format"] == "facesvc-library" and lines[0]["app_id"] == app_keys.app_id
    assert [(r["group"], r["uid"]) for r in lines[1:]] == [("staff", "ann"), ("staff", "bob"), ("vip", "zoe"), ("vip", "ann")]
    assert [len(r["faces"]) for r in lines[1:]] == [2, 1, 1, 2]
    assert all(f["model"] == pipeline.model_id for r in lines[1:] for f in r["faces"])

    redis_client.flushall()
    assert cli.main(["restore", str(backup)]) == 0
    assert "4 users, 6 new faces" in capsys.readouterr().out
    assert cli.main(["restore", str(backup)]) == 0  # a rerun adds nothing
    assert "0 new faces" in capsys.readouterr().out

    restarted = create_app(settings, pipeline=pipeline)
    try:
        svc = restarted.extensions["facesvc"]
        keys = svc.auth.create_keys(app_keys.app_id)
        token = svc.auth.issue_token(keys.api_key, keys.secret_key)["access_token"]
        assert library_answers(BaiduClient(restarted.test_client(), token)) == before
        assert check_library(svc.library.store, svc.indexes.registry, svc.pipeline.model_id) == []
    finally:
        restarted.extensions["facesvc"].close()


def test_restore_refuses_a_file_that_is_not_an_export(cli_env, app, tmp_path):
    bogus = tmp_path / "bogus.gz"
    with gzip.open(bogus, "wt") as out:
        out.write('{"hello": 1}\n')
    assert cli.main(["restore", str(bogus)]) == 1
