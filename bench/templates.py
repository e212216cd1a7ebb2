"""Multi-photo users in identify: is a user's score best taken as the max over their faces (what
the service does), the mean of the faces' cosines, or the cosine to their mean vector?

LFW, fused profile, the largest face of each photo (bench/lfw_embeddings.py's cache): the
people with at least ``--min-photos`` detected photos are enrolled with their first k photos
(k = 1, 2, 3), and probed with the rest from photo ``--min-photos - 1`` on (the same probes
for every k); strangers are the people with a single photo (LFW's non-mated probes). Per rule
and k: rank-1 of the mated probes, FNIR at the score that lets 1 % of the strangers' best
scores through (FPIR 1 %, threshold-free), and FNIR / FPIR at scores 80 and 90 (the score map is
calibrated per comparison; a mean of cosines is not a comparison, so those two columns are for
max only).

    python -m bench.templates [--min-photos 4]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import RESULTS_DIR, ensure_embeddings, identity
from service.api.scores import ScoreMap

RULES = ("max", "mean", "template")
FPIR = 0.01


def user_scores(probes: np.ndarray, faces: np.ndarray, owners: np.ndarray, users: int, rule: str) -> np.ndarray:
    """(probes, users) similarity of each probe to each user under ``rule``."""
    if rule == "template":
        templates = np.zeros((users, faces.shape[1]), np.float32)
        np.add.at(templates, owners, faces)
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        return probes @ templates.T
    cosines = probes @ faces.T
    scores = np.full((len(probes), users), -np.inf if rule == "max" else 0.0, np.float32)
    for user in range(users):
        mine = cosines[:, owners == user]
        scores[:, user] = mine.max(axis=1) if rule == "max" else mine.mean(axis=1)
    return scores


def evaluate(rule: str, k: int, people: list[np.ndarray], probes: np.ndarray, probe_owner: np.ndarray,
             strangers: np.ndarray, score_map: ScoreMap) -> dict:
    faces = np.concatenate([rows[:k] for rows in people])
    owners = np.concatenate([np.full(k, user) for user in range(len(people))])
    mated = user_scores(probes, faces, owners, len(people), rule)
    best, where = mated.max(axis=1), mated.argmax(axis=1)
    right = where == probe_owner
    stranger_best = user_scores(strangers, faces, owners, len(people), rule).max(axis=1)
    threshold = float(np.quantile(stranger_best, 1 - FPIR))
    row = {"rule": rule, "photos_enrolled": k, "rank1": float(right.mean()),
           "fnir_at_fpir_1pct": float(np.mean(~right | (best < threshold)))}
    if rule == "max":
        mated_scores, stranger_scores = score_map.to_scores(best), score_map.to_scores(stranger_best)
        for score in (80, 90):
            row[f"fnir_at_{score}"] = float(np.mean(~right | (mated_scores < score)))
            row[f"fpir_at_{score}"] = float(np.mean(stranger_scores >= score))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-photos", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "templates.json")
    args = parser.parse_args()
    lfw = ensure_embeddings()
    vectors = lfw.profile_vectors("fused", "largest")
    by_person: dict[str, list[int]] = {}
    for row in np.flatnonzero(lfw.detected):
        by_person.setdefault(identity(lfw.paths[row]), []).append(int(row))
    enrolled = [rows for rows in by_person.values() if len(rows) >= args.min_photos]
    people = [vectors[rows] for rows in enrolled]
    first_probe = args.min_photos - 1
    probes = np.concatenate([person[first_probe:] for person in people])
    probe_owner = np.concatenate([np.full(len(person) - first_probe, user) for user, person in enumerate(people)])
    strangers = vectors[[rows[0] for rows in by_person.values() if len(rows) == 1]]
    score_map = ScoreMap.for_model("sface+fr_feature")
    results = [evaluate(rule, k, people, probes, probe_owner, strangers, score_map)
               for k in range(1, args.min_photos) for rule in (RULES if k > 1 else ("max",))]
    report = {"benchmark": "templates", "git": git_revision(), "machine": machine_info(),
              "people": len(people), "mated_probes": len(probes), "strangers": len(strangers), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{len(people)} people enrolled, {len(probes)} mated probes, {len(strangers)} strangers")
    print(f"{'photos':>6} {'rule':>9} {'rank-1':>8} {'FNIR@FPIR1%':>12} {'FNIR/FPIR@80':>14} {'FNIR/FPIR@90':>14}")
    for row in results:
        at = {s: f"{100 * row[f'fnir_at_{s}']:.2f}/{100 * row[f'fpir_at_{s}']:.2f}%" if f"fnir_at_{s}" in row else "-" for s in (80, 90)}
        print(f"{row['photos_enrolled']:>6} {row['rule']:>9} {100 * row['rank1']:>7.2f}% {100 * row['fnir_at_fpir_1pct']:>11.2f}% {at[80]:>14} {at[90]:>14}")


if __name__ == "__main__":
    main()
