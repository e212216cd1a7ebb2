"""bce-auth-v1 request signatures (spec §1.2.2), made by the official Python SDK 1.6.9.0.

The SDK runs in-process: a requests adapter mounted on its session hands its requests to the
Flask test client and keeps them, so a test can replay one with a part changed. Its clock is
shifted by replacing the ``datetime`` its module reads (the SDK itself is never edited). The
2.0.0.1 and Node SDKs sign against the live server in test_sdks.py.
"""
from __future__ import annotations

import datetime
import hashlib
import re
import time
import types
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from service.auth import signature
from service.errors import ERRORS
from tests.helpers import b64, photo
from tests.sdk_replays import JavaSdk, Session, WireRequest
from tests.sdks import PythonSdk

GETLIST = "/rest/2.0/face/v2/faceset/group/getlist"
IMAGE = "images/person05/img62.jpg"


class FlaskAdapter(BaseAdapter):
    """A requests transport that hands each request to a Flask test client and keeps it."""

    def __init__(self, client) -> None:
        super().__init__()
        self.client = client
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        answer = send(self.client, request)
        response = requests.Response()
        response.status_code, response._content = answer.status_code, answer.get_data()
        response.headers = CaseInsensitiveDict(answer.headers)
        response.request, response.url = request, request.url
        return response

    def close(self) -> None:
        """Nothing to release."""


def send(client, request: requests.PreparedRequest, headers: dict | None = None, query: str | None = None, body: Any = None):
    """Send (a changed copy of) a captured request through the Flask test client."""
    url = urlsplit(request.url)
    sent = CaseInsensitiveDict(request.headers)
    sent.update(headers or {})
    return client.open(
        url.path,
        method=request.method,
        query_string=url.query if query is None else query,
        headers=dict(sent),
        data=request.body if body is None else body,
    )


@pytest.fixture(scope="module")
def python_sdk() -> PythonSdk:
    return PythonSdk("1.6.9.0")


@pytest.fixture
def sdk_client(python_sdk, app, app_keys):
    """An SDK 1.6.9.0 client that signs every request, wired to the Flask app."""
    client = python_sdk.client("https://aip.baidubce.com", app_keys, signed=True)
    adapter = FlaskAdapter(app.test_client())
    client._AipBase__client.mount("https://", adapter)
    client.adapter = adapter
    return client


def signed_request(sdk_client) -> requests.PreparedRequest:
    """A getlist the SDK signed, and that facesvc accepted."""
    answer = sdk_client.getGroupList()
    assert answer["result_num"] == 0 and "error_code" not in answer
    request = sdk_client.adapter.sent[-1]
    assert request.headers["authorization"].startswith("bce-auth-v1/")
    assert "access_token" not in request.url
    return request


def shift_sdk_clock(monkeypatch, sdk_client, seconds: int) -> None:
    """Make the SDK sign as if its clock were ``seconds`` ahead."""
    shifted = types.SimpleNamespace(
        datetime=types.SimpleNamespace(utcnow=lambda: datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds))
    )
    monkeypatch.setitem(type(sdk_client).__mro__[1]._getAuthHeaders.__globals__, "datetime", shifted)


def error(response) -> int:
    answer = response.get_json()
    assert response.status_code == 200 and answer["error_msg"] == ERRORS[answer["error_code"]]
    return answer["error_code"]


# -- what the SDK signs ------------------------------------------------------------------------


def test_the_sdks_signature_is_what_facesvc_computes(sdk_client, app_keys):
    request = signed_request(sdk_client)
    auth = signature.parse_authorization(request.headers["authorization"])
    assert auth.api_key == app_keys.api_key and auth.expiration == 1800
    assert auth.signed_headers == ["host", "x-bce-date"]
    query = urlsplit(request.url).query
    canonical = signature.canonical_request("POST", GETLIST, query, request.headers, auth.signed_headers)
    assert signature.sign(app_keys.secret_key, auth, canonical) == auth.signature


def test_an_sdk_signed_call_with_an_image_is_answered(sdk_client):
    answer = sdk_client.detect(photo(IMAGE))
    assert answer["result_num"] == 1
    assert "authorization" in sdk_client.adapter.sent[-1].headers


