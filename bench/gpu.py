"""GPU benchmark: facesvc's CUDA path beside its CPU path, on one machine, in one run.

1. providers: onnxruntime's version, file and available providers, the GPU (nvidia-smi; torch is
   never imported: it would load CUDA's libraries and hide a missing one), the providers each
   session of a device=cuda pipeline got, and where every model's nodes ran (ONNX Runtime's
   profile of one run of each model, opened from the graph the service opens).
2. agreement: embeddings of ``--agreement`` photos through workers.pipeline with device=cpu at
   fp32 (the precision a GPU runs; OpenCV DNN embedders) and device=cuda: per embedder and
   fused, the min, 1st percentile and median cosine between the two; faces found by one only;
   the largest box difference; and the largest difference of the 0-100 score
   (service/api/scores.py) over every pair of the photos, with the pairs whose decision at 80
   flips. This stands in for LFW View 2 on the GPU (LFW's photos are too many to carry to a GPU
   machine): embeddings that agree to ~1e-4 have CPU fp32's accuracy (bench/results/lfw_fp32.json).
3. stages: ms per photo or face of each identify model call, at batch 1 and ``--batches`` on
   CUDA, ``--cpu-batches`` on CPU (``--cpu-threads`` intra-op threads, default every core):
   YuNet on an LFW photo's 384x384 canvas, fr_landmark on 64x64 grey box crops, SFace and
   fr_feature on aligned 112x112 crops (their Embedder.embed, preprocessing included); the
   median of ``--reps`` timed calls after two warm-up calls. Plus a whole embed_photo (decode to
   vector) per photo at batch 1, from the agreement phase.
4. service: gunicorn (service/ops/local_server.py) on an embedded Redis, bench/load.py's small
   library (its 200 people's other photos, less the 6 whose names are no valid uid) registered
   over HTTP, then identify requests/s at each ``--concurrency`` (bench/load.py run_phase,
   median of ``--repeat`` runs of ``--seconds``) for each ``--service``
   DEVICE:WORKERSxTHREADS[:BATCH] (WORKERS "n": one per core; BATCH: FACESVC_MODELS__BATCH_SIZE,
   else the service's, off). Defaults: cuda:2x2, the settings' defaults; cpu:nx2, a worker per
   core (config/gunicorn.conf.py) at the default int8; cuda:4x8, more workers and threads
   (skipped first when over the budget). The one run on an H200 (README, "GPU") was with
   batching on by default, as it then was. The clients run in this
   process: ``client_cpu`` (its CPU seconds per second) near 1 means the figure is the client's
   limit.

The JSON is rewritten after every phase, so a run cut short still leaves what it measured; a
phase that fails records its error and the next one runs. ``--budget`` seconds: service
configurations that would not finish in it are skipped.

Photos: a folder laid out like LFW's (images/<Name>/<Name>_NNNN.jpg) with selection.json,
written from the LFW photos by ``select`` (bench/load.py's small library; the agreement photos
are its probes, then its gallery).

    python -m bench.gpu select --to DIR
    python -m bench.gpu run --photos DIR [--devices cpu cuda] [--out bench/results/gpu.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
import requests

from bench.lfw import git_revision, machine_info
from bench.request_path import median_ms
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR, ROOT, ensure_embeddings, identity
from bench.load import MODEL_IDS, SMALL_GROUP, SMALL_PEOPLE, Client, median_run, photo, probe_split, run_phase, small_library
from config.defaults import load_settings
from service.api.scores import ScoreMap
from service.auth.credentials import Auth
from service.library.ids import ID_PATTERN
from service.inference import pipeline_options
from service.ops.local_server import start_gunicorn, stop_gunicorn
from service.store.redis_server import EmbeddedRedis, connect
from workers.batcher import Batcher
from workers.heads import HEADS, landmark_input
from workers.models import verify_models
from workers.pipeline import NoFaceError, Pipeline, model_file, model_source
from workers.session import CUDA, OrtSession, ort_providers

log = logging.getLogger(__name__)
SELECTION = "selection.json"
AGREEMENT_PHOTOS = 500
# In this order: the budget skips the last first, the tuned one.
DEFAULT_SERVICES = ("cuda:2x2", "cpu:nx2", "cuda:4x8")


# --- photos ---------------------------------------------------------------------------------

def select(to: Path, people: int, agreement: int) -> dict:
    """Copy bench/load.py's small library (gallery and probes) out of LFW into ``to``."""
    lfw = ensure_embeddings(MODEL_IDS["fused"])
    paths, persons, enrolled, rest = probe_split(lfw)
    probes = [paths[i] for i in enrolled]
    gallery, _, small_probes = small_library(np.array([paths[i] for i in rest]), [str(persons[i]) for i in rest], probes, people)
    gallery = [str(p) for p in gallery]
    selection = {"gallery": gallery, "probes": small_probes, "agreement": (small_probes + gallery)[:agreement]}
    for path in gallery + small_probes:
        (to / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LFW_DIR / path, to / path)
    (to / SELECTION).write_text(json.dumps(selection, indent=1))
    return selection


