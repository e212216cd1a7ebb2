"""End-to-end load: a live facesvc (gunicorn) over HTTP with N concurrent clients.

Set-up: an embedded Redis under var/bench-load/<profile>, one group of ``--faces`` faces
bulk-loaded through the library's own write path (``service.library.offline.offline_library``: the same
Lua script and change stream as faceset/user/add, without HTTP or inference): the real
embeddings of every LFW photo except the probes (bench/lfw_embeddings.py; uid = the person),
topped up with synthetic vectors (bench/search.py says how). Probes: one photo each of 1,000
LFW people enrolled with their other photos.

Phases, each at concurrency 1, 4, 8 and 16 (``--repeat`` runs of ``--seconds``, median reported): (a) identify of probe photos,
(b) a mix of 90 % identify and 10 % faceset/user/add of a probe photo under a new uid, (c)
"small": identify in a second group, a small library of ``--small-people`` (200) probe people's
other photos, probed with their probes. Then, with the service stopped so that it has the cores
to itself, the `face_recognition` package doing the same identify on the same photos, against
both gallery sizes (bench/face_recognition_baseline.py, in its own
virtual environment ``--baseline-python``). ``--api v3`` runs the phases as v3 search (the
best user whatever its score, match_threshold 0) and v3 user/add, with JSON bodies; ``--api v2
v3`` has the two take turns run by run on the same server and data.

    python -m bench.load [--profile fused|fast] [--faces 300000] [--api v2 [v3]] [--out bench/results/load_fused.json]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import logging
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import numpy as np
import psutil
import requests

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR, ROOT, LfwEmbeddings, ensure_embeddings, identity, profile_vectors
from bench.search import split_probes, synthetic_vectors
from config.defaults import load_settings
from service.auth.credentials import Auth
from service.library.face_library import NewFace
from service.library.offline import offline_library
from service.store.redis_server import EmbeddedRedis, connect
from service.ops.local_server import start_gunicorn, stop_gunicorn

log = logging.getLogger(__name__)
GROUP = "bench"
# The small library: a second group on the same server, of SMALL_PEOPLE probe people's other photos.
SMALL_GROUP = "small"
SMALL_PEOPLE = 200
MODEL_IDS = {"fused": "sface+fr_feature", "fast": "fr_feature"}
FIRST_PROBE = "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"


def probe_split(lfw: LfwEmbeddings) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(paths of the LFW photos with a detected face, the person of each, probe rows: one photo
    each of 1,000 people with several, gallery rows: the rest)."""
    paths = [p for p, hit in zip(lfw.paths, lfw.detected) if hit]
    people = np.array([identity(p) for p in paths])
    enrolled, _ = split_probes(people, 1000, 0)
    return paths, people, enrolled, np.setdiff1d(np.arange(len(paths)), enrolled)


def gallery_and_probes(profile: str, faces: int) -> tuple[np.ndarray, list[str], list[str]]:
    """(gallery vectors, uid of each, probe photo paths) in the profile's embedding space."""
    lfw = ensure_embeddings()
    paths, people, enrolled, rest = probe_split(lfw)
    vectors = profile_vectors(lfw.model_id, {"fused": "fused", "fast": "fr_feature"}[profile], lfw.arrays["largest"][lfw.detected])
    synthetic = synthetic_vectors(vectors, faces - len(rest))
    uids = [str(people[i]) for i in rest] + [f"synthetic_{i}" for i in range(len(synthetic))]
    return np.concatenate([vectors[rest], synthetic]), uids, [paths[i] for i in enrolled]


def small_library(vectors: np.ndarray, uids: list[str], probes: list[str], people: int) -> tuple[np.ndarray, list[str], list[str]]:
    """(vectors, uids, probes) of a small library: the gallery's photos of the first ``people``
    probe people (one probe each), and those people's probes."""
    chosen = {identity(p) for p in probes[:people]}
    rows = [i for i, uid in enumerate(uids) if uid in chosen]
    return vectors[rows], [uids[i] for i in rows], [p for p in probes if identity(p) in chosen]


def bulk_load(redis_url: str, model_id: str, app: str, vectors: np.ndarray, uids: list[str], group: str = GROUP) -> float:
    """Store every face through the library's write path, 4 writers in parallel."""
    library = offline_library(connect(redis_url), model_id)
    started = time.perf_counter()

    def store(rows: range) -> None:
        for i in rows:
            digest = hashlib.sha256(f"{group}-{i}".encode()).hexdigest()  # GROUP's: "bench-{i}", as before
            library.put_faces(app, uids[i], [group], [NewFace(digest, vectors[i])], "", replace=False)

    chunks = [range(start, min(start + 10_000, len(uids))) for start in range(0, len(uids), 10_000)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(store, chunks))
    return time.perf_counter() - started


