"""Turned faces: verification of a frontal photo against a turned one, against frontal pairs.

LFW has few profiles, so the pairs are made from all of LFW rather than View 2's list: the yaw
of each photo's largest face comes from the service's pose head (``fr_pose``, cached in
bench/results/lfw_yaw.npz), and every same-person pair of photos is put in a class by the yaw
of its two faces: both frontal (|yaw| <= 15 degrees), frontal against half-turned (30-45), and
frontal against turned (> 45). Each class's different-person pairs are a random sample of the
same yaw classes (up to 1,000,000). Per class: TAR and FAR at scores 80 and 90 (the service's
calibrated map, fused profile, the embeddings of bench/lfw_embeddings.py), and the accuracy at
the best threshold on as many different pairs as same pairs (the figure LFW reports).

The same classes again with the turned photos (|yaw| > 30) embedded otherwise, as a service
that knows a face's pose could do (the frontal ones, and the score map, stay as they are):
``flip``, the plain and the mirrored crop's embeddings summed per model (the cache's mirrored
embeddings); ``eyes+mouth``, aligned by a similarity transform from the two eye centres and the
mouth's centre alone, leaving out the nose tip, which a turned head moves sideways off the
face's midline, and the mouth corners, one of which it foreshortens.

    python -m bench.profile_pairs
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from bench.lfw import best_threshold, git_revision, machine_info
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR, ensure_embeddings, identity
from config import load_settings
from service.api.scores import ScoreMap
from service.inference import load_pipeline
from workers.align import ARCFACE_TEMPLATE, similarity_transform
from workers.image import ImageError
from workers.landmarks import arcface_five

log = logging.getLogger(__name__)
CLASSES = {"frontal-frontal": ((0, 15), (0, 15)), "frontal-half (30-45)": ((0, 15), (30, 45)), "frontal-turned (>45)": ((0, 15), (45, 91))}
IMPOSTORS = 1_000_000
TURNED = 30  # |yaw| from which a photo is embedded by a variant
# The eye centres and the mouth's centre in the ArcFace template.
EYES_MOUTH_TEMPLATE = np.vstack([ARCFACE_TEMPLATE[:2], ARCFACE_TEMPLATE[3:].mean(axis=0)])


def yaws(paths: list[str], cache: Path) -> np.ndarray:
    """|yaw| in degrees of each photo's largest face (NaN: no face), computed once."""
    if cache.exists():
        with np.load(cache) as data:
            if list(data["paths"]) == paths:
                return data["yaw"]
    pipeline = load_pipeline(load_settings())
    found = np.full(len(paths), np.nan)
    for i, path in enumerate(paths):
        if i % 1000 == 0:
            log.info("pose of photo %d of %d", i, len(paths))
        try:
            faces = pipeline.detect_photo((LFW_DIR / path).read_bytes(), 1000)
        except ImageError:
            continue
        if faces:
            largest = max(faces, key=lambda face: face.detection.box[2] * face.detection.box[3])
            found[i] = abs(largest.pose.yaw)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=np.array(paths), yaw=found)
    return found