# --- the machine ----------------------------------------------------------------------------

def gpu_info() -> dict:
    """What nvidia-smi says of the GPU and who uses it; {} without one."""
    info: dict[str, object] = {}
    queries = {
        "gpu": ["--query-gpu=name,driver_version,memory.total,memory.used", "--format=csv,noheader"],
        "compute_apps": ["--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
    }
    for key, query in queries.items():
        try:
            done = subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=20)
            info[key] = done.stdout.strip().splitlines() if done.returncode == 0 else done.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as error:
            info[key] = repr(error)
    return info


def runtime_info() -> dict:
    import onnxruntime as ort

    return {
        "onnxruntime": ort.__version__,
        "onnxruntime_file": ort.__file__,
        "build_info": ort.get_build_info() if hasattr(ort, "get_build_info") else None,
        "available_providers": ort.get_available_providers(),
        "env": {k: os.environ.get(k) for k in ("LD_LIBRARY_PATH", "CUDA_MODULE_LOADING", "PYTHONPATH")},
        "gpu": gpu_info(),
    }


# --- in-process pipelines -------------------------------------------------------------------

def load_pipeline(device: str, threads: int, precision: str = "fp32") -> Pipeline:
    """The service's pipeline (settings from the environment) on ``device``, unbatched: the
    stage timings feed the sessions batches themselves."""
    settings = load_settings()
    options = replace(pipeline_options(settings), device=device, threads=threads, batch_size=1, precision=precision)
    return Pipeline.load(settings.model_cache, options)


def session_providers(session) -> list[str]:
    """The execution providers a pipeline session got (the first one runs it)."""
    if isinstance(session, Batcher):
        session = session.session
    return session.session.get_providers() if isinstance(session, OrtSession) else ["OpenCV DNN"]


def pipeline_providers(pipeline: Pipeline) -> dict[str, list[str]]:
    sessions = {"yunet": pipeline.detector.session}
    sessions.update({part.spec.name: part.session for part in pipeline.embedder.parts})
    sessions.update(getattr(pipeline.heads, "_sessions", {}))  # the heads opened so far (fr_landmark)
    return {name: session_providers(session) for name, session in sessions.items()}


def node_placement(device: str, names: tuple[str, ...]) -> dict[str, dict]:
    """Per model: nodes per execution provider in one profiled run of the graph the service
    opens (workers.pipeline.model_source), and the op types that ran on the CPU."""
    import onnxruntime as ort

    paths = verify_models(load_settings().model_cache, names)
    placement = {}
    scratch = ROOT / "var" / "bench-gpu" / "profiles"
    scratch.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            options = ort.SessionOptions()
            options.enable_profiling = True
            options.profile_file_prefix = str(scratch / f"{device}_{name}")
            options.log_severity_level = 3
            source = model_source(name, paths[name])
            source = source.SerializeToString() if not isinstance(source, Path) else str(source)
            session = ort.InferenceSession(source, options, providers=ort_providers(device))
            feed = {}
            for tensor in session.get_inputs():
                shape = [1 if i == 0 else (d if isinstance(d, int) else 384) for i, d in enumerate(tensor.shape)]
                feed[tensor.name] = np.random.default_rng(0).random(shape, np.float32)
            session.run(None, feed)
            events = json.loads(Path(session.end_profiling()).read_text())
            nodes = {e["name"]: e["args"] for e in events if e.get("cat") == "Node" and "provider" in e.get("args", {})}
            providers = Counter(args["provider"] for args in nodes.values())
            cpu_ops = Counter(args.get("op_name") for args in nodes.values() if args["provider"] == "CPUExecutionProvider")
            placement[name] = {"session_providers": session.get_providers(), "nodes": dict(providers), "cpu_ops": dict(cpu_ops)}
        except Exception as error:  # one model's failure is a finding, not the end of the run
            placement[name] = {"error": f"{type(error).__name__}: {error}"}
    shutil.rmtree(scratch, ignore_errors=True)
    return placement


