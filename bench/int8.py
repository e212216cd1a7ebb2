"""int8 inference: per-model latency of every precision and runtime, and the int8 calibration.

For YuNet, SFace and fr_feature: the fp32 graph in ONNX Runtime and OpenCV DNN, ONNX Runtime's
dynamic int8 quantisation (ConvInteger), its static QDQ int8 quantisation (per-channel weights,
uint8 activations at ranges calibrated on real inputs) as it comes and as ``facesvc models``
builds it (``qdq_as_built``: channel scales, least-error ranges and bias shifts from
bench/int8_calibration.py; BatchNormalization folded, PRelu on uint8, workers/quantize.py), and
OpenCV DNN's int8 path (its classic engine imports QDQ graphs; the new one cannot). One thread,
batch 1, the variants interleaved round by round on the same real inputs; each variant's outputs
compared with fp32's on faces it was not calibrated on.

Inputs are what the pipeline feeds each model (recorded from its sessions): aligned crops and
detector canvases of ``--calibration`` LFW View 1 training photos that View 2 does not use
(calibration) and of ``--held-out`` View 2 photos (timing and agreement). ``--write-ranges``
stores the calibrated scales, ranges and bias shifts of the models the service runs in int8
(``pipeline.INT8``) as workers/int8/<model>.scales.json, <model>.json and <model>.bias.json,
from which ``facesvc models`` builds their int8 graphs.

    python -m bench.int8 [--write-ranges] [--out bench/results/int8.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import onnx

import config
from bench.int8_calibration import Feeds, calibrate
from bench.lfw import git_revision, machine_info, read_folds
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR, load_pipeline, read_pairs
from workers.detector import Detector
from workers.embedder import Embedder
from workers.graphs import any_size_input
from workers.models import model_path
from workers.pipeline import INT8, Pipeline
from workers.quantize import Int8Calibration, calibration_paths, prepared, quantize_model, quantize_static_qdq
from workers.session import ModelSession, OrtSession

log = logging.getLogger(__name__)

MODELS = ("yunet", "sface", "fr_feature")
Runner = Callable[[np.ndarray], list[np.ndarray]]


class Recorder:
    """A session that keeps every feed it runs, so the pipeline itself makes the inputs."""

    def __init__(self, session: ModelSession) -> None:
        self.session, self.input_name, self.output_names = session, session.input_name, session.output_names
        self.feeds: list[np.ndarray] = []

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        self.feeds.append(feed.copy())
        return self.session.run(feed)


def record_feeds(pipeline: Pipeline, photos: list[str]) -> dict[str, list[np.ndarray]]:
    """Each model's feeds for the largest face of each photo (photos without one are skipped)."""
    detector = Recorder(pipeline.detector.session)
    recording = Detector(detector, pipeline.detector.threshold, pipeline.detector.max_side)
    embedders = {part.spec.name: Embedder(part.spec, Recorder(part.session)) for part in pipeline.embedder.parts}
    for path in photos:
        image = pipeline.decode((LFW_DIR / path).read_bytes())
        faces = pipeline.detect(image, 1)
        recording.detect(image)
        if faces:
            crop = pipeline.crop(image, faces[0])[None]
            for embedder in embedders.values():
                embedder.embed(crop)
    feeds = {"yunet": detector.feeds}
    feeds.update({name: e.session.feeds for name, e in embedders.items()})
    return feeds


def calibration_photos(count: int) -> list[str]:
    """View 1 training photos that no View 2 pair uses, in a fixed shuffled order."""
    first, second, _ = read_pairs("pairs_devtrain.tsv")
    view2_first, view2_second, _, _ = read_folds()
    view2 = set(view2_first) | set(view2_second)
    photos = sorted((set(first) | set(second)) - view2)
    return [photos[i] for i in np.random.default_rng(0).permutation(len(photos))[:count]]


def held_out_photos(count: int) -> list[str]:
    first, second, _, _ = read_folds()
    photos = sorted(set(first) | set(second))
    return [photos[i] for i in np.random.default_rng(1).permutation(len(photos))[:count]]


def fp32_graph(cache: Path, name: str) -> onnx.ModelProto:
    """The graph every variant starts from: YuNet with the service's symbolic canvas size."""
    graph = onnx.load(str(model_path(cache, name)))
    return any_size_input(graph) if name == "yunet" else graph


