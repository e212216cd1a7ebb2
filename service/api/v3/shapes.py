"""v3's face object (v3 spec §3.1): Baidu's field names and units from the pipeline's
measurements, with only the fields a model here really measures (README, "v3")."""
from __future__ import annotations

from typing import Iterable

from service.api.landmarks import baidu_landmark4, baidu_landmark72, photo_box
from workers.attributes import Quality, Smile
from workers.landmarks import eye_line_roll
from workers.pipeline import Face

EXPRESSIONS = {Smile.NONE: "none", Smile.SMILE: "smile", Smile.LAUGH: "laugh"}


def placement(face: Face) -> dict:
    """Where the face is and how sure the detector is: ``location`` and ``face_probability``.
    ``rotation`` is the roll of the eye line (the pose's roll) and needs no pose head, so
    search can answer it at no cost."""
    left, top, width, height = photo_box(face)
    return {
        "location": {
            "left": round(left, 2),
            "top": round(top, 2),
            "width": round(width),
            "height": round(height),
            "rotation": round(eye_line_roll(face.landmarks68)),
        },
        "face_probability": round(min(1.0, face.detection.score), 6),
    }


def basics(face: Face) -> dict:
    """What detect answers of every face: ``placement`` and the pose. Baidu's pose signs are
    the pipeline's (``workers.attributes.Pose``)."""
    pose = face.pose
    return {**placement(face), "angle": {"yaw": round(pose.yaw, 6), "pitch": round(pose.pitch, 6), "roll": round(pose.roll, 6)}}


def attributes(face: Face, fields: set[str]) -> dict:
    """The attributes face_field asks for; each head runs only when its field is asked for."""
    shaped: dict = {}
    if "age" in fields:
        shaped["age"] = round(face.age)
    if "expression" in fields:
        shaped["expression"] = {"type": EXPRESSIONS[face.expression.kind], "probability": round(face.expression.probability, 6)}
    if "gender" in fields:
        shaped["gender"] = {"type": face.gender.label, "probability": round(face.gender.probability, 6)}
    if "landmark" in fields:  # §3.1: landmark72 comes with landmark
        shaped["landmark"] = points(baidu_landmark4(face.detection.landmarks) * face.scale)
    if fields & {"landmark", "landmark72"}:
        shaped["landmark72"] = points(baidu_landmark72(face.landmarks68) * face.scale)
    if "quality" in fields:
        shaped["quality"] = quality(face.quality)
    return shaped


def quality(measured: Quality) -> dict:
    """v3's ``quality`` without ``occlusion`` (no model measures it). v3's completeness is 1
    for a whole face, the reverse of the pipeline's (and v2's) flag."""
    return {"blur": round(measured.blur, 6), "illumination": measured.illumination, "completeness": 1 - measured.completeness}


def points(values: Iterable[tuple[float, float]]) -> list[dict]:
    return [{"x": round(float(x), 2), "y": round(float(y), 2)} for x, y in values]