def within(yaw: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return (yaw >= bounds[0]) & (yaw <= bounds[1]) if bounds[1] < 91 else yaw > bounds[0]


def eyes_mouth_crop(image: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """The 112x112 crop aligned by the eye centres and the mouth's centre alone."""
    five = arcface_five(points68)
    points = np.vstack([five[:2], five[3:].mean(axis=0)])
    return cv2.warpAffine(image, similarity_transform(points, EYES_MOUTH_TEMPLATE), (112, 112), flags=cv2.INTER_LINEAR, borderValue=0)


def eyes_mouth_vectors(paths: list[str], rows: np.ndarray) -> dict[int, np.ndarray]:
    """Fused embeddings of the largest face of the photos ``rows``, aligned by eyes_mouth_crop."""
    pipeline = load_pipeline(load_settings())
    found = {}
    for i in rows:
        image = pipeline.decode((LFW_DIR / paths[i]).read_bytes())
        faces = pipeline.detect(image, 1)
        if faces:
            found[int(i)] = pipeline.embedder.embed(eyes_mouth_crop(image, faces[0].landmarks68)[None])[0]
    return found


def class_rows(vectors: np.ndarray, yaw: np.ndarray, people: np.ndarray, detected: np.ndarray, score_map: ScoreMap) -> list[dict]:
    """Per class: same and different pairs, accuracy at the best threshold, TAR and FAR at 80
    and 90. The same seed each call, so variants are judged on the same pairs."""
    rng = np.random.default_rng(0)
    results = []
    for name, (first, second) in CLASSES.items():
        a, b = np.flatnonzero(within(yaw, first) & detected), np.flatnonzero(within(yaw, second) & detected)
        same = [(i, j) for i in a for j in b[people[b] == people[i]] if i != j]
        if name == "frontal-frontal":
            same = [(i, j) for i, j in same if i < j]
        x, y = rng.choice(a, IMPOSTORS), rng.choice(b, IMPOSTORS)
        different = people[x] != people[y]
        x, y = x[different], y[different]
        genuine = np.array([vectors[i] @ vectors[j] for i, j in same])
        impostor = np.einsum("ij,ij->i", vectors[x], vectors[y])
        genuine_scores, impostor_scores = score_map.to_scores(genuine), score_map.to_scores(impostor)
        balanced = rng.choice(impostor, len(genuine), replace=False)
        labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(balanced), bool)])
        scores = np.concatenate([genuine, balanced])
        threshold = best_threshold(scores, labels)
        row = {"class": name, "same_pairs": len(same), "people": len({people[i] for i, _ in same}), "different_pairs": int(len(impostor)),
               "accuracy_best_threshold": float(np.mean((scores >= threshold) == labels))}
        for score in (80, 90):
            row[f"tar_at_{score}"] = float(np.mean(genuine_scores >= score))
            row[f"far_at_{score}"] = float(np.mean(impostor_scores >= score))
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "profile_pairs.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lfw = ensure_embeddings()
    paths = list(lfw.paths)
    yaw = yaws(paths, RESULTS_DIR / "lfw_yaw.npz")
    people = np.array([identity(p) for p in paths])
    score_map = ScoreMap.for_model("sface+fr_feature")
    plain = lfw.profile_vectors("fused", "largest")
    turned = np.flatnonzero(lfw.detected & (yaw > TURNED))
    flipped = plain.copy()
    flipped[turned] = lfw.profile_vectors("fused-flip", "largest")[turned]
    realigned = plain.copy()
    for i, vector in eyes_mouth_vectors(paths, turned).items():
        realigned[i] = vector
    variants = {"five points (the service)": plain, "turned: flip": flipped, "turned: eyes+mouth": realigned}
    results = {}
    for variant, vectors in variants.items():
        results[variant] = class_rows(vectors, yaw, people, lfw.detected, score_map)
        log.info("%s: %s", variant, results[variant])
    report = {"benchmark": "profile_pairs", "git": git_revision(), "machine": machine_info(), "turned_photos": int(len(turned)), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{'variant':<26} {'class':<22} {'same pairs':>10} {'people':>7} {'accuracy':>9} {'TAR@80':>8} {'FAR@80':>9} {'TAR@90':>8} {'FAR@90':>9}")
    for variant, rows in results.items():
        for row in rows:
            print(f"{variant:<26} {row['class']:<22} {row['same_pairs']:>10} {row['people']:>7} {100 * row['accuracy_best_threshold']:>8.2f}% "
                  f"{100 * row['tar_at_80']:>7.2f}% {row['far_at_80']:>9.1e} {100 * row['tar_at_90']:>7.2f}% {row['far_at_90']:>9.1e}")


if __name__ == "__main__":
    main()