# -- what changes it ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"query": "aipSdk=python&aipVersion=1_6_8"},
        {"query": "aipSdk=python&aipVersion=1_6_9&uid=mallory"},
        {"headers": {"host": "evil.example.com"}},
        {"headers": {"x-bce-date": "2001-01-01T00:00:00Z"}},
    ],
    ids=["query-value", "query-added", "host", "x-bce-date"],
)
def test_a_changed_query_or_signed_header_is_110(app, sdk_client, change):
    request = signed_request(sdk_client)
    assert error(send(app.test_client(), request, **change)) == 110


def test_a_changed_signature_is_110(app, sdk_client):
    request = signed_request(sdk_client)
    header = request.headers["authorization"]
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert error(send(app.test_client(), request, headers={"authorization": flipped})) == 110


def test_a_signature_made_with_another_secret_is_110(app, python_sdk, services, app_keys):
    other = services.auth.create_keys(app_keys.app_id)
    forged = type(other)(other.app_id, other.api_key, app_keys.secret_key)
    client = python_sdk.client("https://aip.baidubce.com", forged, signed=True)
    client._AipBase__client.mount("https://", FlaskAdapter(app.test_client()))
    assert client.getGroupList()["error_code"] == 110


@pytest.mark.parametrize(
    "header",
    ["bce-auth-v1/only/three", "bce-auth-v2/ak/2020-01-01T00:00:00Z/1800/host/abc", "bce-auth-v1/nokey/2020-01-01T00:00:00Z/1800/host/abc", "Bearer x"],
    ids=["short", "version", "unknown-key", "bearer"],
)
def test_a_malformed_or_unknown_authorization_is_110(app, header):
    response = app.test_client().post(GETLIST, headers={"authorization": header})
    assert error(response) == 110


def test_an_sdk_signature_does_not_cover_the_form_body(app, sdk_client):
    """The SDKs sign no body digest, so a changed body passes (README: "Request signatures")."""
    signed_request(sdk_client)
    request = sdk_client.adapter.sent[-1]
    response = send(app.test_client(), request, body="start=0&num=1")
    assert response.get_json()["result_num"] == 0


def test_a_signed_body_digest_makes_a_changed_body_110(app, app_keys):
    body = f"image={b64(photo(IMAGE))}".replace("+", "%2B")
    digest = hashlib.sha256(body.encode()).hexdigest()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"host": "localhost", "x-bce-date": now, signature.BODY_DIGEST: digest, "content-type": "application/x-www-form-urlencoded"}
    auth = signature.Authorization(app_keys.api_key, now, 1800, sorted(headers), "")
    canonical = signature.canonical_request("POST", "/rest/2.0/face/v2/detect", "", headers, auth.signed_headers)
    header = f"bce-auth-v1/{app_keys.api_key}/{now}/1800/{';'.join(auth.signed_headers)}/{signature.sign(app_keys.secret_key, auth, canonical)}"
    client = app.test_client()
    intact = client.post("/rest/2.0/face/v2/detect", headers={**headers, "authorization": header}, data=body)
    assert intact.get_json()["result_num"] == 1
    changed = client.post("/rest/2.0/face/v2/detect", headers={**headers, "authorization": header}, data=body + "&max_face_num=2")
    assert error(changed) == 110


# -- time --------------------------------------------------------------------------------------


def test_a_signature_older_than_its_expiration_is_111(monkeypatch, sdk_client):
    shift_sdk_clock(monkeypatch, sdk_client, -1801)
    assert sdk_client.getGroupList()["error_code"] == 111


def test_a_signature_from_the_future_is_110(monkeypatch, sdk_client):
    shift_sdk_clock(monkeypatch, sdk_client, signature.CLOCK_SKEW + 60)
    assert sdk_client.getGroupList()["error_code"] == 110


@pytest.mark.parametrize("seconds", [-1700, 60], ids=["late-within-expiration", "client-clock-ahead"])
def test_a_signature_within_its_window_is_accepted(monkeypatch, sdk_client, seconds):
    shift_sdk_clock(monkeypatch, sdk_client, seconds)
    assert sdk_client.getGroupList()["result_num"] == 0


# -- both ways of auth -------------------------------------------------------------------------


def test_a_token_wins_over_a_signature_when_both_are_sent(app, sdk_client, token):
    request = signed_request(sdk_client)
    bad = request.headers["authorization"][:-4] + "0000"
    response = send(app.test_client(), request, headers={"authorization": bad}, query=f"access_token={token}")
    assert response.get_json()["result_num"] == 0
    wrong_token = send(app.test_client(), request, query="access_token=24.nothing")
    assert error(wrong_token) == 110


