"""Baidu's official SDKs (Python baidu-aip 1.6.9.0 and 2.0.0.1, Node baidu-aip-sdk 1.5.1) against
facesvc under gunicorn: every face method in its documented flow (chapters 4 and 6 of the spec),
with access tokens and with bce-auth-v1 signatures, plus the SDKs' own error paths.

Each test makes its own app on the shared live server. Answers are checked against the
OpenAPI answer schemas (the shape) and against what the flow implies (the meaning).
"""
from __future__ import annotations

import hashlib
import socket
import subprocess
import threading
import time
from typing import Any, Callable

import jsonschema_rs
import pytest
from werkzeug.serving import make_server

from service.store import keys as redis_keys
from service.errors import ALREADY_ADDED, ERRORS
from service.api.v2.schema import ANSWERS
from service.auth.credentials import AppKeys
from service.store.redis_server import connect
from tests.helpers import photo
from bench.forged_images import plain
from service.ops.local_server import free_port
from tests.live import LiveServer
from tests.sdk_replays import REPLAYED_SDKS, UNSUPPORTED
from tests.sdks import BAIDU, PYTHON_SDKS, NodeSdk, Photo, PythonSdk

Check = Callable[[Any], None]
ANSWER_OF = {
    "detect": "Faces",
    "match": "Pairs",
    "identifyUser": "Matches",
    "verifyUser": "Scores",
    "getUser": "UserEntries",
    "getGroupList": "Groups",
    "getGroupUsers": "Users",
}  # the other methods answer "Done"

ALICE = [Photo(photo(f"images/person01/{name}")) for name in ("img5.jpg", "img11.jpg", "img6.jpg")]
BOB = [Photo(photo(f"images/person02/{name}")) for name in ("img12.jpg", "img55.jpg")]
CAROL = [Photo(photo(f"images/person05/{name}")) for name in ("img62.jpg", "img16.jpg")]
DAVE = Photo(photo("images/person03/img51.jpg"))
COUPLE = Photo(photo("extras/couple.jpg"))
HUGE = Photo(photo("images/person01/img1.jpg"))  # 2.3 MB: over detect's 2 MB, under 10 MB


# -- checks ---------------------------------------------------------------------------------------


def done(answer: dict) -> None:
    assert set(answer) == {"log_id"}, answer


def error(code: int, message: str = "") -> Check:
    def check(answer: dict) -> None:
        assert (answer.get("error_code"), answer.get("error_msg")) == (code, message or ERRORS[code]), answer

    return check


def sdk_error(code: str) -> Check:
    """The SDK's own answer, made without asking the server."""
    def check(answer: dict) -> None:
        assert answer["error_code"] == code and answer["error_msg"], answer
        assert "log_id" not in answer

    return check


def faces(count: int, *fields: str) -> Check:
    def check(answer: dict) -> None:
        assert answer["result_num"] == count == len(answer["result"]), answer
        for face in answer["result"]:
            assert face["face_probability"] > 0.5 and face["location"]["width"] > 20
            assert set(fields) <= set(face)

    return check


def pairs(same: set[tuple[int, int]], count: int) -> Check:
    def check(answer: dict) -> None:
        assert answer["result_num"] == count == len(answer["result"]), answer
        for pair in answer["result"]:
            matched = (pair["index_i"], pair["index_j"]) in same
            assert (pair["score"] >= 80) == matched, answer

    return check


def identified(uid: str, *groups: str) -> Check:
    def check(answer: dict) -> None:
        best = answer["result"][0]
        assert best["uid"] == uid and best["group_id"] in groups and best["scores"][0] >= 80, answer

    return check


def verified(same: bool) -> Check:
    def check(answer: dict) -> None:
        assert answer["result_num"] == 1 and (answer["result"][0] >= 80) == same, answer

    return check


def entries(*expected: tuple[str, str, str]) -> Check:
    def check(answer: dict) -> None:
        found = {(e["uid"], e["user_info"], e["group_id"]) for e in answer["result"]}
        assert found == set(expected) and answer["result_num"] == len(expected), answer

    return check


def listed(*expected: Any) -> Check:
    def check(answer: dict) -> None:
        result = [item if isinstance(item, str) else (item["uid"], item["user_info"]) for item in answer["result"]]
        assert result == list(expected) and answer["result_num"] == len(expected), answer

    return check


