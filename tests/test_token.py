"""/oauth/2.0/token and the access-token check on API calls (spec §1.2.1, §1.15)."""
from __future__ import annotations

import hashlib
import time

import pytest

from service.auth import credentials
from service.store import keys
from tests.helpers import assert_error, b64, photo

TOKEN_URL = "/oauth/2.0/token"
IMAGE = "images/person05/img62.jpg"


def grant(app_keys, **overrides) -> dict:
    values = {"grant_type": "client_credentials", "client_id": app_keys.api_key, "client_secret": app_keys.secret_key}
    values.update(overrides)
    return values


def assert_baidu_token(answer: dict, ttl: int) -> None:
    assert set(answer) == {"access_token", "expires_in", "scope", "refresh_token", "session_key", "session_secret"}
    assert answer["expires_in"] == ttl == 2592000
    assert "brain_all_scope" in answer["scope"].split()
    assert all(isinstance(answer[k], str) and answer[k] for k in answer if k != "expires_in")
    # Baidu's layout: 24.<hex>.<ttl>.<expiry>.<n>-<app id>; the SDKs only pass it on.
    assert answer["access_token"].startswith("24.")
    assert f".{ttl}." in answer["access_token"]


def test_token_is_issued_by_post(app, app_keys, services):
    response = app.test_client().post(TOKEN_URL, data=grant(app_keys))
    assert response.status_code == 200
    assert_baidu_token(response.get_json(), services.settings.token_ttl)


def test_token_is_issued_by_get_with_the_query_string(app, app_keys, services):
    response = app.test_client().get(TOKEN_URL, query_string=grant(app_keys))
    assert response.status_code == 200
    assert_baidu_token(response.get_json(), services.settings.token_ttl)


def test_issued_token_authenticates_an_api_call(app, app_keys):
    client = app.test_client()
    token = client.post(TOKEN_URL, data=grant(app_keys)).get_json()["access_token"]
    response = client.post(f"/rest/2.0/face/v2/detect?access_token={token}", data={"image": b64(photo(IMAGE))})
    assert response.get_json()["result_num"] == 1


def test_token_may_also_come_in_the_form_body(app, token):
    response = app.test_client().post("/rest/2.0/face/v2/detect", data={"access_token": token, "image": b64(photo(IMAGE))})
    assert response.get_json()["result_num"] == 1


def test_wrong_secret_is_an_oauth_error_with_http_401(app, app_keys):
    response = app.test_client().post(TOKEN_URL, data=grant(app_keys, client_secret="0" * 32))
    assert response.status_code == 401
    answer = response.get_json()
    assert answer["error"] == "invalid_client"
    assert answer["error_description"]
    assert "access_token" not in answer