def test_the_sdk_uses_a_token_when_its_scope_allows_and_signs_otherwise(app, python_sdk, app_keys):
    for signed in (False, True):
        client = python_sdk.client("https://aip.baidubce.com", app_keys, signed=signed)
        adapter = FlaskAdapter(app.test_client())
        client._AipBase__client.mount("https://", adapter)
        assert client.getGroupList()["result_num"] == 0
        request = adapter.sent[-1]
        assert ("authorization" in request.headers) == signed
        assert ("access_token=" in request.url) == (not signed)


# -- the Java SDK's form (tests/sdk_replays.py builds its requests) ----------------------------

JAVA = JavaSdk("4.2.0")
AFTERNOON = datetime.datetime(2026, 11, 30, 15, 20, 0, tzinfo=datetime.timezone.utc).timestamp()
HALF_DAY = 12 * 3600


def java_request(app_keys, at: float, fields: list | None = None, path: str = GETLIST) -> WireRequest:
    """A request as Java 4.2.0 signs it at ``at`` (for the Flask test client's host)."""
    session = Session("http://localhost", app_keys, signed=True, clock=lambda: at)
    return JAVA.build(session, path, fields or [("start", "0"), ("num", "10")], None)


def send_wire(app, request: WireRequest):
    return app.test_client().open(
        request.path, method=request.method, query_string=request.query, headers=request.headers, data=request.body
    )


def test_java_leaves_the_signed_headers_empty_and_sends_a_hex_content_md5(app, services, app_keys):
    services.auth.clock = lambda: AFTERNOON - HALF_DAY + 5
    request = java_request(app_keys, AFTERNOON - HALF_DAY)
    assert request.header("Authorization").split("/")[4] == ""
    assert re.fullmatch(r"[0-9a-f]{32}", request.header("Content-MD5"))
    answer = send_wire(app, request).get_json()
    assert (answer["result_num"], answer["result"]) == (0, [])


@pytest.mark.parametrize(
    "hour, written", [(15, "03"), (23, "11"), (0, "12"), (12, "12"), (9, "09")], ids=["15h", "23h", "00h", "12h", "09h"]
)
def test_a_java_signature_is_accepted_at_every_hour_of_the_day(app, services, app_keys, hour, written):
    """Java <= 4.2 writes "hh": afternoon times 12 hours early, just after midnight 12 late."""
    at = AFTERNOON - (15 - hour) * 3600
    services.auth.clock = lambda: at + 5
    request = java_request(app_keys, at)
    assert request.header("x-bce-date")[11:13] == written
    assert send_wire(app, request).get_json()["result_num"] == 0


def test_a_morning_java_request_replayed_in_the_afternoon_is_refused(app, services, app_keys, redis_client):
    morning = AFTERNOON - HALF_DAY
    request = java_request(app_keys, morning)
    services.auth.clock = lambda: morning + 5
    assert send_wire(app, request).get_json()["result_num"] == 0
    services.auth.clock = lambda: AFTERNOON + 5  # the same written time, read 12 hours later
    assert error(send_wire(app, request)) == 110
    for key in redis_client.scan_iter(match="fs:replay:*"):
        redis_client.delete(key)
    assert send_wire(app, request).get_json()["result_num"] == 0  # what the cache stood between


def test_another_sdks_signature_twelve_hours_old_is_expired(monkeypatch, sdk_client):
    """Only Java's form (an empty signed-headers field) is read in the other half of the day."""
    shift_sdk_clock(monkeypatch, sdk_client, -HALF_DAY)
    assert sdk_client.getGroupList()["error_code"] == 111


def test_java_signs_the_host_without_the_port_its_http_layer_sends(app, services, app_keys):
    services.auth.clock = lambda: AFTERNOON + 5
    request = java_request(app_keys, AFTERNOON)
    request.headers = [(k, "localhost:8080" if k == "Host" else v) for k, v in request.headers]
    response = app.test_client().open(
        request.path, method="POST", query_string=request.query, headers=request.headers, data=request.body,
        base_url="http://localhost:8080",
    )
    assert response.get_json()["result_num"] == 0


# -- replays -----------------------------------------------------------------------------------


def test_an_exact_replay_of_a_signed_request_is_110(app, sdk_client):
    request = signed_request(sdk_client)
    assert error(send(app.test_client(), request)) == 110


