"""The face library: faceset/user/* and faceset/group/* (spec §1.7-§1.14)."""
from __future__ import annotations

from flask import Blueprint

from service import faces
from service.errors import FaceError
from service.library import NewFace, photo_digest
from service.params import Params, decode_base64
from service.routes import app_id, endpoint, services

blueprint = Blueprint("faceset", __name__)

MAX_PAGE = 1000  # §1.11.2: at most 1000 per page
BASE = "/rest/2.0/face/v2/faceset"


def user_info(params: Params, required: bool) -> str | None:
    """user_info may be sent empty; at most 256 bytes (§1.7.2)."""
    if not params.present("user_info"):
        if required:
            raise FaceError(216101, "missing user_info")
        return None
    info = params.text("user_info", required=False, default="") or ""
    if len(info.encode()) > services().settings.limits.user_info_bytes:
        raise FaceError(216100, "user_info longer than 256 bytes")
    return info


def new_face(data: bytes) -> NewFace:
    return NewFace(photo_digest(data), faces.embed_largest(services().pipeline, data))


def page(params: Params) -> tuple[int, int]:
    """start with num (SDKs) or end (chapter 1 calls the page size "end")."""
    start = params.integer("start", 0, 0, 2**31)
    return start, params.integer("num" if params.present("num") else "end", 100, 1, MAX_PAGE)


@endpoint(blueprint, f"{BASE}/user/add")
def add_user(params: Params) -> dict:
    svc = services()
    uid = params.uid()
    info = user_info(params, required=True)
    groups = params.group_ids(too_many=216631)
    replace = params.choice("action_type", ("append", "replace"), "append") == "replace"
    face = new_face(params.image(svc.settings.limits.image_bytes))
    svc.library.put_faces(app_id(), uid, groups, [face], info, replace)
    return {}


@endpoint(blueprint, f"{BASE}/user/update")
def update_user(params: Params) -> dict:
    """Replace the uid's photos in the given groups (all its groups when none are given)."""
    svc = services()
    uid = params.uid()
    info = user_info(params, required=False)
    groups = params.group_ids(required=False, too_many=216631)
    register = params.choice("action_type", ("append", "replace"), "append") == "replace"
    encoded = params.encoded_images(svc.settings.limits.image_bytes)  # a missing image is 216101 first
    known = svc.library.groups_of(app_id(), uid)
    groups = groups or known
    if not register and (not known or set(groups) - set(known)):
        raise FaceError(216612, f"uid {uid} not registered in {','.join(groups) or 'any group'}")
    if not groups:
        raise FaceError(216101, "group_id is needed to register a new uid")
    new_faces = [new_face(decode_base64(text)) for text in encoded]
    svc.library.put_faces(app_id(), uid, groups, new_faces, info, replace=True)
    return {}


@endpoint(blueprint, f"{BASE}/user/delete")
def delete_user(params: Params) -> dict:
    uid = params.uid()
    groups = params.group_ids(required=False) or None
    services().library.remove_user(app_id(), uid, groups, missing_code=216612)
    return {}


@endpoint(blueprint, f"{BASE}/user/get")
def get_user(params: Params) -> dict:
    uid = params.uid()
    groups = params.group_ids(required=False) or None
    entries = services().library.user_entries(app_id(), uid, groups)
    if not entries:
        raise FaceError(216611, f"uid {uid} not found")
    result = [{"uid": uid, "user_info": info, "group_id": group} for group, info in entries]
    return {"result_num": len(result), "result": result}


@endpoint(blueprint, f"{BASE}/group/getlist")
def list_groups(params: Params) -> dict:
    start, count = page(params)
    result = services().library.list_groups(app_id(), start, count)
    return {"result_num": len(result), "result": result}


@endpoint(blueprint, f"{BASE}/group/getusers")
def list_users(params: Params) -> dict:
    group = params.group_ids()
    if len(group) != 1:
        raise FaceError(216100, "getusers takes one group_id")
    start, count = page(params)
    users = services().library.list_users(app_id(), group[0], start, count)
    result = [{"uid": uid, "user_info": info} for uid, info in users]
    return {"result_num": len(result), "result": result}


@endpoint(blueprint, f"{BASE}/group/adduser")
def copy_user(params: Params) -> dict:
    uid = params.uid()
    source = params.group_ids("src_group_id")
    targets = params.group_ids(too_many=216631)
    if len(source) != 1:
        raise FaceError(216100, "src_group_id takes one group")
    services().library.copy_user(app_id(), uid, source[0], targets)
    return {}


@endpoint(blueprint, f"{BASE}/group/deleteuser")
def remove_from_groups(params: Params) -> dict:
    uid = params.uid()
    groups = params.group_ids()
    services().library.remove_user(app_id(), uid, groups, keep=1)
    return {}