def embed_all(pipeline: Pipeline, photos: list[bytes]) -> dict:
    """Fused vectors, boxes and faces found of every photo, and the seconds each took."""
    vectors = np.zeros((len(photos), pipeline.embedder.dim), np.float32)
    boxes = np.full((len(photos), 4), np.nan)
    seconds = np.zeros(len(photos))
    for i, data in enumerate(photos):
        started = time.perf_counter()
        try:
            face, vectors[i] = pipeline.embed_photo(data)
            boxes[i] = face.detection.box
        except NoFaceError:
            pass
        seconds[i] = time.perf_counter() - started
    return {"vectors": vectors, "boxes": boxes, "found": ~np.isnan(boxes[:, 0]), "seconds": seconds}


def spread(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    return {"min": float(values.min()), "p1": float(np.percentile(values, 1)), "median": float(np.median(values))}


def agreement(reference: Pipeline, other: Pipeline, photos: list[bytes]) -> dict:
    """How far ``other``'s embeddings are from ``reference``'s on the same photos."""
    ref, new = embed_all(reference, photos), embed_all(other, photos)
    both = ref["found"] & new["found"]
    a, b = ref["vectors"][both], new["vectors"][both]
    figures: dict[str, object] = {
        "photos": len(photos), "faces_both": int(both.sum()),
        "found_by_reference_only": int((ref["found"] & ~new["found"]).sum()),
        "found_by_other_only": int((new["found"] & ~ref["found"]).sum()),
        "max_box_difference_px": float(np.abs(ref["boxes"][both] - new["boxes"][both]).max()) if both.any() else None,
        "fused_cosine": spread(np.einsum("ij,ij->i", a, b)),
        "embed_photo_ms": {"reference": 1e3 * float(np.median(ref["seconds"])), "other": 1e3 * float(np.median(new["seconds"]))},
    }
    # Each part of a fused vector is its embedder's unit vector over sqrt(parts).
    parts, start = reference.embedder.parts, 0
    for part in parts:
        stop = start + part.spec.dim
        figures[f"{part.spec.name}_cosine"] = spread(len(parts) * np.einsum("ij,ij->i", a[:, start:stop], b[:, start:stop]))
        start = stop
    rows, cols = np.triu_indices(len(a), 1)
    score_map = ScoreMap.for_model(reference.model_id)
    ref_scores, new_scores = score_map.to_scores((a @ a.T)[rows, cols]), score_map.to_scores((b @ b.T)[rows, cols])
    figures["pairs"] = len(rows)
    figures["max_score_difference"] = float(np.abs(ref_scores - new_scores).max()) if len(rows) else None
    figures["decisions_flipped_at_80"] = int(((ref_scores >= 80) != (new_scores >= 80)).sum())
    return figures


# --- stage timings --------------------------------------------------------------------------

def stage_inputs(pipeline: Pipeline, photos: list[bytes], count: int) -> dict[str, np.ndarray]:
    """Real inputs of each stage from up to ``count`` photos with a face."""
    canvases, grey, crops = [], [], []
    for data in photos:
        image = pipeline.decode(data)
        faces = pipeline.detect(image, 1)
        if not faces:
            continue
        canvases.append(pipeline.detector.canvas(image)[0][0])
        grey.append(landmark_input(image, faces[0].detection.box)[0])
        crops.append(pipeline.crop(image, faces[0]))
        if len(crops) == count:
            break
    # One canvas size, as the batcher batches: the most common one (LFW: 384).
    size = Counter(c.shape for c in canvases).most_common(1)[0][0]
    return {
        "yunet": np.stack([c for c in canvases if c.shape == size]),
        "fr_landmark": np.stack(grey),
        "crops": np.stack(crops),
    }


def take(rows: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` rows, the real ones repeated as needed."""
    return np.ascontiguousarray(rows[np.arange(batch) % len(rows)])


def stage_timings(pipeline: Pipeline, inputs: dict[str, np.ndarray], batches: list[int], reps: int) -> list[dict]:
    calls: dict[str, Callable[[int], Callable[[], object]]] = {
        "yunet": lambda n: (lambda feed=take(inputs["yunet"], n): pipeline.detector.session.run(feed)),
        "fr_landmark": lambda n: (lambda feed=take(inputs["fr_landmark"], n): pipeline.heads.run("fr_landmark", feed)),
    }
    for part in pipeline.embedder.parts:
        calls[part.spec.name] = lambda n, part=part: (lambda feed=take(inputs["crops"], n): part.embed(feed))
    rows = []
    for stage, make in calls.items():
        for batch in batches:
            # two warm-ups: CUDA picks its kernels on the first call of each shape
            ms = median_ms(make(batch), reps, warm_ups=2)
            rows.append({"stage": stage, "batch": batch, "ms_per_call": ms, "ms_per_item": ms / batch})
    return rows


# --- the live service -----------------------------------------------------------------------

def parse_service(spec: str) -> dict:
    """DEVICE:WORKERSxTHREADS[:BATCH], WORKERS "n" for one per core."""
    device, shape, *batch = spec.split(":")
    workers, threads = shape.split("x")
    return {
        "name": spec, "device": device, "workers": os.cpu_count() if workers == "n" else int(workers),
        "threads": int(threads), "batch_size": int(batch[0]) if batch else None,
    }


def register(base: str, token: str, gallery: list[str], root: Path, seconds: float = 120.0) -> dict:
    """faceset/user/add of every gallery photo under its person, people in parallel; what is
    not added within ``seconds`` is left out."""
    by_person: dict[str, list[str]] = {}
    for path in gallery:
        by_person.setdefault(identity(path), []).append(path)
    errors: list[tuple[str, object]] = []
    deadline = time.perf_counter() + seconds

    def add(paths: list[str]) -> None:
        client = Client(base, token, group=SMALL_GROUP)
        for path in paths:
            if time.perf_counter() > deadline:
                errors.append((path, "not sent: registration took too long"))
                continue
            if not client.register(identity(path), photo(path, root)):
                errors.append((path, client.last_answer.get("error_msg") or client.last_answer))

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(add, by_person.values()))
    return {
        "people": len(by_person), "faces": len(gallery), "errors": len(errors), "first_errors": errors[:5],
        "seconds": time.perf_counter() - started,
    }


def measured(run: Callable[[], dict]) -> dict:
    """``run``'s figures with this process's CPU seconds per second while it ran (the clients')."""
    me = psutil.Process()
    cpu, started = sum(me.cpu_times()[:2]), time.perf_counter()
    figures = run()
    figures["client_cpu"] = (sum(me.cpu_times()[:2]) - cpu) / (time.perf_counter() - started)
    return figures


def log_findings(path: Path) -> dict:
    """What the workers said of their pipelines and of any provider that failed."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    keys = ("pipeline ready", "EP Error", "Falling back", "CUDA", "Error", "Traceback")
    return {"lines": [line[-300:] for line in lines if any(k in line for k in keys)][:40], "tail": lines[-15:]}


def service_phase(args, selection: dict, root: Path, configs: list[dict], report: dict, save: Callable[[], None], deadline: float) -> None:
    data_dir = ROOT / "var" / "bench-gpu" / "service"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    # Registered over HTTP, a person's name is the uid: names that are no valid uid (LFW's
    # hyphens and apostrophes, service/library/ids.py) are left out.
    named = sorted({identity(p) for p in selection["probes"]})[: args.people]
    people = {name for name in named if ID_PATTERN.fullmatch(name)}
    gallery = [p for p in selection["gallery"] if identity(p) in people]
    probes = [p for p in selection["probes"] if identity(p) in people]
    results = report["service"] = {
        "library": {"people": len(people), "faces": len(gallery), "probes": len(probes), "left_out": sorted(set(named) - people)},
        "configs": {},
    }
    redis = EmbeddedRedis(data_dir, "everysec").start()
    try:
        client = connect(redis.url)
        client.flushall()
        keys = Auth.from_settings(client, load_settings(data_dir=data_dir)).create_keys()
        grant = {"grant_type": "client_credentials", "client_id": keys.api_key, "client_secret": keys.secret_key}
        for config in configs:
            name = config["name"]
            needed = len(args.concurrency) * args.repeat * args.seconds + 40
            if time.perf_counter() + needed > deadline:
                results["configs"][name] = {"skipped": f"the budget: {needed:.0f} s needed"}
                save()
                continue
            env = {"FACESVC_MODELS__DEVICE": config["device"], "FACESVC_THREADS": str(config["threads"])}
            if config["batch_size"]:
                env["FACESVC_MODELS__BATCH_SIZE"] = str(config["batch_size"])
            log_path = data_dir / f"gunicorn-{name.replace(':', '_')}.log"
            entry = results["configs"][name] = {**config}
            started = time.perf_counter()
            try:
                process, base = start_gunicorn(redis.url, data_dir, workers=config["workers"], log_path=log_path, env=env)
            except Exception as error:
                entry["error"] = f"{type(error).__name__}: {error}"
                entry["log"] = log_findings(log_path)
                save()
                continue
            try:
                entry["start_s"] = time.perf_counter() - started
                token = requests.post(f"{base}/oauth/2.0/token", data=grant, timeout=30).json()["access_token"]
                if "registration" not in results:
                    results["registration"] = {"config": name, **register(base, token, gallery, root)}
                run_phase(base, token, probes, min(8, max(args.concurrency)), 3.0, 0, "v2", SMALL_GROUP, root)  # every worker warm
                entry["phases"] = []
                for concurrency in args.concurrency:
                    runs = [
                        measured(lambda: run_phase(base, token, probes, concurrency, args.seconds, 0, "v2", SMALL_GROUP, root))
                        for _ in range(args.repeat)
                    ]
                    row = median_run(runs)
                    row["runs_client_cpu"] = [run["client_cpu"] for run in runs]
                    entry["phases"].append(row)
                    log.info("%s c=%d: %.1f req/s", name, concurrency, row["requests_per_s"])
                    save()
                entry["gpu"] = gpu_info() if config["device"] == "cuda" else None
                entry["worker_rss_mb"] = [child.memory_info().rss / 1e6 for child in psutil.Process(process.pid).children()]
            except Exception as error:
                entry["error"] = traceback.format_exc(limit=3)
                log.error("%s: %s", name, error)
            finally:
                stop_gunicorn(process)
                entry["log"] = log_findings(log_path)
                save()
    finally:
        redis.stop()
    best = {device: max((row["identify"]["per_s"] for c in results["configs"].values() if c.get("device") == device
                         for row in c.get("phases", []) if "identify" in row), default=None) for device in ("cuda", "cpu")}
    results["best_identify_per_s"] = best
    if best["cuda"] and best["cpu"]:
        results["cuda_over_cpu"] = best["cuda"] / best["cpu"]


# --- the run --------------------------------------------------------------------------------

def run(args) -> dict:
    started = time.perf_counter()
    deadline = started + args.budget
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    root = args.photos
    selection = json.loads((root / SELECTION).read_text())
    report: dict[str, object] = {
        "benchmark": "gpu", "git": args.revision or git_revision(), "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
        "errors": {},
    }
    save_lock = threading.Lock()

    def save() -> None:
        report["elapsed_s"] = time.perf_counter() - started
        with save_lock:
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, indent=2, default=str))
            os.replace(tmp, out)

    def phase(name: str, body: Callable[[], object]) -> object:
        log.info("phase %s (%.0f s in)", name, time.perf_counter() - started)
        try:
            value = body()
        except Exception:
            report["errors"][name] = traceback.format_exc(limit=6)
            log.error("phase %s failed:\n%s", name, report["errors"][name])
            value = None
        save()
        return value

    report["machine"] = phase("machine", machine_info)
    report["runtime"] = phase("runtime", runtime_info)
    cuda = CUDA in (report["runtime"] or {}).get("available_providers", [])
    devices = [d for d in args.devices if d != "cuda" or cuda]
    if "cuda" in args.devices and not cuda:
        report["errors"]["cuda"] = "onnxruntime has no CUDAExecutionProvider: CUDA phases skipped"
        log.warning(report["errors"]["cuda"])
    settings = load_settings()
    names = ("yunet",) + tuple(model_file(p, "fp32") for p in ("sface", "fr_feature")) + HEADS
    pipelines: dict[str, Pipeline] = {}
    for device in devices:
        threads = args.cpu_threads if device == "cpu" else settings.models.intra_op_threads
        loading = time.perf_counter()
        loaded = phase(f"load_{device}", lambda: load_pipeline(device, threads))
        if loaded:
            pipelines[device] = loaded
            report[f"pipeline_{device}"] = {"load_s": time.perf_counter() - loading, "providers": pipeline_providers(loaded)}
    report["placement"] = {device: phase(f"placement_{device}", lambda: node_placement(device, names)) for device in devices}

    photos = [(root / p).read_bytes() for p in selection["agreement"][: args.agreement]]
    reference = pipelines.get("cpu")
    other = pipelines.get("cuda") or (phase("load_cpu_again", lambda: load_pipeline("cpu", args.cpu_threads)) if reference else None)
    if reference and other:
        report["agreement"] = {
            "reference": "cpu fp32", "other": "cuda" if "cuda" in pipelines else "cpu fp32, loaded again",
            **(phase("agreement", lambda: agreement(reference, other, photos)) or {}),
        }
        save()

    report["stages"] = {}
    for device, pipeline in pipelines.items():
        batches = sorted({1, *(args.batches if device == "cuda" else args.cpu_batches)})
        inputs = phase(f"stage_inputs_{device}", lambda: stage_inputs(pipeline, photos, max(batches)))
        if inputs is not None:
            report["stages"][device] = phase(f"stages_{device}", lambda: stage_timings(pipeline, inputs, batches, args.reps))
    pipelines.clear()  # the service's workers get the GPU and the cores

    configs = [parse_service(spec) for spec in args.service]
    configs = [c for c in configs if c["device"] in devices]
    phase("service", lambda: service_phase(args, selection, root, configs, report, save, deadline))
    report["elapsed_s"] = time.perf_counter() - started
    save()
    return report


def print_table(report: dict) -> None:
    runtime = report.get("runtime") or {}
    print(f"onnxruntime {runtime.get('onnxruntime')} ({runtime.get('onnxruntime_file')}): {runtime.get('available_providers')}")
    print(f"GPU: {(runtime.get('gpu') or {}).get('gpu')}")
    for device, placement in (report.get("placement") or {}).items():
        for name, figures in (placement or {}).items():
            where = figures.get("error") or f"{figures['nodes']} cpu ops {figures['cpu_ops'] or '-'}"
            print(f"  {device:<4} {name:<13} {where}")
    agreement_ = report.get("agreement") or {}
    if "fused_cosine" in agreement_:
        print(f"agreement {agreement_['reference']} vs {agreement_['other']}, {agreement_['faces_both']}/{agreement_['photos']} photos:")
        for key in [k for k in agreement_ if k.endswith("_cosine")]:
            c = agreement_[key]
            print(f"  {key:<18} min {c['min']:.6f}  p1 {c['p1']:.6f}  median {c['median']:.6f}")
        print(
            f"  max score difference {agreement_['max_score_difference']:.4f} over {agreement_['pairs']} pairs, "
            f"{agreement_['decisions_flipped_at_80']} flipped at 80; max box difference {agreement_['max_box_difference_px']:.3f} px; "
            f"embed_photo {agreement_['embed_photo_ms']['reference']:.1f} / {agreement_['embed_photo_ms']['other']:.1f} ms"
        )
    stages = report.get("stages") or {}
    keyed = {(d, r["stage"], r["batch"]): r["ms_per_item"] for d, rows in stages.items() for r in rows or []}
    if keyed:
        print(f"{'stage':<12} {'batch':>5} {'cuda ms/item':>12} {'cpu ms/item':>12}")
        for stage, batch in sorted({(s, b) for _, s, b in keyed}, key=lambda k: (k[0], k[1])):
            cells = [keyed.get((d, stage, batch)) for d in ("cuda", "cpu")]
            print(f"{stage:<12} {batch:>5} " + " ".join(f"{c:>12.3f}" if c is not None else f"{'-':>12}" for c in cells))
    service = report.get("service") or {}
    if service:
        print(f"service: {service.get('library')}, registration {service.get('registration')}")
        print(f"{'config':<14} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'right':>6} {'errors':>6} {'client cpu':>10}")
        for name, config in service.get("configs", {}).items():
            if "phases" not in config:
                print(f"{name:<14} {config.get('skipped') or config.get('error', '')[-200:]}")
            for row in config.get("phases", []):
                ident = row.get("identify", {})
                print(
                    f"{name:<14} {row['concurrency']:>7} {row['requests_per_s']:>7.1f} {ident.get('p50_ms', 0):>7.1f} "
                    f"{row['median_identify_p99_ms']:>7.1f} {ident.get('right_person', 0):>6.3f} {ident.get('errors', 0):>6} "
                    f"{max(row['runs_client_cpu']):>10.2f}"
                )
        if service.get("cuda_over_cpu"):
            print(f"best identify/s: {service['best_identify_per_s']}, CUDA / CPU {service['cuda_over_cpu']:.2f}x")
    for name, error in (report.get("errors") or {}).items():
        print(f"error in {name}: {str(error).strip().splitlines()[-1]}")
    print(f"{report.get('elapsed_s', 0):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    chooser = commands.add_parser("select", help="copy the photos out of LFW (where LFW is)")
    chooser.add_argument("--to", type=Path, required=True)
    chooser.add_argument("--people", type=int, default=SMALL_PEOPLE)
    chooser.add_argument("--agreement", type=int, default=AGREEMENT_PHOTOS)
    runner = commands.add_parser("run", help="measure")
    runner.add_argument("--photos", type=Path, required=True, help="a folder written by select")
    runner.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=["cpu", "cuda"])
    runner.add_argument("--agreement", type=int, default=AGREEMENT_PHOTOS, help="photos embedded on each device")
    runner.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128], help="CUDA stage batches (1 always)")
    runner.add_argument("--cpu-batches", type=int, nargs="+", default=[8], help="CPU stage batches (1 always)")
    runner.add_argument("--cpu-threads", type=int, default=os.cpu_count(), help="intra-op threads of the CPU stages")
    runner.add_argument("--reps", type=int, default=7, help="timed calls per stage and batch")
    runner.add_argument("--service", nargs="*", default=list(DEFAULT_SERVICES), help="DEVICE:WORKERSxTHREADS[:BATCH], WORKERS n: one per core")
    runner.add_argument("--people", type=int, default=SMALL_PEOPLE, help="people of the library registered and probed")
    runner.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 64])
    runner.add_argument("--seconds", type=float, default=4.0)
    runner.add_argument("--repeat", type=int, default=3)
    runner.add_argument("--budget", type=float, default=300.0, help="seconds; service configurations past it are skipped")
    runner.add_argument("--revision", help="the git revision to record (default: git rev-parse here)")
    runner.add_argument("--out", type=Path, default=RESULTS_DIR / "gpu.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "select":
        selection = select(args.to, args.people, args.agreement)
        print(f"{len(selection['gallery'])} gallery and {len(selection['probes'])} probe photos in {args.to}")
        return
    print_table(run(args))


if __name__ == "__main__":
    main()
