"""What a uid and a group id may be: the library stores them in key names and answers them in
every API version, so one rule holds for all (spec §1.7.2: letters, digits and underscores)."""
from __future__ import annotations

import re

from service.errors import FaceError

ID_PATTERN = re.compile(r"[A-Za-z0-9_]+")
UID_MAX_BYTES = 128
GROUP_MAX_BYTES = 128  # §1.5.2, §1.7.2: 128 B (the SDK chapters' 48 is the older limit)


def check_id(value: str, max_bytes: int, name: str, code: int = 216100) -> str:
    # fullmatch: "$" would also match before a final newline ("uid\n" beside "uid").
    if not value or len(value.encode()) > max_bytes or not ID_PATTERN.fullmatch(value):
        raise FaceError(code, f"{name} must be 1-{max_bytes} letters, digits or underscores", param=name)
    return value
