"""The v3-era Java, PHP and C# replays (tests/sdk_replays_v3.py) on the wire: what each version
puts in its query, Content-Type and body for a few calls, exactly, and that its signature is
one facesvc's verifier (service/auth/signature.py) accepts, as captured by a local server that
answers every call with success. The flow against facesvc itself is tests/test_sdks_v3.py's;
here, against the live server, only what that flow cannot send through the first v3 versions:
their one-image faceverify (a form, a JSON object)."""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from service.auth import signature
from service.auth.credentials import AppKeys
from tests.live import LiveServer
from tests.sdk_flow_v3 import envelope, image
from tests.sdk_replays_v3 import REPLAYED_V3_SDKS, UNSUPPORTED, JavaHashMap, java_map

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
KEYS = AppKeys("1", "k" * 24, "s" * 32)
TOKEN = "24.0123456789abcdef0123456789abcdef.2592000.1700000000.282335-1"
IMAGE = "ab/c+d=="  # base64 has "/" and "+": PHP's json_encode escapes the one, forms encode both
OPTIONS = {"user_info": "Ali/ce", "quality_control": "LOW"}
ADD_USER = ("addUser", (IMAGE, "BASE64", "staff", "alice", OPTIONS))
TWO = [{"image": IMAGE, "image_type": "BASE64"}, {"image": "0" * 32, "image_type": "FACE_TOKEN"}]


