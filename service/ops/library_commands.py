"""``facesvc import``, ``export`` and ``restore``: bulk work on one app's face library,
in-process against Redis (see service/library/offline.py)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import redis

from config.defaults import Settings
from service.store import keys
from service.library.backup import export_library, read_export, restore_library
from service.errors import FaceError
from service.library.folder_import import FolderImport, read_user_info
from service.library.face_library import Library
from service.library.offline import offline_library
from service.library.ids import GROUP_MAX_BYTES, check_id
from service.inference import load_pipeline
from service.store.faces import FaceStore
from service.store.redis_server import redis_for_command

log = logging.getLogger(__name__)


class CommandError(Exception):
    """A mistake in the command's arguments or state, told to the operator."""


def add_library_commands(sub: argparse._SubParsersAction) -> None:
    importer = sub.add_parser("import", help="register a folder of photos (one sub-folder per uid) into a group")
    importer.add_argument("folder", type=Path)
    importer.add_argument("--group", required=True, help="group id to register into")
    importer.add_argument("--user-info", type=Path, help="CSV of uid,user_info")
    importer.add_argument("--workers", type=int, default=2, help="photos embedded in parallel (default 2)")
    importer.add_argument("--app-id", help="needed when there is more than one app")
    importer.set_defaults(run=cmd_import)
    export = sub.add_parser("export", help="write an app's library (users, groups, faces) to a file")
    export.add_argument("file", type=Path)
    export.add_argument("--app-id", help="needed when there is more than one app")
    export.set_defaults(run=cmd_export)
    restore = sub.add_parser("restore", help="write an exported library back (skips faces already there)")
    restore.add_argument("file", type=Path)
    restore.add_argument("--app-id", help="restore into this app instead of the exported one")
    restore.set_defaults(run=cmd_restore)


def resolve_app(client: redis.Redis, requested: Optional[str]) -> str:
    """The app to work on: the one asked for, or the only one there is."""
    apps = sorted(a.decode() for a in client.hkeys(keys.apps()))
    if requested:
        if requested not in apps:
            raise CommandError(f"no app {requested}; apps: {', '.join(apps) or 'none'}")
        return requested
    if len(apps) != 1:
        raise CommandError(f"--app-id is needed: apps are {', '.join(apps) or 'none yet'}")
    return apps[0]


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        return fail(f"{args.folder} is not a folder")
    try:
        group = check_id(args.group, GROUP_MAX_BYTES, "group")
        infos = read_user_info(args.user_info, settings.limits.user_info_bytes) if args.user_info else {}
    except (FaceError, ValueError, OSError) as exc:
        return fail(str(exc))
    with redis_for_command(settings) as client:
        try:
            app = resolve_app(client, args.app_id)
        except CommandError as exc:
            return fail(str(exc))
        pipeline = load_pipeline(settings)
        library = offline_library(client, pipeline.model_id)
        summary = FolderImport(pipeline, library, app, group, infos).run(args.folder, args.workers, sys.stderr.isatty())
    print("\n".join(summary.lines()))
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    with redis_for_command(settings) as client:
        try:
            app = resolve_app(client, args.app_id)
        except CommandError as exc:
            return fail(str(exc))
        counts = export_library(FaceStore(client), app, args.file)
    print(f"exported app {app}: {counts.users} users, {counts.faces} faces to {args.file}")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    try:
        header, records = read_export(args.file)
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    app = args.app_id or header["app_id"]
    with redis_for_command(settings) as client:
        libraries: dict[str, Library] = {}

        def library_for(model: str) -> Library:
            return libraries.setdefault(model, offline_library(client, model))

        counts = restore_library(header, records, app, library_for)
        registered = client.hexists(keys.apps(), app)
    print(f"restored into app {app}: {counts.users} users, {counts.faces} new faces")
    if not registered:
        print(f"app {app} has no API key here yet: facesvc keys create --app-id {app}")
    return 0


def fail(message: str) -> int:
    log.error("%s", message)
    return 1
