"""TAR at low FAR over every same-person pair LFW has, for each precision of the embedders.

View 2's 3,000 same-person pairs move TAR@1e-4 by 0.033 points a pair, so two precisions that
differ by a few pairs there cannot be told apart. LFW's 13,233 photos hold 242,257 same-person
pairs (and 87 M different-person ones): this compares the cached embeddings of each precision
(bench/lfw_embeddings.py) over all of them, and over two disjoint parts: the photos View 2 never
uses (where bench/int8_calibration.py's recipe was chosen) and View 2's own photos (held out).
Many pairs share a person (one has 530 photos), so these are not independent trials.

    python -m bench.lfw_all_pairs [--precision fp32 int8] [--out bench/results/lfw_all_pairs.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from bench.lfw import far_threshold, genuine_scores, git_revision, impostor_scores, machine_info, read_folds
from bench.lfw_embeddings import FACES, RESULTS_DIR, LfwEmbeddings, cache_path, identity, load

MODEL_ID = "sface+fr_feature"
PROFILES = ("fused", "sface", "fr_feature")
FARS = (1e-3, 1e-4, 1e-5)


def tar_at_far(cache: LfwEmbeddings, identities: np.ndarray, profile: str, face: str, chosen: np.ndarray) -> dict[str, object]:
    """TAR at each of FARS over the chosen photos with a detected face (``identities``: the
    person of each of the cache's photos)."""
    keep = chosen & cache.detected
    vectors = cache.profile_vectors(profile, face)[keep]
    impostors, genuine = impostor_scores(vectors, identities[keep]), genuine_scores(vectors, identities[keep])
    return {
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostors),
        "tar": {f"{far:g}": float(np.mean(genuine > far_threshold(impostors, far))) for far in FARS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "lfw_all_pairs.json")
    args = parser.parse_args()
    first, second, _, _ = read_folds()
    view2 = set(first) | set(second)
    figures: dict[str, dict] = {}
    for precision in args.precision:
        cache = load(cache_path(MODEL_ID, precision))
        identities = np.array([identity(p) for p in cache.paths])
        in_view2 = np.array([p in view2 for p in cache.paths])
        subsets = {"all": np.ones(len(cache.paths), bool), "outside_view2": ~in_view2, "view2_photos": in_view2}
        figures[precision] = {
            subset: {f"{profile} {face}": tar_at_far(cache, identities, profile, face, chosen) for profile in PROFILES for face in FACES}
            for subset, chosen in subsets.items()
        }
    report = {
        "benchmark": "lfw_all_pairs",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"model_id": MODEL_ID, "pairs": "every same-person and every different-person pair of the subset's photos"},
        "results": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'subset':<14} {'profile, face':<20} " + " ".join(f"{p + ' TAR@' + f'{far:g}':>18}" for p in args.precision for far in FARS))
    for subset in figures[args.precision[0]]:
        for key in figures[args.precision[0]][subset]:
            cells = [f"{100 * figures[p][subset][key]['tar'][f'{far:g}']:>17.3f}%" for p in args.precision for far in FARS]
            print(f"{subset:<14} {key:<20} " + " ".join(cells))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
