"""Attribute heads on these cores and on labelled photos (sets: bench/attribute_sets.py).

Per head: load time and time per face (crop + input + run + decoding, one thread). Gender:
accuracy on LFW people labelled by first name. Age: error against 2003 minus the birth year of 60
public figures, and the spread of one person's predictions over their photos. Each is measured
for the served head and for the faceplugin head it replaced (fr_gender, fr_age: fed BGR, their
better order). Pose: the pose head, the geometric estimate from the detector's five points and
what is served (the head's yaw and pitch, the 68 points' eye-line roll): mirror consistency, a
photo turned in its plane, |angles| on frontal portraits.
Expression, liveness (genuine photos against simulated recaptures) and completeness flags.

    python -m bench.attributes [--age-photos 10] [--seed 1] [--out bench/results/attributes.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

import config
from bench.attribute_sets import ATTACKS, BIRTH_YEARS, PHOTO_YEAR, expression_labels, gender_people
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import DATA_DIR, LFW_DIR, RESULTS_DIR, load_pipeline
from workers import heads
from workers.attributes import Face, Smile, smile_probability
from workers.crops import box_crop
from workers.heads import HEADS, IMAGENET_MEAN, IMAGENET_STD, to_nchw
from workers.models import ModelSpec, fetch_models, verify_models
from workers.pipeline import BACKENDS, Pipeline
from bench.pose_geometry import estimate_pose
from workers.session import ModelSession, open_session

log = logging.getLogger(__name__)

SMOKE_DIR = DATA_DIR / "faces-smoke"
NPM = "faceplugin-face-recognition-js@0.0.1"
# The faceplugin heads the dlib networks replaced, measured for comparison only.
COMPARED = {
    "fr_age": ModelSpec("fr_age", "npm", NPM, "package/model/fr_age.onnx", "74c9b01700cb9ef96f7190a2230218414ff99d231415c4b091a755780cad5e8a"),
    "fr_gender": ModelSpec("fr_gender", "npm", NPM, "package/model/fr_gender.onnx", "a003e8392a617ca834c7ca2c01e0895f5c354217fb56cd0373935e6e9b9c396e"),
}
POSE_PHOTOS = 300  # LFW photos for mirror consistency
ROLL_PHOTOS = 150  # LFW photos turned by +-ROLL_DEGREES
ROLL_DEGREES = 20
LIVENESS_LFW_PHOTOS = 150
TIMED_FACES = 50


# --- helpers -------------------------------------------------------------------------------


def largest_face(pipeline: Pipeline, image: np.ndarray) -> Optional[Face]:
    faces = pipeline.detect(image, 1)
    return faces[0] if faces else None


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def ssr_value(outputs: list[np.ndarray], scale: float) -> float:
    """fr_age / fr_gender's SSR-Net outputs merged as their JS does (3 stages of 3 bins)."""
    p1, p2, p3, d1, d2, d3, o1, o2, o3 = (np.ravel(o) for o in outputs)
    s1 = 3 * (1 + d1[0])
    s2 = s1 * 3 * (1 + d2[0])
    s3 = s2 * 3 * (1 + d3[0])
    stages = ((p1, o1, s1), (p2, o2, s2), (p3, o3, s3))
    return float(sum(sum((i + o[i]) * p[i] for i in range(3)) / s for p, o, s in stages) * scale)


