"""facesvc under gunicorn as a child process on a free loopback port: what the tests that need
the real server and the load benchmark start (``facesvc serve`` runs gunicorn itself)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    redis_url: str,
    data_dir,
    workers: int = 1,
    log_path: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
    port: Optional[int] = None,
) -> tuple[subprocess.Popen, str]:
    """facesvc under gunicorn on a loopback port (a free one when None), in its own process
    group; its output goes to ``log_path`` (discarded when None)."""
    # requests is a test extra: imported here, not at the top, because the facesvc CLI imports
    # this module (GUNICORN_CONF) in an install without the extras (the Docker image).
    import requests

    port = port or free_port()
    environment = {
        **os.environ,
        "FACESVC_REDIS_URL": redis_url,
        "FACESVC_BIND": f"127.0.0.1:{port}",
        "FACESVC_WORKERS": str(workers),
        "FACESVC_THREADS": "4",
        "FACESVC_DATA_DIR": str(data_dir),
        "FACESVC_MODELS_DIR": str(ROOT / "var" / "models"),
        **(env or {}),
    }
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
        env=environment, cwd=ROOT, start_new_session=True, stdout=output, stderr=output,
    )
    if log_path:
        output.close()  # the child holds its own descriptor
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/rest/2.0/face/v2/detect", timeout=1)
            return process, base
        except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker yet
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("gunicorn did not start")


def stop_gunicorn(process: subprocess.Popen) -> None:
    """SIGTERM the process group (graceful), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