def test_unknown_client_is_an_oauth_error_with_http_401(app, app_keys):
    response = app.test_client().post(TOKEN_URL, data=grant(app_keys, client_id="nobody"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_an_unknown_key_and_a_wrong_secret_get_the_same_answer_after_the_same_work(app, app_keys, monkeypatch):
    """The endpoint must not tell which API keys exist, by its words or by its time: an
    unknown key once answered in ~4 ms without hashing, a wrong secret in ~31 ms."""
    hashed = []
    real = credentials._hash_secret
    monkeypatch.setattr(credentials, "_hash_secret", lambda secret, salt: hashed.append(secret) or real(secret, salt))
    client = app.test_client()
    unknown = client.post(TOKEN_URL, data=grant(app_keys, client_id="nobody")).get_json()
    wrong = client.post(TOKEN_URL, data=grant(app_keys, client_secret="0" * 32)).get_json()
    assert unknown == wrong and len(hashed) == 2  # one PBKDF2 each


def test_failed_grants_are_limited_per_client_address_not_per_key(app, app_keys, services):
    """Ten failures a minute from one address, then its grants wait; a key guessed at from
    many addresses stays usable by its owners."""
    client = app.test_client()

    def ask(address: str, **overrides):
        return client.post(TOKEN_URL, data=grant(app_keys, **overrides), environ_base={"REMOTE_ADDR": address})

    for attempt in range(10):
        assert ask("10.0.0.1", client_secret="0" * 32).status_code == 401
        assert ask(f"10.0.1.{attempt}", client_secret="0" * 32).status_code == 401
    refused = ask("10.0.0.1")  # even the right secret waits out the minute
    assert refused.status_code == 429 and refused.get_json()["error"] == "slow_down"
    assert ask("10.0.2.1").status_code == 200


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", ""])
def test_other_grant_types_are_refused_with_http_400(app, app_keys, grant_type):
    response = app.test_client().post(TOKEN_URL, data=grant(app_keys, grant_type=grant_type))
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_missing_client_secret_is_refused_with_http_400(app, app_keys):
    values = grant(app_keys)
    del values["client_secret"]
    response = app.test_client().post(TOKEN_URL, data=values)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_api_call_without_access_token_is_error_100(app):
    response = app.test_client().post("/rest/2.0/face/v2/detect", data={"image": b64(photo(IMAGE))})
    assert response.status_code == 200
    assert_error(response.get_json(), 100)


def test_api_call_with_a_garbage_token_is_error_110(app, token):
    client = app.test_client()
    for garbage in ("garbage", token[:-1] + ("0" if token[-1] != "0" else "1"), token + "x"):
        response = client.post(f"/rest/2.0/face/v2/detect?access_token={garbage}", data={"image": b64(photo(IMAGE))})
        assert response.status_code == 200
        assert_error(response.get_json(), 110)


def test_api_call_with_an_expired_token_is_error_111(app, services, app_keys):
    token = services.auth.issue_token(app_keys.api_key, app_keys.secret_key)["access_token"]
    key = keys.token(hashlib.sha256(token.encode()).hexdigest())
    assert services.redis.exists(key)
    services.redis.hset(key, "expires_at", int(time.time()) - 1)
    response = app.test_client().post(f"/rest/2.0/face/v2/detect?access_token={token}", data={"image": b64(photo(IMAGE))})
    assert response.status_code == 200
    assert_error(response.get_json(), 111)


def test_token_of_a_deleted_app_is_error_110(app, services, token, app_keys):
    services.redis.hdel(keys.apps(), app_keys.app_id)
    response = app.test_client().post(f"/rest/2.0/face/v2/detect?access_token={token}", data={"image": b64(photo(IMAGE))})
    assert_error(response.get_json(), 110)


def test_two_tokens_of_the_same_keys_differ(app, app_keys):
    client = app.test_client()
    first = client.post(TOKEN_URL, data=grant(app_keys)).get_json()
    second = client.post(TOKEN_URL, data=grant(app_keys)).get_json()
    assert first["access_token"] != second["access_token"]
    assert first["session_key"] != second["session_key"]
    random_parts = {first["access_token"].split(".")[1], second["access_token"].split(".")[1]}
    assert len(random_parts) == 2 and all(len(part) == 32 for part in random_parts)


def test_redis_holds_neither_the_token_nor_the_secret(app, app_keys, services):
    token = app.test_client().post(TOKEN_URL, data=grant(app_keys)).get_json()["access_token"]
    secrets = [token.encode(), token.split(".")[1].encode(), app_keys.secret_key.encode()]
    stored = []
    for key in services.redis.scan_iter(count=1000):
        stored.append(key)
        kind = services.redis.type(key)
        if kind == b"hash":
            for field, value in services.redis.hgetall(key).items():
                stored += [field, value]
        elif kind == b"string":
            stored.append(services.redis.get(key))
        else:
            stored.append(services.redis.dump(key))
    assert len(stored) > 2
    for blob in stored:
        assert not any(secret in blob for secret in secrets)


def test_unknown_api_path_is_216102_with_http_200(app, token):
    client = app.test_client()
    for method in (client.post, client.get):
        response = method(f"/rest/2.0/face/v2/nope?access_token={token}")
        assert response.status_code == 200
        assert_error(response.get_json(), 216102)
