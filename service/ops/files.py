"""Who may read what facesvc writes: the library (the AOF holds user_info, face vectors,
password hashes, sealed secrets and token digests), index snapshots, metrics, keys. Every
entry point makes new files 0600 and folders 0700 before writing anything; ``facesvc check``
reports what an older version or another tool left readable by others."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

from service.auth.credentials import AppKeys

PRIVATE_UMASK = 0o077
FIRST_APP_FILE = "first-app.keys"


def restrict_new_files() -> None:
    """New files 0600 and folders 0700 for this process and its children (gunicorn workers,
    the embedded redis-server)."""
    os.umask(PRIVATE_UMASK)


def loose_modes(data_dir: Path) -> list[str]:
    """Files and folders under ``data_dir`` that others than their owner may read or enter."""
    if not data_dir.exists():
        return []
    found = []
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path}: mode {mode:04o}, readable by others than its owner (want {'0700' if path.is_dir() else '0600'})")
    return found


def announce_first_app(keys: AppKeys, data_dir: Path, out: TextIO) -> Path:
    """Tell the operator about the app ``serve`` created: its ids on ``out`` (a service log when
    run by systemd or Docker), its secret only in a 0600 file, and on ``out`` too when that is
    a terminal."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FIRST_APP_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"APP_ID={keys.app_id}\nAPI_KEY={keys.api_key}\nSECRET_KEY={keys.secret_key}\n")
    print(f"No app existed; created APP_ID={keys.app_id} API_KEY={keys.api_key}.", file=out)
    if out.isatty():
        print(f"SECRET_KEY={keys.secret_key} (shown once; also in {path})", file=out, flush=True)
    else:
        print(f"Its SECRET_KEY is in {path}, readable by this user only.", file=out, flush=True)
    return path
