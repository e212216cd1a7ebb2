"""Hostile-input soak: a live facesvc (gunicorn, default workers and threads) under a long mix of
attacks while slow clients hold connections open, then a consistency check of the library.

Requests (``--requests``, 8 concurrent clients): fuzzed parameters on every v2 endpoint (v1 URLs
too), JSON and form bodies of odd shapes, every image bomb of bench/forged_images.py (pixel
bombs, a JPEG of 2,000 scans, formats facesvc refuses, truncated and lying headers), forms of
thousands of fields, crafted Authorization headers, a valid detect now and then; meanwhile
``--slow-clients`` connections trickle their requests (bench/load.py's SlowClients). Counted:
answers by HTTP status and Baidu code, 5xx (must be 0), hangs (no answer within 30 s: must be
0), the workers' RSS before and after, and the library check afterwards.

    python -m bench.hostile_soak [--requests 100000] [--slow-clients 200]
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import random
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from bench.forged_images import bmp_header, jpeg_header, many_scan_jpeg, plain, png_header, reencoded
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import RESULTS_DIR, ROOT
from bench.load import SlowClients
from config.defaults import load_settings
from service.auth.credentials import Auth
from service.library.check import check_library
from service.ops.files import loose_modes, restrict_new_files
from service.ops.local_server import start_gunicorn, stop_gunicorn
from service.store.faces import FaceStore
from service.store.redis_server import EmbeddedRedis, connect

log = logging.getLogger(__name__)
SMOKE = ROOT.parent / "shared" / "data" / "faces-smoke" / "images"
HANG_S = 30.0
ENDPOINTS = [
    "detect", "match", "identify", "verify", "faceset/user/add", "faceset/user/update", "faceset/user/delete",
    "faceset/user/get", "faceset/group/getlist", "faceset/group/getusers", "faceset/group/adduser",
    "faceset/group/deleteuser",
]
NAMES = ["image", "images", "uid", "user_info", "group_id", "src_group_id", "max_face_num", "face_fields",
         "ext_fields", "image_liveness", "user_top_num", "face_top_num", "top_num", "start", "num", "end",
         "action_type", "fcae_top_num", " top_num"]
ODD_VALUES = ["", "-1", "0", "9" * 400, "1e3", "NaN", "\x00", "ü用户😀", "a\nb", "u1\n", "a" * 129, "../../etc/passwd",
              "' OR 1=1 --", "g1,g2", ",", "g" * 128, "faceliveness,", "age,beauty,qualities", "replace", "x" * 5000]


def image_bombs(face: bytes) -> list[bytes]:
    """Every kind of bad image, each under detect's 2 MB of base64."""
    return [
        png_header(30000, 30000), png_header(7745, 7745), jpeg_header(60000, 60000), bmp_header(20000, 20000, 8),
        many_scan_jpeg(7000, 8000, 2000), plain(7000, 7000, value=0), plain(4000, 4000, ".jpg", value=0),
        face[:2000], face[:20], b"GIF89a" + bytes(100), b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\x00" * 1000,
        reencoded(face, ".png")[:5000], face + b"PK\x03\x04" + bytes(2000), bytes(random.Random(1).getrandbits(8) for _ in range(3000)),
    ]


