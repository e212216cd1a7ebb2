"""LFW View 2 benchmark: 10-fold verification accuracy and TAR at fixed false-accept rates.

Accuracy follows the standard protocol: for each of the 10 folds the threshold is chosen on the
other nine, and the ten fold accuracies are averaged. View 2's own 3,000 different-person pairs
cannot resolve a FAR of 1e-3 or 1e-4 (that would need 50,000 / 500,000 pairs for 50 false
accepts), so TAR@FAR uses every different-identity pair among View 2's photos (~30 million)
as impostors, against View 2's 3,000 same-person pairs. A photo where no face is detected makes
each of its pairs a wrong decision (a false reject for a same-person pair).

Every figure is given twice: for the largest face of each photo (what the service embeds) and
for the face nearest the centre (the one LFW labels; see ``bench/lfw_embeddings.py``).

``--gallery-precision P`` scores a library enrolled with other graphs, as after an upgrade: each
pair's first photo (and each impostor pair's gallery side) is embedded at precision P's cached
embeddings, the second at the configured precision's.

    python -m bench.lfw [--profile fused --profile fr_feature ...] [--gallery-precision int8leasterror]
        [--out bench/results/lfw.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

import config
from bench.lfw_embeddings import (
    FACES, LFW_DIR, PROFILES, RESULTS_DIR, ROOT, LfwEmbeddings, cache_path, ensure_embeddings, identity, load,
)

log = logging.getLogger(__name__)

DEFAULT_PROFILES = ("sface", "fr_feature", "fused")
TAR_FARS = (1e-3, 1e-4)
# A FAR is only reported where at least this many impostor pairs lie above its threshold.
MIN_FALSE_ACCEPTS = 50
CHUNK = 1024


def pair_scores(
    vectors: np.ndarray, detected: np.ndarray, rows1: np.ndarray, rows2: np.ndarray, probes: np.ndarray | None = None
) -> np.ndarray:
    """Similarity of each pair (the second photo's vector from ``probes`` when given); NaN where
    either photo had no detected face (no decision)."""
    scores = np.einsum("ij,ij->i", vectors[rows1], (vectors if probes is None else probes)[rows2]).astype(np.float64)
    scores[~(detected[rows1] & detected[rows2])] = np.nan
    return scores


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (accept when score >= it) maximising accuracy; NaN scores are ignored
    because they are wrong whatever the threshold."""
    labels = np.asarray(labels, bool)
    valid = ~np.isnan(scores)
    order = np.argsort(scores[valid])
    s, y = scores[valid][order], labels[valid][order]
    # Cut i rejects s[:i] and accepts s[i:]; only cuts between distinct scores are possible.
    correct = np.concatenate([[0], np.cumsum(~y)]) + (y.sum() - np.concatenate([[0], np.cumsum(y)]))
    possible = np.ones(len(s) + 1, bool)
    possible[1:-1] = s[1:] > s[:-1]
    cut = int(np.flatnonzero(possible)[np.argmax(correct[possible])])
    if cut == 0:
        return -np.inf
    if cut == len(s):
        return np.inf
    return float((s[cut - 1] + s[cut]) / 2)


def tenfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per-fold accuracy, each fold judged at the threshold chosen on the other folds.

    ``scores`` NaN marks a pair without a decision (a missed face): always wrong."""
    labels = np.asarray(labels, bool)
    accuracies = []
    for fold in np.unique(folds):
        test = folds == fold
        threshold = best_threshold(scores[~test], labels[~test])
        decided = ~np.isnan(scores[test])
        right = decided & ((scores[test] >= threshold) == labels[test])
        accuracies.append(right.mean())
    return np.array(accuracies)


def impostor_scores(vectors: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """Similarity of every unordered pair of rows with different identities (float32)."""
    parts = []
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start : start + CHUNK] @ vectors[start:].T
        rows = np.arange(start, min(start + CHUNK, len(vectors)))[:, None]
        cols = np.arange(start, len(vectors))[None, :]
        keep = (cols > rows) & (identities[start : start + CHUNK, None] != identities[None, start:])
        parts.append(block[keep])
    return np.concatenate(parts)


def genuine_scores(vectors: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """Similarity of every unordered pair of rows with the same identity (float32)."""
    order = np.argsort(identities, kind="stable")
    bounds = np.flatnonzero(np.r_[True, identities[order][1:] != identities[order][:-1], True])
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = order[start:stop]
        scores = vectors[rows] @ vectors[rows].T
        parts.append(scores[np.triu_indices(len(rows), 1)])
    return np.concatenate(parts)


def far_threshold(impostors: np.ndarray, far: float) -> float | None:
    """The score above which at most ``far`` of the impostors lie (accept when score > it);
    None when fewer than MIN_FALSE_ACCEPTS impostors would lie above it."""
    allowed = int(np.floor(far * len(impostors)))
    if allowed < MIN_FALSE_ACCEPTS:
        return None
    k = len(impostors) - 1 - allowed
    return float(np.partition(impostors, k)[k])


def accept_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of pairs scoring above ``threshold``; NaN (missed face) counts as rejected."""
    return float(np.mean(np.nan_to_num(scores, nan=-np.inf) > threshold))


def photo_set_impostors(
    cache: LfwEmbeddings, vectors: np.ndarray, paths: set[str], enrolled: np.ndarray | None = None,
    detected: np.ndarray | None = None,
) -> np.ndarray:
    """Impostor scores over all different-identity pairs of these photos with a detected face
    (``detected``, the cache's by default); with ``enrolled``, the gallery side's vectors, every
    ordered pair of a gallery photo and a probe photo (``vectors``)."""
    chosen = sorted(paths)
    rows = cache.rows(chosen)
    keep = (cache.detected if detected is None else detected)[rows]
    names = np.array([identity(p) for p in chosen])[keep]
    if enrolled is None:
        return impostor_scores(vectors[rows[keep]], names)
    return gallery_impostors(enrolled[rows[keep]], vectors[rows[keep]], names)


def gallery_impostors(gallery: np.ndarray, probes: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """Similarity of each gallery row with each probe row of another identity: every ordered
    pair, since the two sides are embedded differently (float32)."""
    parts = []
    for start in range(0, len(gallery), CHUNK):
        block = gallery[start : start + CHUNK] @ probes.T
        parts.append(block[identities[start : start + CHUNK, None] != identities[None, :]])
    return np.concatenate(parts)


def read_folds() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """View 2 as (path1s, path2s, same, fold) from pairs_folds.tsv."""
    rows = [line.split("\t") for line in (LFW_DIR / "pairs_folds.tsv").read_text().splitlines()[1:] if line]
    return (
        [r[1] for r in rows],
        [r[2] for r in rows],
        np.array([r[3] == "1" for r in rows]),
        np.array([int(r[0]) for r in rows]),
    )


def git_revision() -> str:
    """HEAD's sha, suffixed "-dirty" when tracked files differ from it; "unknown" outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty else "")


def machine_info() -> dict[str, object]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")), cpu)
    import cv2
    import onnxruntime

    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
    }


def evaluate(cache: LfwEmbeddings, profile: str, face: str, gallery: LfwEmbeddings | None = None) -> dict[str, object]:
    """All View 2 figures for one profile and face choice; with ``gallery``, each pair's first
    photo and each impostor's gallery side embedded as there."""
    first, second, same, folds = read_folds()
    vectors = cache.profile_vectors(profile, face)
    enrolled = None if gallery is None else gallery.profile_vectors(profile, face)
    detected = cache.detected if gallery is None else cache.detected & gallery.detected
    scores = pair_scores(vectors if enrolled is None else enrolled, detected, cache.rows(first), cache.rows(second), probes=vectors)
    impostors = photo_set_impostors(cache, vectors, set(first) | set(second), enrolled, detected)
    accuracies = tenfold_accuracy(scores, same, folds)
    tar = {}
    for far in TAR_FARS:
        threshold = far_threshold(impostors, far)
        tar[f"{far:g}"] = None if threshold is None else {
            "threshold": threshold,
            "tar": accept_rate(scores[same], threshold),
            "far_measured": float(np.mean(impostors > threshold)),
        }
    return {
        "accuracy_mean": float(accuracies.mean()),
        "accuracy_std": float(accuracies.std(ddof=1)),
        "accuracy_stderr": float(accuracies.std(ddof=1) / np.sqrt(len(accuracies))),
        "fold_accuracies": accuracies.tolist(),
        "undecided_pairs": int(np.isnan(scores).sum()),
        "impostor_pairs": len(impostors),
        "tar_at_far": tar,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES), help=f"repeatable; default: {' '.join(DEFAULT_PROFILES)}")
    parser.add_argument("--gallery-precision", help="score against a gallery embedded at this cached precision (e.g. int8leasterror)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "lfw.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    profiles = args.profile or list(DEFAULT_PROFILES)

    cache = ensure_embeddings()
    gallery = load(cache_path(cache.model_id, args.gallery_precision)) if args.gallery_precision else None
    if gallery is not None and gallery.paths != cache.paths:
        parser.error(f"the {args.gallery_precision} cache holds other photos than the configured precision's")
    first, second, _, _ = read_folds()
    view2 = cache.rows(sorted(set(first) | set(second)))
    figures: dict[str, dict[str, dict[str, object]]] = {face: {} for face in FACES}
    for face in FACES:
        for profile in profiles:
            log.info("evaluating %s, %s face", profile, face)
            figures[face][profile] = evaluate(cache, profile, face, gallery)

    settings = config.load_settings()
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {
            "protocol": "LFW View 2 (pairs_folds.tsv), 10 folds, threshold chosen on the other 9",
            "model_id": cache.model_id,
            "models": settings.models.model_dump(),
            "profiles": {p: {"models": PROFILES[p][0], "flip": PROFILES[p][1]} for p in profiles},
            "faces": {
                "largest": "the largest detected face of each photo, as the service embeds",
                "centre": "the detected face nearest the image centre, the one LFW labels",
            },
            "tar_impostors": "all different-identity pairs among View 2 photos with a detected face",
            "gallery_precision": args.gallery_precision,
            "view2_pair_far_floor": MIN_FALSE_ACCEPTS / 3000,
            "min_false_accepts": MIN_FALSE_ACCEPTS,
            "threads": "1 (cv2.setNumThreads(1), ORT intra-op 1)",
        },
        "photos": {
            "view2": len(view2),
            "misses": int((~cache.detected[view2]).sum()),
            "several_faces": int((cache.arrays["faces"][view2] > 1).sum()),
            "missed": [cache.paths[i] for i in view2 if not cache.detected[i]],
            "ms_per_photo": float(1000 * cache.seconds[view2].mean()),
            "ms_per_photo_median": float(1000 * np.median(cache.seconds[view2])),
            "flip_extra_ms_per_photo": float(1000 * cache.arrays["mirror_seconds"][view2][cache.detected[view2]].mean()),
        },
        "results": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    photos = report["photos"]
    print(f"LFW View 2, {len(view2)} photos, {photos['misses']} misses, {photos['several_faces']} with several faces, "
          f"{photos['ms_per_photo']:.1f} ms/photo ({cache.model_id}, 1 thread, {report['machine']['cpu']})")
    print(f"{'profile':<16} {'face':<8} {'accuracy':>16} {'TAR@FAR1e-3':>12} {'TAR@FAR1e-4':>12}")
    for face, results in figures.items():
        for profile, f in results.items():
            tars = [f["tar_at_far"][f"{far:g}"] for far in TAR_FARS]
            cells = ["n/a" if t is None else f"{100 * t['tar']:.2f}%" for t in tars]
            print(f"{profile:<16} {face:<8} {100 * f['accuracy_mean']:>8.2f} ± {100 * f['accuracy_std']:.2f}% "
                  f"{cells[0]:>12} {cells[1]:>12}")
    print(f"TAR@FAR over {figures[FACES[0]][profiles[0]]['impostor_pairs']:,} impostor pairs; "
          f"View 2's 3,000 different pairs alone resolve FAR only down to {MIN_FALSE_ACCEPTS / 3000:.1e}.")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
