"""Baidu's official SDKs as test clients: install them, point them at a facesvc, run calls.

The SDKs hard-code https://aip.baidubce.com. They are never edited: the Python SDKs get their URL
attributes overridden on the client object (``point_at``, as the README shows users), the Node
SDK gets its ``request`` module wrapped in the runner script (tests/sdk/run_node.js). Each
Python version installs ``--no-deps`` into its own folder under the git-ignored var/sdk (their
``aip`` packages cannot share a site-packages; requests and Pillow come from the test extras)
and is imported one at a time; each Node version installs with npm into its own prefix there.
The v2-era SDKs (1.6.9.0, 2.0.0.1, Node 1.5.1) speak v2; the current ones (4.16.13, Node
4.16.16) speak v3.
"""
from __future__ import annotations

import base64
import importlib
import json
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from service.auth.credentials import AppKeys
from tests.live import TALLY

ROOT = Path(__file__).resolve().parent.parent
SDK_DIR = ROOT / "var" / "sdk"
NODE_RUNNER = Path(__file__).resolve().parent / "sdk" / "run_node.js"
BAIDU = "https://aip.baidubce.com"
PYTHON_SDKS = ("1.6.9.0", "2.0.0.1")
NODE_SDK = ("baidu-aip-sdk", "1.5.1")
PYTHON_SDK_V3 = "4.16.13"
NODE_SDK_V3 = "4.16.16"
# Imported but not declared: 4.16.13's aip/nlp.py imports chardet (loaded by aip/__init__.py).
UNDECLARED = {"4.16.13": ("chardet==5.2.0",)}
# A scope no token of facesvc has: with it the Python SDKs sign every request (bce-auth-v1).
NO_SCOPE = "facesvc_signed_requests"


@dataclass(frozen=True)
class Photo:
    """An image argument: the Python SDKs take the bytes, the Node SDK their base64."""

    data: bytes


def install_python_sdk(version: str) -> Path:
    """baidu-aip==version from PyPI, with what it imports undeclared, into
    var/sdk/baidu-aip-<version> (once)."""
    target = SDK_DIR / f"baidu-aip-{version}"
    if not (target / "aip" / "face.py").exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(partial)]
        subprocess.run([*pip, f"baidu-aip=={version}", *UNDECLARED.get(version, ())], check=True, timeout=600)
        partial.rename(target)  # only a complete install gets the real name
    return target


def install_node_sdk(version: str = NODE_SDK[1]) -> Path:
    """baidu-aip-sdk@version from npm (once) into var/sdk/node-<version> (1.5.1: var/sdk/node,
    where it always was); returns the package folder."""
    prefix = SDK_DIR / ("node" if version == NODE_SDK[1] else f"node-{version}")
    name = NODE_SDK[0]
    package = prefix / "node_modules" / name
    manifest = package / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
        prefix.mkdir(parents=True, exist_ok=True)
        npm = ["npm", "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund"]
        subprocess.run([*npm, f"{name}@{version}"], check=True, timeout=600)
    return package


@contextmanager
def aip_module(target: Path) -> Iterator[ModuleType]:
    """Import the ``aip`` package from ``target``, hiding any other copy while it is loaded."""
    def loaded() -> dict[str, ModuleType]:
        return {name: module for name, module in sys.modules.items() if name == "aip" or name.startswith("aip.")}

    hidden = loaded()
    for name in hidden:
        del sys.modules[name]
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module("aip")
    finally:
        sys.path.remove(str(target))
        for name in loaded():
            del sys.modules[name]
        sys.modules.update(hidden)


def point_at(client: Any, base: str) -> None:
    """Send every request of a Python AipFace to ``base`` instead of Baidu: its URLs are
    name-mangled class attributes, so instance attributes of the same names win."""
    for cls in type(client).__mro__:
        for name, value in vars(cls).items():
            if isinstance(value, str) and value.startswith(BAIDU):
                setattr(client, name, base + value[len(BAIDU):])


class PythonSdk:
    """One version of the Python SDK (``baidu-aip``)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.name = f"python-{version}"
        self.target = install_python_sdk(version)

    def client(self, base: str, keys: AppKeys, signed: bool = False, timeout_ms: int = 0) -> Any:
        with aip_module(self.target) as aip:
            client = aip.AipFace(keys.app_id, keys.api_key, keys.secret_key)
        point_at(client, base)
        if signed:
            client._AipBase__scope = NO_SCOPE
        if timeout_ms:
            client.setSocketTimeoutInMillis(timeout_ms)
        return client

    def run(self, base: str, keys: AppKeys, calls: list[tuple[str, tuple]], signed: bool = False, timeout_ms: int = 0) -> tuple[list[Any], str]:
        """Answers of ``calls`` ((method, args) with Photo arguments) made by a new client, and
        the token it used."""
        client = self.client(base, keys, signed, timeout_ms)
        return self.run_on(client, calls), client._authObj.get("access_token", "")

    def run_on(self, client: Any, calls: list[tuple[str, tuple]]) -> list[Any]:
        TALLY[f"calls through SDK {self.name}"] += len(calls)
        return [getattr(client, method)(*(self._argument(a) for a in args)) for method, args in calls]

    def _argument(self, value: Any) -> Any:
        if isinstance(value, Photo):
            return value.data
        if isinstance(value, list) and value and isinstance(value[0], Photo):
            return [photo.data for photo in value]
        # 1.x joins a list of group ids itself; 2.x sends a list as repeated keys, its docs pass
        # "g1,g2".
        if isinstance(value, list) and self.version.startswith("2."):
            return ",".join(value)
        return value


class NodeSdk:
    """One version of the Node SDK (``baidu-aip-sdk``), driven by tests/sdk/run_node.js in a
    node process."""

    # The Python SDKs' method names -> Node's (4.16.16's multiSearch posts to a broken URL).
    METHODS = {
        "getGroupList": "getGrouplist",
        "addGroupUser": "addGroupUsers",
        "deleteGroupUser": "deleteGroupUsers",
        "multiSearch": "faceMultiSearchV3",
    }

    def __init__(self, version: str = NODE_SDK[1]) -> None:
        self.package = install_node_sdk(version)
        self.name = f"node-{version}"

    def run(self, base: str, keys: AppKeys, calls: list[tuple[str, tuple]], signed: bool = False, timeout_ms: int = 0) -> tuple[list[Any], str]:
        plan = {
            "sdk": str(self.package),
            "base": base,
            "keys": [keys.app_id, keys.api_key, keys.secret_key],
            "signed": signed,
            "timeout_ms": timeout_ms,
            "calls": [[self.METHODS.get(method, method), [self._argument(a) for a in args]] for method, args in calls],
        }
        done = subprocess.run(
            ["node", str(NODE_RUNNER)], input=json.dumps(plan), capture_output=True, text=True, timeout=600, check=True
        )
        result = json.loads(done.stdout)
        TALLY[f"calls through SDK {self.name}"] += len(calls)
        return result["answers"], result["token"]

    def _argument(self, value: Any) -> Any:
        if isinstance(value, Photo):
            return base64.b64encode(value.data).decode()
        if isinstance(value, list):
            return [self._argument(item) for item in value]
        return value
