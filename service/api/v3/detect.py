"""detect, match and faceverify (v3 spec §3.1, §3.2, §3.16)."""
from __future__ import annotations

from flask import Blueprint

from service.api.endpoint import services
from service.api.params import Params
from service.api.v3 import API, images, shapes
from service.api.v3.controls import LIVENESS_THRESHOLDS
from service.api.v3.images import Controls
from service.api.v3.schema import FACE_TYPES, MAX_IMAGES
from service.errors import FaceError

blueprint = Blueprint("v3_detect", __name__)


def face_type(params: Params) -> str:
    """face_type says what kind of photo it is; every kind is read alike here (README, "v3")."""
    return params.choice("face_type", FACE_TYPES, "LIVE", upper=True)


@API.endpoint(
    blueprint, "/detect", "Faces", ("image", "image_type"), ("face_field", "max_face_num", "face_type", "liveness_control")
)
def detect(params: Params) -> dict:
    """Faces of an image with the attributes asked for (v3 spec 3.1)

    liveness_control: every face answered must pass it (223120)."""
    svc = services()
    max_faces = params.integer("max_face_num")
    fields = params.fields("face_field")
    face_type(params)
    liveness = images.level(params, "liveness_control")
    seen = images.all_faces(params, svc.settings.limits.detect_image_bytes, max_faces)
    if seen[0].face is None:  # a face token: what was answered when its photo came
        return {"face_num": 1, "face_list": [{"face_token": seen[0].token, **seen[0].placement(), **_angle(seen[0].answered)}]}
    controls = Controls("NONE", liveness)
    failure = next((f for f in (controls.failure(s.face) for s in seen) if f), None)
    if failure:
        raise failure
    answered = [shapes.basics(s.face) for s in seen]
    images.remember(seen, [{"angle": basics["angle"]} for basics in answered])
    face_list = [
        {"face_token": s.token, **basics, **shapes.attributes(s.face, fields), **_liveness(s, liveness != "NONE")}
        for s, basics in zip(seen, answered)
    ]
    return {"face_num": len(face_list), "face_list": face_list}


def _angle(answered: dict | None) -> dict:
    return {"angle": answered["angle"]} if answered and "angle" in answered else {}


def _liveness(seen: images.Seen, asked: bool) -> dict:
    return {"liveness": {"livemapscore": round(seen.face.liveness, 6)}} if asked else {}


@API.endpoint(
    blueprint, "/match", "Match", ("image", "image_type"), ("face_type", "quality_control", "liveness_control"), array_body=True
)
def match(params: Params) -> dict:
    """Similarity of two faces (v3 spec 3.2)

    The body is an array of two images; each image's largest face is compared."""
    elements = params.elements()
    if len(elements) != 2:
        raise FaceError(222208, f"{len(elements)} images")
    svc = services()
    for element in elements:
        images.check_image(element)
        face_type(element)
    seen = [images.largest_face(e, svc.settings.limits.image_bytes, Controls.of(e)) for e in elements]
    score = svc.score_map.to_score(float(seen[0].vector @ seen[1].vector))
    return {"score": score, "face_list": [{"face_token": s.token} for s in seen]}


@API.endpoint(blueprint, "/faceverify", "Liveness", ("image", "image_type"), ("face_field",), array_body=True)
def faceverify(params: Params) -> dict:
    """Single-image liveness of one or more photos (v3 spec 3.16)

    Each image's largest face gets ``livemapscore``; ``face_liveness`` is the highest. The
    ``thresholds`` are measured cut-offs (README, "Liveness"); photos only, as liveness needs
    the pixels."""
    elements = params.elements()
    if not 1 <= len(elements) <= MAX_IMAGES:
        raise FaceError(222208, f"{len(elements)} images")
    limit = services().settings.limits.image_bytes
    faces = []
    for element in elements:
        if images.image_type(element) == "FACE_TOKEN":
            raise FaceError(216100, "faceverify needs the photo, not a face token", param="image_type")
        fields = element.fields("face_field" if element.present("face_field") else "face_fields")
        seen = images.largest_face(element, limit)
        faces.append({"face_token": seen.token, **shapes.basics(seen.face), **shapes.attributes(seen.face, fields), **_liveness(seen, True)})
    return {
        "face_liveness": max(face["liveness"]["livemapscore"] for face in faces),
        "thresholds": dict(LIVENESS_THRESHOLDS),
        "face_list": faces,
    }
