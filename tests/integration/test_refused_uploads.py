"""Refused uploads leave nothing, as a user sees it with curl: on a ring where one peer is
nearly full, every upload that has that peer among its holders answers 507, and then no
peer serves it (search says not found, download 404, from every peer), repair rounds do
not bring it back, and the name is free for a smaller upload. Uploads whose holders all
have room are stored (201) on exactly their holders."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.launcher import LocalRing, PeerProcess, wait_for
from tests.integration.chordtest import random_address, wait_ideal
from tests.integration.filetest import FAST_FILES, K, client_via, expected_holders, holdings

MIB = 1 << 20
CURL = "curl"


def curl_upload(peer: PeerProcess, path: Path, name: str) -> tuple[int, dict[str, Any]]:
    """``curl -F file=@PATH -F name=NAME``: the file part first, as people type it."""
    done = subprocess.run(
        [
            CURL,
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-F",
            f"file=@{path}",
            "-F",
            f"name={name}",
            f"{peer.api_url}/upload_file",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(body)


@pytest.mark.skipif(shutil.which(CURL) is None, reason="curl is not installed")
def test_a_507_leaves_no_copy_anywhere(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str, tmp_path: Path
) -> None:
    ring = make_ring(extra_args=FAST_FILES)
    ids: set[int] = set()
    for extra in [(), (), (), ("--quota-mib", "1")]:
        host, port = random_address(rng, ring.ring, ids)
        ids.add(ring.ring.hash(f"{host}:{port}"))
        live = ring.live()
        ring.start_peer(host, port, join=live[0].address if live else None, args=extra)
    wait_ideal(ring, seed, timeout=20)
    peers = ring.live()
    full = peers[-1]
    big = tmp_path / "big.bin"
    big.write_bytes(rng.randbytes(MIB + MIB // 2))

    # Names chosen so that some have the full peer among their holders and some not.
    names = (f"reports/big-{index}.bin" for index in range(1000))
    goes_to_full = {n: full in expected_holders(ring, peers, n, K) for n in names}
    refused = [n for n, full_holds in goes_to_full.items() if full_holds][:4]
    stored = [n for n, full_holds in goes_to_full.items() if not full_holds][:2]
    for name in refused + stored:
        code, body = curl_upload(rng.choice(peers), big, name)
        if name in refused:
            assert code == 507, f"[seed {seed}] {name}: {code} {body}"
            assert set(body) == {"error", "detail"} and body["error"] == "no-space", body
        else:
            assert code == 201, f"[seed {seed}] {name}: {code} {body}"

    client = client_via(ring, peers[0])

    def nothing_refused_anywhere() -> bool:
        held = holdings(client, peers)
        return all(name not in files for files in held.values() for name in refused)

    assert nothing_refused_anywhere(), f"[seed {seed}] {holdings(client, peers)}"
    # Repair rounds every 0.3 s: give them time to (wrongly) spread something.
    assert not wait_for(lambda: not nothing_refused_anywhere(), 2, interval=0.2)
    for name in refused:
        for peer in peers:
            status, found = peer.get(f"/search_file?name={name}")
            assert status == 200 and found["found"] is False, (peer.address, found)
            status, _ = peer.get(f"/download_file?name={name}")
            assert status == 404, (name, peer.address, status)
    for name in stored:
        want = {p.address for p in expected_holders(ring, peers, name, K)}
        have = {a for a, files in holdings(client, peers).items() if name in files}
        assert have == want, (name, have, want)

    # The refused name is free: a file that fits is stored under it, version 1.
    small = tmp_path / "small.txt"
    small.write_bytes(b"fits everywhere\n")
    code, body = curl_upload(peers[0], small, refused[0])
    assert code == 201 and body["version"] == 1, body
