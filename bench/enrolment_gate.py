"""The enrolment gate (FACESVC_ENROLMENT__*): which registration photos to refuse so that the
people enrolled are found again, measured on LFW's open-set identification protocol.

Protocol (as bench/openset.py): the gallery is the first photo of each of the 1,680 LFW people
with two or more photos, mated probes are their other 7,484 photos, non-mated probes the 4,069
people with one photo; the service's embeddings (bench/lfw_embeddings.py), top-1 by cosine, the
service's score map. A gate refuses a gallery photo; its person would enrol again with a better
photo, so a gated run drops the refused people (their gallery photo and their probes) and
reports, beside the share refused:

- FNIR at the score giving FPIR 1 % on that gallery, and at score 80, over the people accepted;
- the same people's probes against the whole gallery, accepted vs refused: how much worse the
  refused photos identify (the gate's aim), on the same ungated threshold.

Natural photos say which measures matter; degraded copies say what a limit catches. For
--degraded gallery people drawn with --seed, each gallery photo is degraded in memory and
enrolled instead (Gaussian blur of sigma 2 / 4 / 8 % of the face's width; the photo scaled down
so that the face box is 64 / 40 / 32 / 28 / 20 px wide; exposure x0.3 / x0.15), then FNIR of
their probes with and without the gate. Turned faces cannot be made from frontal ones: yaw and pitch are judged on the natural
photos only. A degraded photo without a detected face is counted apart (registration answers
"no face" before any gate). faces-smoke's portraits check that good enrolment photos pass.

Measures are those the service takes: the box width in decoded pixels, blur, illumination and
completeness (workers/quality.py), yaw/pitch/roll (workers/attributes.Pose). Cached in
bench/results/enrolment_gate_measures.npz (--remeasure to redo); the cost of a registration
(decode, detect, 68 points, embed) and of the gate's measures on top is timed on the gallery,
one thread. --http runs v2 faceset/user/add of the gallery photos against a live gunicorn (2
workers, --concurrency clients) with the gate off and on, taking turns --rounds times.

How the default (config.defaults.Enrolment) was picked from these figures: each limit refuses
at most 1 % of LFW's gallery and none of the faces-smoke portraits, and sits where degraded
copies start to identify worse; a measure whose refused photos are not missed more often than
the rest (pitch), or that refuses too few people to tell (roll), stays off.

    python -m bench.enrolment_gate [--degraded 500] [--seed 1] [--remeasure] [--http 20]   # ~10 min
"""
from __future__ import annotations

import argparse
import base64
import datetime
import functools
import itertools
import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import requests

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import DATA_DIR, LFW_DIR, RESULTS_DIR, ROOT, ensure_embeddings, identity, load_pipeline
from bench.openset import protocol, score_for_fpir, top1
from config.defaults import Enrolment, load_settings
from service.api.scores import ScoreMap
from service.auth.credentials import Auth
from service.ops.local_server import start_gunicorn, stop_gunicorn
from service.store.redis_server import EmbeddedRedis, connect
from service.library.enrolment import Measures, failure
from workers.attributes import Face
from workers.image import ImageError
from workers.pipeline import NoFaceError, Pipeline

log = logging.getLogger(__name__)

SMOKE_DIR = DATA_DIR / "faces-smoke"
COLUMNS = tuple(f.name for f in fields(Measures))
TARGET_FPIR = 0.01
SCORE = 80

Degrade = Callable[[np.ndarray, float], np.ndarray]  # (image, face width) -> image


def blurred(fraction: float) -> Degrade:
    return lambda image, width: cv2.GaussianBlur(image, (0, 0), fraction * width)


def exposed(factor: float) -> Degrade:
    return lambda image, width: np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def shrunk(face_px: int) -> Degrade:
    """The photo scaled so that the face box is ``face_px`` wide (never enlarged)."""

    def degrade(image: np.ndarray, width: float) -> np.ndarray:
        factor = min(1.0, face_px / width)
        size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    return degrade


