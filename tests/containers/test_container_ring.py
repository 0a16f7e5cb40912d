"""Three peers in containers on a podman network, each advertising its DNS name there,
with a ring secret, on a read-only root filesystem (/data and /tmp are volumes): the ring
forms, a file uploaded through one peer downloads byte-identical through another, the
image's healthcheck passes, a peer stopped with `podman stop` leaves gracefully (the
others heal and every file keeps its k copies) and comes back from the same volume with
the same ID and its files."""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.containers.containertest import (
    Run,
    address_of,
    curl_download,
    curl_upload,
    get_json,
    inspect,
    podman,
    quiet,
    ring_formed,
    ring_view,
    status_of,
    wait_for,
)

pytestmark = pytest.mark.timeout(900)

K = 2  # copies of every file: with 3 peers, a peer that leaves leaves 2 to hold them
SECRET = "ring-secret-" + os.urandom(12).hex()


@dataclass
class Peer:
    name: str  # the container's name, which is its DNS name on the network
    volume: str
    address: str = ""  # the container's IP on the podman network
    started: float = 0.0
    healthy_after: float = 0.0

    @property
    def api(self) -> str:
        return f"{self.address}:17000"


@dataclass
class Ring:
    network: str
    secret_dir: Path
    peers: list[Peer] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


def start(run: Run, image: str, ring: Ring, peer: Peer, join: str | None) -> None:
    """``podman run`` one peer as an operator would: read-only root, named volumes on
    /data and /tmp, the ring secret from the environment (the first peer) or from a file
    readable by group 10001 only, as deploy/k8s mounts it (the others)."""
    args = [
        "run",
        "--detach",
        "--name",
        peer.name,
        "--network",
        ring.network,
        # Docker's --read-only: nothing but the volumes is writable (podman would
        # otherwise mount tmpfs on /tmp by itself and hide a missing volume).
        "--read-only",
        "--read-only-tmpfs=false",
        "-v",
        f"{peer.volume}:/data",
        "-v",
        f"{peer.volume}-tmp:/tmp",
        "-e",
        f"CHORD_ADVERTISE_HOST={peer.name}",
        "-e",
        f"CHORD_REPLICAS={K}",
    ]
    if join is None:
        args += ["-e", "CHORD_RING_SECRET"]  # its value from this process's environment
    else:
        args += [
            "-v",
            f"{ring.secret_dir}:/run/secrets/chord:ro",
            "-e",
            "CHORD_RING_SECRET_FILE=/run/secrets/chord/ring-secret",
            "-e",
            f"CHORD_JOIN={join}",
        ]
    peer.started = time.monotonic()
    podman(*args, image, env={**os.environ, "CHORD_RING_SECRET": SECRET})
    peer.address = address_of(peer.name)
    wait_for(f"{peer.name} healthy", lambda: status_of(f"http://{peer.api}/health") == 200, 60)
    peer.healthy_after = time.monotonic() - peer.started


@pytest.fixture(scope="module")
def ring(run: Run, image: str, tmp_path_factory: pytest.TempPathFactory) -> Ring:
    network = run.name("net")
    podman("network", "create", network)
    # The secret as a Kubernetes secret volume has it: root's, group 10001, mode 0440.
    secret_dir = tmp_path_factory.mktemp("secret")
    secret = secret_dir / "ring-secret"
    secret.write_text(SECRET)
    os.chown(secret, 0, 10001)
    secret.chmod(0o440)
    secret_dir.chmod(0o755)
    ring = Ring(network, secret_dir)
    for i in (1, 2, 3):
        peer = Peer(run.name(f"p{i}"), run.name(f"p{i}-data"))
        start(run, image, ring, peer, join=None if i == 1 else f"{ring.peers[0].name}:7000")
        ring.peers.append(peer)
    names = {f"{p.name}:7000" for p in ring.peers}
    wait_for("ring of 3", lambda: ring_formed([p.api for p in ring.peers], names), 60)
    for peer in ring.peers:
        print(f"{peer.name}: healthy {peer.healthy_after:.2f}s after podman run")
    return ring


