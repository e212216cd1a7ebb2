"""The request path's other speed levers, one thread: what parsing a request costs beside the
models, what decoding a large photo costs at each JPEG reduction, and the detector's cost by
canvas size.

- Per-request parsing: base64 of an LFW photo, werkzeug's parse of the form an SDK sends
  (``image`` + ``group_id`` + ``user_top_num``), JSON of identify's answer.
- Decoding: a 4000x3000 and a 2000x1500 JPEG made from an LFW photo, decoded by
  ``workers.image.decode_image`` at ``full_side`` 2048 (the default), 1024 and 640, then fitted
  to the detector's 640 (what ``Detector.detect`` does).
- YuNet (ONNX Runtime, as the service opens it) on canvases of 256 to 640 px.

    python -m bench.request_path [--out bench/results/request_path.json]
"""
from __future__ import annotations

import argparse
import base64
import datetime
import json
import time
import urllib.parse
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

import config
from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR
from workers.image import DecodeLimits, decode_image, fit_within
from workers.models import model_path
from workers.pipeline import open_model

PHOTO = "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
LARGE = ((4000, 3000), (2000, 1500))
FULL_SIDES = (2048, 1024, 640)
CANVASES = (256, 320, 384, 512, 640)


def median_ms(call: Callable[[], object], repeat: int, warm_ups: int = 1) -> float:
    """Median milliseconds of one call over ``repeat`` timed calls after ``warm_ups`` untimed."""
    for _ in range(warm_ups):
        call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return float(np.median(samples) * 1e3)


def parsing(repeat: int) -> dict[str, float]:
    photos = sorted((LFW_DIR / "images").glob("A*/*.jpg"))[:50]
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in photos]
    bodies = [urllib.parse.urlencode({"group_id": "bench", "image": e, "user_top_num": 1}) for e in encoded]
    answer = {"result": [{"uid": "u", "user_info": "", "group_id": "bench", "scores": [93.1]}], "result_num": 1, "log_id": 1}

    def form() -> None:
        parse_form_data(EnvironBuilder(method="POST", data=bodies[0], content_type="application/x-www-form-urlencoded").get_environ())

    return {
        "body_kib": float(np.mean([len(b) for b in bodies]) / 1024),
        "base64_ms": median_ms(lambda: base64.b64decode(encoded[0]), repeat),
        "form_ms": median_ms(form, repeat),
        "json_ms": median_ms(lambda: json.dumps(answer), repeat),
    }


def decoding(repeat: int) -> list[dict[str, object]]:
    face = cv2.imread(str(LFW_DIR / PHOTO))
    rows = []
    for width, height in LARGE:
        data = cv2.imencode(".jpg", cv2.resize(face, (width, height), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        for full_side in FULL_SIDES:
            limits = DecodeLimits(60_000_000, 25_000_000, 100, full_side)
            image, factor = decode_image(data, limits)
            rows.append({
                "photo": f"{width}x{height}", "kib": len(data) // 1024, "full_side": full_side, "factor": factor,
                "decoded": f"{image.shape[1]}x{image.shape[0]}",
                "decode_ms": median_ms(lambda: decode_image(data, limits), repeat),
                "fit_640_ms": median_ms(lambda: fit_within(image, 640), repeat),
            })
    return rows


def detector_canvases(repeat: int) -> dict[str, float]:
    session = open_model("yunet", model_path(config.load_settings().model_cache, "yunet"), threads=1, device="cpu")
    return {str(size): median_ms(lambda: session.run(np.zeros((1, 3, size, size), np.float32)), repeat) for size in CANVASES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "request_path.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    report = {
        "benchmark": "request_path",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"threads": 1, "repeat": args.repeat},
        "parsing": parsing(args.repeat * 30),
        "decoding": decoding(args.repeat),
        "yunet_ms_by_canvas": detector_canvases(args.repeat),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    p = report["parsing"]
    print(f"per request ({p['body_kib']:.1f} KiB form): base64 {p['base64_ms']:.3f} ms, form {p['form_ms']:.3f} ms, JSON {p['json_ms']:.4f} ms")
    print(f"{'photo':<10} {'full_side':>9} {'factor':>6} {'decoded':>10} {'decode ms':>9} {'fit 640 ms':>10}")
    for r in report["decoding"]:
        print(f"{r['photo']:<10} {r['full_side']:>9} {r['factor']:>6} {r['decoded']:>10} {r['decode_ms']:>9.1f} {r['fit_640_ms']:>10.1f}")
    print("YuNet ms by canvas: " + ", ".join(f"{k}: {v:.2f}" for k, v in report["yunet_ms_by_canvas"].items()))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
