"""search (1:N, and 1:1 with user_id) and multi-search (M:N) (v3 spec §3.3, §3.4)."""
from __future__ import annotations

from flask import Blueprint

from service.api.endpoint import app_id, services
from service.api.params import Params
from service.api.v3 import API, images
from service.api.v3.detect import face_type
from service.api.v3.images import Controls, Seen
from service.api.v3.schema import MAX_GROUP_LIST, MAX_SEARCH_FACES
from service.errors import FaceError

blueprint = Blueprint("v3_search", __name__)

CONTROLS = ("quality_control", "liveness_control", "face_type")


def group_list(params: Params) -> list[str]:
    """group_id_list: existing groups, at most MAX_GROUP_LIST (223104); 223100 for a missing one."""
    groups = params.group_ids("group_id_list", too_many=216631)
    if len(groups) > MAX_GROUP_LIST:
        raise FaceError(223104, f"{len(groups)} groups")
    missing = services().library.missing_groups(app_id(), groups)
    if missing:
        raise FaceError(223100, f"group {missing[0]}")
    return groups


def searchable(groups: list[str]) -> list[str]:
    """The groups with users: the others hold nobody to find (v2's identify refuses them)."""
    empty = set(services().library.empty_groups(app_id(), groups))
    return [g for g in groups if g not in empty]


def users_near(seen: Seen, groups: list[str], max_users: int, threshold: int) -> list[dict]:
    """Baidu's user_list for a face: the best users of the (``searchable``) groups at or above
    the threshold."""
    if not groups:
        return []
    svc = services()
    matches = svc.library.identify(app_id(), groups, [seen.vector], max_users, 1)
    entries = [
        {"group_id": m.group, "user_id": m.uid, "user_info": m.user_info, "score": svc.score_map.to_score(m.similarities[0])}
        for m in matches
    ]
    return [e for e in entries if e["score"] >= threshold]


def user_scores(seen: Seen, uid: str, groups: list[str], threshold: int) -> list[dict]:
    """search with user_id (v2's verify): the user's best score in each of the groups it is in."""
    svc = services()
    library = svc.library
    theirs = set(library.groups_of(app_id(), uid))
    inside = [g for g in groups if g in theirs]
    if not inside:
        raise FaceError(223103, f"user {uid} in none of {','.join(groups)}")
    infos = dict(library.user_entries(app_id(), uid, inside))
    entries = [
        {"group_id": g, "user_id": uid, "user_info": infos.get(g, ""), "score": svc.score_map.to_score(library.verify(app_id(), uid, [g], [seen.vector])[0])}
        for g in inside
    ]
    return sorted((e for e in entries if e["score"] >= threshold), key=lambda e: -e["score"])


@API.endpoint(
    blueprint,
    "/search",
    "Search",
    ("image", "image_type", "group_id_list"),
    ("user_id", "max_user_num", "match_threshold", *CONTROLS),
)
def search(params: Params) -> dict:
    """The users most like the image's largest face (v3 spec 3.3)

    With user_id, only that user is compared (v2's verify); 222207 when nobody scores at or
    above match_threshold."""
    images.check_image(params)
    groups = group_list(params)
    uid = params.uid("user_id") if params.present("user_id") else None
    max_users, threshold = params.integer("max_user_num"), params.integer("match_threshold")
    face_type(params)
    seen = images.largest_face(params, services().settings.limits.image_bytes, Controls.of(params))
    users = user_scores(seen, uid, groups, threshold)[:max_users] if uid else users_near(seen, searchable(groups), max_users, threshold)
    if not users:
        raise FaceError(222207, f"nobody at or above {threshold}")
    return {"face_token": seen.token, "user_list": users}


@API.endpoint(
    blueprint,
    "/multi-search",
    "MultiSearch",
    ("image", "image_type", "group_id_list"),
    ("max_face_num", "max_user_num", "match_threshold", *CONTROLS),
)
def multi_search(params: Params) -> dict:
    """The users most like each face of the image (v3 spec 3.4)

    Faces that fail quality_control or liveness_control are left out (the first failure
    answers when every face fails); a face that matches nobody has an empty user_list, and
    222207 answers when no face matches anybody."""
    images.check_image(params)
    groups = group_list(params)
    max_faces = min(params.integer("max_face_num"), MAX_SEARCH_FACES)
    max_users, threshold = params.integer("max_user_num"), params.integer("match_threshold")
    face_type(params)
    controls = Controls.of(params)
    seen = images.all_faces(params, services().settings.limits.image_bytes, max_faces)
    images.remember(seen)
    failures = [controls.failure(s.face) if s.face is not None else None for s in seen]
    passing = [s for s, failure in zip(seen, failures) if failure is None]
    if not passing:
        raise failures[0]
    searched = searchable(groups)
    face_list = [{"face_token": s.token, **_location(s), "user_list": users_near(s, searched, max_users, threshold)} for s in passing]
    if not any(face["user_list"] for face in face_list):
        raise FaceError(222207, f"nobody at or above {threshold}")
    return {"face_num": len(face_list), "face_list": face_list}


def _location(seen: Seen) -> dict:
    placement = seen.placement()
    return {"location": placement["location"]} if "location" in placement else {}