class Soak:
    """One run: the request mix, sent by ``clients`` threads, and its tally."""

    def __init__(self, base: str, token: str, face: bytes, seed: int) -> None:
        self.base, self.token = base, token
        self.face_b64 = base64.b64encode(face).decode()
        self.bombs = [base64.b64encode(b).decode() for b in image_bombs(face)]
        self.seed = seed
        self.tally: Counter[str] = Counter()
        self.slowest = 0.0
        self.lock = threading.Lock()

    def request(self, number: int) -> tuple[str, str, dict]:
        """(method, url, requests kwargs) of request ``number``: deterministic for a seed."""
        pick = random.Random(self.seed * 1_000_003 + number)
        version = pick.choice(["v2", "v2", "v1"])
        url = f"{self.base}/rest/2.0/face/{version}/{pick.choice(ENDPOINTS)}?access_token={self.token}"
        kind = pick.random()
        if kind < 0.45:  # fuzzed parameters
            form = {pick.choice(NAMES): pick.choice(ODD_VALUES) for _ in range(pick.randint(0, 6))}
            return ("GET", url, {"params": form}) if pick.random() < 0.2 else ("POST", url, {"data": form})
        if kind < 0.70:  # an image bomb
            return "POST", url, {"data": {"image": pick.choice(self.bombs), "images": pick.choice(self.bombs), "group_id": "g1", "uid": "u1", "user_info": ""}}
        if kind < 0.80:  # JSON of odd shapes
            body = pick.choice(['[]', '"x"', '{"image": []}', '{"group_id": {"a": 1}}', "[" * 5000, '{"max_face_num": 1e999}', "{"])
            return "POST", url, {"data": body, "headers": {"content-type": "application/json"}}
        if kind < 0.85:  # a form of thousands of fields
            return "POST", url, {"data": "&" * pick.randint(1000, 50_000), "headers": {"content-type": "application/x-www-form-urlencoded"}}
        if kind < 0.93:  # crafted signatures
            header = pick.choice(["bce-auth-v1/x/2026-01-01T00:00:00Z/¹/host/" + "a" * 64, "bce-auth-v1/" + "9" * 5000,
                                  "bce-auth-v1/k/2000-01-01T00:00:00Z/1000000000000/host/" + "b" * 64, "Bearer x"])
            return "POST", url.split("?")[0], {"data": {"image": self.face_b64}, "headers": {"authorization": header.encode().decode("latin-1")}}
        return "POST", f"{self.base}/rest/2.0/face/v2/detect?access_token={self.token}", {"data": {"image": self.face_b64}}

    def send(self, number: int) -> None:
        method, url, kwargs = self.request(number)
        started = time.perf_counter()
        try:
            response = requests.request(method, url, timeout=HANG_S, **kwargs)
            elapsed = time.perf_counter() - started
            try:
                code = response.json().get("error_code", 0) if response.headers.get("content-type", "").startswith("application/json") else "not-json"
            except ValueError:
                code = "not-json"
            outcome = f"http {response.status_code} code {code}"
        except requests.Timeout:
            elapsed, outcome = HANG_S, "hang"
        except requests.ConnectionError as exc:
            elapsed, outcome = time.perf_counter() - started, f"connection error {type(exc).__name__}"
        with self.lock:
            self.tally[outcome] += 1
            self.slowest = max(self.slowest, elapsed)


def worker_rss_mb(process: subprocess.Popen) -> list[float]:
    return [round(child.memory_info().rss / 1e6, 1) for child in psutil.Process(process.pid).children()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--slow-clients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "hostile_soak.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    restrict_new_files()  # as facesvc's own entry points do: the check below looks at modes

    data_dir = ROOT / "var" / "bench-soak"
    data_dir.mkdir(parents=True, exist_ok=True)
    redis = EmbeddedRedis(data_dir, "everysec").start()
    settings = load_settings(data_dir=data_dir)
    workers, threads = settings.workers, settings.threads
    try:
        client = connect(redis.url)
        client.flushall()
        keys = Auth.from_settings(client, settings).create_keys()
        env = {"FACESVC_THREADS": str(threads)}
        process, base = start_gunicorn(redis.url, data_dir, workers=workers, log_path=data_dir / "gunicorn.log", env=env)
        try:
            grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
            token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
            face = (SMOKE / "person05" / "img62.jpg").read_bytes()
            for uid, group in (("u1", "g1"), ("u2", "g1"), ("u1", "g2")):
                requests.post(f"{base}/rest/2.0/face/v2/faceset/user/add?access_token={token}", timeout=60,
                              data={"uid": uid, "user_info": "", "group_id": group, "image": base64.b64encode(face).decode()})
            rss_before = worker_rss_mb(process)
            soak = Soak(base, token, face, args.seed)
            started = time.perf_counter()
            with SlowClients(base, args.slow_clients), ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(soak.send, range(args.requests)))
            seconds = time.perf_counter() - started
            rss_after = worker_rss_mb(process)
            health = requests.get(f"{base}/health", timeout=10).status_code
        finally:
            stop_gunicorn(process)
        problems = check_library(FaceStore(client))
    finally:
        redis.stop()
    server_errors = sum(n for outcome, n in soak.tally.items() if outcome.startswith("http 5"))
    report = {
        "benchmark": "hostile_soak",
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"requests": args.requests, "clients": args.clients, "slow_clients": args.slow_clients, "seed": args.seed,
                   "workers": workers, "threads": threads},
        "seconds": seconds,
        "requests_per_s": args.requests / seconds,
        "outcomes": dict(soak.tally.most_common()),
        "server_errors_5xx": server_errors,
        "hangs": soak.tally["hang"],
        "slowest_answer_s": soak.slowest,
        "worker_rss_mb_before": rss_before,
        "worker_rss_mb_after": rss_after,
        "health_after": health,
        "library_check_problems": problems,
        "loose_file_modes": loose_modes(data_dir),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{args.requests} requests in {seconds:.0f} s ({report['requests_per_s']:.0f}/s) with {args.slow_clients} slow clients")
    print(f"5xx: {server_errors}  hangs: {report['hangs']}  slowest answer: {soak.slowest:.2f} s  /health after: {health}")
    print(f"worker RSS MB before {rss_before} after {rss_after}; library check: {len(problems)} problem(s)")
    for outcome, count in soak.tally.most_common(12):
        print(f"{count:>8}  {outcome}")


if __name__ == "__main__":
    main()