def build_variants(cache: Path, name: str, calibration: list[np.ndarray], work: Path) -> dict[str, Path]:
    """Every graph measured for ``name``, written under ``work``; its calibration too."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = prepared(fp32_graph(cache, name))
    paths = {"fp32": work / f"{name}_fp32.onnx"}
    onnx.save(fp32, str(paths["fp32"]))
    paths["dynamic"] = work / f"{name}_dynamic.onnx"
    quantize_dynamic(paths["fp32"], paths["dynamic"], per_channel=True, weight_type=QuantType.QInt8)
    paths["qdq"] = work / f"{name}_qdq.onnx"
    quantize_static_qdq(paths["fp32"], paths["qdq"], work / f"{name}_minmax.json", Feeds(fp32.graph.input[0].name, calibration))
    calibrate(paths["fp32"], calibration, calibration_paths(name, work), work)
    paths["qdq_as_built"] = work / f"{name}_int8.onnx"
    quantize_model(paths["fp32"], paths["qdq_as_built"], Int8Calibration.stored(name, work))
    return paths


def runners(name: str, paths: dict[str, Path]) -> dict[str, Runner]:
    """variant -> run(feed) for each runtime that can open it."""
    ort_cpu = ["CPUExecutionProvider"]
    found: dict[str, Runner] = {}
    for variant in ("fp32", "dynamic", "qdq", "qdq_as_built"):
        found[f"ort {variant}"] = OrtSession(paths[variant], 1, ort_cpu).run
    for engine, label in ((cv2.dnn.ENGINE_NEW, "new"), (cv2.dnn.ENGINE_CLASSIC, "classic")):
        for variant in ("fp32", "qdq"):
            found[f"opencv-{label} {variant}"] = opencv_runner(paths[variant], engine)
    return found


def opencv_runner(path: Path, engine: int) -> Runner:
    """Reads the net on its first call (untimed), where a graph it cannot import fails."""
    outputs = [o.name for o in onnx.load(str(path)).graph.output]
    nets: list = []

    def run(feed: np.ndarray) -> list[np.ndarray]:
        if not nets:
            nets.append(cv2.dnn.readNetFromONNX(str(path), engine))
        nets[0].setInput(feed)
        return list(nets[0].forward(outputs))

    return run


def agreement(reference: list[np.ndarray], outputs: list[np.ndarray]) -> dict[str, float]:
    """Cosine of each first output with fp32's (an embedding; for YuNet its class scores)."""
    cosines = [float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)) for a, b in zip(reference, outputs)]
    return {"cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines))}


def measure(name: str, run_by: dict[str, Runner], feeds: list[np.ndarray], rounds: int) -> dict[str, dict]:
    """Median ms per call of each variant, interleaved, and its agreement with ORT fp32."""
    results: dict[str, dict] = {}
    usable: dict[str, Runner] = {}
    reference = [run_by["ort fp32"](f)[0] for f in feeds]
    for variant, run in run_by.items():
        try:
            outputs = [run(f)[0] for f in feeds]
        except cv2.error as exc:
            results[variant] = {"error": str(exc).strip().splitlines()[-1][:200]}
            continue
        usable[variant] = run
        results[variant] = agreement(reference, outputs)
    times: dict[str, list[float]] = {v: [] for v in usable}
    for i in range(rounds):
        feed = feeds[i % len(feeds)]
        for variant, run in usable.items():
            started = time.perf_counter()
            run(feed)
            times[variant].append(time.perf_counter() - started)
    for variant, samples in times.items():
        results[variant]["ms"] = float(np.median(samples) * 1e3)
    log.info("%s: %s", name, json.dumps(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=int, default=1000, help="View 1 training photos to calibrate on")
    parser.add_argument("--held-out", type=int, default=100, help="View 2 photos to time and compare on")
    parser.add_argument("--rounds", type=int, default=200, help="timed calls of each variant")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--write-ranges", action="store_true", help="store the scales, ranges and bias shifts of pipeline.INT8's models in workers/int8/")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "int8.json")
    args = parser.parse_args()
    # ONNX Runtime's quantiser logs a line per tensor at INFO on the root logger.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    cv2.setNumThreads(1)
    pipeline = load_pipeline()
    cache = config.load_settings().model_cache
    calibration = record_feeds(pipeline, calibration_photos(args.calibration))
    held_out = record_feeds(pipeline, held_out_photos(args.held_out))
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            paths = build_variants(cache, name, calibration[name], Path(tmp))
            figures[name] = measure(name, runners(name, paths), held_out[name], args.rounds)
            if args.write_ranges and name in INT8:
                for measured, stored in zip(calibration_paths(name, Path(tmp)), calibration_paths(name)):
                    stored.parent.mkdir(exist_ok=True)
                    shutil.copyfile(measured, stored)
    report = {
        "benchmark": "int8",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {
            "threads": 1, "batch": 1, "rounds": args.rounds, "calibration_photos": args.calibration,
            "held_out_photos": args.held_out, "calibration": "qdq: ONNX Runtime's MinMax, moving average; qdq_as_built: bench/int8_calibration.py (channel scales, least-error ranges, bias shifts); LFW View 1 training photos outside View 2",
            "agreement": "cosine of each variant's first output with ONNX Runtime fp32's on held-out View 2 inputs",
        },
        "results": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'model':<11} {'variant':<32} {'ms':>7} {'cos mean':>9} {'cos min':>8}")
    for name, variants in figures.items():
        for variant, f in variants.items():
            if "error" in f:
                print(f"{name:<11} {variant:<32} {'cannot run: ' + f['error'][:60]}")
            else:
                print(f"{name:<11} {variant:<32} {f['ms']:>7.2f} {f['cosine_mean']:>9.4f} {f['cosine_min']:>8.4f}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