DEGRADATIONS: dict[str, Degrade] = {
    "blur_2": blurred(0.02),
    "blur_4": blurred(0.04),
    "blur_8": blurred(0.08),
    "small_64": shrunk(64),
    "small_40": shrunk(40),
    "small_32": shrunk(32),
    "small_28": shrunk(28),
    "small_20": shrunk(20),
    "dark_x0.3": exposed(0.3),
    "dark_x0.15": exposed(0.15),
}

# Candidate gates: one limit at a time (the rest off), then the served default.
OFF = Enrolment(enabled=True, min_face_px=0, max_blur=1.0, max_yaw=90.0, max_pitch=90.0, max_roll=180.0,
                min_illumination=0, max_illumination=255, whole_face=False)
CANDIDATES: dict[str, dict[str, object]] = {
    **{f"min_face_px={v}": {"min_face_px": v} for v in (20, 28, 32, 36, 40, 64, 80)},
    **{f"max_blur={v}": {"max_blur": v} for v in (0.45, 0.5, 0.55, 0.6, 0.65)},
    **{f"max_yaw={v}": {"max_yaw": v} for v in (20, 25, 30, 35, 40, 50)},
    **{f"max_pitch={v}": {"max_pitch": v} for v in (15, 20, 25, 30)},
    **{f"max_roll={v}": {"max_roll": v} for v in (20, 30)},
    **{f"min_illumination={v}": {"min_illumination": v} for v in (30, 40, 56, 72)},
    "whole_face": {"whole_face": True},
}


# --- measuring -----------------------------------------------------------------------------


def measures_of(face: Face) -> list[float]:
    m = Measures.of(face)
    return [float(getattr(m, name)) for name in COLUMNS]


def enrol(pipeline: Pipeline, image: np.ndarray) -> tuple[Optional[Face], Optional[np.ndarray], float, float]:
    """(face, vector, seconds to embed, seconds of the gate's measures) as a registration does."""
    start = time.perf_counter()
    try:
        face, vector = pipeline.embed_largest(image)
    except NoFaceError:
        return None, None, math.nan, math.nan
    embedded = time.perf_counter()
    Measures.of(face)
    return face, vector, embedded - start, time.perf_counter() - embedded


def measure_natural(pipeline: Pipeline, paths: list[Path]) -> dict[str, np.ndarray]:
    """Measures, timings (decode included in ``embed_s``) of the largest face of each photo."""
    rows = np.full((len(paths), len(COLUMNS)), np.nan)
    seconds = np.full((len(paths), 2), np.nan)
    for i, path in enumerate(paths):
        if i % 250 == 0:
            log.info("natural photo %d of %d", i, len(paths))
        start = time.perf_counter()
        try:
            image = pipeline.decode(path.read_bytes())
        except ImageError:
            continue
        decoded = time.perf_counter() - start
        face, _, embed_s, gate_s = enrol(pipeline, image)
        if face is not None:
            rows[i], seconds[i] = measures_of(face), (decoded + embed_s, gate_s)
    return {"measures": rows, "seconds": seconds}


def measure_degraded(pipeline: Pipeline, paths: list[Path], dim: int) -> dict[str, np.ndarray]:
    """Per degradation: measures and embedding of each photo's degraded copy (NaN / zero rows
    where the copy has no detectable face)."""
    out: dict[str, np.ndarray] = {}
    for name in DEGRADATIONS:
        out[f"{name}_measures"] = np.full((len(paths), len(COLUMNS)), np.nan)
        out[f"{name}_vectors"] = np.zeros((len(paths), dim), np.float32)
    for i, path in enumerate(paths):
        if i % 100 == 0:
            log.info("degraded photo %d of %d", i, len(paths))
        image = pipeline.decode(path.read_bytes())
        original = pipeline.detect(image, 1)
        if not original:
            continue
        for name, degrade in DEGRADATIONS.items():
            face, vector, _, _ = enrol(pipeline, degrade(image, original[0].detection.box[2]))
            if face is not None:
                out[f"{name}_measures"][i], out[f"{name}_vectors"][i] = measures_of(face), vector
    return out