@dataclass
class Captured:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class CaptureServer:
    """A local HTTP server that records every request: the token endpoint grants a token with
    brain_all_scope, every other path answers v3's success envelope."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request: Request) -> Response:
        query = request.environ.get("QUERY_STRING", "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Captured(request.method, request.path, query, headers, request.get_data()))
        if request.path == "/oauth/2.0/token":
            grant = {"access_token": TOKEN, "expires_in": 2592000, "scope": "public brain_all_scope"}
            return Response(json.dumps(grant), content_type=JSON)
        answer = {"error_code": 0, "error_msg": "SUCCESS", "log_id": 1, "timestamp": int(time.time()), "cached": 0, "result": None}
        return Response(json.dumps(answer), content_type=JSON)

    def run(self, version: str, calls: list, signed: bool = False) -> tuple[list, list[Captured]]:
        """The answers and the face requests (token requests left out) of ``calls``."""
        self.requests.clear()
        answers, _ = REPLAYED_V3_SDKS[version]().run(self.base, KEYS, calls, signed=signed)
        return answers, [r for r in self.requests if r.path != "/oauth/2.0/token"]


@pytest.fixture(scope="module")
def capture():
    server = CaptureServer()
    yield server
    server.server.shutdown()


# -- what each version sends ----------------------------------------------------------------------

QUERIES = {
    "php-2.2.3": f"access_token={TOKEN}&aipSdk=php&aipSdkVersion=2_2_3",
    "php-2.2.17": f"access_token={TOKEN}&aipSdk=php&aipSdkVersion=2_2_17",
    "java-4.3.0": f"access_token={TOKEN}&aipSdk=java",
    "java-4.12.0": f"access_token={TOKEN}&aipSdk=java",
    "csharp-3.5.0": f"aipSdk=CSharp&access_token={TOKEN}",
    "csharp-3.6.14": f"aipSdk=CSharp&access_token={TOKEN}",
}
# Java's HashMap orders (Java 8's, for these keys; checked in test_java_hashmap_order...).
JAVA_ADD = ("image", "group_id", "user_id", "user_info", "image_type", "quality_control")
ADD_USER_BODIES = {
    "php-2.2.3": (FORM, "image=ab%2Fc%2Bd%3D%3D&image_type=BASE64&group_id=staff&user_id=alice&user_info=Ali%2Fce&quality_control=LOW"),
    "php-2.2.17": (JSON, '{"image":"ab\\/c+d==","image_type":"BASE64","group_id":"staff","user_id":"alice","user_info":"Ali\\/ce","quality_control":"LOW"}'),
    "java-4.3.0": (FORM, "image=ab%2Fc%2Bd%3D%3D&group_id=staff&user_id=alice&user_info=Ali%2Fce&image_type=BASE64&quality_control=LOW"),
    "java-4.12.0": (FORM, '{"image":"ab/c+d==","group_id":"staff","user_id":"alice","user_info":"Ali/ce","image_type":"BASE64","quality_control":"LOW"}'),
    "csharp-3.5.0": (JSON, '{"image":"ab/c+d==","image_type":"BASE64","group_id":"staff","user_id":"alice","user_info":"Ali/ce","quality_control":"LOW"}'),
    "csharp-3.6.14": (JSON, '{"image":"ab/c+d==","image_type":"BASE64","group_id":"staff","user_id":"alice","user_info":"Ali/ce","quality_control":"LOW"}'),
}
GROUP_LIST_BODIES = {  # getGroupList() without options, then with {"start": 0, "length": 10}
    "php-2.2.3": (FORM, "", "start=0&length=10"),
    "php-2.2.17": (JSON, "[]", '{"start":0,"length":10}'),
    "java-4.3.0": (FORM, "", "start=0&length=10"),
    "java-4.12.0": (FORM, "{}", '{"start":"0","length":"10"}'),
    "csharp-3.5.0": (JSON, "{}", '{"start":0,"length":10}'),
    "csharp-3.6.14": (JSON, "{}", '{"start":0,"length":10}'),
}
MATCH_BODIES = {
    "php-2.2.3": (JSON, '[{"image":"ab\\/c+d==","image_type":"BASE64"},{"image":"00000000000000000000000000000000","image_type":"FACE_TOKEN"}]'),
    "java-4.3.0": (FORM, '[{"image":"ab/c+d==","image_type":"BASE64"},{"image":"00000000000000000000000000000000","image_type":"FACE_TOKEN"}]'),
    "csharp-3.5.0": (JSON, '[{"image":"ab/c+d==","image_type":"BASE64"},{"image":"00000000000000000000000000000000","image_type":"FACE_TOKEN"}]'),
}
MATCH_BODIES["php-2.2.17"] = MATCH_BODIES["php-2.2.3"]
MATCH_BODIES["java-4.12.0"] = MATCH_BODIES["java-4.3.0"]
MATCH_BODIES["csharp-3.6.14"] = MATCH_BODIES["csharp-3.5.0"]
ONE_IMAGE_FACEVERIFY = {  # faceverify of one image with a face_field: the one-image versions
    "php-2.2.3": (FORM, "image=ab%2Fc%2Bd%3D%3D&image_type=BASE64&face_field=age"),
    "java-4.3.0": (FORM, "image=ab%2Fc%2Bd%3D%3D&face_field=age&image_type=BASE64"),
    "csharp-3.5.0": (JSON, '{"image":"ab/c+d==","image_type":"BASE64","face_field":"age"}'),
    "php-2.2.17": (JSON, '[{"image":"ab\\/c+d==","image_type":"BASE64","face_field":"age"}]'),
    "java-4.12.0": (FORM, '[{"image":"ab/c+d==","face_field":"age","image_type":"BASE64"}]'),
    "csharp-3.6.14": (JSON, '[{"image":"ab/c+d==","image_type":"BASE64","face_field":"age"}]'),
}
ONE_IMAGE_VERSIONS = ("php-2.2.3", "java-4.3.0", "csharp-3.5.0")  # no multiSearch, faceverify of one image


def test_every_version_is_replayed():
    assert set(REPLAYED_V3_SDKS) == set(QUERIES)


@pytest.mark.parametrize("version", sorted(REPLAYED_V3_SDKS))
def test_a_registration_is_posted_to_v3_with_the_versions_query_type_and_body(capture, version):
    answers, sent = capture.run(version, [ADD_USER])
    assert answers[0]["error_code"] == 0
    request = sent[0]
    assert (request.method, request.path, request.query) == ("POST", "/rest/2.0/face/v3/faceset/user/add", QUERIES[version])
    content_type, body = ADD_USER_BODIES[version]
    assert (request.headers["content-type"], request.body.decode()) == (content_type, body)
    assert int(request.headers["content-length"]) == len(request.body)


@pytest.mark.parametrize("version", sorted(REPLAYED_V3_SDKS))
def test_the_group_list_without_and_with_options(capture, version):
    _, sent = capture.run(version, [("getGroupList", ()), ("getGroupList", ({"start": 0, "length": 10},))])
    content_type, empty, paged = GROUP_LIST_BODIES[version]
    assert [(r.path, r.headers["content-type"], r.body.decode()) for r in sent] == [
        ("/rest/2.0/face/v3/faceset/group/getlist", content_type, empty),
        ("/rest/2.0/face/v3/faceset/group/getlist", content_type, paged),
    ]


@pytest.mark.parametrize("version", sorted(REPLAYED_V3_SDKS))
def test_match_posts_a_json_array_and_faceverify_as_the_version_can(capture, version):
    one = [{"image": IMAGE, "image_type": "BASE64", "face_field": "age"}]
    answers, sent = capture.run(version, [("match", (TWO,)), ("faceverify", (one,)), ("faceverify", (one + TWO[:1],))])
    assert [(r.path, r.headers["content-type"], r.body.decode()) for r in sent[:2]] == [
        ("/rest/2.0/face/v3/match", *MATCH_BODIES[version]),
        ("/rest/2.0/face/v3/faceverify", *ONE_IMAGE_FACEVERIFY[version]),
    ]
    if version in ONE_IMAGE_VERSIONS:
        assert answers[2] is UNSUPPORTED and len(sent) == 2
    else:
        assert json.loads(sent[2].body) == [{"image": IMAGE, "image_type": "BASE64", "face_field": "age"}, TWO[0]]


@pytest.mark.parametrize("version", sorted(REPLAYED_V3_SDKS))
def test_search_sends_its_group_list_and_multi_search_exists_from_its_version(capture, version):
    calls = [("search", (IMAGE, "BASE64", "staff,vip", {"max_user_num": 2})), ("multiSearch", (IMAGE, "BASE64", "staff", {"max_face_num": 2}))]
    answers, sent = capture.run(version, calls)
    number = "2" if version.startswith("java") or version == "php-2.2.3" else 2  # Java's options and forms are text
    search = {"image": IMAGE, "image_type": "BASE64", "group_id_list": "staff,vip", "max_user_num": number}
    assert body_values(sent[0]) == search
    if version in ONE_IMAGE_VERSIONS:
        assert answers[1] is UNSUPPORTED and len(sent) == 1
    else:
        assert sent[1].path == "/rest/2.0/face/v3/multi-search"
        assert body_values(sent[1]) == {"image": IMAGE, "image_type": "BASE64", "group_id_list": "staff", "max_face_num": number}


def body_values(request: Captured) -> dict:
    """The body's keys and values, whether a form or JSON was sent."""
    if request.headers["content-type"] == JSON or request.body[:1] == b"{":
        return json.loads(request.body)
    return dict(parse_qsl(request.body.decode(), keep_blank_values=True))


