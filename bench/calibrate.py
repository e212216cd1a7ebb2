"""Calibrate the cosine -> 0-100 score map on LFW View 1 and check it on View 2.

Baidu's clients accept a match at score 80, so score 80 must mean a false-accept rate of 1e-4.
The anchors sit at the cosines where the false-accept rate over View 1 impostors is 1e-1, ...,
1e-5 (scores 50, ..., 90), with -1 -> 0 and 1 -> 100; ``service/api/scores.py`` interpolates
linearly between them. Impostors are all different-identity pairs among View 1's photos
(~12 million), so FAR down to 1e-5 rests on at least 50 false accepts. View 2 re-measures FAR
and TAR at the same cosines as a held-out check; it is not fully independent, as LFW's views
share people and photos (3,637 of View 2's 7,701 photos are in View 1). ``--smoke`` adds the
same check on the faces-smoke photos.

    python -m bench.calibrate [--out service/api/calibration.json] [--smoke]
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
from pathlib import Path

import numpy as np

from bench.lfw import accept_rate, far_threshold, git_revision, pair_scores, photo_set_impostors, read_folds
from bench.lfw_embeddings import (
    DATA_DIR, ROOT, LfwEmbeddings, ensure_embeddings, load_pipeline, profile_vectors, read_pairs,
)
from service.api.scores import CALIBRATION_FILE, ScoreMap
from workers.image import ImageError
from workers.pipeline import NoFaceError

log = logging.getLogger(__name__)

# Embedding model id served -> benchmark profile that reproduces its similarity.
MODELS = {"sface+fr_feature": "fused", "fr_feature": "fr_feature"}
# (false-accept rate, score) anchors; score 80 at FAR 1e-4 is the contract.
FAR_SCORES = ((1e-1, 50.0), (1e-2, 60.0), (1e-3, 70.0), (1e-4, 80.0), (1e-5, 90.0))
VIEW1_FILES = ("pairs_devtrain.tsv", "pairs_devtest.tsv")
SMOKE_DIR = DATA_DIR / "faces-smoke"
ACCEPT_SCORE = 80.0


def view1() -> tuple[list[str], list[str]]:
    """View 1's same-person pairs (all of devtrain and devtest)."""
    first, second = [], []
    for name in VIEW1_FILES:
        a, b, same = read_pairs(name)
        first += [p for p, s in zip(a, same) if s]
        second += [p for p, s in zip(b, same) if s]
    return first, second


def view1_photos() -> set[str]:
    photos: set[str] = set()
    for name in VIEW1_FILES:
        a, b, _ = read_pairs(name)
        photos.update(a, b)
    return photos


def calibrate(cache: LfwEmbeddings, profile: str) -> dict[str, object]:
    """Anchors from View 1 with View 1 and View 2 FAR/TAR at each.

    Uses each photo's centre face, the one LFW's labels name: with the largest face, photos
    showing several people would put other people's faces under the label."""
    vectors = cache.profile_vectors(profile, "centre")
    first, second = view1()
    genuine1 = pair_scores(vectors, cache.detected, cache.rows(first), cache.rows(second))
    impostors1 = photo_set_impostors(cache, vectors, view1_photos())
    a, b, same, _ = read_folds()
    genuine2 = pair_scores(vectors, cache.detected, cache.rows(a), cache.rows(b))[same]
    impostors2 = photo_set_impostors(cache, vectors, set(a) | set(b))

    anchors: list[dict[str, object]] = [{"score": 0.0, "cosine": -1.0}]
    for far, score in FAR_SCORES:
        threshold = far_threshold(impostors1, far)
        if threshold is None:
            log.warning("%s: too few View 1 impostors to place FAR %g; anchor dropped", profile, far)
            continue
        cosine = float(np.ceil(threshold * 1e6) / 1e6)  # rounded up: the FAR cannot grow
        anchors.append({
            "score": score,
            "cosine": cosine,
            "far": far,
            "far_view1": float(np.mean(impostors1 > cosine)),
            "tar_view1": accept_rate(genuine1, cosine),
            "far_view2": float(np.mean(impostors2 > cosine)),
            "tar_view2": accept_rate(genuine2, cosine),
        })
    anchors.append({"score": 100.0, "cosine": 1.0})
    # ScoreMap refuses anchors that are not strictly increasing.
    score_map = ScoreMap([x["cosine"] for x in anchors], [x["score"] for x in anchors])
    return {
        "anchors": anchors,
        "view1": {
            "genuine_pairs": len(genuine1),
            "impostor_pairs": len(impostors1),
            "undecided_genuine_pairs": int(np.isnan(genuine1).sum()),
            "impostor_median_score": float(np.median(score_map.to_scores(impostors1))),
            "genuine_median_score": float(np.nanmedian(score_map.to_scores(genuine1))),
        },
        "view2": {"genuine_pairs": len(genuine2), "impostor_pairs": len(impostors2)},
    }


