"""Vector search at 10k, 100k and 300k faces in one group: facesvc's index against exact
FAISS ``IndexFlatIP`` on the same vectors, in the same run.

Gallery: the real fused embeddings of every LFW photo (bench/lfw_embeddings.py, largest face)
except the probes, topped up with synthetic vectors drawn from a Gaussian fitted to the real
vectors' mean and full covariance, then L2-normalised (their pairwise cosines match the real
ones': mean ~0.05, printed in the run). Probes: one photo each of 1,000 LFW people who have
other photos in the gallery (an identify of an enrolled person), and 300 photos of people with
a single photo (nobody to find: the exact neighbour is just the least unlike face, the hardest
case for an approximate index).

Reported per size and index: build time (adding in batches of 1,000 as the start-up load does),
RSS growth of the group, snapshot load time, single-query p50/p99 of a top-50 search (what
identify asks for), queries/s with 1, 2 and 8 threads, and recall@1 against exact search, both
of the index alone and after exact re-ranking of its 50 candidates (what the library does with
the vectors it reads from Redis with each hit's owner), the re-ranking with float32 vectors and
with the same vectors stored as float16 (half the bytes per face in Redis).

    python -m bench.search [--sizes 10000 100000 300000] [--out bench/results/search.json]
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import psutil

import config
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import RESULTS_DIR, ensure_embeddings, identity
from index.group_index import set_threads
from index.registry import IndexRegistry
from index.snapshot import SnapshotStore

log = logging.getLogger(__name__)
CANDIDATES = 50  # what Library.identify asks for at the least
BATCH = 1000
LATENCY_QUERIES = 1000
MIN_THROUGHPUT_SECONDS = 3.0  # fast indexes go over the probes again until this long


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(fused vectors of every photo with a detected face, person of each)."""
    lfw = ensure_embeddings()
    found = lfw.detected
    people = np.array([identity(p) for p, hit in zip(lfw.paths, found) if hit])
    return lfw.arrays["largest"][found], people


