"""identify and verify (spec §1.5, §1.6)."""
from __future__ import annotations

from flask import Blueprint

from service import inference
from service.api.endpoint import app_id, services
from service.api.params import Params, decode_base64
from service.api.v2 import API
from service.api.v2.shapes import ext_info
from service.errors import FaceError

blueprint = Blueprint("v2_search", __name__)


@API.endpoint(blueprint, "/identify", "Matches", ("group_id", "image"), ("user_top_num", "face_top_num", "ext_fields"))
def identify(params: Params) -> dict:
    """Most similar users in the groups (spec 1.5)

    Several comma-joined images (the C# chapter's form) are photos of one person: their
    similarities pool per user."""
    svc = services()
    groups = params.group_ids()
    users = params.integer("user_top_num")
    faces_per_user = params.integer("face_top_num")
    probes = probe_images(params.encoded_images(svc.settings.limits.image_bytes))
    matches = svc.library.identify(app_id(), groups, [p.vector for p in probes], users, faces_per_user)
    score_map = svc.score_map
    result = [
        {
            "group_id": m.group,
            "uid": m.uid,
            "user_info": m.user_info,
            "scores": [score_map.to_score(s) for s in m.similarities],
        }
        for m in matches
    ]
    return with_liveness({"result_num": len(result), "result": result}, params, probes)


@API.endpoint(blueprint, "/verify", "Scores", ("uid", "image"), ("group_id", "top_num", "ext_fields"))
def verify(params: Params) -> dict:
    """Scores of the image against one user (spec 1.6)

    Without group_id (the C# chapter's form) every group of the uid is searched; several
    comma-joined images are each scored against every face of the uid."""
    svc = services()
    uid = params.uid()
    encoded = params.encoded_images(svc.settings.limits.image_bytes)  # a missing image is 216101 first
    groups = params.group_ids(required=False) or svc.library.groups_of(app_id(), uid)
    if not groups:
        raise FaceError(216611, f"uid {uid} is in no group")
    top = params.integer("top_num")
    probes = probe_images(encoded)
    similarities = svc.library.verify(app_id(), uid, groups, [p.vector for p in probes])[:top]
    score_map = svc.score_map
    result = [score_map.to_score(s) for s in similarities]
    return with_liveness({"result_num": len(result), "result": result}, params, probes)


def probe_images(encoded: list[str]) -> list[inference.Probe]:
    """The largest face of each base64 image; any unusable image fails the request."""
    return [inference.probe(services().pipeline, decode_base64(text)) for text in encoded]


def with_liveness(answer: dict, params: Params, probes: list[inference.Probe]) -> dict:
    """The answer with Baidu's ext_info when ext_fields asks for liveness (§1.5.3, §1.6.3):
    one score per image."""
    if "faceliveness" in params.fields("ext_fields"):
        answer["ext_info"] = ext_info(liveness=[probe.face.liveness for probe in probes])
    return answer
