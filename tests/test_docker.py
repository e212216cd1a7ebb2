"""The shipped Dockerfile and docker-compose.yml, built and run: on a Docker engine of this
module's own (bench/docker_engine.py: Debian's docker.io installed when missing, its own dockerd,
everything removed after), with stand-ins for Docker Hub's python and redis images built from
Debian packages (deploy/stand-in-base.sh), since CI cannot pull from Docker Hub.

The image runs as it would in production, read-only but for its volume and a /tmp tmpfs, and
the official Python SDK's v3 flow (tests/sdk_flow_v3.py) passes against its published port; the
users it registered are identified again after `docker stop` (a clean exit within the grace
period, the embedded Redis's AOF flushed) and a new start. Compose runs the same image on the
redis stand-in: the flow passes, and a `restart redis` loses nothing acknowledged. The README's
systemd unit runs as it is under Debian's systemd (PID 1 of a container made from the image):
ProtectSystem=strict, ReadWritePaths, PrivateTmp, NoNewPrivileges and KillMode=mixed in force,
the flow passes and a `systemctl stop` is clean. Size and start time are measured by
bench/image.py, not asserted here."""
from __future__ import annotations

import re
import textwrap
from typing import Iterator

import pytest

from bench.docker_engine import REDIS_TAG, ROOT, DockerEngine, wait_ready, wait_until
from service.auth.credentials import AppKeys
from service.ops.local_server import free_port
from tests.sdk_flow_v3 import Step, check_flow, found, image, registered, run_flow, user_ids, v3_flow
from tests.sdks import PYTHON_SDK_V3, PythonSdk

pytestmark = pytest.mark.slow
IMAGE = "facesvc-test:cpu"
UID = "10001"
# Enrolled before a stop or restart, searched for after it with another photo of each.
PEOPLE = {
    "alice": ("images/person01/img5.jpg", "images/person01/img6.jpg"),
    "bob": ("images/person02/img12.jpg", "images/person02/img55.jpg"),
    "carol": ("images/person05/img62.jpg", "images/person05/img16.jpg"),
}


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    """The engine with the stand-in bases and the image built from the repo's Dockerfile."""
    engine = DockerEngine()
    try:
        engine.stand_ins()
        engine.build(IMAGE)
        yield engine
    finally:
        engine.stop()


def first_app(text: str) -> AppKeys:
    """The keys in /data/first-app.keys (APP_ID=..., API_KEY=..., SECRET_KEY=...)."""
    values = dict(re.findall(r"^(\w+)=(\S+)$", text, re.MULTILINE))
    return AppKeys(values["APP_ID"], values["API_KEY"], values["SECRET_KEY"])


def enrol(group: str) -> list[Step]:
    return [("addUser", (image(before), "BASE64", group, name, {"user_info": name.title()}), registered())
            for name, (before, _) in PEOPLE.items()]


def recall(group: str) -> list[Step]:
    """The group's users listed and each found by another photo."""
    steps: list[Step] = [("getGroupUsers", (group,), user_ids(*PEOPLE))]
    return steps + [("search", (image(after), "BASE64", group), found(name, group, name.title()))
                    for name, (_, after) in PEOPLE.items()]


def run_steps(base: str, keys: AppKeys, steps: list[Step]) -> None:
    check_flow(steps, run_flow(PythonSdk(PYTHON_SDK_V3), base, keys, steps))


