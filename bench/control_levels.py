"""v3's quality_control and liveness_control levels: what each rejects of good photos and
catches of degraded ones, and the liveness cut-offs of faceverify's ``thresholds``.

Good photos: --lfw LFW photos drawn with --seed from all 13,233 and every faces-smoke portrait
the service decodes (it refuses the one WebP); the largest face of each, decoded as the service
decodes. Degraded: each good photo's decoded pixels changed in memory (nothing is written):

- blur_1/2/4: Gaussian blur of sigma 1, 2, 4 % of the face box's width (the blur measure sees a
  112x112 crop of the face, so a sigma relative to the face is the same blur to it);
- dark_x0.5/x0.3/x0.15, bright_x2/x3: every pixel scaled (exposure), clipped at 255;
- cut_side, cut_chin: the photo cropped 30 % of the face box into the face, from the left or
  from below;
- screen, print, photo_in_photo: the recaptures simulated in bench/attribute_sets.py (liveness).

A degraded photo without a detected face is counted apart ("no_face"): the service answers "no
face" before any control. Shares are of the faces found.

Proposed levels: a level may reject at most BUDGETS[level] of the good photos (pooled).
Completeness is checked at every level and its share comes off the budget first: the good
photos it flags are photos whose largest face the photo really cuts (seed 1: all six, 0.3 %,
are bystanders at LFW's crop border, checked by eye). Over-exposure (max illumination) has one
cut-off for every level, at a third of LOW's rest: a stricter one rejects bright studio
portraits (faces-smoke's 95th percentile is 178) and catches little more. Each level's rest is
then shared equally by blur (max) and darkness (min illumination). Every limit is an order
statistic of the good faces' measure, rounded towards rejecting fewer. min_liveness is cut
alone at the budget (liveness_control is its own parameter). The served table
(service/api/v3/controls.py) is evaluated beside the proposal.

faceverify's thresholds: Baidu's keys name false-rejection rates (``frr_1e-2``: the cut-off
that rejects 1 % of live faces; Baidu's own example, 0.05 / 0.3 / 0.9, rises with the rate), so
each is the liveness score at or below which that share of the good photos falls. A rate needs
at least 1/rate good photos; with fewer, the lowest good score is the cut-off and the JSON marks
it "too_few_genuine". The simulated attacks (the three kinds pooled) passing each are reported.

Measures are cached in bench/results/control_levels_measures.npz (reused while the photo list
is the same; --remeasure to measure again), so a changed table is evaluated in seconds.

    python -m bench.control_levels [--lfw 2000] [--seed 1] [--remeasure]   # ~4 min, 1 thread
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from bench.attribute_sets import ATTACKS
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import DATA_DIR, LFW_DIR, RESULTS_DIR, load_pipeline
from service.api.v3.controls import CONTROLS, FUZZY, BAD_LIGHT, INCOMPLETE, LIVENESS_THRESHOLDS, Level
from workers.attributes import Face, Quality
from workers.image import ImageError
from workers.pipeline import Pipeline

log = logging.getLogger(__name__)

SMOKE_DIR = DATA_DIR / "faces-smoke"
BUDGETS = {"LOW": 0.005, "NORMAL": 0.02, "HIGH": 0.05}  # share of good photos a level may reject
CUT = 0.3  # of the face box cut off by cut_side / cut_chin
FRR_RATES = {"frr_1e-4": 1e-4, "frr_1e-3": 1e-3, "frr_1e-2": 1e-2}  # Baidu's key: live faces rejected
PERCENTILES = (0.5, 1, 2, 5, 10, 50, 90, 95, 98, 99, 99.5)
MEASURES = ("blur", "illumination", "completeness", "liveness")  # columns of a measure row

Box = tuple[float, float, float, float]
Degrade = Callable[[np.ndarray, Box], np.ndarray]


def blurred(fraction: float) -> Degrade:
    return lambda image, box: cv2.GaussianBlur(image, (0, 0), fraction * box[2])


def exposed(factor: float) -> Degrade:
    return lambda image, box: np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def cut_side(image: np.ndarray, box: Box) -> np.ndarray:
    return np.ascontiguousarray(image[:, max(0, int(box[0] + CUT * box[2])) :])


def cut_chin(image: np.ndarray, box: Box) -> np.ndarray:
    return np.ascontiguousarray(image[: max(1, int(box[1] + (1 - CUT) * box[3]))])


DEGRADATIONS: dict[str, Degrade] = {
    "blur_1": blurred(0.01),
    "blur_2": blurred(0.02),
    "blur_4": blurred(0.04),
    "dark_x0.5": exposed(0.5),
    "dark_x0.3": exposed(0.3),
    "dark_x0.15": exposed(0.15),
    "bright_x2": exposed(2.0),
    "bright_x3": exposed(3.0),
    "cut_side": cut_side,
    "cut_chin": cut_chin,
}


# --- measuring -----------------------------------------------------------------------------


def good_photos(lfw: int, seed: int) -> list[Path]:
    """``lfw`` LFW photos drawn with ``seed``, then every faces-smoke photo, in a fixed order."""
    every = sorted((LFW_DIR / "images").glob("*/*.jpg"))
    drawn = sorted(np.random.default_rng(seed).choice(len(every), size=lfw, replace=False))
    return [every[i] for i in drawn] + sorted((SMOKE_DIR / "images").glob("*/*.jpg"))


def largest_face(pipeline: Pipeline, image: np.ndarray) -> Optional[Face]:
    faces = pipeline.detect(image, 1)
    return faces[0] if faces else None


def row(face: Optional[Face], liveness: bool) -> list[float]:
    """The face's measures (NaN where none was found or liveness is not asked for)."""
    if face is None:
        return [math.nan] * len(MEASURES)
    q = face.quality
    return [q.blur, q.illumination, q.completeness, face.liveness if liveness else math.nan]


