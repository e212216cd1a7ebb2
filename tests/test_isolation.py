"""Tenant isolation: two apps using the same group and uid names never see or change each
other's data, through any endpoint; tokens cannot be guessed or re-pointed at another app."""
from __future__ import annotations

import inspect
import re

import pytest

from service.store import keys
from service.library.check import check_library
from service.errors import ERRORS
from tests.helpers import BaiduClient, b64, client_of, photo

ANNA = ["images/person01/img11.jpg", "images/person01/img5.jpg", "images/person01/img6.jpg"]
BORIS = ["images/person02/img12.jpg", "images/person02/img55.jpg"]
PROBE_FACE = "images/person05/img62.jpg"


def ok(answer: dict) -> dict:
    assert "error_code" not in answer, answer
    return answer


def code(answer: dict) -> int:
    assert answer["error_msg"] == ERRORS[answer["error_code"]]
    return answer["error_code"]


def add(client: BaiduClient, uid: str, group: str, path: str, info: str) -> dict:
    return client.call("faceset/user/add", uid=uid, user_info=info, group_id=group, image=b64(photo(path)))


def groups_of(client: BaiduClient, uid: str) -> dict[str, str]:
    answer = client.call("faceset/user/get", uid=uid)
    return {entry["group_id"]: entry["user_info"] for entry in answer.get("result", [])}


def best(client: BaiduClient, group: str, path: str) -> tuple[str, float]:
    top = ok(client.call("identify", group_id=group, image=b64(photo(path))))["result"][0]
    return top["uid"], top["scores"][0]


def verify(client: BaiduClient, uid: str, group: str, path: str) -> float:
    return ok(client.call("verify", uid=uid, group_id=group, image=b64(photo(path))))["result"][0]


@pytest.fixture
def tenants(app):
    """Apps A and B, each with uid u1 in group g1 (A: Anna, B: Boris); A also has group ga."""
    a, b = client_of(app), client_of(app)
    ok(add(a, "u1", "g1", ANNA[0], "A's u1"))
    ok(add(a, "u2", "ga", ANNA[1], "A only"))
    ok(add(b, "u1", "g1", BORIS[0], "B's u1"))
    return a, b


def test_reads_see_only_the_own_apps_library(tenants):
    a, b = tenants
    assert groups_of(a, "u1") == {"g1": "A's u1"} and groups_of(b, "u1") == {"g1": "B's u1"}
    assert ok(a.call("faceset/group/getlist"))["result"] == ["g1", "ga"]
    assert ok(b.call("faceset/group/getlist"))["result"] == ["g1"]
    assert ok(a.call("faceset/group/getusers", group_id="g1"))["result"] == [{"uid": "u1", "user_info": "A's u1"}]
    assert ok(b.call("faceset/group/getusers", group_id="g1"))["result"] == [{"uid": "u1", "user_info": "B's u1"}]
    assert ok(b.call("faceset/group/getusers", group_id="ga"))["result"] == []
    assert code(b.call("faceset/user/get", uid="u2")) == 216611


def test_searches_find_only_the_own_apps_faces(tenants):
    a, b = tenants
    uid, score = best(a, "g1", ANNA[1])
    assert uid == "u1" and score >= 80
    uid, score = best(b, "g1", ANNA[1])
    assert uid == "u1" and score < 80  # B's u1 is Boris
    assert verify(a, "u1", "g1", ANNA[2]) >= 80 and verify(b, "u1", "g1", ANNA[2]) < 80
    assert verify(b, "u1", "g1", BORIS[1]) >= 80 and verify(a, "u1", "g1", BORIS[1]) < 80
    assert code(b.call("identify", group_id="ga", image=b64(photo(ANNA[1])))) == 216618
    assert code(b.call("verify", uid="u2", group_id="ga", image=b64(photo(ANNA[1])))) == 216611


def test_writes_change_only_the_own_apps_library(app, tenants):
    a, b = tenants
    ok(add(b, "u1", "g1", ANNA[0], "B's u1"))  # A's photo: "image existed" is per app
    ok(a.call("faceset/group/adduser", uid="u1", src_group_id="g1", group_id="g2"))
    assert "g2" not in ok(b.call("faceset/group/getlist"))["result"]
    assert code(b.call("faceset/group/deleteuser", uid="u1", group_id="g2")) == 216611
    ok(a.call("faceset/group/deleteuser", uid="u1", group_id="g2"))
    ok(a.call("faceset/user/update", uid="u1", group_id="g1", images=b64(photo(PROBE_FACE))))
    assert verify(b, "u1", "g1", BORIS[1]) >= 80  # B's faces untouched by A's update
    ok(a.call("faceset/user/delete", uid="u1"))
    assert groups_of(b, "u1") == {"g1": "B's u1"} and groups_of(a, "u1") == {}
    ok(b.call("faceset/user/delete", uid="u1", group_id="g1"))
    assert code(a.call("faceset/user/delete", uid="u1")) == 216612
    assert ok(a.call("faceset/group/getlist"))["result"] == ["ga"]
    assert check_library(app.extensions["facesvc"].library.store, app.extensions["facesvc"].indexes.registry, app.extensions["facesvc"].pipeline.model_id) == []


def test_stateless_endpoints_answer_alike_for_both_apps(tenants):
    a, b = tenants
    for path, params in (("detect", {"image": b64(photo(ANNA[0]))}), ("match", {"images": f"{b64(photo(ANNA[0]))},{b64(photo(BORIS[0]))}"})):
        first, second = ok(a.call(path, **params)), ok(b.call(path, **params))
        assert {**first, "log_id": 0} == {**second, "log_id": 0}


def global_keys() -> tuple[set[bytes], tuple[bytes, ...]]:
    """Names, and name prefixes, of the keys service/store/keys.py builds without an app."""
    names, prefixes = set(), []
    for _, build in inspect.getmembers(keys, inspect.isfunction):
        parameters = inspect.signature(build).parameters
        if "app" in parameters:
            continue
        if parameters:
            prefixes.append(build(*[""] * len(parameters)).encode())
        else:
            names.add(build().encode())
    return names, tuple(prefixes)


def test_every_key_of_an_app_lives_under_its_own_prefix(app, services, tenants):
    apps = services.redis.hkeys(keys.apps())
    assert len(apps) == 2
    own = tuple(keys.app_prefix(app_id.decode()).encode() + b":" for app_id in apps)
    names, prefixes = global_keys()
    for key in services.redis.scan_iter(count=1000):
        assert key.startswith(own) or key in names or key.startswith(prefixes), key
    for app_id in apps:
        faces = list(services.redis.scan_iter(match=keys.face_prefix(app_id.decode()) + "*"))
        assert faces and all(services.redis.hget(face, "app") == app_id for face in faces)


def test_tokens_are_random_and_bound_to_their_app(app, services, tenants):
    a, b = tenants
    keys = services.auth.create_keys()
    tokens = [services.auth.issue_token(keys.api_key, keys.secret_key)["access_token"] for _ in range(200)]
    random_parts = {token.split(".")[1] for token in tokens}
    assert len(random_parts) == 200 and all(re.fullmatch(r"[0-9a-f]{32}", part) for part in random_parts)
    assert not any(keys.secret_key in token or keys.api_key in token for token in tokens)
    a_app, b_app = a.token.rsplit("-", 1)[1], b.token.rsplit("-", 1)[1]
    repointed = a.token[: -len(a_app)] + b_app  # the app id in a token is not trusted
    answer = a.client.post(f"/rest/2.0/face/v2/faceset/group/getlist?access_token={repointed}").get_json()
    assert code(answer) == 110