def test_one_signature_over_two_bodies_in_one_second_is_not_a_replay(app, services, app_keys):
    """The SDKs sign no body and their date has one-second resolution: a busy client signs
    identical strings for different requests to one path. Both are answered."""
    services.auth.clock = lambda: AFTERNOON + 5
    first = java_request(app_keys, AFTERNOON, [("start", "0"), ("num", "10")])
    second = java_request(app_keys, AFTERNOON, [("start", "0"), ("num", "20")])
    second.headers = [(k, first.header(k) if k in ("Authorization", "Content-MD5", "Content-Length") else v) for k, v in second.headers]
    assert send_wire(app, first).get_json()["result_num"] == 0
    assert send_wire(app, second).get_json()["result_num"] == 0


# -- crafted headers ---------------------------------------------------------------------------


def manual_signature(app_keys, timestamp: str, expiration: int) -> dict[str, str]:
    """Headers of a getlist signed like the Python SDK, with any timestamp and expiration."""
    headers = {"host": "localhost", "x-bce-date": timestamp}
    auth = signature.Authorization(app_keys.api_key, timestamp, expiration, ["host", "x-bce-date"], "")
    canonical = signature.canonical_request("POST", GETLIST, "", headers, auth.signed_headers)
    header = f"bce-auth-v1/{app_keys.api_key}/{timestamp}/{expiration}/host;x-bce-date/{signature.sign(app_keys.secret_key, auth, canonical)}"
    return {**headers, "authorization": header}


def test_an_expiration_beyond_the_cap_counts_as_the_cap(app, app_keys, settings):
    old = "2000-01-01T00:00:00Z"
    assert error(app.test_client().post(GETLIST, headers=manual_signature(app_keys, old, 10**12))) == 111
    cap = settings.signature_max_seconds
    stamp = datetime.datetime.fromtimestamp(time.time() - cap - 60, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error(app.test_client().post(GETLIST, headers=manual_signature(app_keys, stamp, 10 * cap))) == 111


@pytest.mark.parametrize(
    "expiration, signed, sig",
    [("¹", "host", "a" * 64), ("9" * 5000, "host", "a" * 64), ("1" + "0" * 400, "host", "a" * 64),
     ("1800", "host", "é" * 64), ("1800", "höst", "a" * 64), ("1800", "host", "a" * 10_000)],
    ids=["superscript-digit", "5000-digits", "10e400", "non-ascii-signature", "non-ascii-header", "long-signature"],
)
def test_crafted_authorization_headers_are_110(app, app_keys, expiration, signed, sig):
    header = f"bce-auth-v1/{app_keys.api_key}/2026-11-30T10:00:00Z/{expiration}/{signed}/{sig}"
    response = app.test_client().post(GETLIST, headers={"authorization": header.encode().decode("latin-1")})
    assert error(response) == 110


# -- what a signature covers -------------------------------------------------------------------


def python_signed(app_keys, path: str, query: str) -> dict[str, str]:
    """Headers of a request signed as the Python SDK signs (host;x-bce-date), over ``query``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"host": "localhost", "x-bce-date": stamp}
    auth = signature.Authorization(app_keys.api_key, stamp, 1800, ["host", "x-bce-date"], "")
    canonical = signature.canonical_request("POST", path, query, headers, auth.signed_headers)
    header = f"bce-auth-v1/{app_keys.api_key}/{stamp}/1800/host;x-bce-date/{signature.sign(app_keys.secret_key, auth, canonical)}"
    return {**headers, "authorization": header}


GETUSERS = "/rest/2.0/face/v2/faceset/group/getusers"


def test_a_signed_query_value_wins_over_the_unsigned_body(app, api, app_keys):
    for uid, group in (("ann", "staff"), ("vic", "vip")):
        api.call("faceset/user/add", uid=uid, user_info="", group_id=group, image=b64(photo(IMAGE)))
    headers = python_signed(app_keys, GETUSERS, "group_id=staff")
    answer = app.test_client().post(GETUSERS, query_string="group_id=staff", headers=headers, data={"group_id": "vip"}).get_json()
    assert [user["uid"] for user in answer["result"]] == ["ann"]


def test_a_parameter_repeated_in_a_signed_query_is_refused(app, app_keys):
    query = "group_id=staff&group_id=vip"
    answer = app.test_client().post(GETUSERS, query_string=query, headers=python_signed(app_keys, GETUSERS, query)).get_json()
    assert answer["error_code"] == 216100