def cached(path: Path, names: list[str], remeasure: bool, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``compute()`` unless ``path`` holds it for the same photo names."""
    if path.exists() and not remeasure:
        with np.load(path) as stored:
            if np.array_equal(stored["paths"], np.array(names)):
                log.info("measures from %s", path)
                return {k: stored[k] for k in stored.files if k != "paths"}
    arrays = compute()
    np.savez(path, paths=np.array(names), **arrays)
    return arrays


# --- evaluation ----------------------------------------------------------------------------


def gate_of(change: dict[str, object]) -> Enrolment:
    return OFF.model_copy(update=change)


def refused(gate: Enrolment, measures: np.ndarray) -> np.ndarray:
    """Rows the gate refuses (rows without a face: False, they never reach it)."""
    return np.array([not np.isnan(row[0]) and failure(gate, Measures(*row)) is not None for row in measures])


class Protocol:
    """LFW's identification split in the profile's vectors, with the score map."""

    def __init__(self, profile: str = "fused") -> None:
        lfw = ensure_embeddings()
        vectors = lfw.profile_vectors(profile, "largest")
        roles = protocol()
        self.gallery_paths = roles["gallery"]
        self.gallery = vectors[lfw.rows(roles["gallery"])]
        self.people = np.array([identity(p) for p in roles["gallery"]])
        self.probes = vectors[lfw.rows(roles["probe"])]
        self.probe_people = np.array([identity(p) for p in roles["probe"]])
        self.strangers = vectors[lfw.rows(roles["distractor"])]
        self.score_map = ScoreMap.for_model(lfw.model_id)
        self.profile = profile
        self.model_id = lfw.model_id

    def misses(self, gallery: np.ndarray, keep: np.ndarray, probes: np.ndarray) -> dict[str, object]:
        """Top-1 of ``probes`` (mated, a mask of self.probes) against the ``keep`` rows of
        ``gallery``: FNIR at the score giving FPIR 1 % there and at SCORE."""
        rows = np.flatnonzero(keep)
        if not probes.any():  # the gate refused everyone of the set
            return {"probes": 0, "score_for_fpir_1pct": None, "fnir_at_fpir_1pct": None, f"fnir_at_{SCORE}": None}
        best, where = top1(self.probes[probes], gallery[rows])
        right = self.people[rows][where] == self.probe_people[probes]
        scores = self.score_map.to_scores(best)
        stranger_best, _ = top1(self.strangers, gallery[rows])
        threshold = score_for_fpir(self.score_map.to_scores(stranger_best), TARGET_FPIR)
        people = self.probe_people[probes]
        return {
            "probes": int(probes.sum()),
            "score_for_fpir_1pct": threshold,
            "fnir_at_fpir_1pct": fnir(~right | (scores < threshold), people),
            f"fnir_at_{SCORE}": fnir(~right | (scores < SCORE), people),
        }

    def wrong(self, gallery: np.ndarray, threshold: float) -> np.ndarray:
        """Per mated probe: not found at ``threshold`` against the whole ``gallery``."""
        best, where = top1(self.probes, gallery)
        return (self.people[where] != self.probe_people) | (self.score_map.to_scores(best) < threshold)

    def gated(self, gallery: np.ndarray, refuse: np.ndarray, among: np.ndarray, baseline_threshold: float) -> dict[str, object]:
        """The gate's figures for the people ``among`` (a gallery mask) whose gallery photos
        ``refuse`` says are refused: accepted people's FNIR on the gated gallery, and both
        groups' miss rates on the whole gallery at ``baseline_threshold``."""
        accepted_probes = np.isin(self.probe_people, self.people[among & ~refuse])
        refused_probes = np.isin(self.probe_people, self.people[among & refuse])
        wrong = self.wrong(gallery, baseline_threshold)
        return {
            "refused": float(refuse[among].mean()),
            "refused_people": int((refuse & among).sum()),
            "refused_probes": int(refused_probes.sum()),
            "gated": self.misses(gallery, ~(refuse & among), accepted_probes),
            "ungated_fnir_of_accepted": fnir(wrong[accepted_probes], self.probe_people[accepted_probes]),
            "ungated_fnir_of_refused": fnir(wrong[refused_probes], self.probe_people[refused_probes]),
        }


def fnir(missed: np.ndarray, people: np.ndarray) -> Optional[dict[str, float]]:
    """Share of probes missed, and the mean over people of each one's share: LFW has 529
    probes of one person and 1 of many, so the probe-weighted figure leans on a few people."""
    if not len(missed):
        return None
    _, person = np.unique(people, return_inverse=True)
    per_person = np.bincount(person, weights=missed) / np.bincount(person)
    return {"probes": float(missed.mean()), "people": float(per_person.mean())}


def evaluate_natural(data: Protocol, measures: np.ndarray, gates: dict[str, Enrolment]) -> dict:
    everyone = np.ones(len(data.gallery), bool)
    baseline = data.misses(data.gallery, everyone, np.ones(len(data.probes), bool))
    rows = {name: data.gated(data.gallery, refused(gate, measures), everyone, baseline["score_for_fpir_1pct"]) for name, gate in gates.items()}
    return {"baseline": baseline, "gates": rows}


def evaluate_degraded(data: Protocol, sample: np.ndarray, degraded: dict[str, np.ndarray], gates: dict[str, Enrolment]) -> dict:
    """Per degradation: the sampled people enrolled with their degraded photo (the rest as
    they are); FNIR of the sampled people's probes without a gate, and per gate what it
    refuses of the degraded photos and the FNIR of the sampled people it accepts."""
    among = np.zeros(len(data.gallery), bool)
    among[sample] = True
    clean_probes = np.isin(data.probe_people, data.people[sample])
    report = {"clean": data.misses(data.gallery, np.ones(len(data.gallery), bool), clean_probes)}
    for name in DEGRADATIONS:
        measures = degraded[f"{name}_measures"]
        face = ~np.isnan(measures[:, 0])
        gallery = data.gallery.copy()
        gallery[sample[face]] = degraded[f"{name}_vectors"][face]
        # People whose degraded photo has no face would be told "no face": out of both runs.
        present = np.ones(len(gallery), bool)
        present[sample[~face]] = False
        probes = np.isin(data.probe_people, data.people[sample[face]])
        ungated = data.misses(gallery, present, probes)
        full = np.full((len(gallery), measures.shape[1]), np.nan)
        full[sample] = measures
        row = {"no_face": float(np.mean(~face)), "ungated": ungated, "gates": {}}
        for gate_name, gate in gates.items():
            refuse = refused(gate, full)
            row["gates"][gate_name] = data.gated(gallery, refuse, among & present, ungated["score_for_fpir_1pct"])
        report[name] = row
    return report


def percentiles(measures: np.ndarray) -> dict:
    found = measures[~np.isnan(measures[:, 0])]
    points = (0.5, 1, 2, 5, 50, 95, 98, 99, 99.5)
    return {name: {str(p): float(v) for p, v in zip(points, np.percentile(np.abs(column), points))} for name, column in zip(COLUMNS, found.T)}


# --- registrations over HTTP --------------------------------------------------------------


def register_for(base: str, token: str, photos: list[str], seconds: float, concurrency: int, group: str) -> dict[str, float]:
    """v2 faceset/user/add of ``photos`` in turn, each under a new uid of ``group``, by
    ``concurrency`` clients for ``seconds``: answers a second (registered or refused) and the
    median latency."""
    counter = itertools.count()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            n = next(counter)
            form = {"uid": f"u{n}", "user_info": "", "group_id": group, "image": photos[n % len(photos)]}
            start = time.perf_counter()
            answer = session.post(f"{base}/rest/2.0/face/v2/faceset/user/add", params={"access_token": token}, data=form, timeout=60).json()
            assert answer.get("error_code") in (None, 216615), answer
            with lock:
                latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return {"requests_per_s": len(latencies) / (time.perf_counter() - started), "median_ms": 1000 * float(np.median(latencies))}


def http_registrations(photos: list[Path], seconds: float, concurrency: int, rounds: int) -> dict:
    """Registrations a second by a live facesvc (gunicorn, 2 workers) with the gate off and on,
    taking turns ``rounds`` times on the same Redis (the median of each is reported)."""
    data_dir = ROOT / "var" / "bench-enrolment"
    data_dir.mkdir(parents=True, exist_ok=True)
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in photos]
    redis = EmbeddedRedis(data_dir, "everysec").start()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        connect(redis.url).flushall()
        keys = Auth.from_settings(connect(redis.url), load_settings(data_dir=data_dir)).create_keys()
        for round_ in range(rounds):
            for gate in runs:
                env = {"FACESVC_ENROLMENT__ENABLED": str(gate == "on").lower()}
                process, base = start_gunicorn(redis.url, data_dir, workers=2, log_path=data_dir / "gunicorn.log", env=env)
                try:
                    grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
                    token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
                    register_for(base, token, encoded, 5.0, concurrency, f"warm_{gate}_{round_}")  # workers warm, heads loaded
                    runs[gate].append(register_for(base, token, encoded, seconds, concurrency, f"{gate}_{round_}"))
                    log.info("gate %s: %s", gate, runs[gate][-1])
                finally:
                    stop_gunicorn(process)
    finally:
        redis.stop()
    return {
        gate: {key: float(np.median([r[key] for r in measured])) for key in ("requests_per_s", "median_ms")} | {"runs": measured}
        for gate, measured in runs.items()
    } | {"config": {"workers": 2, "concurrency": concurrency, "seconds": seconds, "rounds": rounds}}