def test_the_image_runs_read_only_as_10001_serves_the_sdk_flow_and_stops_losing_nothing(engine):
    name, volume = "facesvc", "facesvc-data"
    engine.run("run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp", "--volume", f"{volume}:/data",
               "--publish", "127.0.0.1::8080", IMAGE)
    engine.wait_healthy(name)
    base, keys = engine.port(name), first_app(engine.run("exec", name, "cat", "/data/first-app.keys").stdout)
    # Every process of the container (facesvc, gunicorn and its workers, redis-server) is 10001.
    uids = [line.split()[1] for line in engine.run("top", name, "-eo", "pid,uid").stdout.splitlines()[1:]]
    assert len(uids) >= 4 and set(uids) == {UID}, uids

    run_steps(base, keys, v3_flow())
    run_steps(base, keys, enrol("kept"))
    # At once after the last answer: what was acknowledged must survive the stop.
    engine.run("stop", name)  # SIGTERM, then SIGKILL after 10 s
    state = engine.inspect(name)["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), state  # SIGKILL would be 137
    peek = ("run", "--rm", "--volume", f"{volume}:/data", "--entrypoint", "sh", IMAGE, "-c")
    redis_log = engine.run(*peek, "tail -n 3 /data/redis/redis.log").stdout
    assert "Calling fsync() on the AOF file" in redis_log and "ready to exit" in redis_log, redis_log
    # The volume holds data only, private to facesvc: no home directory files, nothing others may read.
    loose = engine.run(*peek, "find /data -name '.*' -o -perm /077 -o ! -user 10001").stdout
    assert not loose.strip(), loose

    engine.run("start", name)
    engine.wait_healthy(name)
    run_steps(engine.port(name), keys, recall("kept"))


def test_compose_serves_the_sdk_flow_and_a_redis_restart_loses_nothing(engine):
    project, port = "facesvc-compose-test", free_port()
    variables = {"FACESVC_IMAGE": IMAGE, "REDIS_IMAGE": REDIS_TAG, "FACESVC_PORT": f"127.0.0.1:{port}"}

    def compose(*args: str) -> str:
        return engine.compose(ROOT, project, *args, env=variables).stdout

    compose("up", "--detach", "--no-build")
    try:
        facesvc, redis = compose("ps", "-q", "facesvc").strip(), compose("ps", "-q", "redis").strip()
        engine.wait_healthy(facesvc)
        base, keys = f"http://127.0.0.1:{port}", first_app(compose("exec", "-T", "facesvc", "cat", "/data/first-app.keys"))
        run_steps(base, keys, v3_flow())
        run_steps(base, keys, enrol("kept"))
        compose("restart", "redis")
        engine.wait_healthy(redis)
        # facesvc reconnects: the acknowledged users are there, and it takes new writes.
        run_steps(base, keys, recall("kept") + enrol("after"))
    finally:
        compose("down", "--volumes", "--timeout", "40")


def readme_unit() -> str:
    """The README's /etc/systemd/system/facesvc.service, as it is."""
    readme = (ROOT / "README.md").read_text()
    return re.search(r"`/etc/systemd/system/facesvc\.service`:\s*```ini\n(.*?)```", readme, re.DOTALL).group(1)


def test_the_readme_systemd_unit_runs_sandboxed_and_stops_cleanly(engine):
    """systemd cannot run on the CI machine (PID 1 is not systemd): it runs as PID 1 of a
    container of the image, where the README's install steps are already done (/opt/facesvc
    owned by root, user facesvc), with the README's unit; a drop-in only moves the bind address
    off loopback, for the published port. CAP_SYS_ADMIN lets systemd make the unit's mount
    namespace; the cgroup tree is systemd's to manage."""
    dockerfile = textwrap.dedent(f"""\
        FROM {IMAGE}
        USER root
        RUN apt-get update && apt-get install -y --no-install-recommends systemd \\
         && rm -rf /var/lib/apt/lists/* \\
         && install -d -o facesvc -g facesvc -m 0700 /var/lib/facesvc \\
         && mkdir /etc/systemd/system/facesvc.service.d \\
         && printf '[Service]\\nEnvironment=FACESVC_BIND=0.0.0.0:8080\\n' > /etc/systemd/system/facesvc.service.d/bind.conf
        COPY facesvc.service /etc/systemd/system/facesvc.service
        STOPSIGNAL SIGRTMIN+3
        CMD ["/lib/systemd/systemd"]
        """)
    context = engine.directory / "systemd-context"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    (context / "facesvc.service").write_text(readme_unit())
    engine.run("build", "--tag", "facesvc-test:systemd", str(context), timeout=900)
    name = "facesvc-systemd"
    engine.run("run", "--detach", "--name", name, "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
               "--cgroupns", "private", "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
               "--tmpfs", "/run/lock", "--publish", "127.0.0.1::8080", "facesvc-test:systemd")

    def shell(command: str, check: bool = True) -> str:
        return engine.run("exec", name, "sh", "-c", command, check=check).stdout

    # systemd up (its socket answers; "degraded": some unit of the base system failed in a container)
    wait_until(lambda: shell("systemctl is-system-running", check=False).strip() in ("running", "degraded"), "systemd", 60)
    # The README's commands.
    shell("systemctl daemon-reload && systemctl enable --now facesvc")
    engine.wait_healthy(name)
    assert "APP_ID=" in shell("journalctl -u facesvc | grep APP_ID")
    keys = first_app(shell("cat /var/lib/facesvc/first-app.keys"))
    assert keys.secret_key not in shell("journalctl -u facesvc")
    # The sandbox is on: the service's root is read-only, /tmp its own, no new privileges.
    pid = shell("systemctl show -p MainPID --value facesvc").strip()
    mounts = {fields[4]: fields[5] for fields in (line.split() for line in shell(f"cat /proc/{pid}/mountinfo").splitlines())}
    assert mounts["/"].startswith("ro") and mounts["/var/lib/facesvc"].startswith("rw") and "/tmp" in mounts, mounts
    assert re.search(r"NoNewPrivs:\s+1", shell(f"cat /proc/{pid}/status"))

    base = engine.port(name)
    run_steps(base, keys, v3_flow())
    run_steps(base, keys, enrol("kept"))
    # KillMode=mixed: SIGTERM to facesvc alone, which stops gunicorn, then its Redis.
    shell("systemctl stop facesvc")
    shown = shell("systemctl show -p Result -p ExecMainCode -p ExecMainStatus facesvc")
    assert set(shown.split()) == {"Result=success", "ExecMainCode=1", "ExecMainStatus=0"}, shown  # 1: exited
    redis_log = shell("tail -n 3 /var/lib/facesvc/redis/redis.log")
    assert "Calling fsync() on the AOF file" in redis_log and "ready to exit" in redis_log, redis_log
    journal = shell("journalctl -u facesvc")
    assert "Read-only file system" not in journal and "Permission denied" not in journal, journal[-3000:]
    loose = shell("find /var/lib/facesvc -name '.*' -o -perm /077 -o ! -user facesvc")
    assert not loose.strip(), loose

    shell("systemctl start facesvc")
    wait_ready(base)
    run_steps(base, keys, recall("kept"))
