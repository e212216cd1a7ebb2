"""Debian packages the benchmarks and tests need (HAProxy, Docker, Chromium...), installed when
missing: CI starts from a clean machine."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path


def ensure_debian_packages(packages: dict[str, str]) -> None:
    """The Debian package of each missing file of ``packages`` (file -> package), installed
    with apt-get."""
    missing = sorted({package for path, package in packages.items() if not Path(path).exists()})
    if missing:
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=apt, timeout=900)
