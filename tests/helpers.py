"""What the tests share besides fixtures: where the photos are, a client that speaks Baidu's
form-encoded protocol, and the assertions on Baidu's answers."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from service.errors import ERRORS, V3_ERRORS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SMOKE = DATA / "faces-smoke"
LFW = DATA / "lfw"


def photo(relative: str) -> bytes:
    """Bytes of a photo under ../shared/data/faces-smoke (e.g. "images/person01/img1.jpg")."""
    return (SMOKE / relative).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def smoke_identities() -> dict[str, list[str]]:
    """person -> photo paths relative to faces-smoke, skipping the WebP that is named .jpg."""
    people: dict[str, list[str]] = {}
    for line in (SMOKE / "identities.tsv").read_text().splitlines()[1:]:
        person, _, files = line.split("\t")
        paths = [f"images/{person}/{name}" for name in files.split(",")]
        people[person] = [p for p in paths if not (SMOKE / p).read_bytes().startswith(b"RIFF")]
    return people


class BaiduClient:
    """Calls facesvc the way Baidu's HTTP clients do: form-encoded POST, token in the URL."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token

    def call(self, path: str, method: str = "POST", **params: Any) -> dict:
        url = f"/rest/2.0/face/v2/{path}"
        if method == "GET":
            response = self.client.get(url, query_string={"access_token": self.token, **params})
        else:
            response = self.client.post(url, query_string={"access_token": self.token}, data=params)
        assert response.status_code == 200, response.data[:300]
        return response.get_json()


class V3Client:
    """Calls facesvc's v3 the way Baidu's current SDKs do: a JSON body (an object, or a list
    for match and faceverify), token in the URL. ``raw`` sends a body as it is."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token

    def call(self, path: str, body: Any = None, raw: Optional[bytes] = None, content_type: str = "application/json", **params: Any) -> dict:
        data = raw if raw is not None else json.dumps(body if body is not None else params).encode()
        response = self.client.post(
            f"/rest/2.0/face/v3/{path}", query_string={"access_token": self.token}, data=data, content_type=content_type
        )
        assert response.status_code == 200, response.data[:300]
        return response.get_json(force=True)


def client_of(app, keys=None, kind: type = BaiduClient) -> Any:
    """A ``kind`` (BaiduClient, V3Client) of ``app`` with a token of ``keys`` (a new app's when None)."""
    auth = app.extensions["facesvc"].auth
    keys = keys or auth.create_keys()
    return kind(app.test_client(), auth.issue_token(keys.api_key, keys.secret_key)["access_token"])


def grey_png() -> bytes:
    """A valid image without a face."""
    ok, data = cv2.imencode(".png", np.full((200, 300, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def assert_ok(answer: dict) -> None:
    """A write succeeded: Baidu answers nothing but the log_id (§1.7.3)."""
    assert answer == {"log_id": answer.get("log_id")}, answer
    assert type(answer["log_id"]) is int and 0 <= answer["log_id"] < 2**64


def assert_error(answer: dict, code: int, message: Optional[str] = None) -> None:
    """Baidu's v2 error object: the code, the table's message verbatim (or the spec's special
    ``message``), an unsigned log_id."""
    expected = {"error_code": code, "error_msg": message or ERRORS[code], "log_id": answer.get("log_id")}
    assert answer == expected, answer
    assert type(answer["log_id"]) is int and 0 <= answer["log_id"] < 2**64


def assert_v3_error(answer: dict, code: int) -> None:
    """v3's error envelope: the code, the table's message verbatim, result null."""
    assert (answer["error_code"], answer["error_msg"], answer["result"], answer["cached"]) == (code, V3_ERRORS[code], None, 0), answer
    assert type(answer["log_id"]) is int and 0 <= answer["log_id"] < 2**53
    assert type(answer["timestamp"]) is int


def v3_result(answer: dict) -> Any:
    """The result of a v3 success, after checking its envelope."""
    assert (answer["error_code"], answer["error_msg"], answer["cached"]) == (0, "SUCCESS", 0), answer
    assert set(answer) == {"error_code", "error_msg", "log_id", "timestamp", "cached", "result"}, answer
    return answer["result"]


def readme_errors(heading: str) -> dict[int, tuple[str, str]]:
    """code -> (message, when) from the README's table under ``## <heading>``."""
    section = (ROOT / "README.md").read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:4] for line in section.splitlines() if re.match(r"^\| \d+ \|", line)]
    table = {int(code): (message.strip(), when.strip()) for code, message, when in rows}
    assert len(table) == len(rows), "a code is listed twice"
    return table