def test_php_json_escapes_slashes_and_non_ascii_and_java_json_writes_them_raw(capture):
    calls = [("addUser", (IMAGE, "BASE64", "g", "u", {"user_info": "张/三"}))]
    _, php = capture.run("php-2.2.17", calls)
    _, java = capture.run("java-4.12.0", calls)
    _, csharp = capture.run("csharp-3.6.14", calls)
    assert b'"user_info":"\\u5f20\\/\\u4e09"' in php[0].body
    assert '"user_info":"张/三"'.encode() in java[0].body and '"user_info":"张/三"'.encode() in csharp[0].body


def test_java_hashmap_order_is_java_8s():
    """The order tests/sdk_replays.py captured from Java 4.2.0 for v2's calls, and a resize."""
    assert [k for k, _ in java_map([(k, "") for k in ("uid", "user_info", "group_id", "image")]).items()] == ["uid", "image", "user_info", "group_id"]
    assert [k for k, _ in java_map([(k, "") for k in ("uid", "image", "group_id", "user_info")]).items()] == ["uid", "image", "group_id", "user_info"]
    assert [k for k, _ in java_map([(k, "") for k in ("grant_type", "client_id", "client_secret")]).items()] == ["grant_type", "client_secret", "client_id"]
    big = java_map([(f"key{n}", n) for n in range(13)])
    assert len(big.buckets) == 32 and sorted(k for k, _ in big.items()) == sorted(f"key{n}" for n in range(13))
    presized = JavaHashMap()
    presized.put_all(java_map([("start", "0"), ("length", "10")]))
    assert len(presized.buckets) == 4