def ssr_input(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """fr_age / fr_gender input: the 64x64 crop of 1.4 boxes, BGR, ImageNet-normalised."""
    crop, _ = box_crop(image, box, 1.4, 64)
    return to_nchw((crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    greater = (scores[positive][:, None] > scores[~positive][None, :]).mean()
    ties = (scores[positive][:, None] == scores[~positive][None, :]).mean()
    return float(greater + ties / 2)


def median_ms(call: Callable[[], object], repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


# --- measurements --------------------------------------------------------------------------


def timing(pipeline: Pipeline, compared: dict[str, ModelSession], paths: dict[str, Path], faces: list[Face]) -> dict:
    """Load time and median ms per face of each head (crop, input, run, decoding), 1 thread."""
    models = pipeline.heads
    first = faces[0]
    calls: dict[str, Callable[[Face], object]] = {
        "fr_landmark": lambda f: heads.landmarks68(models, f.image, f.detection.box),
        "fr_pose": lambda f: heads.head_pose(models, f.image, f.detection.box),
        "fr_expression": lambda f: heads.happiness(models, f.image, f.detection.box),
        "fr_liveness": lambda f: heads.liveness(models, f.image, f.detection.box),
        "dlib_age": lambda f: heads.age(models, f.image, f.landmarks68),
        "dlib_gender": lambda f: heads.male_probability(models, f.image, f.landmarks68),
        "fr_age": lambda f: ssr_value(compared["fr_age"].run(ssr_input(f.image, f.detection.box)), 101),
        "fr_gender": lambda f: ssr_value(compared["fr_gender"].run(ssr_input(f.image, f.detection.box)), 1),
        "qualities (no model)": lambda f: Face(f.detection, f.image, models).quality,
    }
    figures = {}
    for name, call in calls.items():
        call(first)  # opens a lazy session; not timed
        per_face = [median_ms(lambda f=f: call(f)) for f in faces]
        load = None
        if name in paths:
            backend = BACKENDS.get(name, "ort")
            load = median_ms(lambda: open_session(paths[name], backend, 1, "cpu"), repeats=3)
        figures[name] = {"ms_per_face": float(np.median(per_face)), "load_ms": load, "backend": BACKENDS.get(name, "ort")}
    return figures


def gender(pipeline: Pipeline, compared: dict[str, ModelSession], seed: int) -> dict:
    people = gender_people(LFW_DIR, seed)
    male, served, replaced, missed = [], [], [], []
    for person, is_male in people:
        path = LFW_DIR / "images" / person / f"{person}_0001.jpg"
        face = largest_face(pipeline, read(path))
        if face is None:
            missed.append(person)
            continue
        male.append(is_male)
        served.append(1.0 - face.gender.probability if face.gender.label == "female" else face.gender.probability)
        replaced.append(ssr_value(compared["fr_gender"].run(ssr_input(face.image, face.detection.box)), 1))
    male = np.array(male)
    return {
        "set": "LFW, one photo (_0001) per person; every person with a female first name and as many with a male one",
        "people": {"female": int((~male).sum()), "male": int(male.sum()), "no_face": missed},
        "dlib_gender": binary_figures(np.array(served), male),
        "fr_gender_bgr": binary_figures(np.array(replaced), male),
    }


def binary_figures(scores: np.ndarray, positive: np.ndarray) -> dict:
    decided = scores >= 0.5
    return {
        "accuracy": float(np.mean(decided == positive)),
        "accuracy_female": float(np.mean(~decided[~positive])),
        "accuracy_male": float(np.mean(decided[positive])),
        "auc": auc(scores, positive),
    }


def age(pipeline: Pipeline, compared: dict[str, ModelSession], photos_per_person: int) -> dict:
    predictions: dict[str, dict[str, list[float]]] = {"dlib_age": {}, "fr_age_bgr": {}}
    for person in BIRTH_YEARS:
        for path in sorted((LFW_DIR / "images" / person).glob("*.jpg"))[:photos_per_person]:
            face = largest_face(pipeline, read(path))
            if face is None:
                continue
            predictions["dlib_age"].setdefault(person, []).append(face.age)
            fr_age = ssr_value(compared["fr_age"].run(ssr_input(face.image, face.detection.box)), 101)
            predictions["fr_age_bgr"].setdefault(person, []).append(fr_age)
    return {
        "set": f"{len(BIRTH_YEARS)} LFW public figures, up to {photos_per_person} photos each; true age ~ {PHOTO_YEAR} - birth year",
        **{name: age_figures(by_person) for name, by_person in predictions.items()},
    }


def age_figures(by_person: dict[str, list[float]]) -> dict:
    truth = {p: PHOTO_YEAR - BIRTH_YEARS[p] for p in by_person}
    photo_errors = np.concatenate([np.array(v) - truth[p] for p, v in by_person.items()])
    person_errors = np.array([np.median(v) - truth[p] for p, v in by_person.items()])
    every = np.concatenate(list(by_person.values()))
    return {
        "photos": len(every),
        "people": len(by_person),
        "photo_mae": float(np.abs(photo_errors).mean()),
        "photo_bias": float(photo_errors.mean()),
        "person_median_mae": float(np.abs(person_errors).mean()),
        "spread_std_median": float(np.median([np.std(v) for v in by_person.values()])),
        "spread_range_median": float(np.median([np.ptp(v) for v in by_person.values()])),
        "predicted_p5_p95": [float(np.percentile(every, 5)), float(np.percentile(every, 95))],
        "true_range": [min(truth.values()), max(truth.values())],
        "correlation": float(np.corrcoef(every, np.concatenate([[truth[p]] * len(v) for p, v in by_person.items()]))[0, 1]),
    }


def pose(pipeline: Pipeline, lfw_paths: list[Path]) -> dict:
    estimators = {
        "five_point_geometry": lambda f: estimate_pose(f.detection.landmarks),
        "pose_head": lambda f: heads.head_pose(pipeline.heads, f.image, f.detection.box),
        "served": lambda f: (f.pose.yaw, f.pose.pitch, f.pose.roll),  # head's yaw, pitch; 68-point roll
    }
    mirror = {name: [] for name in estimators}
    for path in lfw_paths[:POSE_PHOTOS]:
        image = read(path)
        face, flipped = largest_face(pipeline, image), largest_face(pipeline, cv2.flip(image, 1))
        if face is None or flipped is None:
            continue
        for name, estimate in estimators.items():
            (y1, p1, r1), (y2, p2, r2) = estimate(face), estimate(flipped)
            mirror[name].append((abs(y1 + y2) / 2, abs(p1 - p2), abs(r1 + r2) / 2))
    roll = {name: [] for name in estimators}
    for path in lfw_paths[:ROLL_PHOTOS]:
        image = read(path)
        face = largest_face(pipeline, image)
        for degrees in (-ROLL_DEGREES, ROLL_DEGREES):
            turned = largest_face(pipeline, turn(image, degrees))
            if face is None or turned is None:
                continue
            for name, estimate in estimators.items():  # a counter-clockwise turn lowers roll
                roll[name].append(abs(estimate(turned)[2] - estimate(face)[2] + degrees))
    frontal = {name: [] for name in estimators}
    for path in smoke_photos():
        face = largest_face(pipeline, read(path))
        for name, estimate in estimators.items():
            frontal[name].append(np.abs(estimate(face)))
    return {
        name: {
            "mirror_error_deg": dict(zip(("yaw", "pitch", "roll"), np.mean(mirror[name], axis=0).tolist())),
            f"roll_error_deg_turned_{ROLL_DEGREES}": float(np.mean(roll[name])),
            "faces_smoke_mean_abs_deg": dict(zip(("yaw", "pitch", "roll"), np.mean(frontal[name], axis=0).tolist())),
        }
        for name in estimators
    }


def turn(image: np.ndarray, degrees: float) -> np.ndarray:
    """The photo turned counter-clockwise about its centre (corners cut, black filled)."""
    height, width = image.shape[:2]
    return cv2.warpAffine(image, cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0), (width, height))


def smoke_photos() -> list[Path]:
    """faces-smoke's portraits that OpenCV decodes (one WebP named .jpg included)."""
    return [p for p in sorted((SMOKE_DIR / "images").glob("*/*.jpg")) if read(p) is not None]


def expression(pipeline: Pipeline) -> dict:
    rows: dict[str, list[tuple[str, float, Smile]]] = {"lfw": [], "faces-smoke": []}
    for relative, label in expression_labels():
        face = largest_face(pipeline, read(DATA_DIR / relative))
        happy = heads.happiness(pipeline.heads, face.image, face.detection.box)
        rows[relative.split("/")[0]].append((label, happy, face.expression.kind))
    figures = {}
    for name, found in rows.items():
        smiling = np.array([label != "none" for label, _, _ in found])
        said = np.array([kind != Smile.NONE for _, _, kind in found])
        happy = np.array([h for _, h, _ in found])
        # Laugh against smile, among faces both the label and the service call smiling; only
        # where some faces are labelled laughing (the faces-smoke labels do not tell them apart).
        laughs = [(label, kind) for label, _, kind in found if label != "none" and kind != Smile.NONE]
        labelled_laughs = sum(label == "laugh" for label, _, _ in found)
        figures[name] = {
            "faces": len(found),
            "smiling": int(smiling.sum()),
            "smile_accuracy": float(np.mean(said == smiling)),
            "happy_auc": auc(happy, smiling),
            "calibrated": name == "lfw",
            "laughs_labelled": labelled_laughs,
            "laugh_vs_smile_agreement": (
                float(np.mean([(label == "laugh") == (kind == Smile.LAUGH) for label, kind in laughs])) if labelled_laughs else None
            ),
        }
    figures["smile_threshold_p_happy"] = float(next(p for p in np.linspace(0.5, 1, 5001) if smile_probability(p) >= 0.5))
    return figures


def liveness(pipeline: Pipeline, lfw_paths: list[Path]) -> dict:
    sets = {"faces-smoke": smoke_photos(), "lfw": lfw_paths[:LIVENESS_LFW_PHOTOS]}
    figures = {}
    for name, paths in sets.items():
        scores: dict[str, list[float]] = {"genuine": [], **{a: [] for a in ATTACKS}}
        for path in paths:
            image = read(path)
            for attack, simulate in {"genuine": lambda x: x, **ATTACKS}.items():
                face = largest_face(pipeline, simulate(image))
                if face is not None:
                    scores[attack].append(face.liveness)
        genuine = np.array(scores["genuine"])
        figures[name] = {
            attack: {
                "faces": len(values),
                "median": float(np.median(values)),
                "share_at_least_0_5": float(np.mean(np.array(values) >= 0.5)),
                **({} if attack == "genuine" else {"auc_genuine_vs_attack": auc(np.r_[genuine, values], np.r_[np.ones(len(genuine)), np.zeros(len(values))])}),
            }
            for attack, values in scores.items()
        }
    return figures


def completeness(pipeline: Pipeline, lfw_paths: list[Path]) -> dict:
    whole, cut, cut_missed = [], [], 0
    for path in lfw_paths:
        image = read(path)
        face = largest_face(pipeline, image)
        if face is None:
            continue
        whole.append(face.quality.completeness)
        left = int(face.detection.box[0] + 0.3 * face.detection.box[2])
        cut_face = largest_face(pipeline, np.ascontiguousarray(image[:, max(left, 0) :]))
        if cut_face is None:
            cut_missed += 1
        else:
            cut.append(cut_face.quality.completeness)
    return {
        "whole_faces": len(whole),
        "whole_flagged_cut": float(np.mean(whole)),
        "cut_30_percent_faces": len(cut),
        "cut_flagged_cut": float(np.mean(cut)),
        "cut_not_detected": cut_missed,
    }


# --- report --------------------------------------------------------------------------------


def print_table(figures: dict) -> None:
    print(f"{'head':<22}{'backend':>8}{'load ms':>9}{'ms/face':>9}")
    for name, f in figures["timing"].items():
        load = "-" if f["load_ms"] is None else f"{f['load_ms']:.0f}"
        print(f"{name:<22}{f['backend']:>8}{load:>9}{f['ms_per_face']:>9.2f}")
    g = figures["gender"]
    print(f"gender, LFW {g['people']['female']} women + {g['people']['male']} men:")
    for name in ("dlib_gender", "fr_gender_bgr"):
        r = g[name]
        print(f"  {name:<14} accuracy {100 * r['accuracy']:.1f}% (women {100 * r['accuracy_female']:.1f}%, men {100 * r['accuracy_male']:.1f}%), AUC {r['auc']:.3f}")
    a = figures["age"]
    print(f"age, {a['dlib_age']['people']} people, {a['dlib_age']['photos']} photos:")
    for name in ("dlib_age", "fr_age_bgr"):
        r = a[name]
        print(f"  {name:<14} person MAE {r['person_median_mae']:.1f} y, photo MAE {r['photo_mae']:.1f} y, spread (median std) {r['spread_std_median']:.1f} y, "
              f"predictions p5-p95 {r['predicted_p5_p95'][0]:.0f}-{r['predicted_p5_p95'][1]:.0f} (true {r['true_range'][0]}-{r['true_range'][1]})")
    print("pose (degrees): mirror error yaw/pitch/roll | roll error, photo turned 20 | faces-smoke mean |yaw|/|pitch|/|roll|")
    for name, r in figures["pose"].items():
        m, s = r["mirror_error_deg"], r["faces_smoke_mean_abs_deg"]
        print(f"  {name:<20} {m['yaw']:.1f}/{m['pitch']:.1f}/{m['roll']:.1f} | {r[f'roll_error_deg_turned_{ROLL_DEGREES}']:.1f} | {s['yaw']:.1f}/{s['pitch']:.1f}/{s['roll']:.1f}")
    for name in ("lfw", "faces-smoke"):
        e = figures["expression"][name]
        print(f"expression, {name}: smile vs not {100 * e['smile_accuracy']:.1f}% of {e['faces']} ({'calibration set' if e['calibrated'] else 'held out'}), P(happy) AUC {e['happy_auc']:.3f}")
    for name, sets in figures["liveness"].items():
        cells = ", ".join(f"{a} median {v['median']:.2f}" + (f" AUC {v['auc_genuine_vs_attack']:.2f}" if "auc_genuine_vs_attack" in v else "") for a, v in sets.items())
        print(f"liveness, {name}: {cells}")
    c = figures["completeness"]
    print(f"completeness: whole LFW faces flagged {100 * c['whole_flagged_cut']:.1f}%, faces cut at 30% flagged {100 * c['cut_flagged_cut']:.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--age-photos", type=int, default=10, help="photos per person for age (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="which men join the gender set")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "attributes.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cv2.setNumThreads(1)

    settings = config.load_settings()
    fetch_models(settings.model_cache, COMPARED)
    paths = {**verify_models(settings.model_cache, HEADS), **verify_models(settings.model_cache, tuple(COMPARED), COMPARED)}
    compared = {name: open_session(paths[name], "ort", 1, "cpu") for name in COMPARED}
    pipeline = load_pipeline()
    lfw_paths = [LFW_DIR / "images" / p / f"{p}_0001.jpg" for p, _ in gender_people(LFW_DIR, args.seed)]
    lfw_paths = [lfw_paths[i] for i in np.random.default_rng(args.seed).permutation(len(lfw_paths))]

    figures: dict[str, object] = {}
    timed = [f for f in (largest_face(pipeline, read(p)) for p in lfw_paths[:TIMED_FACES]) if f is not None]
    steps = {
        "timing": lambda: timing(pipeline, compared, paths, timed),
        "gender": lambda: gender(pipeline, compared, args.seed),
        "age": lambda: age(pipeline, compared, args.age_photos),
        "pose": lambda: pose(pipeline, lfw_paths),
        "expression": lambda: expression(pipeline),
        "liveness": lambda: liveness(pipeline, lfw_paths),
        "completeness": lambda: completeness(pipeline, lfw_paths),
    }
    for name, step in steps.items():
        log.info("measuring %s", name)
        figures[name] = step()

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"models": settings.models.model_dump(), "threads": "1 (cv2.setNumThreads(1), ORT intra-op 1)", "seed": args.seed, "age_photos": args.age_photos},
        "results": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"attribute heads, 1 thread, {report['machine']['cpu']}")
    print_table(figures)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
