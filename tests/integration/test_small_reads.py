"""Small files through the one-round-trip path (services.files.small_read) on real peers: a
GET from any peer is served by the file's owner (Files/Read, counted in the owner's
metrics), a client that knows the membership goes straight to the owner, and after a
kill -9 of an owner every file still reads back byte for byte, through the general
path until the ring has healed and through the owner path again after. Correctness,
not timing (bench.smallops measures the time)."""

from __future__ import annotations

import http.client
import random
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bench.smallops import Http, upload
from clientlib.ringmap import RingMap
from devtools.launcher import LocalRing, PeerProcess

pytestmark = pytest.mark.integration
PEERS = 5
FILES = 24


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRing]:
    ring = LocalRing(tmp_path_factory.mktemp("small-reads"))
    try:
        ring.start_ring(PEERS)
        yield ring
    finally:
        ring.close()


def api(peer: PeerProcess) -> str:
    return f"{peer.host}:{peer.api_port}"


def get(peer: PeerProcess, name: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(peer.host, peer.api_port, timeout=10)
    try:
        conn.request("GET", f"/download_file?name={quote(name)}")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def owner_reads(peer: PeerProcess) -> int:
    """Files/Read calls this peer answered OK (its Prometheus counter)."""
    found = re.search(r'chord_rpcs_total\{code="OK",method="Files/Read"\} (\S+)', _metrics(peer))
    return int(float(found.group(1))) if found else 0


def _metrics(peer: PeerProcess) -> str:
    conn = http.client.HTTPConnection(peer.host, peer.api_port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def test_small_reads_survive_an_owner_killed(ring: LocalRing, tmp_path: Path) -> None:
    rnd = random.Random(7)
    client = Http()
    peers = list(ring.peers)
    files = {f"small/{i}": rnd.randbytes(rnd.randrange(1, 3000)) for i in range(FILES)}
    try:
        for name, data in files.items():
            upload(client, api(rnd.choice(peers)), name, data)
    finally:
        client.close()

    # From every peer, every file: byte-identical, and owners answered Files/Read.
    for peer in peers:
        for name, data in files.items():
            assert get(peer, name) == (200, data), (peer.address, name)
    assert sum(owner_reads(p) for p in peers) > 0

    # A client that knows the membership asks the owner itself.
    view = RingMap.from_ring(peers[0].get("/members")[1])
    assert sorted(view.apis) == sorted(api(p) for p in peers)
    for name, data in files.items():
        owner = next(p for p in peers if api(p) == view.holders(name, 1)[0])
        assert get(owner, name) == (200, data)

    # kill -9 the owner of the most files: no goodbye; reads right away, then healed.
    victim_api = max(set(view.apis), key=lambda a: sum(view.holders(n, 1)[0] == a for n in files))
    victim = next(p for p in peers if api(p) == victim_api)
    ring.kill(victim)
    survivors = [p for p in peers if p is not victim]
    for name, data in files.items():
        assert get(rnd.choice(survivors), name) == (200, data), name
    ring.wait_ideal(timeout=60, peers=survivors)
    for peer in survivors:
        for name, data in files.items():
            assert get(peer, name) == (200, data), (peer.address, name)
    status, found = survivors[0].get(f"/search_file?name={quote(next(iter(files)))}")
    assert status == 200 and found["found"] is True