# -- signatures -----------------------------------------------------------------------------------

SIGNED_HEADERS = {  # the signed-headers field of each version's authorization, for a JSON and a form call
    "php-2.2.3": ("content-type;host;x-bce-date", "host;x-bce-date"),
    "php-2.2.17": ("content-type;host;x-bce-date", "content-type;host;x-bce-date"),
    "java-4.3.0": ("", ""),
    "java-4.12.0": ("", ""),
    "csharp-3.5.0": ("content-type;host", "content-type;host"),
    "csharp-3.6.14": ("content-type;host", "content-type;host"),
}


@pytest.mark.parametrize("version", sorted(REPLAYED_V3_SDKS))
def test_signed_requests_carry_no_token_and_verify_with_the_secret(capture, version):
    _, sent = capture.run(version, [("match", (TWO,)), ADD_USER], signed=True)
    assert not [r for r in capture.requests if r.path == "/oauth/2.0/token"]
    names = []
    for request in sent:
        assert "access_token" not in request.query
        auth = signature.parse_authorization(request.headers["authorization"])
        names.append(";".join(auth.signed_headers))
        assert auth.expiration == (1200 if version.startswith("csharp") else 1800)
        signature.verify(auth, KEYS.secret_key, request.method, request.path, request.query, request.headers, time.time(), lambda: request.body, 1800)
        if version.startswith("java"):
            assert request.headers["content-md5"] == hashlib.md5(request.body).hexdigest()
    assert tuple(names) == SIGNED_HEADERS[version]


@pytest.mark.parametrize("version", sorted(REPLAYED_V3_SDKS))
def test_a_signature_over_another_secret_does_not_verify(capture, version):
    _, sent = capture.run(version, [ADD_USER], signed=True)
    request = sent[0]
    auth = signature.parse_authorization(request.headers["authorization"])
    with pytest.raises(signature.SignatureError):
        signature.verify(auth, "x" * 32, request.method, request.path, request.query, request.headers, time.time(), lambda: request.body, 1800)


# -- against facesvc --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ONE_IMAGE_VERSIONS)
def test_the_first_versions_one_image_faceverify_is_answered_by_facesvc(live: LiveServer, version):
    """PHP 2.2.3 and Java 4.3.0 post a form, C# 3.5.0 one JSON object: each is one image."""
    one = [{"image": image("images/person01/img5.jpg"), "image_type": "BASE64", "face_field": "age"}]
    for signed in (False, True):
        answers, _ = REPLAYED_V3_SDKS[version]().run(live.base, live.new_app(), [("faceverify", (one,))], signed=signed)
        envelope(answers[0])
        faces = answers[0]["result"]["face_list"]
        assert len(faces) == 1 and 1 <= faces[0]["age"] <= 100, answers[0]
        assert answers[0]["result"]["face_liveness"] == faces[0]["liveness"]["livemapscore"], answers[0]