# -- the flows ------------------------------------------------------------------------------------

Step = tuple[str, tuple, Check]


def documented_flow() -> list[Step]:
    """Every face method as chapters 4 and 6 call it, in an order where each answer is known."""
    every_field = "age,beauty,expression,faceshape,gender,glasses,landmark,race,qualities"
    return [
        ("detect", (ALICE[0],), faces(1, "location", "rotation_angle", "yaw")),
        ("detect", (COUPLE, {"max_face_num": 2, "face_fields": every_field}), faces(2, "landmark", "landmark72")),
        ("detect", (HUGE,), error(216202)),
        ("detect", (Photo(plain(320, 240, ".jpg")),), error(216402)),
        ("match", ([ALICE[0], ALICE[1], BOB[0]],), pairs({(0, 1)}, 3)),
        ("match", ([ALICE[0], BOB[0]], {"ext_fields": "qualities", "image_liveness": ",faceliveness"}), pairs(set(), 1)),
        ("getGroupList", (), listed()),
        # Repeated calls differ in a byte: an exact repeat of a signed request is a replay (110).
        ("addUser", ("alice", "Alice", "staff", ALICE[0]), done),
        ("addUser", ("alice", "Alice A.", "staff", ALICE[0]), error(216616)),
        ("addUser", ("bob", "Bob", ["staff", "vip"], BOB[0]), done),
        ("identifyUser", ("staff", ALICE[1], {"user_top_num": 0, "face_top_num": 1}), identified("alice", "staff")),
        ("identifyUser", (["staff", "vip"], BOB[1], {"user_top_num": 2}), identified("bob", "staff", "vip")),
        ("identifyUser", ("nobody_here", ALICE[1]), error(216618)),
        ("verifyUser", ("alice", "staff", ALICE[1], {"top_num": 1}), verified(True)),
        ("verifyUser", ("alice", ["staff", "vip"], BOB[1]), verified(False)),
        ("verifyUser", ("carol", "staff", CAROL[1]), error(216611)),
        ("getUser", ("alice",), entries(("alice", "Alice", "staff"))),
        ("getUser", ("bob", {"group_id": "vip"}), entries(("bob", "Bob", "vip"))),
        ("getUser", ("carol",), error(216611)),
        ("getGroupList", ({"start": 0, "num": 50},), listed("staff", "vip")),
        ("getGroupUsers", ("staff", {"start": 0, "num": 100}), listed(("alice", "Alice"), ("bob", "Bob"))),
        ("getGroupUsers", ("staff", {"start": 1, "num": 100}), listed(("bob", "Bob"))),
        ("addGroupUser", ("staff", "vip", "alice"), done),
        ("addGroupUser", ("staff", ["new", "vip"], "alice"), error(216100, ALREADY_ADDED)),
        ("getGroupUsers", ("vip",), listed(("bob", "Bob"), ("alice", "Alice"))),
        ("identifyUser", ("vip", ALICE[1]), identified("alice", "vip")),
        ("deleteGroupUser", ("vip", "alice"), done),
        ("deleteGroupUser", ("staff", "alice"), error(216619)),
        ("updateUser", ("alice", "Alice again", "staff", ALICE[2]), done),
        ("getUser", ("alice", {"group_id": "staff"}), entries(("alice", "Alice again", "staff"))),
        ("verifyUser", ("alice", "staff", ALICE[0]), verified(True)),
        ("updateUser", ("carol", "Carol", "staff", CAROL[0]), error(216612)),
        ("addUser", ("carol", "Carol", "staff", CAROL[0], {"action_type": "replace"}), done),
        ("identifyUser", ("staff", CAROL[1]), identified("carol", "staff")),
        # Nothing later depends on dave: PHP 1.6.9's updateUser takes no options.
        ("updateUser", ("dave", "Dave", "staff", DAVE, {"action_type": "replace"}), done),
        ("deleteUser", ("bob", {"group_id": "vip"}), done),
        ("getUser", ("bob",), entries(("bob", "Bob", "staff"))),
        ("deleteUser", ("alice",), done),
        ("deleteUser", ("alice", {"group_id": "staff"}), error(216612)),
        ("verifyUser", ("alice", "staff", ALICE[2]), error(216611)),
        ("getGroupList", ({"start": 0, "num": 10},), listed("staff")),
    ]


