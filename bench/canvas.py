"""The detector's canvas on small photos: LFW View 2 accuracy at each canvas margin.

YuNet runs on a square canvas of the photo's longer side plus ``workers.detector.CANVAS_MARGIN``
(96 px), rounded up to its stride of 32: 352x352 for LFW's 250 px photos. A smaller canvas is
cheaper (bench/request_path.py: YuNet 3.0 ms at 384, 2.1 at 320, 1.3 at 256), but without the
margin YuNet's own five points moved by 1.4 px. The embedders are aligned by the 68-point
head, which starts from YuNet's box, so what matters is whether the embeddings' accuracy moves:
this embeds View 2's 7,701 photos (largest and centre face, no mirrored crops) at each
``--margins`` value through the service's pipeline and scores them exactly as bench/lfw.py does.
Per margin: the canvas of a 250 px photo, the median detect and whole-photo ms, the fused
profile's accuracy and TAR at FAR 1e-3 / 1e-4 for both faces, and how far YuNet's own five
points and box of the largest face moved from the first margin's (the pose head, the quality
measures and detect's ``landmark`` field read them). The first default margin, 640, is the
full 640x640 canvas the graph was exported for: the reference.

    python -m bench.canvas [--margins 640 128 96 64 0] [--out bench/results/canvas.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from bench.lfw import evaluate, git_revision, machine_info, read_folds
from bench.lfw_embeddings import ARRAYS, LFW_DIR, MAX_FACES, RESULTS_DIR, LfwEmbeddings, centre_face, load_pipeline
from workers import detector
from workers.pipeline import Pipeline

log = logging.getLogger(__name__)


def embed_view2(pipeline: Pipeline, photos: list[str]) -> tuple[LfwEmbeddings, np.ndarray, float, float]:
    """The largest and centre faces' embeddings of ``photos``; the largest face's five points
    and box corners as YuNet found them ((N, 7, 2), NaN on a miss); the median ms of the detect
    call and of the whole photo (decode, detect, embed the largest face)."""
    n, dim = len(photos), pipeline.embedder.dim
    arrays = {"faces": np.zeros(n, np.int32), "seconds": np.zeros(n), "mirror_seconds": np.full(n, np.nan)}
    arrays.update({name: np.zeros((n, dim), np.float32) for name in ARRAYS[3:]})
    detect_seconds = []
    geometry = np.full((n, 7, 2), np.nan)
    for i, photo in enumerate(photos):
        started = time.perf_counter()
        image = pipeline.decode((LFW_DIR / photo).read_bytes())
        detected = time.perf_counter()
        faces = pipeline.detect(image, MAX_FACES)
        detect_seconds.append(time.perf_counter() - detected)
        arrays["faces"][i] = len(faces)
        if faces:
            left, top, width, height = faces[0].detection.box
            geometry[i] = np.vstack([faces[0].detection.landmarks, [[left, top], [left + width, top + height]]])
            arrays["largest"][i] = pipeline.embed(image, faces[:1])[0]
            centre = centre_face(faces, image)
            arrays["centre"][i] = arrays["largest"][i] if centre is faces[0] else pipeline.embed(image, [centre])[0]
        arrays["seconds"][i] = time.perf_counter() - started
    cache = LfwEmbeddings(pipeline.model_id, photos, arrays)
    return cache, geometry, 1e3 * float(np.median(detect_seconds)), 1e3 * float(np.median(arrays["seconds"]))


def moved(geometry: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Median, 90th and 99th percentile over the photos of the mean distance YuNet's five points
    moved and of the largest distance a box corner moved (px), and how many photos' box or
    points moved more than 1 px (a few pixels on a turned face, or another face taken as the
    largest)."""
    distances = np.linalg.norm(geometry - reference, axis=2)
    found = ~np.isnan(distances).any(axis=1)
    points, corners = distances[found, :5].mean(axis=1), distances[found, 5:].max(axis=1)
    figures = {
        f"{name}_px_{label}": float(np.percentile(values, q))
        for name, values in (("points", points), ("box", corners)) for label, q in (("median", 50), ("p90", 90), ("p99", 99))
    }
    return {**figures, "photos_over_1px": int((np.maximum(points, corners) > 1).sum()), "photos": int(found.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margins", type=int, nargs="+", default=[640, 128, detector.CANVAS_MARGIN, 64, 0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "canvas.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cv2.setNumThreads(1)
    first, second, _, _ = read_folds()
    photos = sorted(set(first) | set(second))
    pipeline = load_pipeline()
    default = detector.CANVAS_MARGIN
    rows = []
    reference = None
    try:
        for margin in args.margins:
            detector.CANVAS_MARGIN = margin
            log.info("margin %d: canvas %d for a 250 px photo", margin, detector.canvas_size((250, 250)))
            cache, geometry, detect_ms, photo_ms = embed_view2(pipeline, photos)
            reference = geometry if reference is None else reference
            row = {"margin": margin, "canvas_250px": detector.canvas_size((250, 250)), "misses": int((~cache.detected).sum()),
                   "detect_ms_median": detect_ms, "photo_ms_median": photo_ms, "moved": moved(geometry, reference)}
            for face in ("centre", "largest"):
                figures = evaluate(cache, "fused", face)
                row[face] = {"accuracy": figures["accuracy_mean"], "accuracy_std": figures["accuracy_std"],
                             "tar_at_far": {far: t and t["tar"] for far, t in figures["tar_at_far"].items()}}
            rows.append(row)
            log.info("%s", row)
    finally:
        detector.CANVAS_MARGIN = default
    report = {"benchmark": "canvas", "git": git_revision(), "machine": machine_info(), "photos": len(photos),
              "model_id": pipeline.model_id, "precision": pipeline.precision, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'margin':>6} {'canvas':>6} {'misses':>6} {'detect ms':>9} {'photo ms':>8} {'points/box moved px':>19}   "
          f"{'centre acc':>10} {'TAR 1e-3':>8} {'TAR 1e-4':>8}   {'largest acc':>11} {'TAR 1e-3':>8} {'TAR 1e-4':>8}")
    for row in rows:
        cells = []
        for face in ("centre", "largest"):
            tar = row[face]["tar_at_far"]
            cells.append(f"{100 * row[face]['accuracy']:>10.2f}% {100 * (tar['0.001'] or 0):>7.2f}% {100 * (tar['0.0001'] or 0):>7.2f}%")
        shift = f"{row['moved']['points_px_median']:.2f} / {row['moved']['box_px_median']:.2f} ({row['moved']['photos_over_1px']} > 1)"
        print(f"{row['margin']:>6} {row['canvas_250px']:>6} {row['misses']:>6} {row['detect_ms_median']:>9.2f} {row['photo_ms_median']:>8.2f} {shift:>19}   "
              f"{cells[0]}   {cells[1]}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
