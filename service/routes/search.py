"""identify and verify (spec §1.5, §1.6)."""
from __future__ import annotations

from flask import Blueprint

from service import faces
from service.params import Params
from service.routes import app_id, endpoint, services
from service.scores import ScoreMap

blueprint = Blueprint("search", __name__)

MAX_USER_TOP = 5  # §1.5.2: at most 5 users
MAX_FACE_TOP = 100


@endpoint(blueprint, "/rest/2.0/face/v2/identify")
def identify(params: Params) -> dict:
    svc = services()
    groups = params.group_ids()
    users = params.integer("user_top_num", 1, 1, MAX_USER_TOP)
    faces_per_user = params.integer("face_top_num", 1, 1, MAX_FACE_TOP)
    vector = faces.embed_largest(svc.pipeline, params.image(svc.settings.limits.image_bytes))
    matches = svc.library.identify(app_id(), groups, vector, users, faces_per_user)
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
    return {"result_num": len(result), "result": result}


@endpoint(blueprint, "/rest/2.0/face/v2/verify")
def verify(params: Params) -> dict:
    svc = services()
    uid = params.uid()
    groups = params.group_ids()
    top = params.integer("top_num", 1, 1, MAX_FACE_TOP)
    vector = faces.embed_largest(svc.pipeline, params.image(svc.settings.limits.image_bytes))
    similarities = svc.library.verify(app_id(), uid, groups, vector)[:top]
    score_map = ScoreMap.for_model(svc.pipeline.model_id)
    result = [score_map.to_score(s) for s in similarities]
    return {"result_num": len(result), "result": result}
