"""Baidu's error codes (spec §1.15) in one table, and the exception that carries them.

Handlers raise ``FaceError(code, detail)``; the app's one error handler renders
``{"error_code", "error_msg", "log_id"}`` with HTTP 200, as Baidu does. ``error_msg`` is the
table's message verbatim (clients match on it); the detail goes to the request's log line.
"""
from __future__ import annotations

from typing import Optional

# code -> message, exactly as chapter 1.15 of the spec gives them. 216612 and 216619 appear
# in the examples of 1.8/1.9 and 1.14 rather than the table.
ERRORS: dict[int, str] = {
    4: "Open api request limit reached",
    17: "Open api daily request limit reached",
    18: "Open api qps request limit reached",
    19: "Open api total request limit reached",
    100: "Invalid parameter",
    110: "Access token invalid or no longer valid",
    111: "Access token expired",
    216015: "module closed",
    216100: "invalid param",
    216101: "not enough param",
    216102: "service not support",
    216103: "param too long",
    216110: "appid not exist",
    216111: "invalid userid",
    216200: "empty image",
    216201: "image format error",
    216202: "image size error",
    216300: "db error",
    216400: "backend error",
    216401: "internal error",
    216402: "face not found",
    216500: "unknown error",
    216611: "user not exist",
    216612: "user not exist",
    216613: "fail to delete user record",
    216614: "not enough images",
    216615: "fail to process images",
    216616: "image existed",
    216617: "fail to add user",
    216618: "no user in group",
    216619: "user must be in one group at least",
    216631: "request add user overlimit",
}


# Messages the spec's examples give for one condition instead of the table's (clients match on
# them): adduser into a group the uid is already in, §1.13.3 and every SDK chapter's example.
ALREADY_ADDED = "already add"


class FaceError(Exception):
    """A Baidu error; ``detail`` says which parameter or condition, for the log. ``message``
    replaces the table's only for the special cases above."""

    def __init__(self, code: int, detail: Optional[str] = None, message: Optional[str] = None) -> None:
        if code not in ERRORS:
            raise KeyError(f"unknown Baidu error code {code}")
        super().__init__(f"{code} {message or ERRORS[code]}" + (f": {detail}" if detail else ""))
        self.code = code
        self.detail = detail
        self._message = message

    @property
    def message(self) -> str:
        return self._message or ERRORS[self.code]
