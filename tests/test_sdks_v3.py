"""Baidu's current SDKs (Python baidu-aip 4.16.13, Node baidu-aip-sdk 4.16.16), unmodified, against
facesvc's v3 API under gunicorn: every v3 face method in the flow of tests/sdk_flow_v3.py, with
access tokens and with bce-auth-v1 signatures; the Java, PHP and C# SDKs replayed from their
sources (tests/sdk_replays_v3.py) run the same flow.

Each test makes its own app on the shared live server. Answers are checked against v3's answer
schemas (the shape: service/api/v3/schema.py, as /openapi.json has them) and against what the
flow implies (the meaning).
"""
from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
import requests

from service.api.v3.schema import ANSWERS
from service.auth.credentials import AppKeys
from tests.live import LiveServer
from tests.sdk_replays import UNSUPPORTED
from tests.sdk_replays_v3 import REPLAYED_V3_SDKS
from tests.sdk_flow_v3 import check_flow, envelope, image, run_flow, v3_flow
from tests.sdks import NODE_SDK_V3, PYTHON_SDK_V3, NodeSdk, PythonSdk


ANSWER_OF = {
    "detect": "Faces",
    "match": "Match",
    "search": "Search",
    "multiSearch": "MultiSearch",
    "addUser": "Registered",
    "updateUser": "Registered",
    "getUser": "UserGroups",
    "faceGetlist": "FaceList",
    "getGroupUsers": "UserIds",
    "getGroupList": "GroupIds",
    "faceverify": "Liveness",
}  # the other methods answer "Done"
REAL_SDKS = {f"python-{PYTHON_SDK_V3}": lambda: PythonSdk(PYTHON_SDK_V3), f"node-{NODE_SDK_V3}": lambda: NodeSdk(NODE_SDK_V3)}


@pytest.fixture(scope="module", params=[*REAL_SDKS, *sorted(REPLAYED_V3_SDKS)])
def v3_sdk(request):
    """The real Python and Node SDKs, and the Java, PHP and C# ones replayed from their sources."""
    return (REAL_SDKS.get(request.param) or REPLAYED_V3_SDKS[request.param])()


@pytest.fixture(scope="module", params=list(REAL_SDKS))
def real_sdk(request):
    return REAL_SDKS[request.param]()


def assert_shaped(method: str, answer: Any) -> None:
    """facesvc's answers match v3's answer schemas (/openapi.json's)."""
    schema = ANSWERS["Error" if answer["error_code"] else ANSWER_OF.get(method, "Done")]
    try:
        jsonschema_rs.validate(schema, answer)
    except jsonschema_rs.ValidationError as wrong:
        raise AssertionError(f"not the answer schema: {wrong}") from None


@pytest.mark.parametrize("signed", [False, True], ids=["token", "signature"])
def test_v3_flow_of_every_face_method(v3_sdk, any_live: LiveServer, signed: bool) -> None:
    """On each kind of Redis: one server, a Redis Cluster, a Sentinel-watched primary."""
    steps = v3_flow()
    answers = run_flow(v3_sdk, any_live.base, any_live.new_app(), steps, signed=signed)
    check_flow(steps, answers, skip=UNSUPPORTED, shape=assert_shaped)
    # The first v3 versions of PHP, Java and C#: no multiSearch, faceverify of one image.
    assert sum(answer is UNSUPPORTED for answer in answers) <= 3


def test_wrong_secret_key_is_110_in_v3s_envelope(real_sdk, live: LiveServer) -> None:
    """Refused a token, the SDKs take the keys for Baidu Cloud ones and sign: facesvc checks the
    signature with the real secret and answers 110, in v3's envelope."""
    app = live.new_app()
    answers, _ = real_sdk.run(live.base, AppKeys(app.app_id, app.api_key, "0" * 32), [("getGroupList", ())])
    envelope(answers[0])
    assert_shaped("getGroupList", answers[0])
    assert (answers[0]["error_code"], answers[0]["error_msg"]) == (110, "Access token invalid or no longer valid")


def test_v3_users_and_groups_are_v2s_too(live: LiveServer) -> None:
    """One face library: a user added through v3 is identified through v2, and v2's group list
    holds v3's groups, an empty one included."""
    app = live.new_app()
    alice = image("images/person01/img5.jpg")
    answers, _ = PythonSdk(PYTHON_SDK_V3).run(
        live.base, app, [("groupAdd", ("lobby",)), ("addUser", (alice, "BASE64", "staff", "alice", {"user_info": "Alice"}))]
    )
    assert [answer["error_code"] for answer in answers] == [0, 0], answers
    v2 = f"{live.base}/rest/2.0/face/v2"
    token = {"access_token": live.token(app)}
    probe = image("images/person01/img6.jpg")
    identified = requests.post(f"{v2}/identify", params=token, data={"group_id": "staff", "images": probe}, timeout=60).json()
    best = identified["result"][0]
    assert (best["uid"], best["user_info"], best["group_id"]) == ("alice", "Alice", "staff") and best["scores"][0] >= 80, identified
    groups = requests.post(f"{v2}/faceset/group/getlist", params=token, timeout=60).json()
    assert sorted(groups["result"]) == ["lobby", "staff"], groups