# Calls the Python SDK 1.x refuses itself (SDK10x) and the others pass to facesvc.
ERROR_CALLS: list[tuple[str, tuple, dict[str, Check]]] = [
    ("addUser", ("bad uid", "x", "g1", ALICE[0]), {"1.": sdk_error("SDK106"), "": error(216111)}),
    ("addUser", ("u" * 129, "x", "g1", ALICE[0]), {"1.": sdk_error("SDK107"), "": error(216111)}),
    ("addUser", ("u1", "x" * 257, "g1", ALICE[0]), {"1.": sdk_error("SDK103"), "": error(216100)}),
    ("identifyUser", ("bad-group", ALICE[0]), {"1.": sdk_error("SDK104"), "": error(216100)}),
    ("identifyUser", ("g" * 129, ALICE[0]), {"1.": sdk_error("SDK105"), "": error(216100)}),
    ("match", ([ALICE[0]],), {"1.": sdk_error("SDK100"), "": error(216614)}),
    ("detect", (Photo(b""),), {"1.": sdk_error("SDK100"), "": error(216200)}),
    ("detect", (Photo(b"GIF89a" + b"\0" * 64),), {"": error(216201)}),
    ("addUser", ("u1", "x", [f"g{n}" for n in range(101)], ALICE[0]), {"": error(216631)}),
    ("match", ([ALICE[0]] * 11,), {"": error(216103)}),
]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[*PYTHON_SDKS, "node"])
def sdk(request):
    return NodeSdk() if request.param == "node" else PythonSdk(request.param)


@pytest.fixture(scope="module", params=[*PYTHON_SDKS, "node", *sorted(REPLAYED_SDKS)])
def every_sdk(request):
    """The real Python and Node SDKs, and the Java, C# and PHP ones replayed from their sources
    (tests/sdk_replays.py)."""
    if request.param in REPLAYED_SDKS:
        return REPLAYED_SDKS[request.param]()
    return NodeSdk() if request.param == "node" else PythonSdk(request.param)


def is_python_1x(sdk) -> bool:
    return isinstance(sdk, PythonSdk) and sdk.version.startswith("1.")


def assert_shaped(sdk, method: str, answer: Any) -> None:
    """facesvc's answers match the OpenAPI answer schemas; the Node SDK parses log_id exactly."""
    if isinstance(answer.get("error_code"), str):
        return  # the SDK's own answer
    schema = ANSWERS["Error"] if "error_code" in answer else ANSWERS[ANSWER_OF.get(method, "Done")]
    jsonschema_rs.validate(schema, answer)
    if isinstance(sdk, NodeSdk):
        assert answer["log_id"] < 2**53


def run_steps(sdk, live: LiveServer, app: AppKeys, steps: list[tuple[str, tuple, Check]], **options) -> list[Any]:
    """Run the steps through the SDK and check each answer; a step the SDK version cannot send
    (replays only) is skipped."""
    answers, _ = sdk.run(live.base, app, [(method, args) for method, args, _ in steps], **options)
    for (method, args, check), answer in zip(steps, answers):
        if answer is UNSUPPORTED:
            continue
        assert_shaped(sdk, method, answer)
        check(answer)
    return answers


# -- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["token", "signature"])
def test_documented_flow_of_every_face_method(every_sdk, any_live, signed):
    """On each kind of Redis: one server, a Redis Cluster, a Sentinel-watched primary."""
    answers = run_steps(every_sdk, any_live, any_live.new_app(), documented_flow(), signed=signed)
    assert sum(answer is UNSUPPORTED for answer in answers) <= 2  # C# 3.2.2: user/get by group; PHP 1.6.9: update options


def test_sdk_and_server_errors_reach_the_caller(sdk, live):
    steps = []
    for method, args, checks in ERROR_CALLS:
        check = checks["1."] if is_python_1x(sdk) and "1." in checks else checks[""]
        steps.append((method, args, check))
    run_steps(sdk, live, live.new_app(), steps)


def test_wrong_secret_key_falls_back_to_a_signature_and_gets_110(every_sdk, live):
    """Refused a token, the SDKs take the keys for Baidu Cloud ones and sign: facesvc checks the
    signature with the real secret and answers 110."""
    app = live.new_app()
    wrong = AppKeys(app.app_id, app.api_key, "0" * 32)
    run_steps(every_sdk, live, wrong, [("getGroupList", (), error(110)), ("detect", (ALICE[0],), error(110))])