def smoke_check(calibration: dict[str, dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per model: the share of faces-smoke same pairs scoring >= 80 and different pairs < 80.

    Photos the service would refuse (an unsupported format) or where no face is found are
    skipped with their pairs, and counted."""
    pipeline = load_pipeline()
    rows = [line.split("\t") for line in (SMOKE_DIR / "pairs.tsv").read_text().splitlines() if line]
    embeddings: dict[str, np.ndarray] = {}
    skipped = []
    for path in sorted({r[0] for r in rows} | {r[1] for r in rows}):
        try:
            embeddings[path] = pipeline.embed_largest(pipeline.decode((SMOKE_DIR / path).read_bytes()))[1]
        except (ImageError, NoFaceError) as exc:
            log.warning("faces-smoke %s skipped: %s", path, exc)
            skipped.append(path)
    usable = [r for r in rows if r[0] in embeddings and r[1] in embeddings]
    same = np.array([r[2] == "1" for r in usable])
    results = {}
    for model_id, profile in MODELS.items():
        left = profile_vectors(pipeline.model_id, profile, np.stack([embeddings[r[0]] for r in usable]))
        right = profile_vectors(pipeline.model_id, profile, np.stack([embeddings[r[1]] for r in usable]))
        anchors = calibration[model_id]["anchors"]
        score_map = ScoreMap([a["cosine"] for a in anchors], [a["score"] for a in anchors])
        scores = score_map.to_scores(np.einsum("ij,ij->i", left, right))
        results[model_id] = {
            "same_pairs": int(same.sum()),
            "different_pairs": int((~same).sum()),
            "same_accepted": float(np.mean(scores[same] >= ACCEPT_SCORE)),
            "different_rejected": float(np.mean(scores[~same] < ACCEPT_SCORE)),
            "skipped_photos": skipped,
            "skipped_pairs": len(rows) - len(usable),
        }
    return results


def print_table(model_id: str, entry: dict[str, object]) -> None:
    v1, v2 = entry["view1"], entry["view2"]
    print(f"\n{model_id}: View 1 {v1['genuine_pairs']} genuine / {v1['impostor_pairs']:,} impostor pairs; "
          f"View 2 {v2['genuine_pairs']} / {v2['impostor_pairs']:,}")
    print(f"{'score':>5} {'cosine':>9} {'FAR target':>10} {'FAR V1':>9} {'TAR V1':>8} {'FAR V2':>9} {'TAR V2':>8}")
    for a in entry["anchors"]:
        if "far" not in a:
            print(f"{a['score']:>5.0f} {a['cosine']:>9.4f}")
            continue
        print(f"{a['score']:>5.0f} {a['cosine']:>9.4f} {a['far']:>10.0e} {a['far_view1']:>9.2e} "
              f"{100 * a['tar_view1']:>7.2f}% {a['far_view2']:>9.2e} {100 * a['tar_view2']:>7.2f}%")
    print(f"median score: impostors {v1['impostor_median_score']:.1f}, genuine {v1['genuine_median_score']:.1f} (View 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    parser.add_argument("--smoke", action="store_true", help="also check score 80 on faces-smoke pairs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    cache = ensure_embeddings("sface+fr_feature")
    meta = {
        "calibrated_on": "LFW View 1 (pairs_devtrain + pairs_devtest genuine; all different-identity pairs of its photos)",
        "face": "the detected face nearest each photo's centre (LFW's labelled face)",
        "embeddings": str(Path("bench/results") / f"lfw_embeddings_{cache.model_id}.npz"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
    }
    calibration = {}
    for model_id, profile in MODELS.items():
        log.info("calibrating %s", model_id)
        calibration[model_id] = {**calibrate(cache, profile), **meta}
    args.out.write_text(json.dumps(calibration, indent=2) + "\n")
    for model_id, entry in calibration.items():
        print_table(model_id, entry)
    if args.smoke:
        for model_id, s in smoke_check(calibration).items():
            print(f"\nfaces-smoke {model_id}: same >= {ACCEPT_SCORE:.0f}: {100 * s['same_accepted']:.1f}% of "
                  f"{s['same_pairs']}, different < {ACCEPT_SCORE:.0f}: {100 * s['different_rejected']:.1f}% of "
                  f"{s['different_pairs']} ({s['skipped_pairs']} pairs skipped: {', '.join(s['skipped_photos'])})")
    print(f"\nwritten {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
