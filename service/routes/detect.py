"""detect and match (spec §1.3, §1.4)."""
from __future__ import annotations

from flask import Blueprint

from service import faces
from service.errors import FaceError
from service.params import Params, decode_base64
from service.routes import endpoint, services
from service.scores import ScoreMap
from workers.pipeline import Face
from workers.pose import baidu_landmark4

blueprint = Blueprint("detect", __name__)


@endpoint(blueprint, "/rest/2.0/face/v2/detect", "/rest/2.0/face/v1/detect")
def detect(params: Params) -> dict:
    svc = services()
    limits = svc.settings.limits
    max_faces = params.integer("max_face_num", 1, 1, limits.max_faces)
    fields = params.fields("face_fields")
    found = faces.detect(svc.pipeline, params.image(limits.detect_image_bytes), max_faces)
    result = [describe_face(face, fields) for face in found]
    return {"result_num": len(result), "result": result}


def describe_face(face: Face, fields: set[str]) -> dict:
    """Baidu's face object; only the fields this pipeline really measures."""
    left, top, width, height = face.detection.box
    right, bottom = left + width, top + height
    left, top = max(0.0, left), max(0.0, top)
    shaped = {
        "location": {
            "left": round(left),
            "top": round(top),
            "width": max(0, round(right - left)),
            "height": max(0, round(bottom - top)),
        },
        "face_probability": round(min(1.0, face.detection.score), 6),
        "rotation_angle": round(face.roll),
        "yaw": round(face.yaw, 6),
        "pitch": round(face.pitch, 6),
        "roll": round(face.roll, 6),
    }
    if "landmark" in fields:
        shaped["landmark"] = [
            {"x": max(0, round(x)), "y": max(0, round(y))} for x, y in baidu_landmark4(face.detection.landmarks)
        ]
    return shaped


@endpoint(blueprint, "/rest/2.0/face/v2/match")
def match(params: Params) -> dict:
    """Score every pair i<j of the images that hold a face; images that fail are skipped."""
    svc = services()
    encoded = params.encoded_images(svc.settings.limits.match_total_bytes)
    if len(encoded) < 2:
        raise FaceError(216614, "match needs two or more images")
    vectors, failures = {}, []
    for index, text in enumerate(encoded):
        try:
            vectors[index] = faces.embed_largest(svc.pipeline, decode_base64(text))
        except FaceError as error:
            failures.append(error)
    if len(vectors) < 2:
        raise failures[0]
    score_map = ScoreMap.for_model(svc.pipeline.model_id)
    indices = sorted(vectors)
    result = [
        {"index_i": i, "index_j": j, "score": score_map.to_score(float(vectors[i] @ vectors[j]))}
        for n, i in enumerate(indices)
        for j in indices[n + 1 :]
    ]
    return {"result_num": len(result), "result": result}
