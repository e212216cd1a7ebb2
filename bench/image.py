"""The CPU image's size and start: built from the repo's Dockerfile on the stand-in base
(deploy/stand-in-base.sh) by a Docker engine of its own (bench/docker_engine.py), then started
read-only on a fresh volume and restarted, timing `docker run`/`docker start` to /ready 200.
The same image without its .pyc files (a layer deleting every __pycache__) shows what
compiling at each start would cost, the other way to keep .pyc out of a read-only image.

    python -m bench.image [--starts 3]    # writes bench/results/image.json, prints a table
"""
from __future__ import annotations

import argparse
import json
import time

from bench.docker_engine import BASE_TAG, ROOT, DockerEngine, wait_ready

TAG = "facesvc-bench:cpu"
NO_PYC = "facesvc-bench:no-pyc"
RESULTS = ROOT / "bench" / "results" / "image.json"
MB = 1e6
# What the image holds under /opt/facesvc, in MB (du -sm).
PARTS = {
    "venv": "/opt/facesvc/.venv",
    "models": "/opt/facesvc/var/models",
    "pycache": "$(find /opt/facesvc -name __pycache__)",
}


def starts(engine: DockerEngine, image: str, count: int) -> list[float]:
    """Seconds to /ready: a first start on a new volume, then ``count - 1`` restarts."""
    name = image.replace(":", "-").replace("/", "-")
    seconds = []
    for n in range(count):
        started = time.monotonic()
        if n == 0:
            engine.run("run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp",
                       "--volume", f"{name}:/data", "--publish", "127.0.0.1::8080", image)
        else:
            engine.run("start", name)
        wait_ready(engine.port(name))
        seconds.append(round(time.monotonic() - started, 2))
        engine.run("stop", name)
    engine.run("rm", "-v", name)
    return seconds


def sizes(engine: DockerEngine) -> dict[str, float]:
    command = "; ".join(f"echo {part} $(du -scm {path} | tail -1 | cut -f1)" for part, path in PARTS.items())
    out = engine.run("run", "--rm", "--entrypoint", "sh", TAG, "-c", command).stdout
    return {part: float(megabytes) for part, megabytes in (line.split() for line in out.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    engine = DockerEngine()
    try:
        started = time.monotonic()
        engine.stand_ins()
        stand_ins_s = time.monotonic() - started
        build_s = engine.build(TAG)
        # Built again from its cache: what a rebuild costs when only the context is unchanged.
        rebuild_s = engine.build(TAG)
        engine.run("build", "--tag", NO_PYC, "-", input=(
            f"FROM {TAG}\nUSER root\nRUN find /opt/facesvc -name __pycache__ -prune -exec rm -rf {{}} +\nUSER facesvc\n"))
        result = {
            "image_mb": round(engine.inspect(TAG)["Size"] / MB, 1),
            "stand_in_base_mb": round(engine.inspect(BASE_TAG)["Size"] / MB, 1),
            "contents_mb": sizes(engine),
            "stand_ins_s": round(stand_ins_s, 1),
            "build_s": round(build_s, 1),
            "rebuild_cached_s": round(rebuild_s, 1),
            "ready_s": starts(engine, TAG, args.starts),
            "ready_without_pyc_s": starts(engine, NO_PYC, args.starts),
            "docker": engine.run("version", "--format", "{{.Server.Version}}").stdout.strip(),
            "note": "2 cores; stand-in base from Debian bookworm packages (deploy/stand-in-base.sh); "
                    "ready_s: docker run (then docker start) to /ready 200, read-only root, first on a new volume",
        }
    finally:
        engine.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'image':<28}{result['image_mb']:>8.0f} MB  (stand-in base {result['stand_in_base_mb']:.0f} MB)")
    for part, megabytes in result["contents_mb"].items():
        print(f"  {part:<26}{megabytes:>8.0f} MB")
    print(f"{'build (stand-ins ready)':<28}{result['build_s']:>8.1f} s   (stand-ins {result['stand_ins_s']:.0f} s, cached rebuild {result['rebuild_cached_s']:.0f} s)")
    print(f"{'to /ready, with .pyc':<28}{' '.join(f'{s:.1f}' for s in result['ready_s']):>14} s")
    print(f"{'to /ready, without .pyc':<28}{' '.join(f'{s:.1f}' for s in result['ready_without_pyc_s']):>14} s")


if __name__ == "__main__":
    main()