# --- report --------------------------------------------------------------------------------


def pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def both(rates: Optional[dict[str, float]]) -> str:
    """FNIR over probes / over people, in %."""
    return "-" if rates is None else f"{pct(rates['probes'])}/{pct(rates['people'])}"


def print_table(report: dict) -> None:
    natural = report["natural"]
    base = natural["baseline"]
    print(f"LFW gallery {report['config']['gallery']}, FNIR in % over probes/over people: at FPIR 1 % "
          f"(score {base['score_for_fpir_1pct']:.1f}) {both(base['fnir_at_fpir_1pct'])}, at {SCORE}: {both(base[f'fnir_at_{SCORE}'])}")
    print(f"{'gate':<22}{'refused %':>10}{'people':>7}{'smoke %':>8}{'FNIR@FPIR1%':>13}{'FNIR@80':>13}"
          f"{'ungated: accepted':>19}{'refused':>13}")
    for name, row in natural["gates"].items():
        g = row["gated"]
        print(f"{name:<22}{pct(row['refused']):>10}{row['refused_people']:>7}{pct(report['smoke_refused'][name]):>8}"
              f"{both(g['fnir_at_fpir_1pct']):>13}{both(g[f'fnir_at_{SCORE}']):>13}"
              f"{both(row['ungated_fnir_of_accepted']):>19}{both(row['ungated_fnir_of_refused']):>13}")
    degraded = report["degraded"]
    print(f"\ndegraded enrolment photos of {report['config']['degraded']} people: no face %, FNIR@FPIR1% over people "
          f"without a gate (clean photos: {pct(degraded['clean']['fnir_at_fpir_1pct']['people'])}), "
          "then per gate refused % / FNIR@FPIR1% over the people accepted")
    print(f"{'':<22}" + "".join(f"{name:>15}" for name in DEGRADATIONS))
    print(f"{'no face':<22}" + "".join(f"{pct(degraded[name]['no_face']):>15}" for name in DEGRADATIONS))
    print(f"{'no gate':<22}" + "".join(f"{pct(degraded[name]['ungated']['fnir_at_fpir_1pct']['people']):>15}" for name in DEGRADATIONS))
    for gate in report["gates_shown_degraded"]:
        cells = [degraded[name]["gates"][gate] for name in DEGRADATIONS]
        print(f"{gate:<22}" + "".join(f"{pct(c['refused']) + ' / ' + people_pct(c['gated']['fnir_at_fpir_1pct']):>15}" for c in cells))
    cost = report["cost_ms"]
    print(f"\nregistration {cost['registration_median']:.1f} ms median (decode, detect, 68 points, embed), "
          f"gate measures +{cost['gate_median']:.1f} ms median (+{cost['gate_mean']:.1f} mean)")
    if "http" in report:
        print("v2 faceset/user/add over HTTP: " + ", ".join(
            f"gate {gate} {report['http'][gate]['requests_per_s']:.1f}/s (median {report['http'][gate]['median_ms']:.0f} ms)" for gate in ("off", "on")))


