"""Helpers for the file-storage integration tests: a corpus of files with known bytes,
where each file should live (its k successors among the live peers), what every peer
actually holds (its ListRange), downloads checked byte for byte, and the on-disk layout
of a peer's storage (``<data dir>/files/{blobs,tmp,index.sqlite3}``).

Everything is observed through the peers' own gRPC file service or their data dirs; no
peer internals are imported.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

from chord.placement import replica_indexes
from devtools.launcher import LocalRing, PeerProcess, wait_for
from services.files.client import FileClient, FileError, FileInfo, remote_client
from tests.integration.chordtest import describe

MIB = 1 << 20
K = 3
# LocalRing's fast failure detection plus a fast anti-entropy / migration round.
FAST_FILES = (*LocalRing.extra_args, "--repair-interval", "0.3", "--replicas", str(K))


def make_corpus(rng: random.Random, small: int, prefix: str = "") -> dict[str, bytes]:
    """``small`` files of 0 B .. 64 KiB (log-spread) plus the edge sizes around the 1 MiB
    chunk and a few multi-chunk files. Names include spaces, slashes and non-ASCII."""
    sizes = [0, 1, MIB - 1, MIB, MIB + 1, 2 * MIB + 12345, 3 * MIB + 7, 8 * MIB]
    sizes += [int(2 ** rng.uniform(0, 16)) for _ in range(small)]
    styles = ["doc-{}.txt", "photos/2024/img {}.jpg", "données/é-{}.bin", "a b/{}"]
    corpus = {}
    for index, size in enumerate(sizes):
        name = prefix + styles[index % len(styles)].format(f"{index:03d}-{size}")
        corpus[name] = rng.randbytes(size)
    return corpus


def client_via(ring: LocalRing, entry: PeerProcess, **options: Any) -> FileClient:
    """A client outside the ring whose lookups start at ``entry``."""
    options.setdefault("replicas", K)
    return remote_client(ring.ring, ring.transport, entry.ref, **options)


def by_id(peers: Iterable[PeerProcess]) -> list[PeerProcess]:
    return sorted(peers, key=lambda p: p.ref.id)


def expected_holders(
    ring: LocalRing, peers: Sequence[PeerProcess], name: str, k: int = K
) -> list[PeerProcess]:
    """successor(SHA-1(name)) and the next k-1 peers among ``peers``, owner first."""
    ordered = by_id(peers)
    ids = [p.ref.id for p in ordered]
    return [ordered[i] for i in replica_indexes(ids, ring.ring.hash(name), k)]


def holdings(client: FileClient, peers: Iterable[PeerProcess]) -> dict[str, dict[str, FileInfo]]:
    """address -> name -> what that peer holds (tombstones included). A peer that does
    not answer is left out."""
    held: dict[str, dict[str, FileInfo]] = {}
    for peer in peers:
        try:
            held[peer.address] = {info.name: info for info in client.list_peer(peer.ref)}
        except FileError:
            continue
    return held


def placement_problems(
    ring: LocalRing,
    client: FileClient,
    peers: Sequence[PeerProcess],
    corpus: dict[str, bytes],
    k: int = K,
    copies: dict[str, int] | None = None,
) -> list[str]:
    """Why the corpus is not yet exactly where it belongs among ``peers``: each file
    whole (right SHA-256, not damaged, not deleted) on its k successors (``copies[name]``
    for a file with its own count) and nowhere else. Empty when all is well."""
    held = holdings(client, peers)
    problems = [f"{p.address} did not list its files" for p in peers if p.address not in held]
    for name, data in corpus.items():
        count = (copies or {}).get(name, k)
        want = {p.address for p in expected_holders(ring, peers, name, count)}
        sha = hashlib.sha256(data).hexdigest()
        good = {
            address
            for address, files in held.items()
            if (info := files.get(name)) is not None
            and not info.deleted
            and not info.damaged
            and info.sha256 == sha
            and info.size == len(data)
        }
        anywhere = {address for address, files in held.items() if name in files}
        if good != want or anywhere != want:
            problems.append(
                f"{name!r}: whole on {sorted(good)}, some record on {sorted(anywhere)}, "
                f"expected exactly {sorted(want)}"
            )
    return problems


def wait_placed(
    ring: LocalRing,
    corpus: dict[str, bytes],
    where: str,
    timeout: float = 30.0,
    copies: dict[str, int] | None = None,
) -> float:
    """Poll until every file of ``corpus`` is whole on exactly its k successors among the
    live peers (``copies[name]`` for a file with its own count) and has no record
    anywhere else; returns how long that took."""
    peers = ring.live()
    client = client_via(ring, peers[0])
    problems: list[str] = []

    def placed() -> bool:
        nonlocal problems
        problems = placement_problems(ring, client, peers, corpus, copies=copies)
        return not problems

    started = time.monotonic()
    if not wait_for(placed, timeout, interval=0.2):
        raise AssertionError(
            f"{where}: {len(problems)} files misplaced after {timeout}s "
            f"(members {describe(peers)}):\n" + "\n".join(problems[:10]) + "\n" + log_tails(peers)
        )
    return time.monotonic() - started


def download(client: FileClient, name: str) -> bytes:
    _, stream = client.get(name)
    return b"".join(stream)


def download_problems(
    ring: LocalRing,
    entries: Sequence[PeerProcess],
    corpus: dict[str, bytes],
    names: Iterable[str] | None = None,
    workers: int = 4,
) -> list[str]:
    """Download every file of ``names`` (default: the corpus) through every entry peer;
    describe each one that failed or differs from the bytes uploaded."""
    chosen = list(corpus if names is None else names)

    def through(entry: PeerProcess) -> list[str]:
        client = client_via(ring, entry)
        wrong = []
        for name in chosen:
            try:
                got = download(client, name)
            except FileError as exc:
                wrong.append(f"{name!r} via {entry.address}: {type(exc).__name__}: {exc}")
                continue
            if got != corpus[name]:
                wrong.append(
                    f"{name!r} via {entry.address}: {len(got)} B sha "
                    f"{hashlib.sha256(got).hexdigest()[:12]}, expected {len(corpus[name])} B "
                    f"sha {hashlib.sha256(corpus[name]).hexdigest()[:12]}"
                )
        return wrong

    with futures.ThreadPoolExecutor(workers) as pool:
        return [line for lines in pool.map(through, entries) for line in lines]


def upload(
    ring: LocalRing, rng: random.Random, corpus: dict[str, bytes], entries: Sequence[PeerProcess]
) -> None:
    """Put every file through a randomly chosen entry peer; assert each was acknowledged
    by all k of its holders (the default write quorum is k)."""
    clients = {p.address: client_via(ring, p) for p in entries}
    for name, data in corpus.items():
        entry = rng.choice(entries)
        # Stream in uneven blocks, as a reader of a socket or file would.
        blocks = [data[i : i + 300_000] for i in range(0, len(data), 300_000)]
        result = clients[entry.address].put(name, blocks, size=len(data))
        assert result.info.sha256 == hashlib.sha256(data).hexdigest(), name
        assert result.info.size == len(data) and result.info.version == 1, result.info
        want = [p.ref for p in expected_holders(ring, ring.live(), name)]
        assert list(result.holders) == want, (
            f"{name!r} via {entry.address} stored on "
            f"{[h.address for h in result.holders]}, expected {[w.address for w in want]}"
        )


# ------------------------------------------------------------------ on-disk layout
def files_dir(peer: PeerProcess) -> Path:
    """The storage engine's directory of a LocalRing peer (its --data-dir + /files)."""
    return peer.log_path.parent / "files"


def tmp_entries(peer: PeerProcess) -> list[str]:
    return sorted(entry.name for entry in (files_dir(peer) / "tmp").iterdir())


def sha_of_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def log_tails(peers: Iterable[PeerProcess], lines: int = 12) -> str:
    return "\n".join(f"--- {p.address} ({p.short_id})\n{p.log_tail(lines)}" for p in peers)
