"""/console in a real headless Chromium: sign in, drop photos, register, delete, recognise.

The set-up installs what it needs, as CI starts from a clean machine: Debian's ``chromium``
(apt-get) and ``playwright-core`` from npm into var/e2e. The screenshot is kept as a test
artefact in var/artifacts/console.png.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from bench.debian import ensure_debian_packages
from tests.helpers import ROOT, SMOKE, smoke_identities

CHROMIUM = Path("/usr/bin/chromium")
MODULES = ROOT / "var" / "e2e" / "node_modules"
PLAYWRIGHT = "playwright-core@1.65.1"
SCREENSHOT = ROOT / "var" / "artifacts" / "console.png"


@pytest.fixture(scope="session")
def browser_tools() -> Path:
    """Chromium from Debian and playwright-core from npm, installed when missing."""
    ensure_debian_packages({str(CHROMIUM): "chromium"})
    if not (MODULES / "playwright-core" / "package.json").exists():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed for playwright-core (install.sh needs it too)")
        MODULES.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(MODULES.parent), "--no-audit", "--no-fund", "--silent", PLAYWRIGHT],
            check=True, timeout=600,
        )
    return MODULES


@pytest.fixture
def server(app):
    """The test app on a loopback port, for the browser."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)


def test_console_signs_in_registers_recognises_and_deletes(browser_tools, server, app_keys, services):
    people = smoke_identities()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BASE": server,
        "API_KEY": app_keys.api_key,
        "SECRET_KEY": app_keys.secret_key,
        "PHOTO_REGISTER": str(SMOKE / people["person01"][0]),
        "PHOTO_OTHER": str(SMOKE / people["person02"][0]),
        "PHOTO_PROBE": str(SMOKE / people["person01"][-1]),
        "PHOTO_GROUP": str(SMOKE / "extras" / "selfie-many-people.jpg"),  # person01 among five others
        "SHOT": str(SCREENSHOT),
        "MODULES": str(browser_tools),
    }
    run = subprocess.run(
        ["node", str(ROOT / "tests" / "e2e" / "console.mjs")], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert seen["errors"] == []
    assert seen["appShown"] == app_keys.app_id and seen["storedSecret"] is False
    assert len(seen["labelsBefore"]) == 1 and "unknown" in seen["labelsBefore"][0]
    assert "person01 · Ann Example" in seen["labelsAfterRegister"][0]
    assert seen["usersAfterRegister"] == ["person01", "person02"]
    assert seen["usersAfterDelete"] == ["person01"]
    (probe,) = seen["labelsProbe"]
    assert "person01 · Ann Example" in probe and int(probe.rsplit(" ", 1)[1]) >= 80
    number, identity, score, age, gender, expression, quality = seen["tableProbe"]
    assert identity == "person01 · Ann Example (staff)" and float(score) >= 80
    assert age.isdigit() and gender.split()[0] in ("male", "female") and expression in ("none", "smile", "laugh")
    assert seen["groups"] == ["staff"]
    assert len(seen["labelsGroup"]) == 6
    assert [label for label in seen["labelsGroup"] if "person01" in label] == [
        label for label in seen["labelsGroup"] if "unknown" not in label
    ]
    assert sum("person01 · Ann Example" in label for label in seen["labelsGroup"]) == 1
    assert services.library.list_users(app_keys.app_id, "staff", 0, 10) == [("person01", "Ann Example")]
    assert SCREENSHOT.stat().st_size > 20_000


def test_console_files_are_served_without_a_token_under_a_content_security_policy(app):
    client = app.test_client()
    page = client.get("/console")
    assert page.status_code == 200 and b"facesvc console" in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name in ("console.js", "console.css"):
        assert client.get(f"/console/{name}").status_code == 200
    assert client.get("/console/../app.py").get_json()["error_code"] == 216102


@pytest.mark.parametrize("path", ["/console//", "//console", "/console//console.js", "/rest/2.0/face/v2//detect"])
def test_a_doubled_slash_never_redirects_to_the_host_a_client_named(app, path):
    """Werkzeug used to answer "//" with a 308 to http://<Host header>/...: an open redirect."""
    response = app.test_client().get(path, headers={"Host": "evil.example.com"})
    assert response.status_code < 300 or response.status_code >= 400
    assert "evil.example.com" not in response.headers.get("Location", "")