def measure(pipeline: Pipeline, paths: list[Path]) -> dict[str, np.ndarray]:
    """Set name -> (len(paths), 4) measures of the largest face of each (degraded) photo; rows
    of a photo the service refuses or finds no face in stay NaN in every set."""
    sets = {name: np.full((len(paths), len(MEASURES)), np.nan) for name in ("good", *DEGRADATIONS, *ATTACKS)}
    for i, path in enumerate(paths):
        if i % 250 == 0:
            log.info("photo %d of %d", i, len(paths))
        try:
            image = pipeline.decode(path.read_bytes())
        except ImageError:
            continue
        face = largest_face(pipeline, image)
        if face is None:
            continue
        sets["good"][i] = row(face, liveness=True)
        for name, degrade in DEGRADATIONS.items():
            sets[name][i] = row(largest_face(pipeline, degrade(image, face.detection.box)), liveness=False)
        for name, simulate in ATTACKS.items():
            sets[name][i] = row(largest_face(pipeline, simulate(image)), liveness=True)
    return sets


def cached_measures(pipeline_of: Callable[[], Pipeline], paths: list[Path], cache: Path, remeasure: bool) -> dict[str, np.ndarray]:
    names = np.array([str(p.relative_to(DATA_DIR)) for p in paths])
    if cache.exists() and not remeasure:
        with np.load(cache) as stored:
            if np.array_equal(stored["paths"], names):
                log.info("measures from %s", cache)
                return {name: stored[name] for name in stored.files if name != "paths"}
    sets = measure(pipeline_of(), paths)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=names, **sets)
    return sets


# --- thresholds ----------------------------------------------------------------------------


def lowest(values: np.ndarray, share: float) -> float:
    """The value t with at most ``share`` of ``values`` below it (an order statistic)."""
    return float(np.sort(values)[int(share * len(values))])


def highest(values: np.ndarray, share: float) -> float:
    """The value t with at most ``share`` of ``values`` above it."""
    return float(np.sort(values)[::-1][int(share * len(values))])


def floor_significant(value: float, digits: int) -> float:
    if value <= 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.floor(value * scale) / scale


def propose(good: np.ndarray) -> dict[str, Level]:
    """Each level's limits from the good faces' measures (the rule: this module's docstring)."""
    blur, light, cut, live = good.T
    cut_share = float(np.mean(cut > 0))
    max_light = math.ceil(highest(light, max(0.0, BUDGETS["LOW"] - cut_share) / 3))
    share = {level: max(0.0, budget - cut_share - float(np.mean(light > max_light))) / 2 for level, budget in BUDGETS.items()}
    return {
        level: Level(
            max_blur=math.ceil(highest(blur, share[level]) * 100) / 100,
            min_illumination=math.floor(lowest(light, share[level])),
            max_illumination=max_light,
            whole_face=True,
            min_liveness=floor_significant(lowest(live, budget), 2),
        )
        for level, budget in BUDGETS.items()
    }


def liveness_cutoffs(genuine: np.ndarray, attacks: np.ndarray, served: dict[str, float]) -> dict:
    """Per FRR_RATES key: the score at or below which that share of good faces falls (pass:
    score > it), and the attacks it lets pass."""
    ordered = np.sort(genuine)
    figures = {}
    for key, rate in FRR_RATES.items():
        cutoff = float(ordered[int(rate * len(ordered))])
        figures[key] = {
            "rate": rate,
            "cutoff": cutoff,
            "genuine": len(ordered),
            "too_few_genuine": len(ordered) * rate < 1,  # then cutoff is the lowest good score
            "attacks_passing": float(np.mean(attacks > cutoff)),
            "served": served[key],
            "served_attacks_passing": float(np.mean(attacks > served[key])),
            "served_genuine_rejected": float(np.mean(genuine <= served[key])),
        }
    return figures


# --- evaluation ----------------------------------------------------------------------------


def found(measures: np.ndarray) -> np.ndarray:
    return measures[~np.isnan(measures[:, 0])]


