"""The image itself: what it runs as, its healthcheck, `--help` without any configuration,
its size and a single peer's time from `podman run` to healthy (printed: README's figures)."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.containers.containertest import (
    CACHE_TAG,
    ROOT,
    Run,
    address_of,
    podman,
    status_of,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)


def test_help_needs_no_configuration(image: str) -> None:
    result = podman("run", "--rm", image, "--help")
    assert result.stdout.startswith("usage: run_node.py"), result.stdout[:200]
    assert "--advertise-host" in result.stdout and "--ring-secret-file" in result.stdout


def test_image_user_healthcheck_and_size(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]
    assert config["Config"]["User"] == "10001:10001"
    test = config["Healthcheck"]["Test"]  # podman shows the docker-format field here
    assert test[0] == "CMD" and "/health" in test[-1], "HEALTHCHECK kept (docker format)"
    assert config["Config"]["Entrypoint"] == ["python", "run_node.py"]
    base = json.loads(podman("image", "inspect", base_image()).stdout)[0]
    print(
        f"image {config['Size'] / 1e6:.0f} MB, of which base {base['Size'] / 1e6:.0f} MB "
        f"and ours {(config['Size'] - base['Size']) / 1e6:.0f} MB"
    )


def base_image() -> str:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.upper().startswith("FROM "):
            return line.split()[1]
    raise AssertionError("no FROM line")


def test_start_to_healthy(run: Run, image: str) -> None:
    """A peer that creates a ring: from `podman run` to GET /health answering 200, and
    `podman healthcheck run` agreeing."""
    name = run.name("solo")
    network = run.name("solo-net")
    podman("network", "create", network)
    started = time.monotonic()
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        network,
        "-v",
        f"{name}-data:/data",
        "-e",
        f"CHORD_ADVERTISE_HOST={name}",
        "-e",
        "CHORD_RING_SECRET",
        image,
        env={**os.environ, "CHORD_RING_SECRET": "solo-secret-" + os.urandom(8).hex()},
    )
    api = f"http://{address_of(name)}:17000/health"
    wait_for("healthy", lambda: status_of(api, timeout=1) == 200, 60, every=0.05)
    healthy = time.monotonic() - started
    assert podman("healthcheck", "run", name, check=False).returncode == 0
    print(f"start to healthy: {healthy:.2f}s (cache tag {CACHE_TAG})")
    podman("rm", "--force", "--time", "30", name)