class Client:
    """One API client with its own HTTP connection, speaking v2 (forms) or v3 (JSON)."""

    def __init__(self, base: str, token: str, api: str = "v2", group: str = GROUP) -> None:
        self.base, self.token, self.api, self.group = base, token, api, group
        self.session = requests.Session()
        self.last_answer: dict = {}

    def call(self, endpoint: str, **fields) -> dict:
        url = f"{self.base}/rest/2.0/face/{self.api}/{endpoint}?access_token={self.token}"
        sent = {"json": fields} if self.api == "v3" else {"data": fields}
        self.last_answer = self.session.post(url, timeout=60, **sent).json()
        return self.last_answer

    def identify(self, image: str) -> tuple[bool, Optional[str]]:
        """(answered without error, the best user's id): v2's identify or v3's search, which
        answers the best user whatever its score with match_threshold 0."""
        if self.api == "v3":
            answer = self.call("search", image=image, image_type="BASE64", group_id_list=self.group, max_user_num=1, match_threshold=0)
            users = (answer.get("result") or {}).get("user_list") or [{}]
            return answer.get("error_code") == 0, users[0].get("user_id")
        answer = self.call("identify", group_id=self.group, image=image, user_top_num=1)
        return "error_code" not in answer, (answer.get("result") or [{}])[0].get("uid")

    def register(self, uid: str, image: str) -> bool:
        if self.api == "v3":
            answer = self.call("faceset/user/add", image=image, image_type="BASE64", group_id=self.group, user_id=uid)
            return answer.get("error_code") == 0
        return "error_code" not in self.call("faceset/user/add", uid=uid, user_info="", group_id=self.group, image=image)


def photo(path: str, root: Path = LFW_DIR) -> str:
    """Base64 of an LFW photo; ``root``: a folder laid out like LFW's (bench/gpu.py's copy)."""
    return base64.b64encode((root / path).read_bytes()).decode()


def run_phase(
    base: str, token: str, probes: list[str], concurrency: int, seconds: float, register_every: int, api: str = "v2",
    group: str = GROUP, root: Path = LFW_DIR,
) -> dict:
    """Clients loop over the probes until time is up; every ``register_every``-th request (0:
    none) registers the photo under a new uid instead of identifying it."""
    images = {p: photo(p, root) for p in probes}
    counter = itertools.count()
    results: list[tuple[str, float, bool, bool]] = []  # kind, seconds, ok, right person
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client_loop() -> None:
        client = Client(base, token, api, group)
        while time.perf_counter() < deadline:
            n = next(counter)
            path = probes[n % len(probes)]
            started = time.perf_counter()
            if register_every and n % register_every == register_every - 1:
                kind, ok, right = "register", client.register(f"new_{n}_{time.time_ns()}", images[path]), True
            else:
                ok, uid = client.identify(images[path])
                kind, right = "identify", uid == identity(path)
            with lock:
                results.append((kind, time.perf_counter() - started, ok, right))

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    figures: dict[str, object] = {"concurrency": concurrency, "requests": len(results), "requests_per_s": len(results) / elapsed}
    for kind in ("identify", "register"):
        rows = [r for r in results if r[0] == kind]
        if rows:
            seconds_ = [r[1] for r in rows]
            figures[kind] = {
                "count": len(rows),
                "per_s": len(rows) / elapsed,
                "p50_ms": float(np.percentile(seconds_, 50) * 1e3),
                "p99_ms": float(np.percentile(seconds_, 99) * 1e3),
                "errors": sum(not r[2] for r in rows),
                "right_person": sum(r[3] for r in rows) / len(rows) if kind == "identify" else None,
            }
    return figures


# How slow client number n behaves (n % 3): what it sends on connecting, then what it trickles.
SLOW_STARTS = (
    b"",  # nothing at all
    b"POST /rest/2.0/face/v2/detect HTTP/1.1\r\nHost: x\r\n",  # headers that never end
    b"POST /rest/2.0/face/v2/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nimage=",  # a body
)
SLOW_TRICKLES = (b"", b"X-Slow: 1\r\n", b"a")


def open_slow(address: tuple[str, int], number: int) -> socket.socket:
    """A connection of slow client ``number``, its start sent; OSError when refused."""
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(SLOW_STARTS[number % 3])
    return sock


class SlowClients:
    """``count`` connections that hold a request open all along a phase (SLOW_STARTS), each
    trickling its SLOW_TRICKLES once a second (the slow-client attack). Each reconnects when
    the server drops it."""

    def __init__(self, base: str, count: int) -> None:
        url = urlsplit(base)
        self.address = (url.hostname, url.port)
        self.count = count
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SlowClients":
        if self.count:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.count:
            self.thread.join()

    def _open(self, number: int) -> Optional[socket.socket]:
        try:
            return open_slow(self.address, number)
        except OSError:
            return None

    def _run(self) -> None:
        sockets = [self._open(n) for n in range(self.count)]
        while not self.stop.wait(1.0):
            for number, sock in enumerate(sockets):
                try:
                    if sock is None:
                        raise OSError
                    sock.sendall(SLOW_TRICKLES[number % 3])
                except OSError:
                    if sock is not None:
                        sock.close()
                    sockets[number] = self._open(number)
        for sock in sockets:
            if sock is not None:
                sock.close()


