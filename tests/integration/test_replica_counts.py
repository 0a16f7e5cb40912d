"""Per-file replica counts on an 8-peer ring: files kept on 1, 2 and 5 peers (and one on
the ring's default 3) stay on exactly that many — their owner and the next peers, nowhere
else — after repair rounds, a join, a kill -9, and an overwrite that changes the count.
The 1-copy file is uploaded the way users do it, with ``client.py upload --replicas 1``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devtools.launcher import LocalRing, PeerProcess
from tests.integration.chordtest import random_address, wait_ideal
from tests.integration.filetest import FAST_FILES, K, client_via, expected_holders, wait_placed

ROOT = Path(__file__).resolve().parents[2]


def upload_with_client_py(
    peer: PeerProcess, path: Path, name: str, replicas: int
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "client.py"),
            "--node",
            f"{peer.host}:{peer.api_port}",
            "--json",
            "upload",
            str(path),
            "--name",
            name,
            "--replicas",
            str(replicas),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_each_file_keeps_exactly_its_own_number_of_copies(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str, tmp_path: Path
) -> None:
    ring = make_ring(extra_args=FAST_FILES)
    ids: set[int] = set()

    def start() -> PeerProcess:
        host, port = random_address(rng, ring.ring, ids)
        ids.add(ring.ring.hash(f"{host}:{port}"))
        live = ring.live()
        return ring.start_peer(host, port, join=rng.choice(live).address if live else None)

    for _ in range(8):
        start()
    wait_ideal(ring, seed, timeout=30)

    corpus = {
        name: rng.randbytes(rng.randrange(1, 300_000))
        for name in ("one.bin", "two.bin", "five.bin", "default.bin")
    }
    copies = {"one.bin": 1, "two.bin": 2, "five.bin": 5, "default.bin": K}
    source = tmp_path / "one.bin"
    source.write_bytes(corpus["one.bin"])
    answer = upload_with_client_py(rng.choice(ring.live()), source, "one.bin", 1)
    assert len(answer["holders"]) == 1, answer
    client = client_via(ring, rng.choice(ring.live()))
    for name in ("two.bin", "five.bin"):
        result = client.put(name, [corpus[name]], replicas=copies[name])
        assert len(result.holders) == copies[name] and result.info.replicas == copies[name]
    client.put("default.bin", [corpus["default.bin"]])

    def placed(where: str) -> None:
        took = wait_placed(ring, corpus, f"[seed {seed}] {where}", copies=copies)
        print(f"{where}: placed {took:.1f}s")

    # Several repair rounds (0.3 s each) later, still exactly these counts.
    placed("after upload")
    assert wait_placed(ring, corpus, "steady", timeout=2, copies=copies) >= 0

    start()
    wait_ideal(ring, seed, timeout=30)
    placed("after a join")

    lone = expected_holders(ring, ring.live(), "one.bin", 1)[0]
    victim = rng.choice(
        [p for p in expected_holders(ring, ring.live(), "five.bin", 5) if p is not lone]
    )
    ring.kill(victim)
    wait_ideal(ring, seed, timeout=30)
    placed("after a kill -9")

    # An overwrite that changes the count takes effect: the extra copies go away.
    corpus["five.bin"] = rng.randbytes(50_000)
    copies["five.bin"] = 2
    result = client_via(ring, ring.live()[0]).put(
        "five.bin", [corpus["five.bin"]], replicas=2, overwrite=True
    )
    assert result.info.version == 2 and len(result.holders) == 2
    placed("after an overwrite down to 2 copies")
    # An overwrite without a count keeps the file's own (2), not the ring's default.
    corpus["two.bin"] = rng.randbytes(10_000)
    result = client_via(ring, ring.live()[1]).put("two.bin", [corpus["two.bin"]], overwrite=True)
    assert len(result.holders) == 2 and result.info.replicas == 2
    placed("after an overwrite keeping its count")

    # The ring's view: every row's wanted is its own count, and nothing is degraded.
    status, body = ring.live()[0].get("/show_files?scope=ring", timeout=10)
    assert status == 200, body
    rows = body["files"]
    assert {row["name"]: (row["copies"], row["wanted"]) for row in rows} == {
        name: (count, count) for name, count in copies.items()
    }