def synthetic_vectors(real: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Draws from a Gaussian with the real vectors' mean and covariance, L2-normalised."""
    mean = real.mean(axis=0)
    factor = np.linalg.cholesky(np.cov(real, rowvar=False) + 1e-8 * np.eye(real.shape[1])).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, real.shape[1]), np.float32)
    for start in range(0, count, 50_000):
        block = rng.standard_normal((min(50_000, count - start), real.shape[1])).astype(np.float32) @ factor.T + mean
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def split_probes(people: np.ndarray, enrolled: int, strangers: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of probes of enrolled people (one photo each of people with several) and of
    strangers (people with a single photo)."""
    _, inverse, counts = np.unique(people, return_inverse=True, return_counts=True)
    first_rows = {}
    for row in np.flatnonzero(counts[inverse] >= 2):
        first_rows.setdefault(inverse[row], row)
    return np.array(list(first_rows.values()))[:enrolled], np.flatnonzero(counts[inverse] == 1)[:strangers]


def rss() -> int:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # return freed heap pages so RSS shows what is held
    return psutil.Process().memory_info().rss


def build_ours(gallery: np.ndarray, approx_from: int) -> tuple[IndexRegistry, float]:
    registry = IndexRegistry(gallery.shape[1], approx_from)
    started = time.perf_counter()
    for start in range(0, len(gallery), BATCH):
        ids = np.arange(start, min(start + BATCH, len(gallery)), dtype=np.int64)
        registry.add("bench", "group", ids, gallery[start : start + BATCH])
    return registry, time.perf_counter() - started


def build_flat(gallery: np.ndarray) -> tuple[faiss.Index, float]:
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(gallery.shape[1])
    flat.add(gallery)
    return flat, time.perf_counter() - started


def ours_load_seconds(registry: IndexRegistry, approx_from: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        store = SnapshotStore(Path(directory), "bench", "bench")
        store.save(registry.dim, "1-0", registry.to_arrays())
        started = time.perf_counter()
        store.load(approx_from, lambda position: True)
        return time.perf_counter() - started


def flat_load_seconds(flat: faiss.Index) -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "flat.faiss")
        faiss.write_index(flat, path)
        started = time.perf_counter()
        faiss.read_index(path)
        return time.perf_counter() - started


def measure(search, probes: np.ndarray, threads: list[int]) -> dict[str, object]:
    """Latency of single queries one at a time, then queries/s with several threads."""
    seconds = []
    for probe in probes[:LATENCY_QUERIES]:
        started = time.perf_counter()
        search(probe)
        seconds.append(time.perf_counter() - started)
    figures: dict[str, object] = {
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p99_ms": float(np.percentile(seconds, 99) * 1e3),
    }
    for count in threads:
        done, started = 0, time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            while done == 0 or time.perf_counter() - started < MIN_THROUGHPUT_SECONDS:
                list(pool.map(search, probes))
                done += len(probes)
        figures[f"qps_{count}_threads"] = done / (time.perf_counter() - started)
    return figures


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean(found == exact))


def bench_size(gallery: np.ndarray, probes: dict[str, np.ndarray], args) -> dict[str, object]:
    """Both indexes on one gallery."""
    before = rss()
    flat, flat_build = build_flat(gallery)
    flat_rss = rss() - before
    exact = {name: flat.search(p, 1)[1][:, 0] for name, p in probes.items()}
    everyone = np.concatenate(list(probes.values()))
    flat_figures = measure(lambda q, index=flat: index.search(q[None], CANDIDATES), everyone, args.threads)
    flat_figures.update(build_s=flat_build, rss_mb=flat_rss / 1e6, load_s=flat_load_seconds(flat))
    del flat

    before = rss()
    registry, build = build_ours(gallery, args.approx_from)
    grown = rss() - before
    group = registry.group("bench", "group")

    def candidates(probe: np.ndarray, index=group) -> np.ndarray:  # bound now: ``group`` is deleted below
        return index.search(probe, CANDIDATES)[1]

    def reranked(probe: np.ndarray, stored: np.ndarray = gallery) -> int:
        found = candidates(probe)
        return int(found[np.argmax(stored[found].astype(np.float32) @ probe)])

    half = gallery.astype(np.float16)  # the vectors as Redis would hold them in float16

    ours = measure(candidates, everyone, args.threads)
    ours.update(
        build_s=build,
        rss_mb=grown / 1e6,
        load_s=ours_load_seconds(registry, args.approx_from),
        exact=group.exact,
        p50_ms_with_rerank=float(np.median([_timed(reranked, q) for q in everyone[:LATENCY_QUERIES]]) * 1e3),
    )
    for name, p in probes.items():
        ours[f"recall_{name}_index_only"] = recall(np.array([candidates(q)[0] for q in p]), exact[name])
        ours[f"recall_{name}_reranked"] = recall(np.array([reranked(q) for q in p]), exact[name])
        ours[f"recall_{name}_reranked_float16"] = recall(np.array([reranked(q, half) for q in p]), exact[name])
    del registry, group, half
    return {"size": len(gallery), "facesvc": ours, "flat_baseline": flat_figures}


def _timed(function, argument) -> float:
    started = time.perf_counter()
    function(argument)
    return time.perf_counter() - started


def print_table(results: list[dict[str, object]], threads: list[int]) -> None:
    columns = ("p50_ms", "p99_ms", *(f"qps_{n}_threads" for n in threads), "rss_mb", "build_s", "load_s")
    print(f"{'faces':>7} {'index':<9} " + " ".join(f"{c:>13}" for c in columns) + f" {'recall@1 enrolled/stranger':>27}")
    for result in results:
        for name in ("facesvc", "flat_baseline"):
            row = result[name]
            cells = " ".join(f"{row[c]:>13.2f}" for c in columns)
            recalls = (
                f"{row['recall_enrolled_reranked']:.4f}/{row['recall_strangers_reranked']:.4f}" if name == "facesvc" else "1 (exact)"
            )
            print(f"{result['size']:>7} {name:<9.9} {cells} {recalls:>27}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--approx-from", type=int, default=config.load_settings().index.approx_from)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "search.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    set_threads(config.load_settings().index.threads)  # as the service does, for both indexes

    real, people = real_vectors()
    enrolled, strangers = split_probes(people, 1000, 300)
    probes = {"enrolled": real[enrolled], "strangers": real[strangers]}
    rest = np.delete(real, np.concatenate([enrolled, strangers]), axis=0)
    synthetic = synthetic_vectors(real, max(args.sizes) - len(rest))
    gallery = np.concatenate([rest, synthetic])
    log.info(
        "gallery: %d real + synthetic; mean cosine real-real %.3f, synthetic-synthetic %.3f, real-synthetic %.3f",
        len(rest), float(np.mean(rest[:1000] @ rest[1000:2000].T)),
        float(np.mean(synthetic[:1000] @ synthetic[1000:2000].T)), float(np.mean(rest[:1000] @ synthetic[:1000].T)),
    )
    results = []
    for size in args.sizes:
        log.info("%d faces ...", size)
        results.append(bench_size(np.ascontiguousarray(gallery[:size]), probes, args))
    report = {
        "benchmark": "search",
        "git": git_revision(),
        "machine": machine_info(),
        "config": {
            "approx_from": args.approx_from, "candidates": CANDIDATES, "threads": args.threads,
            "probes": {name: len(p) for name, p in probes.items()}, "real_in_gallery": len(rest),
            "faiss_omp_threads": faiss.omp_get_max_threads(),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_table(results, args.threads)


if __name__ == "__main__":
    main()
