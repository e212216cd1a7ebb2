"""Baidu v3 on facesvc (README, "v3"): bodies as the SDKs really send them, face tokens, URL
images from a loopback server, one library shared with v2, and the library tools covering
v3-only state. Real models, real photos, real Redis; error codes are in test_v3_errors.py."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from config.defaults import FaceTokens, UrlImages
from service.app import create_app
from service.library.check import check_library
from service.ops import cli
from tests.helpers import BaiduClient, V3Client, assert_ok, assert_v3_error, b64, client_of, photo, v3_result

ALICE = [b64(photo(f"images/person01/{name}")) for name in ("img5.jpg", "img11.jpg", "img6.jpg")]
BOB = b64(photo("images/person02/img12.jpg"))
COUPLE = b64(photo("extras/couple.jpg"))
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def v3(app, token) -> V3Client:
    return V3Client(app.test_client(), token)


@pytest.fixture
def v2(app, token) -> BaiduClient:
    return BaiduClient(app.test_client(), token)


def register(v3: V3Client, user: str, image: str, group: str = "g1", **options) -> dict:
    return v3_result(v3.call("faceset/user/add", image=image, image_type="BASE64", group_id=group, user_id=user, **options))


# -- bodies ------------------------------------------------------------------------------------


def test_json_labelled_as_a_form_is_read_as_json(v3):
    """Node (every version) and Java >= 4.3.1 send JSON with a form Content-Type."""
    body = json.dumps({"image": ALICE[0], "image_type": "BASE64", "max_face_num": "10", "face_field": "age"}).encode()
    result = v3_result(v3.call("detect", raw=body, content_type=FORM))
    assert result["face_num"] == 1 and "age" in result["face_list"][0]


def test_a_real_form_is_read_too(v3):
    """Python 2.2.3.0 and PHP 2.2.3 post forms to v3 paths."""
    body = f"image={quote(ALICE[0], safe='')}&image_type=BASE64&group_id=g1&user_id=alice".encode()
    assert v3_result(v3.call("faceset/user/add", raw=body, content_type=FORM))["face_token"]
    assert v3_result(v3.call("faceset/group/getusers", raw=b"group_id=g1&length=10", content_type=FORM)) == {"user_id_list": ["alice"]}


def test_numbers_as_strings_empty_array_and_unknown_keys(v3):
    register(v3, "alice", ALICE[0])
    register(v3, "bob", BOB)
    # Java sends every option as a string; callers merge options of their own.
    page = v3.call("faceset/group/getusers", group_id="g1", start="1", length="1", trace_id="x", nested={"a": [1]})
    assert v3_result(page) == {"user_id_list": ["bob"]}
    # PHP >= 2.2.4 json_encode()s an empty options array as [].
    assert v3_result(v3.call("faceset/group/getlist", raw=b"[]")) == {"group_id_list": ["g1"]}
    # PHP escapes "/" as "\/": any JSON parser copes.
    escaped = json.dumps({"group_id": "g1", "user_id": "alice"}).replace("/", "\\/").encode()
    assert v3_result(v3.call("faceset/user/get", raw=escaped))["user_list"][0]["group_id"] == "g1"


def test_array_and_object_bodies_where_they_belong(v3):
    assert_v3_error(v3.call("faceset/group/getlist", raw=b'[{"start": 0}]'), 222200)
    assert_v3_error(v3.call("match", raw=b'"two images"'), 222200)
    assert_v3_error(v3.call("match", raw=b"[1, 2]"), 222200)
    assert_v3_error(v3.call("match", [{"image": ALICE[0], "image_type": "BASE64"}] * 3), 222208)
    # PyPI baidu-aip 2.2.4.0 sends faceverify's one image as an object, not an array.
    single = v3_result(v3.call("faceverify", image=ALICE[0], image_type="BASE64"))
    assert len(single["face_list"]) == 1


def test_node_token_suffix_and_a_get(app, token):
    """Node appends "?aipSdk=node" after the token; a GET with the query works as in v2."""
    client = app.test_client()
    answer = client.post(f"/rest/2.0/face/v3/faceset/group/getlist?aipSdk=node&access_token={token}?aipSdk=node", data=b"{}")
    assert v3_result(answer.get_json()) == {"group_id_list": []}
    assert v3_result(client.get(f"/rest/2.0/face/v3/faceset/group/getlist?access_token={token}").get_json()) == {"group_id_list": []}


# -- face tokens -------------------------------------------------------------------------------


def test_a_photo_gives_the_same_token_everywhere(v3):
    detected = v3_result(v3.call("detect", image=ALICE[0], image_type="BASE64"))["face_list"][0]["face_token"]
    assert len(detected) == 32 and int(detected, 16) >= 0
    assert register(v3, "alice", ALICE[0])["face_token"] == detected
    assert v3_result(v3.call("faceset/face/getlist", user_id="alice", group_id="g1"))["face_list"][0]["face_token"] == detected
    again = v3_result(v3.call("detect", image=ALICE[0], image_type="BASE64"))["face_list"][0]["face_token"]
    assert again == detected


def test_detected_tokens_work_as_input_and_answer_as_first_detected(v3):
    register(v3, "alice", ALICE[0])
    faces = v3_result(v3.call("detect", image=COUPLE, image_type="BASE64", max_face_num=10))["face_list"]
    assert len(faces) == 2 and len({f["face_token"] for f in faces}) == 2
    probe = v3_result(v3.call("detect", image=ALICE[1], image_type="BASE64", face_field="age"))["face_list"][0]
    found = v3_result(v3.call("search", image=probe["face_token"], image_type="FACE_TOKEN", group_id_list="g1"))
    assert found["face_token"] == probe["face_token"] and found["user_list"][0]["user_id"] == "alice"
    again = v3_result(v3.call("detect", image=probe["face_token"], image_type="FACE_TOKEN", face_field="age"))["face_list"][0]
    assert again == {k: probe[k] for k in ("face_token", "location", "face_probability", "angle")}  # no pixels: no age
    pair = [{"image": probe["face_token"], "image_type": "FACE_TOKEN"}, {"image": ALICE[2], "image_type": "BASE64"}]
    assert v3_result(v3.call("match", pair))["score"] >= 80
    # A registered face's token is permanent and usable as input too.
    token = v3_result(v3.call("faceset/face/getlist", user_id="alice", group_id="g1"))["face_list"][0]["face_token"]
    assert v3_result(v3.call("match", [{"image": token, "image_type": "FACE_TOKEN"}, {"image": ALICE[0], "image_type": "BASE64"}]))["score"] > 99


def test_a_face_seen_again_keeps_what_detect_answered_of_it(v3):
    """Regression: a search of the same photo re-remembered its face without the pose, and
    detect by the token then answered no ``angle``."""
    first = v3_result(v3.call("detect", image=ALICE[0], image_type="BASE64"))["face_list"][0]
    v3_result(v3.call("faceset/group/add", group_id="g1"))
    assert_v3_error(v3.call("search", image=ALICE[0], image_type="BASE64", group_id_list="g1"), 222207)
    again = v3_result(v3.call("detect", image=first["face_token"], image_type="FACE_TOKEN"))["face_list"][0]
    assert again == first


def test_a_detected_token_expires_and_an_app_keeps_a_bounded_number(settings, pipeline, redis_client):
    limited = settings.model_copy(update={"face_tokens": FaceTokens(ttl_seconds=1, max_per_app=2)})
    app = create_app(limited, pipeline=pipeline)
    try:
        v3 = client_of(app, kind=V3Client)
        tokens = [v3_result(v3.call("detect", image=image, image_type="BASE64"))["face_list"][0]["face_token"] for image in ALICE]
        # Three tokens, two kept: the oldest went first.
        assert_v3_error(v3.call("detect", image=tokens[0], image_type="FACE_TOKEN"), 222209)
        assert v3_result(v3.call("detect", image=tokens[2], image_type="FACE_TOKEN"))["face_num"] == 1
        time.sleep(2.1)
        assert_v3_error(v3.call("detect", image=tokens[2], image_type="FACE_TOKEN"), 222209)
        assert redis_client.zcard(next(redis_client.scan_iter("fs:{*}:detected"))) == 2  # trimmed by the next write
    finally:
        app.extensions["facesvc"].close()


def test_tokens_are_per_app(app, v3):
    token = v3_result(v3.call("detect", image=ALICE[0], image_type="BASE64"))["face_list"][0]["face_token"]
    other = client_of(app, kind=V3Client)
    assert_v3_error(other.call("detect", image=token, image_type="FACE_TOKEN"), 222209)


def test_face_delete_by_token_and_the_last_face_takes_the_user(v3):
    first = register(v3, "alice", ALICE[0])["face_token"]
    second = register(v3, "alice", ALICE[1])["face_token"]
    listed = v3_result(v3.call("faceset/face/getlist", user_id="alice", group_id="g1"))["face_list"]
    assert [f["face_token"] for f in listed] == [first, second]
    assert all(time.strptime(f["ctime"], "%Y-%m-%d %H:%M:%S") for f in listed)
    assert v3_result(v3.call("faceset/face/delete", user_id="alice", group_id="g1", face_token=first)) is None
    assert [f["face_token"] for f in v3_result(v3.call("faceset/face/getlist", user_id="alice", group_id="g1"))["face_list"]] == [second]
    v3_result(v3.call("faceset/face/delete", user_id="alice", group_id="g1", face_token=second))
    assert_v3_error(v3.call("faceset/user/get", user_id="alice", group_id="g1"), 223103)
    assert v3_result(v3.call("faceset/group/getlist")) == {"group_id_list": ["g1"]}  # a v3 group stays


# -- the library through v3 --------------------------------------------------------------------


def test_add_replace_update_and_user_info(v3):
    register(v3, "alice", ALICE[0], user_info="front desk")
    register(v3, "alice", ALICE[1], action_type="REPLACE")
    assert len(v3_result(v3.call("faceset/face/getlist", user_id="alice", group_id="g1"))["face_list"]) == 1
    assert_v3_error(v3.call("faceset/user/update", image=BOB, image_type="BASE64", group_id="g1", user_id="bob"), 223103)
    updated = v3.call("faceset/user/update", image=BOB, image_type="BASE64", group_id="g1", user_id="bob", action_type="REPLACE")
    assert v3_result(updated)["location"]["width"] > 50
    v3_result(v3.call("faceset/user/update", image=ALICE[2], image_type="BASE64", group_id="g1", user_id="alice", user_info="lobby"))
    assert v3_result(v3.call("faceset/user/get", user_id="alice", group_id="g1")) == {"user_list": [{"user_info": "lobby", "group_id": "g1"}]}


def test_search_threshold_user_id_and_multi_search(v3):
    register(v3, "alice", ALICE[0], user_info="A")
    register(v3, "bob", BOB)
    found = v3_result(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="g1", max_user_num=2, match_threshold=0))
    assert [u["user_id"] for u in found["user_list"]] == ["alice", "bob"] and found["user_list"][0]["score"] >= 80
    assert found["user_list"][0]["user_info"] == "A"
    assert_v3_error(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="g1", user_id="bob"), 222207)
    one = v3_result(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="g1", user_id="alice"))
    assert [u["user_id"] for u in one["user_list"]] == ["alice"]
    many = v3_result(v3.call("multi-search", image=COUPLE, image_type="BASE64", group_id_list="g1", max_face_num=10))
    assert many["face_num"] == 2
    assert sum(len(face["user_list"]) for face in many["face_list"]) == 1  # alice, in one of the two faces


def test_groups_copy_and_delete(v3):
    v3_result(v3.call("faceset/group/add", group_id="empty"))
    register(v3, "alice", ALICE[0])
    v3_result(v3.call("faceset/user/copy", user_id="alice", src_group_id="g1", dst_group_id="empty"))
    copied = v3_result(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="empty"))
    assert copied["user_list"][0]["group_id"] == "empty"
    tokens = [v3_result(v3.call("faceset/face/getlist", user_id="alice", group_id=g))["face_list"][0]["face_token"] for g in ("g1", "empty")]
    assert tokens[0] == tokens[1]  # a copy keeps the face's token
    assert {e["group_id"] for e in v3_result(v3.call("faceset/user/get", user_id="alice", group_id="@ALL"))["user_list"]} == {"g1", "empty"}
    v3_result(v3.call("faceset/group/delete", group_id="g1"))
    assert_v3_error(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="g1"), 223100)
    v3_result(v3.call("faceset/user/delete", user_id="alice", group_id="@ALL"))
    assert v3_result(v3.call("faceset/group/getlist")) == {"group_id_list": ["empty"]}
    assert v3_result(v3.call("faceset/group/getusers", group_id="empty")) == {"user_id_list": []}


def test_group_delete_of_a_group_larger_than_one_batch(v3, services, monkeypatch):
    from service.store import faces

    monkeypatch.setattr(faces, "CLEAR_BATCH", 2)
    for n, image in enumerate(ALICE + [BOB]):
        register(v3, f"u{n}", image)
    v3_result(v3.call("faceset/group/delete", group_id="g1"))
    assert v3_result(v3.call("faceset/group/getlist")) == {"group_id_list": []}
    assert check_library(services.library.store, services.indexes.registry, services.pipeline.model_id) == []


# -- one library, two APIs ---------------------------------------------------------------------


def test_v2_users_are_v3_users_and_the_reverse(v2, v3):
    assert_ok(v2.call("faceset/user/add", uid="alice", user_info="from v2", group_id="old", image=ALICE[0]))
    found = v3_result(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="old"))
    assert (found["user_list"][0]["user_id"], found["user_list"][0]["user_info"]) == ("alice", "from v2")
    assert v3_result(v3.call("faceset/group/getusers", group_id="old")) == {"user_id_list": ["alice"]}
    register(v3, "bob", BOB, group="new")
    v3_result(v3.call("faceset/group/add", group_id="empty"))
    identified = v2.call("identify", group_id="new", image=BOB)
    assert identified["result"][0]["uid"] == "bob"
    assert v2.call("faceset/group/getlist")["result"] == ["old", "new", "empty"]
    # v2's rule for its groups (gone with their last user), v3's for its (kept until deleted).
    assert_ok(v2.call("faceset/user/delete", uid="alice"))
    assert_ok(v2.call("faceset/user/delete", uid="bob"))
    assert v2.call("faceset/group/getlist")["result"] == ["new", "empty"]


# -- URL images ---------------------------------------------------------------------------------


class ImageServer(BaseHTTPRequestHandler):
    """/alice.jpg: a photo; /elsewhere: a redirect to 127.0.0.2."""

    def do_GET(self) -> None:
        if self.path == "/alice.jpg":
            body = photo("images/person01/img5.jpg")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_port}/alice.jpg")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_url_images_are_off_by_default_and_fetched_when_allowed(v3, image_server, settings, pipeline):
    assert_v3_error(v3.call("detect", image=f"{image_server}/alice.jpg", image_type="URL"), 222204)
    allowed = settings.model_copy(update={"url_images": UrlImages(allow="127.0.0.1/32")})
    app = create_app(allowed, pipeline=pipeline)
    try:
        client = client_of(app, kind=V3Client)
        faces = v3_result(client.call("detect", image=f"{image_server}/alice.jpg", image_type="URL"))["face_list"]
        by_photo = v3_result(client.call("detect", image=ALICE[0], image_type="BASE64"))["face_list"]
        assert faces[0]["face_token"] == by_photo[0]["face_token"]  # the same photo, the same token
        assert_v3_error(client.call("detect", image=f"{image_server}/elsewhere", image_type="URL"), 222204)
        assert_v3_error(client.call("detect", image="file:///etc/passwd", image_type="URL"), 222204)
    finally:
        app.extensions["facesvc"].close()


# -- library tools ------------------------------------------------------------------------------


def test_export_restore_and_check_keep_empty_groups_and_tokens(settings, pipeline, redis_client, app, app_keys, v3, services, cli_env, tmp_path, capsys):
    v3_result(v3.call("faceset/group/add", group_id="empty"))
    token = register(v3, "alice", ALICE[0])["face_token"]
    assert check_library(services.library.store, services.indexes.registry, services.pipeline.model_id) == []
    backup = tmp_path / "library.jsonl.gz"
    assert cli.main(["export", str(backup)]) == 0
    redis_client.flushall()
    assert cli.main(["restore", str(backup)]) == 0
    restarted = create_app(settings, pipeline=pipeline)
    try:
        svc = restarted.extensions["facesvc"]
        client = client_of(restarted, svc.auth.create_keys(app_keys.app_id), kind=V3Client)
        assert v3_result(client.call("faceset/group/getlist")) == {"group_id_list": ["empty", "g1"]}
        listed = v3_result(client.call("faceset/face/getlist", user_id="alice", group_id="g1"))["face_list"]
        assert [f["face_token"] for f in listed] == [token]
        assert v3_result(client.call("match", [{"image": token, "image_type": "FACE_TOKEN"}, {"image": ALICE[1], "image_type": "BASE64"}]))["score"] >= 80
        assert check_library(svc.library.store, svc.indexes.registry, svc.pipeline.model_id) == []
    finally:
        restarted.extensions["facesvc"].close()


def test_faces_stored_before_tokens_get_theirs(v2, v3, services, redis_client):
    """A library of facesvc < v3 has faces without tokens: serve gives them theirs once."""
    assert_ok(v2.call("faceset/user/add", uid="alice", user_info="", group_id="old", image=ALICE[0]))
    face = next(redis_client.scan_iter("fs:{*}:face:*"))
    token = redis_client.hget(face, "token").decode()
    redis_client.hdel(face, "token")
    redis_client.delete(*redis_client.scan_iter("fs:{*}:token:*"), "fs:tokens_given")
    assert check_library(services.library.store) != []
    assert services.library.store.give_tokens() == 1
    assert services.library.store.give_tokens() == 0  # once per Redis
    assert check_library(services.library.store) == []
    assert v3_result(v3.call("detect", image=token, image_type="FACE_TOKEN"))["face_list"][0]["face_token"] == token


def test_openapi_describes_every_v3_endpoint(app):
    """/openapi.json has each v3 path with its answer and v3's error, match and faceverify with
    array bodies."""
    document = app.test_client().get("/openapi.json").get_json()
    v3_paths = {path for path in document["paths"] if path.startswith("/rest/2.0/face/v3/")}
    expected = {
        "detect", "match", "search", "multi-search", "faceverify", "person/verify", "person/idmatch",
        *(f"faceset/{name}" for name in (
            "user/add", "user/update", "user/get", "user/copy", "user/delete", "face/delete", "face/getlist",
            "group/add", "group/delete", "group/getlist", "group/getusers",
        )),
    }
    assert v3_paths == {f"/rest/2.0/face/v3/{name}" for name in expected}
    match = document["paths"]["/rest/2.0/face/v3/match"]["post"]
    assert match["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    answers = document["paths"]["/rest/2.0/face/v3/search"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answers["oneOf"] == [{"$ref": "#/components/schemas/v3.Search"}, {"$ref": "#/components/schemas/v3.Error"}]


def test_no_control_runs_no_quality_or_liveness_head(v3, monkeypatch):
    """Regression: every v3 search ran the liveness head and the quality measures (~5 ms of a
    40 ms call) whether a control asked for them or not."""
    from workers import attributes

    register(v3, "alice", ALICE[0])
    ran = []
    monkeypatch.setattr(attributes.heads, "liveness", lambda *args: ran.append("liveness") or 1.0)
    monkeypatch.setattr(attributes, "blur_effect", lambda *args: ran.append("quality") or 0.0)
    v3_result(v3.call("search", image=ALICE[1], image_type="BASE64", group_id_list="g1"))
    assert ran == []
    v3_result(v3.call("search", image=ALICE[2], image_type="BASE64", group_id_list="g1", quality_control="LOW", liveness_control="LOW"))
    assert ran == ["quality", "liveness"]