def rejections(level: Level, measures: np.ndarray) -> dict:
    """Shares of the faces found that ``level`` rejects: for quality (and per code), liveness."""
    codes = [level.quality_failure(Quality(b, int(i), int(c))) for b, i, c, _ in measures]
    figures: dict[str, object] = {
        "quality": float(np.mean([code is not None for code in codes])),
        "by_code": {str(code): float(np.mean([c == code for c in codes])) for code in (FUZZY, BAD_LIGHT, INCOMPLETE)},
    }
    live = measures[:, 3]
    if not np.isnan(live).any():
        figures["liveness"] = float(np.mean([level.liveness_failure(x) is not None for x in live]))
    return figures


def evaluate(levels: dict[str, Level], sets: dict[str, np.ndarray]) -> dict:
    return {name: {level: rejections(levels[level], measures) for level in BUDGETS} for name, measures in sets.items()}


def percentiles(measures: np.ndarray) -> dict:
    return {
        name: {str(p): float(v) for p, v in zip(PERCENTILES, np.percentile(column[~np.isnan(column)], PERCENTILES))}
        for name, column in zip(MEASURES, measures.T)
    }


# --- report --------------------------------------------------------------------------------


def print_table(report: dict) -> None:
    print(f"{'level':<8}{'max blur':>9}{'illum':>10}{'whole':>7}{'min live':>10}   proposed | served")
    for level in BUDGETS:
        cells = []
        for table in ("proposed", "served"):
            t = report[table][level]
            cells.append(f"{t['max_blur']:>9.2f}{t['min_illumination']:>5}-{t['max_illumination']:<4}{str(t['whole_face']):>7}{t['min_liveness']:>10.3g}")
        print(f"{level:<8}" + "   |".join(cells))
    print("\nrejected by the served table (% of faces found; good: blur/illumination/completeness; L: liveness)")
    print(f"{'set':<16}{'faces':>6}{'no face':>8}" + "".join(f"{level:>26}" for level in BUDGETS))
    for name, by_level in report["served_rejections"].items():
        faces, missing = report["sets"][name]["faces"], report["sets"][name]["no_face"]
        cells = []
        for level in BUDGETS:
            r = by_level[level]
            text = f"{100 * r['quality']:.1f}"
            if name.startswith("good"):
                text += " (" + "/".join(f"{100 * v:.1f}" for v in r["by_code"].values()) + ")"
            if "liveness" in r:
                text += f" L{100 * r['liveness']:.1f}"
            cells.append(f"{text:>26}")
        print(f"{name:<16}{faces:>6}{missing:>8}" + "".join(cells))
    print("\nfaceverify thresholds (liveness > cut-off passes)")
    for key, c in report["liveness_thresholds"].items():
        note = " (too few good photos: the lowest good score)" if c["too_few_genuine"] else ""
        print(f"  {key}: {c['cutoff']:.6f}{note}, attacks passing {100 * c['attacks_passing']:.1f}%; "
              f"served {c['served']}: attacks passing {100 * c['served_attacks_passing']:.2f}%, genuine rejected {100 * c['served_genuine_rejected']:.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=int, default=2000, help="LFW photos drawn (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--remeasure", action="store_true", help="measure even when the cache matches")
    parser.add_argument("--cache", type=Path, default=RESULTS_DIR / "control_levels_measures.npz")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "control_levels.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cv2.setNumThreads(1)

    paths = good_photos(args.lfw, args.seed)
    sets = cached_measures(load_pipeline, paths, args.cache, args.remeasure)
    kept = ~np.isnan(sets["good"][:, 0])  # photos decoded with a face: the base of every set
    from_lfw = np.array([LFW_DIR in p.parents for p in paths])
    good = sets["good"][kept]
    named = {"good": good, "good_lfw": sets["good"][kept & from_lfw], "good_smoke": sets["good"][kept & ~from_lfw]}
    named |= {name: found(sets[name][kept]) for name in (*DEGRADATIONS, *ATTACKS)}
    proposed = propose(good)
    attacks = np.concatenate([named[name][:, 3] for name in ATTACKS])

    report = {
        "benchmark": "control_levels",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"lfw": args.lfw, "seed": args.seed, "faces_smoke": int((~from_lfw).sum()), "budgets": BUDGETS, "cut": CUT,
                   "refused_or_no_face": [str(p.relative_to(DATA_DIR)) for p, k in zip(paths, kept) if not k]},
        "sets": {name: {"faces": len(m), "no_face": int(kept.sum()) - len(m) if name in sets else 0} for name, m in named.items()},
        "good_percentiles": {name: percentiles(named[name]) for name in ("good", "good_lfw", "good_smoke")},
        "proposed": {level: asdict(t) for level, t in proposed.items()},
        "served": {level: asdict(CONTROLS[level]) for level in BUDGETS},
        "proposed_rejections": evaluate(proposed, named),
        "served_rejections": evaluate(CONTROLS, named),
        "liveness_thresholds": liveness_cutoffs(good[:, 3], attacks, LIVENESS_THRESHOLDS),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
