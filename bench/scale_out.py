"""Failover of the Redis under live facesvc: a primary SIGKILLed during three concurrent
registration streams, on a Redis Cluster (3 primaries + 3 replicas) and on Sentinel (a primary,
2 replicas, 3 sentinels), both on loopback from bench/redis_deployments.py, with facesvc under
gunicorn (2 workers) in front.

Per run: registrations acknowledged and lost (acknowledged but absent afterwards), the answers
other than success (only 216300 is expected), and the times from the kill to the promotion,
of failed writes (first to last), and from the promotion to the next success. The test suite
runs one of each (tests/test_scale_out.py asserts what must hold); this runs ``--runs`` of each
and reports medians.

    python -m bench.scale_out [--runs 3] [--out bench/results/scale_out.json]
"""
from __future__ import annotations

import argparse
import base64
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import requests

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import DATA_DIR, RESULTS_DIR
from bench.redis_deployments import ClusterDeployment, SentinelDeployment, wait_for
from config.defaults import load_settings
from service.auth.credentials import Auth
from service.ops.local_server import start_gunicorn, stop_gunicorn
from service.store import keys
from service.store.redis_server import connect

PHOTOS = [
    base64.b64encode((DATA_DIR / "faces-smoke" / "images" / path).read_bytes()).decode()
    for path in ("person01/img5.jpg", "person02/img12.jpg", "person03/img51.jpg")
]
RESUME_GUARD = 30  # seconds after a promotion by which writes must succeed again
KINDS = {"cluster": ClusterDeployment, "sentinel": SentinelDeployment}


@dataclass
class Streams:
    """Three clients registering new users, one request at a time each, until stopped."""

    base: str
    token: str
    answers: list[tuple[float, str, int]] = field(default_factory=list)  # (time, uid, code; -1: no answer)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, stream: int) -> None:
        n = 0
        while not self.stop.is_set():
            uid = f"s{stream}_{n}"
            n += 1
            try:
                answer = requests.post(f"{self.base}/rest/2.0/face/v2/faceset/user/add", params={"access_token": self.token},
                                       data={"uid": uid, "user_info": "", "group_id": "g", "image": PHOTOS[stream]}, timeout=70)
                code = answer.json().get("error_code", 0) if answer.status_code == 200 else -answer.status_code
            except requests.RequestException:
                code = -1
            self.answers.append((time.monotonic(), uid, code))

    def acknowledged(self) -> set[str]:
        return {uid for _, uid, code in self.answers if code == 0}

    def succeeding_since(self, since: float) -> bool:
        """Whether every stream has answered successfully for 2 s after ``since``."""
        for stream in range(3):
            mine = [(t, code) for t, uid, code in list(self.answers) if uid.startswith(f"s{stream}_") and t > since]
            if not mine or mine[-1][1] != 0 or mine[-1][0] - min(t for t, code in mine if code == 0) < 2:
                return False
        return True


def failover_run(kind: str, directory: Path) -> dict:
    """One run on a fresh deployment of ``kind``: the figures, the codes seen and the uids lost."""
    deployment = KINDS[kind](directory / "redis")
    process, base = start_gunicorn(deployment.url, directory / "facesvc", workers=2, log_path=directory / "gunicorn.log")
    try:
        app = Auth.from_settings(connect(deployment.url), load_settings(data_dir=directory / "facesvc")).create_keys()
        grant = {"grant_type": "client_credentials", "client_id": app.api_key, "client_secret": app.secret_key}
        token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
        key = keys.groups(app.app_id)
        before = deployment.primary_of(key) if kind == "cluster" else deployment.current_primary()
        now_primary: Callable[[], int] = (lambda: deployment.primary_of(key)) if kind == "cluster" else deployment.current_primary
        streams = Streams(base, token)
        threads = [threading.Thread(target=streams.run, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(3)
            killed_at = time.monotonic()
            deployment.kill(before)
            wait_for(lambda: now_primary() != before, "a promoted replica", timeout=60)
            promoted_at = time.monotonic()
            wait_for(lambda: streams.succeeding_since(promoted_at), "writes after the promotion", timeout=RESUME_GUARD)
        finally:
            streams.stop.set()
            for thread in threads:
                thread.join()
        present = users(base, token)
    finally:
        stop_gunicorn(process)
        deployment.stop()
    failures = [t for t, _, code in streams.answers if code]
    resumed = min(t for t, _, code in streams.answers if code == 0 and t > promoted_at) - promoted_at
    return {
        "acknowledged": len(streams.acknowledged()),
        "lost": sorted(streams.acknowledged() - present),
        "codes": sorted({code for _, _, code in streams.answers}),
        "failed_answers": len(failures),
        "kill_to_promotion_s": promoted_at - killed_at,
        "failed_writes_first_to_last_s": max(failures) - min(failures) if failures else 0.0,
        "promotion_to_next_success_s": max(0.0, resumed),
    }


def users(base: str, token: str) -> set[str]:
    """Every uid of group g, read through the API."""
    uids: set[str] = set()
    while True:
        answer = requests.post(f"{base}/rest/2.0/face/v2/faceset/group/getusers", params={"access_token": token},
                               data={"group_id": "g", "start": len(uids), "num": 1000}, timeout=60).json()
        page = [entry["uid"] for entry in answer.get("result", [])]
        uids.update(page)
        if len(page) < 1000:
            return uids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "scale_out.json")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for _ in range(args.runs):
        for kind in KINDS:
            with tempfile.TemporaryDirectory() as directory:
                runs[kind].append(failover_run(kind, Path(directory)))
    report = {"benchmark": "scale_out", "git": git_revision(), "machine": machine_info(), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    figures = ("acknowledged", "failed_answers", "kill_to_promotion_s", "failed_writes_first_to_last_s", "promotion_to_next_success_s")
    print(f"{'deployment':<10} {'lost':>5} " + " ".join(f"{name:>30}" for name in figures) + "   (medians of the runs)")
    for kind, results in runs.items():
        lost = sum(len(r["lost"]) for r in results)
        cells = " ".join(f"{float(np.median([r[name] for r in results])):>30.2f}" for name in figures)
        print(f"{kind:<10} {lost:>5} {cells}")


if __name__ == "__main__":
    main()
