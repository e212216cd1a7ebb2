"""v2's answer shapes of a face (spec §1.3.3) and of liveness scores (§1.4.3): Baidu's field
names, codes and units, from the pipeline's measurements."""
from __future__ import annotations

import json
from typing import Iterable, Optional

from service.api.landmarks import baidu_landmark4, baidu_landmark72, photo_box
from workers.attributes import Quality, Smile
from workers.pipeline import Face

# §1.3.3 expression: 0 no smile, 1 smile, 2 laugh.
EXPRESSION_CODES = {Smile.NONE: 0, Smile.SMILE: 1, Smile.LAUGH: 2}


def describe_face(face: Face, fields: set[str]) -> dict:
    """Baidu's face object with the fields asked for that a model here really measures; each
    attribute's head runs only when its field is asked for (README: "Face attributes").
    Baidu's pose signs are the pipeline's (``workers.attributes.Pose``): yaw > 0 nose to the
    image's right, pitch > 0 looking down, roll > 0 clockwise."""
    left, top, width, height = photo_box(face)
    pose = face.pose
    shaped = {
        "location": {"left": round(left), "top": round(top), "width": round(width), "height": round(height)},
        "face_probability": round(min(1.0, face.detection.score), 6),
        "rotation_angle": round(pose.roll),
        "yaw": round(pose.yaw, 6),
        "pitch": round(pose.pitch, 6),
        "roll": round(pose.roll, 6),
    }
    if "age" in fields:
        shaped["age"] = round(face.age, 1)
    if "expression" in fields:
        shaped["expression"] = EXPRESSION_CODES[face.expression.kind]
        shaped["expression_probability"] = round(face.expression.probability, 6)
    if "gender" in fields:
        shaped["gender"] = face.gender.label
        shaped["gender_probability"] = round(face.gender.probability, 6)
    if "landmark" in fields:  # §1.3.3: landmark72 comes with landmark
        shaped["landmark"] = pixel_points(baidu_landmark4(face.detection.landmarks) * face.scale)
        shaped["landmark72"] = pixel_points(baidu_landmark72(face.landmarks68) * face.scale)
    if fields & {"qualities", "quality"}:  # the request list says quality, the answer qualities
        shaped["qualities"] = qualities(face.quality)
    return shaped


def qualities(quality: Quality) -> dict:
    """Baidu's ``qualities`` object, with the measures a model here really makes."""
    return {"blur": round(quality.blur, 6), "illumination": quality.illumination, "completeness": quality.completeness}


def pixel_points(points: Iterable[tuple[float, float]]) -> list[dict]:
    """Points as Baidu's uint32 {x, y} objects."""
    return [{"x": max(0, round(x)), "y": max(0, round(y))} for x, y in points]


def ext_info(
    liveness: Optional[list[Optional[float]]] = None, quality: Optional[list[Optional[Quality]]] = None
) -> list[dict]:
    """Baidu's ``ext_info`` (§1.4.3, §1.5.3): one object whose values are strings covering the
    request's images in order. ``faceliveness``: comma-joined scores, "0" where an image was not
    scored ("0,0.9999" = first image not checked). ``qualities``: a JSON array with each image's
    ``qualities`` object, null where the image had no usable face."""
    info = {}
    if liveness is not None:
        info["faceliveness"] = ",".join("0" if score is None else f"{score:.6f}" for score in liveness)
    if quality is not None:
        info["qualities"] = json.dumps([qualities(q) if q else None for q in quality], separators=(",", ":"))
    return [info]
