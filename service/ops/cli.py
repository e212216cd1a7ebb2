"""The ``facesvc`` command: serve, models, check, keys, import, export, restore."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.defaults import Settings, load_settings
from index.registry import IndexRegistry
from service.auth.credentials import Auth
from service.store.changes import load_all_faces
from service.library.check import check_library
from service.store.faces import FaceStore
from service.ops.library_commands import add_library_commands
from service.ops.files import announce_first_app, loose_modes, restrict_new_files
from service.ops.local_server import GUNICORN_CONF
from service.ops.logs import configure_logging
from service.store.redis_server import connect, ensure_redis, redis_for_command, terminate_with_parent
from workers.embedder import fused_model_id
from workers.models import ModelError, fetch_models, verify_models
from workers.pipeline import PROFILES

log = logging.getLogger("facesvc")


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    paths = fetch_models(settings.model_cache)
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    with redis_for_command(settings) as client:
        print_keys(Auth.from_settings(client, settings).create_keys(args.app_id))
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    """App ids and API keys, one pair a line; secrets are never shown (they are not stored)."""
    with redis_for_command(settings) as client:
        found = Auth.from_settings(client, settings).list_keys()
    print("APP_ID\tAPI_KEY\tCREATED")
    for key in found:
        print(f"{key.app_id}\t{key.api_key}\t{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(key.created))}")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with redis_for_command(settings) as client:
        revoked = Auth.from_settings(client, settings).revoke_key(args.api_key)
    if not revoked:
        log.error("no API key %s", args.api_key)
        return 1
    print(f"revoked {args.api_key}; its tokens no longer work")
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 1 when Redis records, memberships and a freshly built index disagree."""
    specs = PROFILES[settings.models.profile]
    model_id = fused_model_id(list(specs))
    with redis_for_command(settings) as client:
        store = FaceStore(client)
        registry = IndexRegistry(sum(spec.dim for spec in specs), settings.index.approx_from)
        load_all_faces(store, registry, model_id)
        problems = check_library(store, registry, model_id)
    for problem in problems:
        print(problem)
    for warning in loose_modes(settings.data_dir):
        print(f"warning: {warning}")
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def print_keys(keys) -> None:
    """Keys go to stdout for the operator, never through logging."""
    print(f"APP_ID={keys.app_id}\nAPI_KEY={keys.api_key}\nSECRET_KEY={keys.secret_key}", flush=True)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        verify_models(settings.model_cache)
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    url, server = ensure_redis(settings.redis_url, settings.data_dir, settings.redis_appendfsync)
    try:
        client = connect(url)
        given = FaceStore(client).give_tokens()
        if given:
            log.info("gave %d faces stored before face tokens existed their tokens", given)
        auth = Auth.from_settings(client, settings)
        if not auth.has_apps():
            announce_first_app(auth.create_keys(), settings.data_dir, sys.stdout)
        env = {
            # OpenCV's native warnings bypass logging and would break JSON log lines.
            "OPENCV_LOG_LEVEL": "ERROR",
            **os.environ,
            "FACESVC_REDIS_URL": url,
            "PROMETHEUS_MULTIPROC_DIR": str(fresh_metrics_dir(settings)),
        }
        return run_gunicorn(env)
    finally:
        if server:
            server.stop()


def fresh_metrics_dir(settings: Settings) -> Path:
    """An empty folder for the workers' Prometheus samples: files of an earlier run would add
    its counts to this one's."""
    shutil.rmtree(settings.metrics_dir, ignore_errors=True)
    settings.metrics_dir.mkdir(parents=True)
    return settings.metrics_dir


def run_gunicorn(env: dict[str, str]) -> int:
    """Run gunicorn until it exits; SIGTERM/SIGINT are passed on so the embedded Redis is
    stopped only after the workers have finished their requests. If this process is killed,
    the kernel stops gunicorn too (it would serve on without its Redis)."""
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    process = subprocess.Popen(command, env=env, preexec_fn=terminate_with_parent)

    def forward(signum, frame):
        process.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    return process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facesvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service under gunicorn").set_defaults(run=cmd_serve)
    sub.add_parser("models", help="fetch, convert and verify the model files").set_defaults(run=cmd_models)
    sub.add_parser("check", help="verify that the library's records and indexes agree").set_defaults(run=cmd_check)
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create an app (or a key pair for --app-id)")
    create.add_argument("--app-id", default=None)
    create.set_defaults(run=cmd_keys_create)
    keys_sub.add_parser("list", help="list app ids and API keys (never secrets)").set_defaults(run=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="delete a key pair; its tokens stop working")
    revoke.add_argument("api_key")
    revoke.set_defaults(run=cmd_keys_revoke)
    add_library_commands(sub)
    args = parser.parse_args(argv)
    restrict_new_files()
    settings = load_settings()
    configure_logging(settings.log_format)
    try:
        return args.run(settings, args)
    except ModelError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
