"""Open-set identification: what a score means when a probe is compared with a whole group.

Score 80 is calibrated per comparison (FAR 1e-4, bench/calibrate.py). Identify compares a probe
with every face of a group and answers the best, so a stranger's best score rises with the
group's size: against 300,000 faces one in 10^4 per comparison is ~30 false candidates. This
measures, as identify does it (top-1 by exact cosine, the service's score map):

- FNIR at score t: mated probes whose top-1 is not their own person or scores below t;
- FPIR at score t: non-mated probes (strangers) whose top-1 scores t or more;
- the score at which FPIR is 1 %, per gallery size.

Data: LFW's identification protocol (../shared/data/lfw/identification.tsv): the gallery is the
first photo of each of the 1,680 people with two or more photos, mated probes are their other
7,484 photos, non-mated probes the 4,069 people with one photo; the largest face of each photo
embedded by the service's pipeline (bench/lfw_embeddings.py). Larger galleries add synthetic
distractors drawn like bench/search.py's (a Gaussian with the real vectors' mean and
covariance): "measured" figures are those; "extrapolated" ones assume every gallery face is an
independent draw from the real impostor-score distribution (per-comparison FAR(t) measured on
the real non-mated probes against the real gallery): FPIR(N, t) = 1 - (1 - FAR(t))^N.

    python -m bench.openset [--profile fused] [--sizes 1680 10000 100000 300000]
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR, ensure_embeddings, identity
from bench.search import synthetic_vectors
from service.api.scores import ScoreMap

log = logging.getLogger(__name__)
SCORES = (70, 75, 80, 85, 90, 95)
TARGET_FPIR = 0.01
CHUNK = 5_000  # gallery rows per matrix product: 7,484 probes x 5,000 x 4 B = 150 MB


def protocol() -> dict[str, list[str]]:
    """Paths by role: gallery, probe (mated), distractor (non-mated)."""
    roles: dict[str, list[str]] = {"gallery": [], "probe": [], "distractor": []}
    with open(LFW_DIR / "identification.tsv", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            roles[row["role"]].append(row["path"])
    return roles


def top1(probes: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best cosine, index of the best gallery row) of each probe, in chunks of the gallery."""
    best = np.full(len(probes), -np.inf, np.float32)
    where = np.zeros(len(probes), np.int64)
    for start in range(0, len(gallery), CHUNK):
        similarities = probes @ gallery[start : start + CHUNK].T
        chunk_best = similarities.argmax(axis=1)
        values = similarities[np.arange(len(probes)), chunk_best]
        better = values > best
        best[better], where[better] = values[better], chunk_best[better] + start
    return best, where


def extrapolated_score(impostor_scores: np.ndarray, gallery: int) -> float | None:
    """The lowest score whose per-comparison FAR makes FPIR(gallery) at most 1 %, or None when
    that FAR is below what the measured comparisons can show (fewer than 5 impostors above)."""
    needed_far = 1 - (1 - TARGET_FPIR) ** (1 / gallery)
    if needed_far * impostor_scores.size < 5:
        return None
    return float(np.quantile(impostor_scores, 1 - needed_far))


def score_for_fpir(stranger_scores: np.ndarray, fpir: float) -> float:
    """The lowest score at which at most ``fpir`` of the strangers' top-1 scores reach it."""
    return float(np.quantile(stranger_scores, 1 - fpir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="fused", choices=["fused", "fr_feature"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1680, 10_000, 100_000, 300_000])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "openset.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    lfw = ensure_embeddings()
    vectors = lfw.profile_vectors(args.profile, "largest")
    model_id = {"fused": "sface+fr_feature", "fr_feature": "fr_feature"}[args.profile]
    score_map = ScoreMap.for_model(model_id)
    roles = protocol()
    detected = set(np.array(lfw.paths)[lfw.detected])
    rows = {role: lfw.rows([p for p in paths if p in detected]) for role, paths in roles.items()}
    misses = {role: len(paths) - len(rows[role]) for role, paths in roles.items()}
    gallery = vectors[rows["gallery"]]
    gallery_people = np.array([identity(lfw.paths[r]) for r in rows["gallery"]])
    mated, strangers = vectors[rows["probe"]], vectors[rows["distractor"]]
    mated_people = np.array([identity(lfw.paths[r]) for r in rows["probe"]])
    real = vectors[lfw.detected]

    # Per-comparison impostor scores of the real strangers against the real gallery.
    impostor_scores = score_map.to_scores(strangers @ gallery.T).ravel()
    far = {t: float(np.mean(impostor_scores >= t)) for t in SCORES}

    results = []
    for size in args.sizes:
        extra = synthetic_vectors(real, max(0, size - len(gallery)), seed=size)
        full = np.concatenate([gallery, extra]) if len(extra) else gallery
        mated_best, mated_where = top1(mated, full)
        stranger_best, _ = top1(strangers, full)
        right = (mated_where < len(gallery)) & (gallery_people[np.minimum(mated_where, len(gallery) - 1)] == mated_people)
        mated_scores, stranger_scores = score_map.to_scores(mated_best), score_map.to_scores(stranger_best)
        row = {
            "gallery": len(full),
            "synthetic": len(extra),
            "fnir": {t: float(np.mean(~right | (mated_scores < t))) for t in SCORES},
            "fpir": {t: float(np.mean(stranger_scores >= t)) for t in SCORES},
            "fpir_extrapolated": {t: 1 - (1 - far[t]) ** len(full) for t in SCORES},
            "score_for_fpir_1pct": score_for_fpir(stranger_scores, TARGET_FPIR),
            "rank1_mated": float(np.mean(right)),
        }
        row["score_for_fpir_1pct_extrapolated"] = extrapolated_score(impostor_scores, len(full))
        log.info("gallery %d: %s", len(full), json.dumps({k: row[k] for k in ("score_for_fpir_1pct", "score_for_fpir_1pct_extrapolated", "rank1_mated")}))
        results.append(row)

    report = {
        "benchmark": "openset",
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"profile": args.profile, "model_id": model_id, "sizes": args.sizes, "face": "largest",
                   "gallery_real": len(gallery), "mated_probes": len(mated), "nonmated_probes": len(strangers),
                   "detector_misses": misses, "impostor_comparisons": int(impostor_scores.size)},
        "far_per_comparison": far,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_table(report)


def print_table(report: dict) -> None:
    print("per-comparison FAR: " + ", ".join(f"{t}: {v:.1e}" for t, v in report["far_per_comparison"].items()))
    print(f"{'gallery':>8} {'rank-1':>7} " + " ".join(f"{'FNIR/FPIR@' + str(t):>17}" for t in SCORES) + f" {'FPIR 1% at':>11} {'(extrap.)':>9}")
    for row in report["results"]:
        cells = " ".join(f"{100 * row['fnir'][t]:>7.2f}/{100 * row['fpir'][t]:>7.2f}%" for t in SCORES)
        extrapolated = row["score_for_fpir_1pct_extrapolated"]
        shown = "beyond" if extrapolated is None else f"{extrapolated:.1f}"
        print(f"{row['gallery']:>8} {100 * row['rank1_mated']:>6.2f}% {cells} {row['score_for_fpir_1pct']:>11.1f} {shown:>9}")


if __name__ == "__main__":
    main()
