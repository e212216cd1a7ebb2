"""The shipped deployment files: no Docker engine runs here, so the Dockerfile is read and held
to what makes it the tested path (install.sh, `facesvc models`) and a safe image (non-root,
health-checked); install.sh and the compose file are checked the same way."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

import pytest

from tests.helpers import ROOT


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their (KEYWORD, arguments) instructions; continuation lines joined,
    comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in joined.splitlines())):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def test_the_build_stage_has_node_and_installs_with_install_sh(stages):
    build = next(s for s in stages if s.name == "build")
    runs = " ".join(build.args("RUN"))
    assert re.search(r"apt-get install .*\bnodejs\b.*\bnpm\b", runs)
    assert "./install.sh" in runs  # which ends with `facesvc models`: the README's path
    assert (ROOT / "install.sh").read_text().rstrip().endswith(".venv/bin/facesvc models")


def test_the_image_bakes_in_and_verifies_the_models(stages):
    runtime = stages[-1]
    assert any(arg.startswith("--from=build /opt/facesvc") for arg in runtime.args("COPY"))
    assert "facesvc models" in runtime.args("RUN")
    env = " ".join(runtime.args("ENV"))
    assert "FACESVC_MODELS_DIR=/opt/facesvc/var/models" in env and "FACESVC_DATA_DIR=/data" in env


def test_the_image_runs_as_a_non_root_user(stages):
    users = stages[-1].args("USER")
    assert users and users[-1] not in ("root", "0")
    assert any("useradd" in run and users[-1] in run for run in stages[-1].args("RUN"))


def test_the_image_has_a_healthcheck_on_health_and_serves(stages):
    (check,) = stages[-1].args("HEALTHCHECK")
    assert check.split()[0].startswith("--") and "CMD" in check and "/health" in check
    assert stages[-1].args("CMD") == ['["facesvc", "serve"]']
    assert stages[-1].args("EXPOSE") == ["8080"]


def test_a_build_argument_switches_to_onnxruntime_gpu_on_a_cuda_base(stages):
    bases = {s.name: s.base for s in stages}
    assert bases["base-gpu"].startswith("nvidia/cuda:") and "cudnn" in bases["base-gpu"]
    assert bases["base"] == "base-${DEVICE}"
    build = next(s for s in stages if s.name == "build")
    assert any("--gpu" in run and "install.sh" in run for run in build.args("RUN"))
    assert re.search(r"--gpu\).*gpu=1", (ROOT / "install.sh").read_text())
    assert "onnxruntime-gpu" in (ROOT / "install.sh").read_text()


def test_install_sh_parses_and_refuses_unknown_options():
    subprocess.run(["bash", "-n", str(ROOT / "install.sh")], check=True)
    refused = subprocess.run([str(ROOT / "install.sh"), "--nope"], capture_output=True, text=True)
    assert refused.returncode == 2 and "usage" in refused.stderr


def test_docker_context_leaves_out_the_local_environment_and_models():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


def test_compose_runs_facesvc_on_a_redis_with_aof_on_a_volume():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r'"--appendonly", "yes"', compose)
    assert "redis-data:/data" in compose and "FACESVC_REDIS_URL: redis://redis:6379/0" in compose
    assert re.search(r"condition: service_healthy", compose)
