"""The face library: faceset/user/* and faceset/group/* (spec §1.7-§1.14)."""
from __future__ import annotations

from flask import Blueprint

from service import inference
from service.api.endpoint import app_id, services
from service.api.params import Params, decode_base64
from service.api.v2 import API
from service.errors import FaceError
from service.library import enrolment
from service.library.face_library import NewFace, photo_digest

blueprint = Blueprint("v2_faceset", __name__)


def new_faces(encoded: list[str]) -> list[NewFace]:
    """The request's base64 images (one, or several comma-joined as the C# chapter sends
    them) as faces to store; any unusable image, or a face the enrolment gate refuses, fails
    the request before anything is written."""
    svc = services()
    photos = [decode_base64(text) for text in encoded]
    faces = []
    for data in photos:
        probe = inference.probe(svc.pipeline, data)
        enrolment.check(probe.face, svc.settings.enrolment)
        faces.append(NewFace(photo_digest(data), probe.vector))
    return faces


def page(params: Params) -> tuple[int, int]:
    """start with num (SDKs) or end (chapter 1 calls the page size "end")."""
    return params.integer("start"), params.integer("num" if params.present("num") else "end")


@API.endpoint(blueprint, "/faceset/user/add", "Done", ("uid", "user_info", "group_id", "image"), ("action_type",))
def add_user(params: Params) -> dict:
    """Register a face of a user in groups (spec 1.7)"""
    svc = services()
    uid = params.uid()
    info = params.user_info(svc.settings.limits.user_info_bytes, required=True)
    groups = params.group_ids(too_many=216631)
    replace = params.choice("action_type", ("append", "replace"), "append") == "replace"
    faces = new_faces(params.encoded_images(svc.settings.limits.image_bytes))
    if replace:  # §1.7.2: the new photos replace all of the uid's photos in the library
        groups = list(dict.fromkeys(groups + svc.library.groups_of(app_id(), uid)))
    svc.library.put_faces(app_id(), uid, groups, faces, info, replace)
    return {}


@API.endpoint(blueprint, "/faceset/user/update", "Done", ("uid", "image"), ("user_info", "group_id", "action_type"))
def update_user(params: Params) -> dict:
    """Replace a user's faces (spec 1.8)

    In the given groups, or all of the uid's groups when none are given."""
    svc = services()
    uid = params.uid()
    info = params.user_info(svc.settings.limits.user_info_bytes, required=False)
    groups = params.group_ids(required=False, too_many=216631)
    register = params.choice("action_type", ("append", "replace"), "append") == "replace"
    encoded = params.encoded_images(svc.settings.limits.image_bytes)  # a missing image is 216101 first
    known = svc.library.groups_of(app_id(), uid)
    groups = groups or known
    if not register and (not known or set(groups) - set(known)):
        raise FaceError(216612, f"uid {uid} not registered in {','.join(groups) or 'any group'}")
    if not groups:
        raise FaceError(216101, "group_id is needed to register a new uid")
    svc.library.put_faces(app_id(), uid, groups, new_faces(encoded), info, replace=True)
    return {}


@API.endpoint(blueprint, "/faceset/user/delete", "Done", ("uid",), ("group_id",))
def delete_user(params: Params) -> dict:
    """Delete a user from all or some groups (spec 1.9)"""
    uid = params.uid()
    groups = params.group_ids(required=False) or None
    services().library.remove_user(app_id(), uid, groups, missing_code=216612)
    return {}


@API.endpoint(blueprint, "/faceset/user/get", "UserEntries", ("uid",), ("group_id",))
def get_user(params: Params) -> dict:
    """A user's user_info per group (spec 1.10)"""
    uid = params.uid()
    groups = params.group_ids(required=False) or None
    entries = services().library.user_entries(app_id(), uid, groups)
    if not entries:
        raise FaceError(216611, f"uid {uid} not found")
    result = [{"uid": uid, "user_info": info, "group_id": group} for group, info in entries]
    return {"result_num": len(result), "result": result}


@API.endpoint(blueprint, "/faceset/group/getlist", "Groups", (), ("start", "num", "end"))
def list_groups(params: Params) -> dict:
    """Groups in creation order (spec 1.11)"""
    start, count = page(params)
    result = services().library.list_groups(app_id(), start, count)
    return {"result_num": len(result), "result": result}


@API.endpoint(blueprint, "/faceset/group/getusers", "Users", ("group_id",), ("start", "num", "end"))
def list_users(params: Params) -> dict:
    """Users of a group (spec 1.12)"""
    group = params.group_ids()
    if len(group) != 1:
        raise FaceError(216100, "getusers takes one group_id")
    start, count = page(params)
    users = services().library.list_users(app_id(), group[0], start, count)
    result = [{"uid": uid, "user_info": info} for uid, info in users]
    return {"result_num": len(result), "result": result}


@API.endpoint(blueprint, "/faceset/group/adduser", "Done", ("uid", "group_id"), ("src_group_id",))
def copy_user(params: Params) -> dict:
    """Copy a user into groups (spec 1.13)

    Without src_group_id (the C# chapter's form) the source is the uid's one group; a uid in
    several groups must name it (216100)."""
    library = services().library
    uid = params.uid()
    source = params.group_ids("src_group_id", required=False) or library.groups_of(app_id(), uid)
    targets = params.group_ids(too_many=216631)
    if not source:
        raise FaceError(216611, f"uid {uid} is in no group")
    if len(source) != 1:
        raise FaceError(216100, "src_group_id takes one group (needed when the uid is in several)")
    library.copy_user(app_id(), uid, source[0], targets)
    return {}


@API.endpoint(blueprint, "/faceset/group/deleteuser", "Done", ("uid", "group_id"), ())
def remove_from_groups(params: Params) -> dict:
    """Remove a user from groups (spec 1.14)"""
    uid = params.uid()
    groups = params.group_ids()
    services().library.remove_user(app_id(), uid, groups, keep=1)
    return {}
