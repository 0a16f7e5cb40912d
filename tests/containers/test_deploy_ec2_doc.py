"""docs/deploy-ec2.md, followed command by command on four "instances": network namespaces
joined by a bridge (in a namespace of its own too), each with one address, running the
guide's commands with podman for docker. Only the steps that need AWS itself (the
metadata service, SSM) and those that set up a host (installing Docker, cloning) are not
run; each is named below with the reason. A command added to the guide fails this test
until it is run here or named as one that cannot be.

What changes from the text, mechanically (``as_run``): no ``sudo`` (the tests run as root),
``podman`` for ``docker`` (``podman build --format docker``: podman's default image format
drops HEALTHCHECK), names carrying this run's prefix (the container ``chord``, the volume
``chord-data``, the image ``chord-dht``, ``/etc/chord``), and the placeholders A, B, C, D
replaced by the instances' addresses. Every command runs in its instance's namespace, so
``-p 7000:7000`` publishes on that instance's address as on EC2.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.containers.containertest import (
    ENV,
    NETNS_DIR,
    ROOT,
    Run,
    curl_download,
    curl_upload,
    get_json,
    in_netns,
    podman,
    ring_formed,
    status_of,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)

DOC = ROOT / "docs" / "deploy-ec2.md"
LETTERS = "ABCD"
SUBNET = "10.250.0"  # inside the test's own namespaces only: nothing else routes there

# Commands of the guide this test does not run, and why.
NOT_RUN = {
    "sudo dnf install -y docker git": "host setup: installs Docker on the instance "
    "(here podman comes from ../shared/tools/container-engine.sh)",
    "sudo systemctl enable --now docker": "host setup: podman has no daemon to start",
    "git clone <this repository> chord && cd chord": "the tests run in a clone already",
    "TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H "
    "'X-aws-ec2-metadata-token-ttl-seconds: 60')": "AWS only: the EC2 metadata service",
    'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" '
    "http://169.254.169.254/latest/meta-data/local-ipv4": "AWS only: the EC2 metadata service",
    'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" '
    "http://169.254.169.254/latest/meta-data/public-ipv4": "AWS only: the EC2 metadata service",
    "aws ssm put-parameter --name /chord/ring-secret --type SecureString "
    '--value "$(openssl rand -hex 32)"': "AWS only (SSM); the secret is made with "
    "`openssl rand -hex 32` as there",
    "docker network create --subnet=<public IP>/16": "the ancestor's mistake the guide warns of",
    "docker run --ip=<public IP>": "the ancestor's mistake the guide warns of",
    "docker pull": "named in prose (no registry here)",
    "docker inspect": "named in prose",
    "docker run": "named in prose",
    "docker stop -t 60": "named in prose (run in full in sections 4 and 8)",
    "podman build --format docker …": "what this test runs for every `docker build`",
}


def doc_commands() -> list[str]:
    """Every command of the guide: the lines of its ```bash blocks (continuations joined,
    comments dropped) and the inline code that starts with a command."""
    text = DOC.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            line = re.sub(r"(^|\s+)#.*$", "", line).strip()
            if line:
                commands.append(" ".join(line.split()))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        # (A command with arguments: a bare "docker" is a name in a sentence.)
        if re.match(r"(sudo|docker|podman|python|curl|nc|aws|git|openssl|timeout) ", span):
            commands.append(" ".join(span.split()))
    return commands


@dataclass
class Instance:
    letter: str
    netns: str
    address: str
    container: str
    volume: str
    etc: Path  # this instance's /etc/chord

    @property
    def api(self) -> str:
        return f"{self.address}:17000"


class Guide:
    """The guide's commands, taken by their text, run the way the module docstring says."""

    def __init__(self, run: Run, tmp: Path) -> None:
        self.run, self.tmp = run, tmp
        self.commands = doc_commands()
        self.used: set[str] = set()
        self.image = f"localhost/{run.prefix}-ec2"
        self.instances = {
            letter: Instance(
                letter,
                run.name(f"instance-{letter}"),
                f"{SUBNET}.{11 + i}",
                run.name(f"chord-{letter}"),
                run.name(f"chord-data-{letter}"),
                tmp / f"instance-{letter.lower()}" / "etc" / "chord",
            )
            for i, letter in enumerate(LETTERS)
        }
        self.env = {k: v for k, v in ENV.items() if not k.startswith("CHORD_")}

    def take(self, command: str) -> str:
        assert command in self.commands, f"docs/deploy-ec2.md no longer says: {command}"
        self.used.add(command)
        return command

    def as_run(self, command: str, on: Instance) -> str:
        # The placeholders first, before any path of this machine is put in.
        c = re.sub(
            r"(?<=[=/ ])([ABCD])(?=[:/ ]|$)", lambda m: self.instances[m[1]].address, command
        )
        c = c.replace("<its address>", on.address).replace("<peer>", on.address)
        c = re.sub(r"\bsudo ", "", c)
        c = re.sub(r"\bdocker\b", "podman", c)
        c = c.replace("podman build", "podman build --format docker")
        c = c.replace("chord-dht:", f"{self.image}:")
        c = c.replace("chord-data", on.volume)
        c = c.replace("/etc/chord", str(on.etc))
        c = re.sub(r"--name chord\b", f"--name {on.container}", c)
        c = re.sub(r"\b(stop -t 60|rm|logs|exec) chord\b", rf"\1 {on.container}", c)
        return re.sub(r"\bpython (client|run_node)\.py", rf"{sys.executable} {ROOT}/\1.py", c)

    def sh(
        self, command: str, on: Instance | None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a guide command (transformed) in instance ``on``'s namespace; None: on the
        machine that builds (where the build can reach PyPI when its cache is cold)."""
        text = self.as_run(command, on or self.instances["A"])
        argv = ["bash", "-c", text]
        if on is not None:
            argv = ["nsenter", f"--net={NETNS_DIR / on.netns}", *argv]
        result = subprocess.run(
            argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert result.returncode == 0, f"{text}\n{result.stdout}{result.stderr}"
        return result

    def on(self, instance: Instance, action: Callable[[], Any]) -> Any:
        return in_netns(instance.netns, action)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def guide(run: Run, image: str, tmp_path: Path) -> Iterator[Guide]:
    """Four instances on one bridge: the bridge in a namespace of its own ("the VPC"),
    so nothing of this test is in the machine's own network namespace. Afterwards each
    instance's container is removed in its namespace (where podman's network plugins
    undo what they set up); the run's cleanup removes the rest, namespaces included."""
    guide = Guide(run, tmp_path)
    try:
        make_instances(run, guide)
        yield guide
    finally:
        for instance in guide.instances.values():
            if (NETNS_DIR / instance.netns).exists():
                podman(
                    "rm",
                    "--force",
                    "--volumes",
                    "--time",
                    "0",
                    instance.container,
                    check=False,
                    netns=instance.netns,
                )


def make_instances(run: Run, guide: Guide) -> None:
    vpc = run.name("vpc")
    ip("netns", "add", vpc)
    ip("-n", vpc, "link", "add", "br0", "type", "bridge")
    ip("-n", vpc, "link", "set", "br0", "up")
    for instance in guide.instances.values():
        ip("netns", "add", instance.netns)
        port = f"v{instance.letter}"
        ip(
            "-n",
            vpc,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            instance.netns,
        )
        ip("-n", vpc, "link", "set", port, "master", "br0", "up")
        ip("-n", instance.netns, "addr", "add", f"{instance.address}/24", "dev", "eth0")
        ip("-n", instance.netns, "link", "set", "eth0", "up")
        ip("-n", instance.netns, "link", "set", "lo", "up")


RUN_MASTER_PREFIX = "sudo docker run -d --name chord --restart unless-stopped -p 7000:7000"


def run_command(guide: Guide, mode: str) -> str:
    """The guide's `docker run` of section 5 (master) or 6 (slave), whole."""
    (command,) = [
        c for c in guide.commands if c.startswith(RUN_MASTER_PREFIX) and f"NODE_MODE={mode}" in c
    ]
    return command


def join_command(guide: Guide, joiner: Instance, image: str = "chord-dht:0.1.0") -> str:
    """Section 6's command is B's; C and D run it "with their own address"."""
    command = guide.take(run_command(guide, "slave"))
    command = command.replace("CHORD_ADVERTISE_HOST=B", f"CHORD_ADVERTISE_HOST={joiner.letter}")
    return command.replace("chord-dht:0.1.0", image)


def test_deploy_ec2_guide(guide: Guide, tmp_path: Path) -> None:
    phase = Phases()
    a, b, c, d = (guide.instances[x] for x in LETTERS)
    everyone = list(guide.instances.values())
    addresses = {f"{i.address}:7000" for i in everyone}

    phase("2. build")
    # 2. The image (cached layers: the session built the same Dockerfile).
    guide.sh(guide.take("sudo docker build -t chord-dht:0.1.0 ."), None, timeout=900)

    phase("4. secret")
    # 4. The ring secret, generated as the guide does, in a file only uid 10001 reads.
    secret = subprocess.run(
        ["openssl", "rand", "-hex", "32"], capture_output=True, text=True, check=True
    ).stdout.strip()
    fetch = (
        "aws ssm get-parameter --name /chord/ring-secret --with-decryption "
        "--query Parameter.Value --output text"
    )
    install = guide.take(
        f"{fetch} | sudo install -m 0400 -o 10001 -g 10001 /dev/stdin /etc/chord/ring-secret"
    )

    def distribute(value: str) -> None:
        for instance in everyone:
            guide.sh(guide.take("sudo mkdir -p /etc/chord"), instance)
            # The AWS half stood in for by the value it would print.
            guide.sh(install.replace(fetch, f"printf '%s\\n' {value}"), instance)
            stat = (instance.etc / "ring-secret").stat()
            assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (10001, 10001, 0o400)

    distribute(secret)

    phase("5, 6. ring of four")
    # 5. The first peer, then 6. the other three joining it.
    guide.sh(guide.take("sudo docker volume create chord-data"), a)
    guide.sh(guide.take(run_command(guide, "master")), a)
    health = guide.take("curl -s http://A:17000/health")
    wait_for("A healthy", lambda: json.loads(guide.sh(health, a).stdout)["status"] == "ok", 60)
    assert json.loads(guide.sh(health, a).stdout)["node"]["address"] == f"{a.address}:7000"
    for joiner in (b, c, d):
        guide.sh("sudo docker volume create chord-data", joiner)
        guide.sh(join_command(guide, joiner), joiner)
    wait_for(
        "ring of 4 (seen from D)",
        lambda: guide.on(d, lambda: ring_formed([i.api for i in everyone], addresses)),
        90,
    )
    ring = guide.sh(guide.take("python client.py --node A:17000 ring"), d).stdout
    assert "4 peers" in ring and ring.count(" yes") == 4, ring
    successor = json.loads(guide.sh(guide.take("curl -s http://C:17000/get_successor"), a).stdout)
    assert successor["successor"]["address"] in addresses
    ids = {i.letter: get_json_on(guide, i, "/health")["node"]["id"] for i in everyone}

    # Files in the ring, through A's published REST port, read back through C.
    files = {f"ec2/{n}.bin": os.urandom(size) for n, size in (("big", 2_000_000), ("s", 10))}
    for name, data in files.items():
        (tmp_path / "up").write_bytes(data)
        guide.on(a, functools.partial(curl_upload, a.api, name, tmp_path / "up"))
    check_files(guide, c, files, tmp_path)

    phase("7, 9. checks")
    # 7 and 9: the admin token, the log, and the checks of a peer that does not join.
    token = guide.sh(guide.take("sudo docker exec chord cat /data/admin_token"), a).stdout
    assert len(token.strip()) >= 8
    logs = guide.sh(guide.take("sudo docker logs chord"), b)
    assert f"joined the ring through {a.address}:7000" in logs.stdout + logs.stderr
    assert b.container in guide.sh(guide.take("sudo docker ps"), b).stdout
    probe = guide.take("timeout 5 bash -c '</dev/tcp/A/7000' && echo reachable")
    assert guide.sh(probe, b).stdout.strip() == "reachable"
    assert json.loads(guide.sh(guide.take("curl http://<its address>:17000/health"), b).stdout)
    status = json.loads(guide.sh(guide.take("curl http://<peer>:17000/status"), c).stdout)
    assert status["joined"] is True

    phase("8. upgrade B")
    # 8. Upgrading B: a new image, stop (it leaves), the same run with the new tag.
    guide.sh(
        guide.take("git pull && sudo docker build -t chord-dht:0.2.0 .").split("&& ")[1],
        None,
        timeout=900,
    )  # (no upstream to pull from in the test's clone)
    guide.sh(guide.take("sudo docker stop -t 60 chord"), b, timeout=90)
    guide.sh(guide.take("sudo docker rm chord"), b)
    rerun = guide.take(
        "sudo docker run -d --name chord ... (the same -p, both -v, the same -e as before) "
        "chord-dht:0.2.0"
    )
    assert rerun.endswith("chord-dht:0.2.0")
    guide.sh(join_command(guide, b, image="chord-dht:0.2.0"), b)
    until_whole = guide.take(
        "curl -s http://B:17000/health && python client.py --node B:17000 degraded"
    )
    wait_for(  # degraded's table ends at its header's dashes when no file is degraded
        "B back and nothing degraded",
        lambda: guide.sh(until_whole, d, check=False).stdout.rstrip().endswith("--"),
        90,
    )
    assert get_json_on(guide, b, "/health")["node"]["id"] == ids["B"], "same address, same ID"
    image = podman("inspect", "--format", "{{.ImageName}}", b.container, netns=b.netns)
    assert image.stdout.strip() == f"{guide.image}:0.2.0"

    phase("4. rotation")
    # 4. Rotating the secret: every peer stopped, the new secret everywhere, all started
    # again as in 5 and 6; the volumes keep the files, the addresses keep the IDs.
    stop_all = guide.take("sudo docker stop -t 60 chord && sudo docker rm chord")
    for instance in everyone:
        guide.sh(stop_all, instance, timeout=90)
    refused = guide.sh(probe, b, check=False)
    assert refused.returncode != 0 and "Connection refused" in refused.stderr
    bare_peer(guide, a)
    bind_mount(guide, a)
    distribute(os.urandom(32).hex())
    guide.sh(run_command(guide, "master"), a)
    wait_for("A healthy", lambda: status_of_on(guide, a, "/health") == 200, 60)
    for joiner in (b, c, d):
        guide.sh(join_command(guide, joiner), joiner)
    wait_for(
        "ring of 4 after the rotation",
        lambda: guide.on(d, lambda: ring_formed([i.api for i in everyone], addresses)),
        90,
    )
    assert {i.letter: get_json_on(guide, i, "/health")["node"]["id"] for i in everyone} == ids
    check_files(guide, d, files, tmp_path)

    phase("done")
    missing = {c for c in guide.commands if c not in guide.used and c not in NOT_RUN}
    assert not missing, f"commands of docs/deploy-ec2.md neither run nor named: {missing}"
    stale = set(NOT_RUN) - set(guide.commands)
    assert not stale, f"NOT_RUN names commands the guide no longer has: {stale}"


class Phases:
    """Prints how long each section of the guide took (pytest -s shows it)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        print(f"[{now - self.started:5.1f}s, +{now - self.last:4.1f}s] {name}")
        self.last = now


def bare_peer(guide: Guide, on: Instance) -> None:
    """Section 5's peer without Docker, on A while its container is stopped: it starts
    with the secret file, answers /health, and leaves on SIGTERM."""
    command = guide.as_run(
        guide.take(
            "python run_node.py --host 0.0.0.0 --advertise-host A --port 7000 "
            "--ring-secret-file /etc/chord/ring-secret"
        ),
        on,
    )
    workdir = guide.tmp / "bare"  # its data dir is data/<address>_7000 under the cwd
    workdir.mkdir()
    env = {**guide.env, "CHORD_MENU": "false"}
    process = subprocess.Popen(
        ["nsenter", f"--net={NETNS_DIR / on.netns}", *command.split()],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the bare peer healthy", lambda: status_of_on(guide, on, "/health") == 200, 60)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output


def bind_mount(guide: Guide, on: Instance) -> None:
    """Section 7: a host directory on /data fails, as the guide quotes, while root owns
    it, and works once given to 10001:10001 as the guide says."""
    directory = guide.tmp / "srv-chord"
    text = DOC.read_text(encoding="utf-8")
    quoted = re.search(r"owned by root stops the peer at once with\s+`([^`]+)`", text)
    assert quoted, "section 7 quotes the message of a root-owned directory"
    master = run_command(guide, "master").replace("-v chord-data:/data", f"-v {directory}:/data")
    directory.mkdir(mode=0o755)  # as `mkdir -p` leaves it: root's
    guide.sh(master, on)
    logs = guide.take("sudo docker logs chord")
    wait_for("the refusal in the log", lambda: quoted[1] in guide.sh(logs, on).stderr, 30)
    podman("rm", "--force", "--time", "0", on.container, netns=on.netns)
    directory.rmdir()
    prepare = guide.take("sudo mkdir -p /srv/chord && sudo chown 10001:10001 /srv/chord")
    guide.sh(prepare.replace("/srv/chord", str(directory)), on)
    guide.sh(master, on)
    wait_for("healthy on the directory", lambda: status_of_on(guide, on, "/health") == 200, 60)
    assert (directory / "admin_token").stat().st_uid == 10001
    guide.sh(guide.take("sudo docker stop -t 60 chord && sudo docker rm chord"), on, timeout=90)


def get_json_on(guide: Guide, instance: Instance, path: str) -> Any:
    return guide.on(instance, lambda: get_json(f"http://{instance.api}{path}"))


def status_of_on(guide: Guide, instance: Instance, path: str) -> Any:
    return guide.on(instance, lambda: status_of(f"http://{instance.api}{path}"))


def check_files(guide: Guide, through: Instance, files: dict[str, bytes], tmp: Path) -> None:
    for name, data in files.items():
        digest = guide.on(through, functools.partial(curl_download, through.api, name, tmp / "d"))
        assert digest == hashlib.sha256(data).hexdigest(), name