def test_ring_of_three_forms_on_dns_names(ring: Ring) -> None:
    for peer in ring.peers:
        view = ring_view(peer.api)
        assert view[0] == (f"{peer.name}:7000", True), "each /ring starts at its own peer"
        assert len(view) == 3
    # The peer runs as 10001:10001 on a read-only root: only the volumes take writes.
    first = ring.peers[0].name
    assert podman("exec", first, "id", "-u").stdout.strip() == "10001"
    assert podman("exec", first, "id", "-g").stdout.strip() == "10001"
    denied = podman("exec", first, "touch", "/app/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("exec", first, "touch", "/data/x", "/tmp/x").returncode == 0


@pytest.fixture(scope="module")
def stored(ring: Ring, tmp_path_factory: pytest.TempPathFactory) -> Ring:
    """A 3 MB file (a body big enough to be spooled to a temporary file) and a few small
    ones, uploaded through the first peer."""
    rng = random.Random(21)
    ring.files = {"big/three-mb.bin": rng.randbytes(3 * 1000 * 1000 + 17)}
    ring.files.update({f"small/file-{i}.txt": rng.randbytes(100 + i) for i in range(8)})
    folder = tmp_path_factory.mktemp("upload")
    for i, (name, data) in enumerate(ring.files.items()):
        path = folder / f"f{i}"
        path.write_bytes(data)
        reply = curl_upload(ring.peers[0].api, name, path)
        assert reply["sha256"] == hashlib.sha256(data).hexdigest()
        assert len(reply["holders"]) == K
    return ring


def test_file_uploaded_through_one_peer_downloads_identical_through_another(
    stored: Ring, tmp_path: Path
) -> None:
    for peer in stored.peers[1:]:
        for name, data in stored.files.items():
            digest = curl_download(peer.api, name, tmp_path / "got")
            assert digest == hashlib.sha256(data).hexdigest(), f"{name} through {peer.name}"


def test_podman_healthcheck_run_uses_the_images_healthcheck(ring: Ring) -> None:
    for peer in ring.peers:
        result = podman("healthcheck", "run", peer.name, check=False)
        assert result.returncode == 0, f"{peer.name}: {result.stdout}{quiet(result.stderr)}"
        assert inspect(peer.name, "{{.State.Health.Status}}") == "healthy"


def files_of(peer: Peer) -> set[str]:
    return {f["name"] for f in get_json(f"http://{peer.api}/show_files")["files"]}


def all_files_have_k_copies(peer: Peer, names: set[str], holders: set[str]) -> bool:
    listing = get_json(f"http://{peer.api}/show_files?scope=ring")
    rows = {row["name"]: row for row in listing["files"]}
    return set(rows) == names and all(
        row["copies"] == K and {h["address"] for h in row["holders"]} <= holders
        for row in rows.values()
    )


def test_graceful_stop_then_restart_from_the_same_volume(
    run: Run, image: str, stored: Ring, tmp_path: Path
) -> None:
    seed, *joiners = stored.peers
    # The joiner holding the most files leaves (the seed would start a ring of its own
    # when restarted, and merge back only later).
    leaver = max(joiners, key=lambda p: len(files_of(p)))
    held = files_of(leaver)
    assert held, "with k=2 of 3 peers every peer holds files"
    before = get_json(f"http://{leaver.api}/health")["node"]["id"]
    survivors = [p for p in stored.peers if p is not leaver]
    names = set(stored.files)

    podman("stop", "--time", "60", leaver.name, timeout=90)
    assert inspect(leaver.name, "{{.State.ExitCode}}") == "0", "SIGTERM: a graceful exit"
    logs = podman("logs", survivors[0].name).stderr + podman("logs", survivors[1].name).stderr
    assert f"{leaver.name}:7000" in logs and "is leaving the ring" in logs
    wait_for(
        "the two others heal",
        lambda: ring_formed([p.api for p in survivors], {f"{p.name}:7000" for p in survivors}),
        30,
    )
    wait_for(
        "every file on k holders without the peer that left",
        lambda: all_files_have_k_copies(seed, names, {f"{p.name}:7000" for p in survivors}),
        30,
    )

    # The same container name (its DNS name, so its address and ID) and the same volume.
    podman("rm", leaver.name)
    start(run, image, stored, leaver, join=f"{seed.name}:7000")
    assert get_json(f"http://{leaver.api}/health")["node"]["id"] == before
    every = {f"{p.name}:7000" for p in stored.peers}
    wait_for("ring of 3 again", lambda: ring_formed([p.api for p in stored.peers], every), 60)
    wait_for("its files back on it", lambda: files_of(leaver) == held, 60)
    wait_for("k copies of every file", lambda: all_files_have_k_copies(seed, names, every), 60)
    for name in sorted(held):
        digest = curl_download(leaver.api, name, tmp_path / "got")
        assert digest == hashlib.sha256(stored.files[name]).hexdigest()
