"""compose.yaml's 4-peer ring with podman-compose (PyPI's, a dev dependency): up, a file
across it, the tokens as the shell gives them, the compose healthcheck, `down -v`."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.containers.containertest import (
    ROOT,
    Run,
    curl_download,
    curl_upload,
    listed,
    podman,
    quiet,
    ring_formed,
    status_of,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)

SECRET = "compose-ring-secret-" + os.urandom(8).hex()
API_TOKEN = "api-token-" + os.urandom(8).hex()


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OverrideTag(yaml.YAMLObject):
    """Compose's ``!override``: replace the list instead of adding to it."""

    yaml_tag = "!override"
    yaml_dumper = yaml.SafeDumper

    def __init__(self, value: list[str]) -> None:
        self.value = value

    @classmethod
    def to_yaml(cls, dumper: yaml.SafeDumper, data: OverrideTag) -> yaml.Node:
        return dumper.represent_sequence(cls.yaml_tag, data.value)


def test_compose_ring_up_file_across_it_and_down(run: Run, image: str, tmp_path: Path) -> None:
    compose = shutil.which("podman-compose", path=str(Path(sys.executable).parent))
    if compose is None:
        pytest.fail("podman-compose is not installed (a dev dependency: make install)")
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    # An override file changes only what must differ per run: the image this run built
    # (so compose does not build or tag chord-dht:0.1.0) and the published ports, free
    # ones on 127.0.0.1 rather than the fixed 17001..17004 (another run, or a peer of
    # another test, may hold those). compose.yaml's own ports are checked in
    # tests/unit/test_deploy_files.py.
    ports = {name: free_loopback_port() for name in services}
    override = {
        "services": {
            name: {"image": run.image_tag, "ports": OverrideTag([f"127.0.0.1:{port}:17000"])}
            for name, port in ports.items()
        }
    }
    override_file = tmp_path / "override.yaml"
    override_file.write_text(yaml.safe_dump(override))
    project = run.name("compose")
    # The shell a user runs compose from: the secret and an API token set, the admin
    # token not (each peer then generates its own), nothing else of ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORD_")}
    env.update(CHORD_RING_SECRET=SECRET, CHORD_API_TOKEN=API_TOKEN, BUILDAH_FORMAT="docker")

    def compose_run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        argv = [
            compose,
            "-p",
            project,
            "-f",
            str(ROOT / "compose.yaml"),
            "-f",
            str(override_file),
            *args,
        ]
        result = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    try:
        compose_run("up", "-d")
        apis = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        addresses = {f"{name}:7000" for name in services}
        wait_for("compose ring of 4", lambda: ring_formed(list(apis.values()), addresses), 90)

        containers = {
            name: next(c for c in listed("ps") if c.startswith(project) and f"_{name}_" in c)
            for name in services
        }
        for name, container in containers.items():
            published = podman("port", container).stdout.split()
            assert published[-1] == f"127.0.0.1:{ports[name]}", published
            env_lines = podman(
                "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", container
            ).stdout.splitlines()
            assert f"CHORD_API_TOKEN={API_TOKEN}" in env_lines, "set in the shell: passed"
            assert not [e for e in env_lines if e.startswith("CHORD_ADMIN_TOKEN")], (
                "unset in the shell: unset in the container"
            )
            check = podman("healthcheck", "run", container, check=False)
            assert check.returncode == 0, f"{container}: {check.stdout}{quiet(check.stderr)}"
        admin = podman("exec", containers["peer2"], "cat", "/data/admin_token").stdout
        assert len(admin.strip()) >= 8, "each peer generated its own admin token"

        data = os.urandom(1_500_000)
        path = tmp_path / "across.bin"
        path.write_bytes(data)
        # The API token guards uploads: refused without it, accepted with it.
        assert status_of(f"http://{apis['peer1']}/upload_file") in (401, 405)
        refused = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-F",
                f"file=@{path}",
                f"http://{apis['peer1']}/upload_file?name=across.bin",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.stdout == "401"
        reply = curl_upload(apis["peer1"], "across.bin", path, token=API_TOKEN)
        assert reply["sha256"] == hashlib.sha256(data).hexdigest()
        digest = curl_download(apis["peer4"], "across.bin", tmp_path / "back.bin")
        assert digest == reply["sha256"]
    finally:
        down = subprocess.run(
            [
                compose,
                "-p",
                project,
                "-f",
                str(ROOT / "compose.yaml"),
                "-f",
                str(override_file),
                "down",
                "-v",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert down.returncode == 0, down.stdout + down.stderr
    left = [n for kind in ("ps", "volume", "network") for n in listed(kind) if project in n]
    assert not left, f"`down -v` left {left}"
