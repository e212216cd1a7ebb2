"""identify and verify (spec §1.5, §1.6)."""
from __future__ import annotations

from flask import Blueprint

from service import inference
from service.api.endpoint import app_id, services
from service.api.params import Params
from service.api.v2 import API
from service.api.v2.shapes import liveness_info

blueprint = Blueprint("v2_search", __name__)


@API.endpoint(blueprint, "/identify", "Matches", ("group_id", "image"), ("user_top_num", "face_top_num", "ext_fields"))
def identify(params: Params) -> dict:
    """Most similar users in the groups (spec 1.5)"""
    svc = services()
    groups = params.group_ids()
    # The Python SDK's documented example sends user_top_num=0: it means the default.
    users = params.integer("user_top_num") or 1
    faces_per_user = params.integer("face_top_num")
    probe = probe_image(params)
    matches = svc.library.identify(app_id(), groups, probe.vector, users, faces_per_user)
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
    return with_liveness({"result_num": len(result), "result": result}, probe)


@API.endpoint(blueprint, "/verify", "Scores", ("uid", "group_id", "image"), ("top_num", "ext_fields"))
def verify(params: Params) -> dict:
    """Scores of the image against one user (spec 1.6)"""
    svc = services()
    uid = params.uid()
    groups = params.group_ids()
    top = params.integer("top_num")
    probe = probe_image(params)
    similarities = svc.library.verify(app_id(), uid, groups, probe.vector)[:top]
    score_map = svc.score_map
    result = [score_map.to_score(s) for s in similarities]
    return with_liveness({"result_num": len(result), "result": result}, probe)


def probe_image(params: Params) -> inference.Probe:
    """The request image's largest face, scored for liveness when ext_fields asks for it."""
    svc = services()
    live = "faceliveness" in params.fields("ext_fields")
    return inference.probe(svc.pipeline, params.image(svc.settings.limits.image_bytes), live)


def with_liveness(answer: dict, probe: inference.Probe) -> dict:
    """The answer with Baidu's ext_info when the probe was scored for liveness (§1.5.3, §1.6.3)."""
    if probe.liveness is not None:
        answer["ext_info"] = liveness_info([probe.liveness])
    return answer
