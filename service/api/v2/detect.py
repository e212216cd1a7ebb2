"""detect and match (spec §1.3, §1.4)."""
from __future__ import annotations

from flask import Blueprint

from service import inference
from service.api.endpoint import services
from service.api.params import Params, decode_base64
from service.api.v2 import API
from service.api.v2.shapes import describe_face, ext_info
from service.errors import FaceError

blueprint = Blueprint("v2_detect", __name__)


@API.endpoint(blueprint, "/detect", "Faces", ("image",), ("max_face_num", "face_fields"))
def detect(params: Params) -> dict:
    """Faces of an image with the attributes asked for (spec 1.3)"""
    svc = services()
    limits = svc.settings.limits
    max_faces = params.integer("max_face_num")
    fields = params.fields("face_fields")
    found = inference.detect(svc.pipeline, params.image(limits.detect_image_bytes), max_faces)
    result = [describe_face(face, fields) for face in found]
    return {"result_num": len(result), "result": result}


@API.endpoint(blueprint, "/match", "Pairs", ("images",), ("ext_fields", "image_liveness"))
def match(params: Params) -> dict:
    """Scores of every pair of images (spec 1.4)

    Every pair i<j of the images that hold a face; images that fail are skipped.
    ``image_liveness`` names, position by position, the images to score for liveness."""
    svc = services()
    encoded = params.encoded_images(svc.settings.limits.match_total_bytes)
    if len(encoded) < 2:
        raise FaceError(216614, "match needs two or more images")
    live = [item.lower() == "faceliveness" for item in params.positional("image_liveness")]
    probes, failures = {}, []
    for index, text in enumerate(encoded):
        try:
            probes[index] = inference.probe(svc.pipeline, decode_base64(text))
        except FaceError as error:
            failures.append(error)
    if len(probes) < 2:
        raise failures[0]
    score_map = svc.score_map
    indices = sorted(probes)
    result = [
        {"index_i": i, "index_j": j, "score": score_map.to_score(float(probes[i].vector @ probes[j].vector))}
        for n, i in enumerate(indices)
        for j in indices[n + 1 :]
    ]
    answer = {"result_num": len(result), "result": result}
    asked_liveness = [index < len(live) and live[index] and index in probes for index in range(len(encoded))]
    with_quality = "qualities" in params.fields("ext_fields")
    if any(live) or with_quality:
        answer["ext_info"] = ext_info(
            [probes[i].face.liveness if asked else None for i, asked in enumerate(asked_liveness)] if any(live) else None,
            [probes[i].face.quality if i in probes else None for i in range(len(encoded))] if with_quality else None,
        )
    return answer
