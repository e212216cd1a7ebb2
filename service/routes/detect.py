"""detect and match (spec §1.3, §1.4)."""
from __future__ import annotations

from typing import Iterable

from flask import Blueprint

from service import faces
from service.errors import FaceError
from service.params import Params, decode_base64
from service.routes import endpoint, liveness_info, services
from service.scores import ScoreMap
from workers.landmarks import baidu_landmark72
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
    """Baidu's face object with the fields asked for that a model here really measures; each
    attribute's head runs only when its field is asked for (README: "Face attributes")."""
    left, top, width, height = face.detection.box
    # A face cut by the photo's edge is boxed within the photo (Baidu's fields are uint32).
    image_height, image_width = face.image.shape[:2]
    right, bottom = min(float(image_width), left + width), min(float(image_height), top + height)
    left, top = max(0.0, left), max(0.0, top)
    pose = face.pose
    shaped = {
        "location": {
            "left": round(left),
            "top": round(top),
            "width": max(0, round(right - left)),
            "height": max(0, round(bottom - top)),
        },
        "face_probability": round(min(1.0, face.detection.score), 6),
        "rotation_angle": round(pose.roll),
        "yaw": round(pose.yaw, 6),
        "pitch": round(pose.pitch, 6),
        "roll": round(pose.roll, 6),
    }
    if "age" in fields:
        shaped["age"] = round(face.age, 1)
    if "expression" in fields:
        shaped["expression"] = int(face.expression.kind)
        shaped["expression_probability"] = round(face.expression.probability, 6)
    if "gender" in fields:
        shaped["gender"] = face.gender.label
        shaped["gender_probability"] = round(face.gender.probability, 6)
    if "landmark" in fields:  # §1.3.3: landmark72 comes with landmark
        shaped["landmark"] = pixel_points(baidu_landmark4(face.detection.landmarks))
        shaped["landmark72"] = pixel_points(baidu_landmark72(face.landmarks68))
    if fields & {"qualities", "quality"}:  # the request list says quality, the answer qualities
        quality = face.quality
        shaped["qualities"] = {
            "blur": round(quality.blur, 6),
            "illumination": quality.illumination,
            "completeness": quality.completeness,
        }
    return shaped


def pixel_points(points: Iterable[tuple[float, float]]) -> list[dict]:
    """Points as Baidu's uint32 {x, y} objects."""
    return [{"x": max(0, round(x)), "y": max(0, round(y))} for x, y in points]


@endpoint(blueprint, "/rest/2.0/face/v2/match")
def match(params: Params) -> dict:
    """Score every pair i<j of the images that hold a face; images that fail are skipped.
    ``image_liveness`` names, position by position, the images to score for liveness."""
    svc = services()
    encoded = params.encoded_images(svc.settings.limits.match_total_bytes)
    if len(encoded) < 2:
        raise FaceError(216614, "match needs two or more images")
    live = [item.lower() == "faceliveness" for item in params.positional("image_liveness")]
    probes, failures = {}, []
    for index, text in enumerate(encoded):
        try:
            asked = index < len(live) and live[index]
            probes[index] = faces.probe(svc.pipeline, decode_base64(text), asked)
        except FaceError as error:
            failures.append(error)
    if len(probes) < 2:
        raise failures[0]
    score_map = ScoreMap.for_model(svc.pipeline.model_id)
    indices = sorted(probes)
    result = [
        {"index_i": i, "index_j": j, "score": score_map.to_score(float(probes[i].vector @ probes[j].vector))}
        for n, i in enumerate(indices)
        for j in indices[n + 1 :]
    ]
    answer = {"result_num": len(result), "result": result}
    if any(live):
        answer["ext_info"] = liveness_info([probes[i].liveness if i in probes else None for i in range(len(encoded))])
    return answer
