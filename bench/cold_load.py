"""Cold loads under a memory budget (index/lazy.py, ``FACESVC_INDEX__MEMORY_MB``): how long a
node takes to load a group it does not hold, and what an identify costs on a cold vs a warm
group.

One group per size, filled through the library's own writes into an embedded Redis with
synthetic vectors drawn like the real fused embeddings (bench/search.py), then, per size and
run (medians reported):

- load from faces: no stored index; the group's faces read from Redis (and, from
  ``approx_from`` faces on, the PQ codebooks trained and the faces quantised);
- load from the stored index: the built index kept in Redis (chunked), no change after it;
- the same with a tail: 1,000 faces added to the group after its index was stored, replayed;
- identify (the library's, as the service calls it, without the probe's embedding): the first
  on a group just evicted (cold: it loads it), and warm (median of 200 probes near stored faces);
- what a held group costs in memory, and its stored index in Redis, per face.

    python -m bench.cold_load [--sizes 10000 100000 300000] [--runs 3]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

import config
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import RESULTS_DIR
from bench.search import real_vectors, synthetic_vectors
from index.lazy import LazyIndexes
from service.library.face_library import Library, NewFace
from service.library.indexes import start_lazy_indexes
from service.library.offline import offline_library
from service.store import keys
from service.store.faces import FaceStore
from service.store.redis_server import EmbeddedRedis, connect

log = logging.getLogger(__name__)
APP = "12345678"
TAIL = 1_000
WARM_PROBES = 200


def fill(library: Library, group: str, vectors: np.ndarray, first: int = 0) -> None:
    for i, vector in enumerate(vectors, start=first):
        digest = hashlib.sha256(f"{group}/{i}".encode()).hexdigest()
        library.put_faces(APP, f"{group}_{i}", [group], [NewFace(digest, vector)], "", replace=False)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def wait_stored(client, model: str, group: str, after: bytes | None) -> bytes:
    """The stored index's generation once it differs from ``after`` (the store runs in the background)."""
    for _ in range(6000):
        generation = client.hget(keys.built_index(APP, model, group), "gen")
        if generation is not None and generation != after:
            return generation
        time.sleep(0.05)
    raise TimeoutError(f"{group} not stored")


def measure(client, indexes: LazyIndexes, library: Library, group: str, vectors: np.ndarray, runs: int) -> dict:
    model = library.model_id
    record = keys.built_index(APP, model, group)
    quantised = len(vectors) >= indexes.registry.approx_from
    rng = np.random.default_rng(1)
    probes = vectors[rng.choice(len(vectors), WARM_PROBES, replace=False)]
    probes = probes + 0.05 * rng.standard_normal(probes.shape).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)

    def identify(probe: np.ndarray) -> float:
        return timed(lambda: library.identify(APP, [group], [probe], 1, 1))

    def cold(action: Callable[[], object]) -> float:
        indexes.evict(APP, group)
        return timed(action)

    from_faces, from_stored, with_tail, cold_identify = [], [], [], []
    for run in range(runs):
        client.delete(record)
        from_faces.append(cold(lambda: indexes.ensure(APP, group)))
        if quantised:
            wait_stored(client, model, group, None)
            from_stored.append(cold(lambda: indexes.ensure(APP, group)))
            cold_identify.append(cold(lambda: identify(probes[run])))
    held = indexes.registry.memory_bytes()
    warm = [identify(probe) for probe in probes]
    stored_bytes = int(client.hget(record, "bytes") or 0)
    if quantised:
        fill(library, group, synthetic_vectors(vectors[:1000], TAIL, seed=7), first=len(vectors))
        for _ in range(runs):
            with_tail.append(cold(lambda: indexes.ensure(APP, group)))
    else:
        cold_identify = [cold(lambda: identify(probe)) for probe in probes[:runs]]
    return {
        "faces": len(vectors),
        "index": "fast-scan PQ" if quantised else "flat",
        "load_from_faces_ms": median_ms(from_faces),
        "load_from_stored_ms": median_ms(from_stored),
        f"load_from_stored_plus_{TAIL}_changes_ms": median_ms(with_tail),
        "identify_cold_ms": median_ms(cold_identify),
        "identify_warm_ms": median_ms(warm),
        "held_bytes_per_face": round(held / len(vectors), 1),
        "stored_bytes_per_face": round(stored_bytes / len(vectors), 1) if stored_bytes else None,
        "runs": runs,
    }


def median_ms(seconds: list[float]) -> float | None:
    return round(1000 * statistics.median(seconds), 1) if seconds else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cold_load.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    real, _ = real_vectors()
    settings = config.load_settings()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        server = EmbeddedRedis(Path(directory), "everysec").start()
        try:
            client = connect(server.url)
            model = "sface+fr_feature"
            writer = offline_library(client, model)
            budget = settings.model_copy(update={"workers": 1, "index": settings.index.model_copy(update={"memory_mb": 4096})})
            indexes = start_lazy_indexes(FaceStore(client), model, real.shape[1], budget)
            library = Library(FaceStore(client), indexes, model)
            try:
                for size in args.sizes:
                    group = f"g{size}"
                    vectors = synthetic_vectors(real, size, seed=size)
                    started = time.perf_counter()
                    fill(writer, group, vectors)
                    log.info("%d faces written in %.0f s", size, time.perf_counter() - started)
                    rows.append(measure(client, indexes, library, group, vectors, args.runs))
                    indexes.evict(APP, group)
                    log.info("%s", rows[-1])
            finally:
                indexes.close()
        finally:
            server.stop()
    report = {"benchmark": "cold_load", "git": git_revision(), "machine": machine_info(), "approx_from": settings.index.approx_from, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'faces':>8} {'index':>12} {'from faces':>11} {'stored':>8} {'+1k tail':>9} {'cold id':>8} {'warm id':>8} {'B/face held':>12} {'B/face Redis':>13}")
    for row in rows:
        cells = [row["load_from_faces_ms"], row["load_from_stored_ms"], row[f"load_from_stored_plus_{TAIL}_changes_ms"], row["identify_cold_ms"], row["identify_warm_ms"]]
        shown = [f"{c:.0f} ms" if c is not None else "-" for c in cells]
        print(f"{row['faces']:>8} {row['index']:>12} {shown[0]:>11} {shown[1]:>8} {shown[2]:>9} {shown[3]:>8} {shown[4]:>8} {row['held_bytes_per_face']:>12.0f} {row['stored_bytes_per_face'] or 0:>13.0f}")


if __name__ == "__main__":
    main()
