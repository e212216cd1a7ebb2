"""The face library: faceset/user/*, faceset/face/* and faceset/group/* (v3 spec §3.5-§3.15).

One library with v2: a v3 user is a v2 uid, its faces are v2's images, and a group made here
stays until group/delete even when empty (README, "One library, two APIs")."""
from __future__ import annotations

import time

from flask import Blueprint

from service.api.endpoint import app_id, services
from service.api.params import Params
from service.api.v3 import API, images
from service.api.v3.detect import face_type
from service.api.v3.images import Controls
from service.api.v3.schema import ALL_GROUPS, TOKEN_MAX_BYTES
from service.errors import FaceError
from service.library.face_library import NewFace

blueprint = Blueprint("v3_faceset", __name__)

REGISTER = ("user_info", "quality_control", "liveness_control", "action_type", "face_type")


def existing_group(params: Params, name: str = "group_id") -> str:
    """A group id that must name an existing group (223100)."""
    group = params.group(name)
    if services().library.missing_groups(app_id(), [group]):
        raise FaceError(223100, f"group {group}")
    return group


def groups_or_all(params: Params) -> list[str] | None:
    """group_id, or None for ``@ALL`` (every group of the user)."""
    if params.text("group_id") == ALL_GROUPS:
        return None
    return [existing_group(params)]


def action(params: Params, options: tuple[str, ...]) -> str:
    """action_type, the first of ``options`` by default."""
    return params.choice("action_type", options, options[0], upper=True)


def register(params: Params, replace: bool, must_exist: bool) -> dict:
    """Store the image's largest face for the user in the group; the answer of add and update."""
    svc = services()
    images.check_image(params)
    group, uid = params.group(), params.uid("user_id")
    info = params.user_info(svc.settings.limits.user_info_bytes, required=False)
    face_type(params)
    if must_exist and group not in svc.library.groups_of(app_id(), uid):
        raise FaceError(223100 if svc.library.missing_groups(app_id(), [group]) else 223103, f"user {uid} in {group}")
    seen = images.largest_face(params, svc.settings.limits.image_bytes, Controls.of(params), enrolling=True)
    svc.library.put_faces(app_id(), uid, [group], [NewFace(seen.digest, seen.vector, seen.token)], info, replace, keep_groups=True)
    return {"face_token": seen.token, **{k: v for k, v in seen.placement().items() if k == "location"}}


@API.endpoint(blueprint, "/faceset/user/add", "Registered", ("image", "image_type", "group_id", "user_id"), REGISTER)
def add_user(params: Params) -> dict:
    """Register a face of a user in a group (v3 spec 3.5)

    action_type APPEND (default) adds the face, REPLACE drops the user's other faces in the
    group; a missing group is made. The same photo twice for one user: 223105."""
    return register(params, action(params, ("APPEND", "REPLACE")) == "REPLACE", must_exist=False)


@API.endpoint(blueprint, "/faceset/user/update", "Registered", ("image", "image_type", "group_id", "user_id"), REGISTER)
def update_user(params: Params) -> dict:
    """Replace a user's faces in a group with one (v3 spec 3.6)

    action_type UPDATE (default) needs the user in the group (223103); REPLACE registers it
    when absent."""
    return register(params, True, must_exist=action(params, ("UPDATE", "REPLACE")) == "UPDATE")


@API.endpoint(blueprint, "/faceset/face/delete", "Done", ("user_id", "group_id", "face_token"))
def delete_face(params: Params) -> None:
    """Delete one face of a user (v3 spec 3.7); the user goes with its last face"""
    uid, group = params.uid("user_id"), params.group()
    token = params.text("face_token") or ""
    if len(token) > TOKEN_MAX_BYTES:
        raise FaceError(216100, f"face_token longer than {TOKEN_MAX_BYTES} bytes", param="face_token")
    services().library.delete_face(app_id(), uid, group, token)
    return None


@API.endpoint(blueprint, "/faceset/user/get", "UserGroups", ("user_id", "group_id"))
def get_user(params: Params) -> dict:
    """A user's user_info in a group, or in every group with @ALL (v3 spec 3.8)"""
    uid = params.uid("user_id")
    entries = services().library.user_entries(app_id(), uid, groups_or_all(params))
    if not entries:
        raise FaceError(223103, f"user {uid}")
    return {"user_list": [{"user_info": info, "group_id": group} for group, info in entries]}


@API.endpoint(blueprint, "/faceset/face/getlist", "FaceList", ("user_id", "group_id"))
def face_list(params: Params) -> dict:
    """The faces of a user in a group, oldest first (v3 spec 3.9); ctime in UTC"""
    uid, group = params.uid("user_id"), existing_group(params)
    faces = services().library.user_faces(app_id(), group, uid)
    if not faces:
        raise FaceError(223103, f"user {uid} in {group}")
    return {
        "face_list": [
            {"face_token": token, "ctime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created))} for token, created in faces
        ]
    }


@API.endpoint(blueprint, "/faceset/group/getusers", "UserIds", ("group_id",), ("start", "length"))
def list_users(params: Params) -> dict:
    """User ids of a group in joining order (v3 spec 3.10)"""
    group = existing_group(params)
    users = services().library.list_users(app_id(), group, params.integer("start"), params.integer("length"))
    return {"user_id_list": [uid for uid, _ in users]}


@API.endpoint(blueprint, "/faceset/user/copy", "Done", ("user_id", "src_group_id", "dst_group_id"))
def copy_user(params: Params) -> None:
    """Copy a user with its faces into another existing group (v3 spec 3.11)

    223111 when the destination does not exist, 223102 when the user is in it already."""
    uid = params.uid("user_id")
    source, target = params.group("src_group_id"), params.group("dst_group_id")
    if source == target:
        raise FaceError(223102, f"user {uid} is in {target}")
    services().library.copy_user(app_id(), uid, source, [target], targets_exist=True)
    return None


@API.endpoint(blueprint, "/faceset/user/delete", "Done", ("group_id", "user_id"))
def delete_user(params: Params) -> None:
    """Remove a user from a group, or from every group with @ALL (v3 spec 3.12)"""
    uid = params.uid("user_id")
    services().library.remove_user(app_id(), uid, groups_or_all(params))
    return None


@API.endpoint(blueprint, "/faceset/group/add", "Done", ("group_id",))
def add_group(params: Params) -> None:
    """Make an empty group, which stays until group/delete (v3 spec 3.13)"""
    services().library.add_group(app_id(), params.group())
    return None


@API.endpoint(blueprint, "/faceset/group/delete", "Done", ("group_id",))
def delete_group(params: Params) -> None:
    """Delete a group with all its users and their faces (v3 spec 3.14)"""
    services().library.delete_group(app_id(), params.group())
    return None


@API.endpoint(blueprint, "/faceset/group/getlist", "GroupIds", (), ("start", "length"))
def list_groups(params: Params) -> dict:
    """Group ids in creation order, v2's included (v3 spec 3.15)"""
    groups = services().library.list_groups(app_id(), params.integer("start"), params.integer("length"))
    return {"group_id_list": groups}
