"""``facesvc keys list|create|revoke``: what an operator sees, and revocation ending tokens."""
from __future__ import annotations

from service.ops import cli
from tests.helpers import b64, photo

DETECT = "/rest/2.0/face/v2/detect"
IMAGE = "images/person05/img62.jpg"


def test_keys_list_shows_app_ids_and_api_keys_but_never_secrets(app, services, cli_env, capsys):
    first = services.auth.create_keys()
    second = services.auth.create_keys(first.app_id)
    assert cli.main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    for pair in (first, second):
        assert f"{pair.app_id}\t{pair.api_key}\t" in out
        assert pair.secret_key not in out


def test_keys_create_prints_a_pair_that_gets_a_token(app, services, cli_env, capsys):
    assert cli.main(["keys", "create", "--app-id", "4242"]) == 0
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert printed["APP_ID"] == "4242"
    assert services.auth.issue_token(printed["API_KEY"], printed["SECRET_KEY"])["access_token"]


def test_revoked_key_ends_its_tokens_but_not_the_apps_other_keys(app, services, cli_env, capsys):
    revoked = services.auth.create_keys()
    kept = services.auth.create_keys(revoked.app_id)
    old_token = services.auth.issue_token(revoked.api_key, revoked.secret_key)["access_token"]
    other_token = services.auth.issue_token(kept.api_key, kept.secret_key)["access_token"]
    assert cli.main(["keys", "revoke", revoked.api_key]) == 0
    assert "revoked" in capsys.readouterr().out

    client = app.test_client()
    image = {"image": b64(photo(IMAGE))}
    assert client.post(f"{DETECT}?access_token={old_token}", data=image).get_json()["error_code"] == 110
    assert client.post(f"{DETECT}?access_token={other_token}", data=image).get_json()["result_num"] == 1
    assert client.post("/oauth/2.0/token", data={
        "grant_type": "client_credentials", "client_id": revoked.api_key, "client_secret": revoked.secret_key,
    }).status_code == 401
    assert cli.main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert revoked.api_key not in listed and kept.api_key in listed


def test_revoking_an_unknown_key_fails(app, cli_env):
    assert cli.main(["keys", "revoke", "nosuchkey"]) == 1
