"""The one error table (service/errors.py) against the README's, and every code that can occur
here produced by its condition (spec §1.15)."""
from __future__ import annotations

import re
import time
from typing import Callable

import pytest
import redis

from service.errors import ERRORS
from service.library.face_library import Library
from tests.helpers import LFW, ROOT, BaiduClient, b64, client_of, photo, readme_errors
from bench.forged_images import plain, png_header

FACE = "images/person05/img62.jpg"
TURNED = (LFW / "images/Susan_Sarandon/Susan_Sarandon_0001.jpg").read_bytes()  # yaw ~60 degrees
GETLIST = "faceset/group/getlist"


def not_applicable(code: int) -> bool:
    return readme_errors("Errors")[code][1].startswith("not applicable")


def test_readme_lists_exactly_the_codes_and_messages_of_errors_py():
    assert {code: message for code, (message, _) in readme_errors("Errors").items()} == ERRORS


def test_codes_and_messages_follow_the_spec_table():
    spec = (ROOT.parent / "shared" / "spec" / "baidu-face-api-v2.txt").read_text()
    table = spec.split("1.15 错误码", 2)[2].split("第2章", 1)[0]
    listed = {int(code): message for code, message in re.findall(r"^(\d+)\t([^\t]+)\t", table, re.M)}
    assert listed == {code: message for code, message in ERRORS.items() if code not in (216612, 216619)}


# -- producing each code ------------------------------------------------------------------------


class Caller:
    """What a trigger may use: the test app's client, fresh apps with quotas or the enrolment
    gate, monkeypatch."""

    def __init__(self, api: BaiduClient, app_with_quotas: Callable, monkeypatch, services, gated: Callable[[], BaiduClient]) -> None:
        self.api, self.app_with_quotas, self.monkeypatch, self.services = api, app_with_quotas, monkeypatch, services
        self.gated = gated  # a client of an app with the enrolment gate on

    def call(self, path: str, **params) -> dict:
        return self.api.call(path, **params)

    def with_quota(self, calls: int, **quotas: int) -> dict:
        """The first refusal among ``calls`` quick calls of a fresh app with these quotas."""
        client = client_of(self.app_with_quotas(**quotas))
        answers = [client.call(GETLIST) for _ in range(calls)]
        return next(answer for answer in answers if "error_code" in answer)

    def failing_redis(self, error: Exception) -> dict:
        def fail(*args, **kwargs):
            raise error

        self.monkeypatch.setattr(Library, "list_groups", fail)
        return self.call(GETLIST)


def expired_token(c: Caller) -> dict:
    token = c.api.token
    record = next(key for key in c.services.redis.scan_iter("fs:token:*"))
    c.services.redis.hset(record, "expires_at", int(time.time()) - 1)
    return c.api.client.post(f"/rest/2.0/face/v2/{GETLIST}?access_token={token}").get_json()


def twice(c: Caller, path: str, **params) -> dict:
    c.call(path, **params)
    return c.call(path, **params)


TRIGGERS: dict[int, Callable[[Caller], dict]] = {
    4: lambda c: c.with_quota(3, cluster_qps=1),
    17: lambda c: c.with_quota(2, app_daily=1),
    18: lambda c: c.with_quota(3, app_qps=1),
    19: lambda c: c.with_quota(2, app_total=1),
    100: lambda c: c.api.client.post(f"/rest/2.0/face/v2/{GETLIST}").get_json(),
    110: lambda c: c.api.client.post(f"/rest/2.0/face/v2/{GETLIST}?access_token=24.forged").get_json(),
    111: expired_token,
    216100: lambda c: c.call("detect", image=b64(photo(FACE)), max_face_num="many"),
    216101: lambda c: c.call("detect"),
    216102: lambda c: c.call("no/such/service"),
    216103: lambda c: c.call("match", images=",".join([b64(photo(FACE))] * 11)),
    216111: lambda c: c.call("faceset/user/get", uid="robert'); DROP TABLE users;--"),
    216200: lambda c: c.call("detect", image="!!not base64!!"),
    216201: lambda c: c.call("detect", image=b64(b"GIF89a" + b"\0" * 100)),
    216202: lambda c: c.call("detect", image=b64(png_header(30000, 30000))),
    216300: lambda c: c.failing_redis(redis.ConnectionError("Redis is down")),
    216401: lambda c: c.failing_redis(RuntimeError("a bug")),
    216402: lambda c: c.call("detect", image=b64(plain(200, 200))),
    216611: lambda c: c.call("faceset/user/get", uid="nobody"),
    216612: lambda c: c.call("faceset/user/delete", uid="nobody"),
    216614: lambda c: c.call("match", images=b64(photo(FACE))),
    216615: lambda c: c.gated().call("faceset/user/add", uid="u1", user_info="", group_id="g1", image=b64(TURNED)),
    216616: lambda c: twice(c, "faceset/user/add", uid="u1", user_info="", group_id="g1", image=b64(photo(FACE))),
    216618: lambda c: c.call("identify", group_id="empty", image=b64(photo(FACE))),
    216619: lambda c: (
        c.call("faceset/user/add", uid="u1", user_info="", group_id="g1", image=b64(photo(FACE))),
        c.call("faceset/group/deleteuser", uid="u1", group_id="g1"),
    )[1],
    216631: lambda c: c.call("faceset/user/add", uid="u1", user_info="", group_id=",".join(f"g{n}" for n in range(101)), image=b64(photo(FACE))),
}


def test_every_code_is_produced_here_or_documented_as_not_applicable():
    for code in ERRORS:
        assert (code in TRIGGERS) != not_applicable(code), code


@pytest.fixture
def caller(api, app_with_quotas, services, monkeypatch, request):
    return Caller(api, app_with_quotas, monkeypatch, services, lambda: client_of(request.getfixturevalue("gated_app")))


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_the_condition_produces_the_code(caller, code):
    answer = TRIGGERS[code](caller)
    if code == 216615:  # the enrolment gate says what failed after the table's message
        message, reason = answer["error_msg"].split(": ", 1)
        assert reason.startswith("yaw"), reason
        answer = {**answer, "error_msg": message}
    assert answer == {"error_code": code, "error_msg": ERRORS[code], "log_id": answer["log_id"]}