def test_signed_requests_from_another_apps_key_pair_are_110(sdk, live):
    app, other = live.new_app(), live.new_app()
    forged = AppKeys(app.app_id, app.api_key, other.secret_key)
    run_steps(sdk, live, forged, [("getGroupList", (), error(110))], signed=True)


def test_a_slow_answer_is_the_sdks_timeout(sdk, live):
    answers, _ = sdk.run(live.base, live.new_app(), [("detect", (COUPLE,))], timeout_ms=1)
    if isinstance(sdk, PythonSdk):
        assert answers == [{"error_code": "SDK108", "error_msg": "connection or read data timeout"}]
    else:
        assert answers[0]["node_error"]["code"] in ("ETIMEDOUT", "ESOCKETTIMEDOUT")


def test_an_unreachable_server_is_the_node_sdks_network_error():
    closed = f"http://127.0.0.1:{free_port()}"
    answers, _ = NodeSdk().run(closed, AppKeys("1", "a" * 24, "b" * 32), [("getGroupList", ())])
    assert answers[0]["node_error"]["code"] == "ECONNREFUSED"


@pytest.mark.parametrize("version", PYTHON_SDKS)
def test_python_sdk_fetches_a_new_token_when_facesvc_answers_110(live, version):
    """A revoked token gets 110; the Python SDKs then fetch a new token and retry once."""
    sdk, app = PythonSdk(version), live.new_app()
    client = sdk.client(live.base, app)
    assert sdk.run_on(client, [("getGroupList", ())])[0]["result_num"] == 0
    revoked = client._authObj["access_token"]
    connect(live.redis_url).delete(redis_keys.token(hashlib.sha256(revoked.encode()).hexdigest()))
    assert sdk.run_on(client, [("getGroupList", ())])[0]["result_num"] == 0
    assert client._authObj["access_token"] != revoked


def test_no_secret_key_or_token_reaches_the_log(live):
    """A whole flow through every SDK, both ways of auth: the server's log holds none of the
    keys or tokens (it logs log_id, app, route, latency and error code)."""
    secrets: list[str] = []
    for sdk in (*map(PythonSdk, PYTHON_SDKS), NodeSdk()):
        for signed in (False, True):
            app = live.new_app()
            _, token = sdk.run(live.base, app, [(m, a) for m, a, _ in documented_flow()[:12]], signed=signed)
            secrets += [app.secret_key, app.api_key] + ([token, token.split(".")[1]] if token else [])
    time.sleep(0.5)  # let the workers flush their last lines
    log = live.log_text()
    assert "/rest/2.0/face/v2/identify" in log  # the requests were logged
    leaked = [secret for secret in secrets if secret in log]
    assert not leaked


@pytest.fixture
def https_as_baidu(app, tmp_path, monkeypatch):
    """The test app served over HTTPS with a self-signed certificate for aip.baidubce.com, and
    that name resolving to it (as a hosts-file entry would, port included)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=aip.baidubce.com",
         "-addext", "subjectAltName=DNS:aip.baidubce.com", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(str(cert), str(key)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    resolve = socket.getaddrinfo

    def hosts_file(host, port, *args, **kwargs):
        if host == "aip.baidubce.com":
            return resolve("127.0.0.1", server.server_port, *args, **kwargs)
        return resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hosts_file)
    yield
    server.shutdown()


@pytest.mark.parametrize("version", PYTHON_SDKS)
def test_an_unmodified_python_sdk_reaches_facesvc_over_https_by_host_name(https_as_baidu, app_keys, version):
    sdk = PythonSdk(version)
    for signed in (False, True):
        client = sdk.client(BAIDU, app_keys, signed=signed)
        assert client._AipFace__detectUrl == "https://aip.baidubce.com/rest/2.0/face/v2/detect"
        answers = sdk.run_on(client, [("detect", (ALICE[0],)), ("addUser", ("alice", "Alice", "staff", ALICE[0])), ("getUser", ("alice",))])
        assert answers[0]["result_num"] == 1
        assert answers[2]["result"] == [{"uid": "alice", "user_info": "Alice", "group_id": "staff"}]
        sdk.run_on(client, [("deleteUser", ("alice",))])
