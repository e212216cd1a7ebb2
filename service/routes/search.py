"""identify and verify (spec §1.5, §1.6)."""
from __future__ import annotations

from flask import Blueprint

from service import faces
from service.params import Params
from service.routes import app_id, endpoint, liveness_info, services
from service.scores import ScoreMap

blueprint = Blueprint("search", __name__)

MAX_USER_TOP = 5  # §1.5.2: at most 5 users
MAX_FACE_TOP = 100


@endpoint(blueprint, "/rest/2.0/face/v2/identify")
def identify(params: Params) -> dict:
    svc = services()
    groups = params.group_ids()
    # The Python SDK's documented example sends user_top_num=0: it means the default.
    users = params.integer("user_top_num", 1, 0, MAX_USER_TOP) or 1
    faces_per_user = params.integer("face_top_num", 1, 1, MAX_FACE_TOP)
    probe = probe_image(params)
    matches = svc.library.identify(app_id(), groups, probe.vector, users, faces_per_user)
    score_map = ScoreMap.for_model(svc.pipeline.model_id)
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


@endpoint(blueprint, "/rest/2.0/face/v2/verify")
def verify(params: Params) -> dict:
    svc = services()
    uid = params.uid()
    groups = params.group_ids()
    top = params.integer("top_num", 1, 1, MAX_FACE_TOP)
    probe = probe_image(params)
    similarities = svc.library.verify(app_id(), uid, groups, probe.vector)[:top]
    score_map = ScoreMap.for_model(svc.pipeline.model_id)
    result = [score_map.to_score(s) for s in similarities]
    return with_liveness({"result_num": len(result), "result": result}, probe)


def probe_image(params: Params) -> faces.Probe:
    """The request image's largest face, scored for liveness when ext_fields asks for it."""
    svc = services()
    live = "faceliveness" in params.fields("ext_fields")
    return faces.probe(svc.pipeline, params.image(svc.settings.limits.image_bytes), live)


def with_liveness(answer: dict, probe: faces.Probe) -> dict:
    """The answer with Baidu's ext_info when the probe was scored for liveness (§1.5.3, §1.6.3)."""
    if probe.liveness is not None:
        answer["ext_info"] = liveness_info([probe.liveness])
    return answer