def people_pct(rates: Optional[dict[str, float]]) -> str:
    return "-" if rates is None else pct(rates["people"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--degraded", type=int, default=500, help="gallery people enrolled with degraded photos")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--remeasure", action="store_true")
    parser.add_argument("--http", type=float, default=0, help="seconds of HTTP registrations per run, gate off and on (0: none)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=RESULTS_DIR / "enrolment_gate_measures.npz")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "enrolment_gate.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cv2.setNumThreads(1)

    data = Protocol()
    sample = np.sort(np.random.default_rng(args.seed).choice(len(data.gallery), size=args.degraded, replace=False))
    gallery_paths = [LFW_DIR / p for p in data.gallery_paths]
    smoke_paths = sorted((SMOKE_DIR / "images").glob("*/*.jpg"))
    loaded = functools.cache(load_pipeline)  # only when the measures are not cached
    names = [str(p.relative_to(DATA_DIR)) for p in gallery_paths + smoke_paths] + [f"degraded:{i}" for i in sample]

    def compute() -> dict[str, np.ndarray]:
        natural = measure_natural(loaded(), gallery_paths + smoke_paths)
        degraded = measure_degraded(loaded(), [gallery_paths[i] for i in sample], data.gallery.shape[1])
        return {**natural, **degraded}

    arrays = cached(args.cache, names, args.remeasure, compute)
    gallery_measures = arrays["measures"][: len(gallery_paths)]
    smoke_measures = arrays["measures"][len(gallery_paths) :]
    seconds = arrays["seconds"][: len(gallery_paths)]

    gates = {name: gate_of(change) for name, change in CANDIDATES.items()}
    gates["default"] = Enrolment(enabled=True)
    shown_degraded = [g for g in gates if g.startswith(("min_face_px", "max_blur", "min_illumination")) or g == "default"]
    smoke_found = smoke_measures[~np.isnan(smoke_measures[:, 0])]
    report = {
        "benchmark": "enrolment_gate",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"profile": data.profile, "model_id": data.model_id, "gallery": len(data.gallery), "mated_probes": len(data.probes),
                   "nonmated_probes": len(data.strangers), "degraded": args.degraded, "seed": args.seed,
                   "faces_smoke": len(smoke_found), "target_fpir": TARGET_FPIR, "score": SCORE,
                   "default": Enrolment(enabled=True).model_dump(), "candidates": CANDIDATES},
        "gallery_percentiles": percentiles(gallery_measures),
        "smoke_percentiles": percentiles(smoke_measures),
        "natural": evaluate_natural(data, gallery_measures, gates),
        "smoke_refused": {name: float(refused(gate, smoke_found).mean()) for name, gate in gates.items()},
        "gates_shown_degraded": shown_degraded,
        "degraded": evaluate_degraded(data, sample, arrays, {g: gates[g] for g in shown_degraded}),
        "cost_ms": {
            "registration_median": float(np.nanmedian(seconds[:, 0]) * 1000),
            "registration_mean": float(np.nanmean(seconds[:, 0]) * 1000),
            "gate_median": float(np.nanmedian(seconds[:, 1]) * 1000),
            "gate_mean": float(np.nanmean(seconds[:, 1]) * 1000),
        },
    }
    if args.http:
        report["http"] = http_registrations(gallery_paths, args.http, args.concurrency, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
