"""The shipped deployment files, read: the Dockerfile held to what makes it the tested path
(install.sh, `facesvc models`) and a safe image (non-root, health-checked, data-only volume);
install.sh and the compose file the same way. tests/test_docker.py builds and runs them (slow);
these checks take a second."""
from __future__ import annotations

import configparser
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import yaml  # PyYAML, which schemathesis (a test extra) requires

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
    comments dropped. The instructions before the first FROM (global ARGs) are a stage named
    "global" with no base."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    stages: list[Stage] = [Stage("", "global")]
    for line in filter(None, (line.strip() for line in joined.splitlines())):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base, name))
        else:
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


def test_a_build_argument_switches_to_onnxruntime_gpu_with_its_cuda_libraries(stages):
    """One FROM names an image, chosen by BASE; the others name earlier stages. The GPU image
    needs no CUDA base: onnxruntime-gpu 1.31 (CUDA 13) brings CUDA's and cuDNN's libraries as
    its extras, the build measured on an H200; a CUDA 12 base, as documented before, could not
    have run it."""
    assert "BASE=python:3.11-slim-bookworm" in stages[0].args("ARG")
    assert [s.base for s in stages[1:]] == ["${BASE}", "base", "base"]
    header = (ROOT / "Dockerfile").read_text().split("\nARG ")[0]
    assert re.search(r"docker build -t facesvc:gpu --build-arg DEVICE=gpu \.\n", header) and "cuda:12" not in header
    build = next(s for s in stages if s.name == "build")
    assert "DEVICE=cpu" in build.args("ARG")
    assert any('[ "$DEVICE" = gpu ] && echo --gpu' in run and "install.sh" in run for run in build.args("RUN"))
    install = (ROOT / "install.sh").read_text()
    assert re.search(r"--gpu\).*gpu=1", install)
    assert 'ort_gpu="onnxruntime-gpu==1.31.1"' in install and '"${ort_gpu/==/[cuda,cudnn]==}"' in install


def test_the_volume_is_for_data_only(stages):
    """The user's home is not the volume (it filled /data with .bashrc, .profile, .cache), which
    starts private to uid 10001."""
    runtime = stages[-1]
    (useradd,) = [run for run in runtime.args("RUN") if "useradd" in run]
    assert "--uid 10001" in useradd and "--home-dir /nonexistent --no-create-home" in useradd
    assert "install -d -o facesvc -g facesvc -m 0700 /data" in useradd
    assert runtime.args("VOLUME") == ["/data"]


def test_the_service_imports_without_the_test_extras():
    """The image installs no test extras: the CLI, the WSGI entry point and gunicorn's
    configuration import with every extra's module hidden (a top-level `import requests` in
    service/ops/local_server.py once broke `facesvc` in the image)."""
    extras = configparser.ConfigParser()
    extras.read(ROOT / "setup.cfg")
    names = [re.split(r"[<>=\[ ]", line.strip())[0] for line in extras["options.extras_require"]["test"].splitlines()]
    modules = {"Pillow": "PIL", "jsonschema-rs": "jsonschema_rs"}
    hidden = [modules.get(name, name) for name in names if name and not name.startswith("#")]
    assert "requests" in hidden and "PIL" in hidden
    script = (
        "import sys, runpy\n"
        f"for name in {hidden!r}: sys.modules[name] = None  # import fails\n"
        "import service.ops.cli, service.wsgi\n"
        "runpy.run_path('config/gunicorn.conf.py')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)


def test_install_sh_parses_and_refuses_unknown_options():
    subprocess.run(["bash", "-n", str(ROOT / "install.sh")], check=True)
    refused = subprocess.run([str(ROOT / "install.sh"), "--nope"], capture_output=True, text=True)
    assert refused.returncode == 2 and "usage" in refused.stderr


def test_docker_context_leaves_out_the_local_environment_and_models():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


def test_compose_runs_facesvc_on_a_redis_with_aof_on_a_volume():
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r'"--appendonly", "yes", "--appendfsync", "always"', compose)
    assert "redis-data:/data" in compose and "FACESVC_REDIS_URL: redis://redis:6379/0" in compose
    assert re.search(r"condition: service_healthy", compose)
    # Images as variables (a mirror, or the tests' stand-ins); facesvc read-only but for its
    # volume and /tmp, with time for gunicorn's 30 s graceful stop.
    services = yaml.safe_load(compose)["services"]
    assert services["redis"]["image"] == "${REDIS_IMAGE:-redis:7.4-alpine}"
    facesvc = services["facesvc"]
    assert facesvc["image"] == "${FACESVC_IMAGE:-facesvc:latest}"
    assert (facesvc["read_only"], facesvc["tmpfs"], facesvc["stop_grace_period"]) == (True, ["/tmp"], "40s")


KUBERNETES_VALIDATE = "kubernetes-validate==1.37.0"  # JSON schemas of Kubernetes 1.x bundled: no cluster, no network
MANIFEST = ROOT / "deploy" / "kubernetes" / "facesvc.yaml"


@pytest.mark.slow  # installs kubernetes-validate from PyPI the first time
def test_the_kubernetes_manifest_is_schema_valid_and_runs_the_image_as_docker_does():
    target = ROOT / "var" / "kubernetes-validate"
    if not (target / "kubernetes_validate").exists():
        partial = target.with_name(target.name + ".partial")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(partial), KUBERNETES_VALIDATE],
                       check=True, timeout=600)
        partial.rename(target)  # only a complete install gets the real name
    checked = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.31.0", str(MANIFEST)],
                             env={"PYTHONPATH": str(target)}, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and checked.stdout.count("passed") == 2, checked.stdout + checked.stderr
    statefulset, service = yaml.safe_load_all(MANIFEST.read_text())
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert (pod["securityContext"]["runAsUser"], pod["terminationGracePeriodSeconds"]) == (10001, 40)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {mount["mountPath"] for mount in container["volumeMounts"]} == {"/data", "/tmp"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready" and container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert service["spec"]["ports"][0]["port"] == 8080