def median_run(runs: list[dict]) -> dict:
    """The run with the median requests/s, with every run's requests/s and identify p99 beside it
    and the median of those p99s."""
    ordered = sorted(runs, key=lambda run: run["requests_per_s"])
    p99s = [run["identify"]["p99_ms"] for run in runs]
    return {
        **ordered[len(ordered) // 2],
        "runs_requests_per_s": [run["requests_per_s"] for run in runs],
        "runs_identify_p99_ms": p99s,
        "median_identify_p99_ms": float(np.median(p99s)),
    }


def measure_restart(redis_url: str, data_dir: Path, env: dict[str, str], workers: int, keys) -> float:
    """Seconds from starting gunicorn again to a first answered identify (models loaded, index
    loaded from the snapshot plus the stream's tail)."""
    started = time.perf_counter()
    process, base = start_gunicorn(redis_url, data_dir, workers=workers, log_path=data_dir / "gunicorn.log", env=env)
    try:
        grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
        token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
        answer = Client(base, token).call("identify", group_id=GROUP, image=photo(FIRST_PROBE), user_top_num=1)
        ready = time.perf_counter() - started
        if "error_code" in answer:
            raise RuntimeError(f"identify after restart failed: {answer}")
        return ready
    finally:
        stop_gunicorn(process)


def run_baseline(python: str, probes: list[str], faces: int, processes: int, photos: int) -> dict:
    command = [
        python, str(ROOT / "bench" / "face_recognition_baseline.py"), "identify", "--gallery", str(faces),
        "--processes", str(processes), "--photos", *[str(LFW_DIR / p) for p in probes[:photos]],
    ]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(MODEL_IDS), default="fused")
    parser.add_argument("--faces", type=int, default=300_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per point; the median is reported")
    parser.add_argument("--workers", type=int, default=load_settings().workers)
    parser.add_argument("--threads", type=int, default=load_settings().threads)
    parser.add_argument("--batch-size", type=int, help="FACESVC_MODELS__BATCH_SIZE (default: the service's, 1 on CPU)")
    parser.add_argument("--batch-wait-ms", type=float, default=load_settings().models.batch_wait_ms)
    parser.add_argument(
        "--phases", nargs="+", default=["identify", "mix", "small"], choices=["identify", "mix", "small"],
        help="small: identify in a second group of --small-people people (the small library)",
    )
    parser.add_argument("--small-people", type=int, default=SMALL_PEOPLE)
    parser.add_argument("--precision", choices=["int8", "fp32"], help="FACESVC_MODELS__PRECISION (default: the service's)")
    parser.add_argument("--baseline-python", default=str(ROOT / "var" / "bench-venv" / "bin" / "python"))
    parser.add_argument("--baseline-photos", type=int, default=200)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--slow-clients", type=int, default=0, help="connections trickling requests all along each phase")
    parser.add_argument(
        "--api", choices=["v2", "v3"], nargs="+", default=["v2"], help="v2 identify or v3 search (and user/add); several take turns"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    suffix = "" if args.api == ["v2"] else "_" + "_".join(args.api)
    out = args.out or RESULTS_DIR / f"load_{args.profile}{suffix}.json"

    data_dir = ROOT / "var" / "bench-load" / args.profile
    data_dir.mkdir(parents=True, exist_ok=True)
    redis = EmbeddedRedis(data_dir, "everysec").start()
    try:
        client = connect(redis.url)
        client.flushall()
        settings = load_settings(data_dir=data_dir)
        keys = Auth.from_settings(client, settings).create_keys()
        vectors, uids, probes = gallery_and_probes(args.profile, args.faces)
        small_vectors, small_uids, small_probes = small_library(vectors, uids, probes, args.small_people)
        load_seconds = bulk_load(redis.url, MODEL_IDS[args.profile], keys.app_id, vectors, uids)
        bulk_load(redis.url, MODEL_IDS[args.profile], keys.app_id, small_vectors, small_uids, SMALL_GROUP)
        log.info("%d faces stored in %.0f s; small library %d faces of %d people", len(uids), load_seconds, len(small_uids), args.small_people)
        del vectors
        env = {
            "FACESVC_MODELS__PROFILE": args.profile, "FACESVC_THREADS": str(args.threads),
            "FACESVC_MODELS__BATCH_WAIT_MS": str(args.batch_wait_ms),
        }
        if args.batch_size:
            env["FACESVC_MODELS__BATCH_SIZE"] = str(args.batch_size)
        if args.precision:
            env["FACESVC_MODELS__PRECISION"] = args.precision
        started = time.perf_counter()
        process, base = start_gunicorn(redis.url, data_dir, workers=args.workers, log_path=data_dir / "gunicorn.log", env=env)
        ready_seconds = time.perf_counter() - started
        try:
            grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
            token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
            for api in args.api:
                run_phase(base, token, probes, 2, 5.0, 0, api)  # every worker up and warm
            phases: dict[str, list] = {}
            for phase in args.phases:
                for concurrency in args.concurrency:
                    # Several APIs take turns run by run, on the same server and data.
                    runs: dict[str, list] = {api: [] for api in args.api}
                    with SlowClients(base, args.slow_clients):
                        for _ in range(args.repeat):
                            for api in args.api:
                                group, phase_probes = (SMALL_GROUP, small_probes) if phase == "small" else (GROUP, probes)
                                runs[api].append(run_phase(
                                    base, token, phase_probes, concurrency, args.seconds, 10 if phase == "mix" else 0, api, group,
                                ))
                    for api, api_runs in runs.items():
                        name = phase if len(args.api) == 1 else f"{phase} {api}"
                        figures = median_run(api_runs)
                        log.info("%s c=%d: %s", name, concurrency, json.dumps(figures))
                        phases.setdefault(name, []).append(figures)
            worker_rss_mb = [child.memory_info().rss / 1e6 for child in psutil.Process(process.pid).children()]
        finally:
            stop_gunicorn(process)  # each worker writes its index snapshot on the way out
        restart_seconds = measure_restart(redis.url, data_dir, env, args.workers, keys)
    finally:
        redis.stop()
    baseline = small_baseline = None
    if not args.no_baseline:
        baseline = run_baseline(args.baseline_python, probes, args.faces, 2, args.baseline_photos)
        log.info("face_recognition: %s", json.dumps(baseline))
        if "small" in args.phases:
            small_baseline = run_baseline(args.baseline_python, small_probes, len(small_uids), 2, args.baseline_photos)
            log.info("face_recognition, small library: %s", json.dumps(small_baseline))
    report = {
        "benchmark": "load",
        "git": git_revision(),
        "machine": machine_info(),
        "config": {
            "profile": args.profile, "api": args.api, "faces": args.faces, "seconds": args.seconds, "repeat": args.repeat, "workers": args.workers,
            "threads": args.threads, "slow_clients": args.slow_clients, "batch_size": args.batch_size or 1, "batch_wait_ms": args.batch_wait_ms, "bulk_load_s": load_seconds, "first_worker_ready_s": ready_seconds,
            "restart_ready_s": restart_seconds, "worker_rss_mb": worker_rss_mb, "precision": args.precision or load_settings().models.precision,
            "small_library": {"people": args.small_people, "faces": len(small_uids), "probes": len(small_probes)},
        },
        "phases": phases,
        "face_recognition_baseline": baseline,
        "face_recognition_baseline_small": small_baseline,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_table(report)


def print_table(report: dict) -> None:
    """Throughput, p50 and errors of the median run; p99: the median of the runs' p99s."""
    print(f"{'phase':<12} {'clients':>7} {'req/s':>7} {'identify/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'right':>6} {'errors':>6}")
    for phase, rows in report["phases"].items():
        for row in rows:
            ident = row.get("identify", {})
            errors = ident.get("errors", 0) + row.get("register", {}).get("errors", 0)
            print(
                f"{phase:<12} {row['concurrency']:>7} {row['requests_per_s']:>7.1f} {ident.get('per_s', 0):>10.1f} "
                f"{ident.get('p50_ms', 0):>7.0f} {row['median_identify_p99_ms']:>7.0f} {ident.get('right_person', 0):>6.3f} {errors:>6}"
            )
    for key, phase in (("face_recognition_baseline", "identify"), ("face_recognition_baseline_small", "small")):
        baseline = report.get(key)
        if not baseline:
            continue
        print(f"face_recognition (2 processes, {baseline['gallery']} faces): {baseline['requests_per_s']:.1f} req/s, p50 {baseline['p50_ms']:.0f} ms")
        at8 = [row for row in report["phases"].get(phase, []) if row["concurrency"] == 8]
        if at8:
            print(f"  facesvc {phase} at 8 clients / face_recognition: {at8[0]['identify']['per_s'] / baseline['requests_per_s']:.1f}x")
    config = report["config"]
    print(f"first start (index from Redis) {config['first_worker_ready_s']:.1f} s, restart (snapshot) {config['restart_ready_s']:.1f} s")


if __name__ == "__main__":
    main()
