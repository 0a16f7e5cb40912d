"""Files on a ring of real peer processes: placement on the k successors, byte-identical
reads through every peer, corruption, restart persistence, tombstones that survive
crashes, repair after crashes, migration on joins and leaves, a full peer, and a crash
in the middle of an upload.

Most scenarios share one module-scoped ring of 8 peers holding a corpus of ~70 files
(building it is the expensive part). Tests that change that ring restore it (a crashed
peer is restarted) or run last; each one first checks that the corpus is where it
belongs, so a broken predecessor shows up as such rather than as a puzzling failure.
Peers run anti-entropy every 0.3 s (``--repair-interval``); nothing sleeps, every
convergence is polled with a deadline.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from devtools.launcher import LocalRing, PeerProcess, wait_for
from proto import files_pb2 as fpb
from services.files.client import (
    FileClient,
    FileError,
    FileInfo,
    NoSpace,
    NotFound,
    PutResult,
    Unavailable,
)
from services.peer.overview import ring_files, walk_from
from services.storage.blobs import flip_byte
from tests.integration.chordtest import build_ring, describe, random_address, wait_ideal
from tests.integration.filetest import (
    FAST_FILES,
    MIB,
    K,
    by_id,
    client_via,
    download,
    download_problems,
    expected_holders,
    holdings,
    make_corpus,
    placement_problems,
    sha_of_file,
    tmp_entries,
    upload,
    wait_placed,
)

pytestmark = pytest.mark.integration


def no_tmp_entries(peer: PeerProcess) -> bool:
    return not tmp_entries(peer)


def has_tmp_entries(peer: PeerProcess) -> bool:
    return bool(tmp_entries(peer))


def _base_seed(config: pytest.Config) -> str:
    """The session's base seed from this directory's conftest (CHORD_TEST_SEED replays)."""
    here = Path(__file__).resolve().parent
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == here / "conftest.py":
            return str(plugin.BASE_SEED)
    raise RuntimeError("tests/integration/conftest.py is not loaded")


@dataclass
class CorpusRing:
    ring: LocalRing
    corpus: dict[str, bytes]  # what the ring must hold: name -> bytes
    rng: random.Random
    seed: str

    def live(self) -> list[PeerProcess]:
        return self.ring.live()

    def client(self, entry: PeerProcess | None = None, **options: Any) -> FileClient:
        """A client outside the ring entering at ``entry`` (default: a random live peer)."""
        return client_via(self.ring, entry or self.rng.choice(self.live()), **options)

    def wait_placed(self, where: str, timeout: float = 30.0) -> float:
        return wait_placed(self.ring, self.corpus, f"[seed {self.seed}] {where}", timeout)

    def check_downloads(self, where: str, entries: list[PeerProcess] | None = None) -> None:
        wrong = download_problems(self.ring, entries or self.live(), self.corpus)
        assert not wrong, f"[seed {self.seed}] {where}: {len(wrong)} bad downloads:\n" + (
            "\n".join(wrong[:10])
        )

    def fresh_file(self, name: str, size: int) -> bytes:
        """Upload a file of unique random bytes (its blob is shared with no other name)."""
        data = self.rng.randbytes(size)
        result = self.client().put(name, [data], size=len(data))
        assert result.info.sha256 == hashlib.sha256(data).hexdigest()
        return data


@pytest.fixture(scope="module")
def corpus_ring(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[CorpusRing]:
    seed = f"{_base_seed(request.config)}:{Path(__file__).stem}"
    print(f"CHORD_TEST_SEED={seed.split(':')[0]}")
    rng = random.Random(seed)
    ring = LocalRing(tmp_path_factory.mktemp("corpus-ring"), extra_args=FAST_FILES)
    try:
        started = time.monotonic()
        peers = build_ring(ring, rng, 8, seed)
        wait_ideal(ring, seed, timeout=40)
        built = time.monotonic()
        corpus = make_corpus(rng, small=192)  # 200 files, as the issue asks
        upload(ring, rng, corpus, peers)  # each through a random peer, acked by all k
        print(
            f"8 peers up in {built - started:.1f}s; {len(corpus)} files "
            f"({sum(map(len, corpus.values())) / MIB:.1f} MiB) uploaded in "
            f"{time.monotonic() - built:.1f}s"
        )
        yield CorpusRing(ring, corpus, rng, seed)
    finally:
        ring.close()


# ----------------------------------------------------------------- the shared ring
def test_files_live_on_their_k_successors_and_read_back_through_every_peer(
    corpus_ring: CorpusRing,
) -> None:
    cr = corpus_ring
    peers = cr.live()
    assert len(peers) == 8
    # stat_all on the k successors of each key (from the sorted peer IDs)...
    client = cr.client()
    wrong = []
    for name, data in cr.corpus.items():
        holders = expected_holders(cr.ring, peers, name)
        answers = client.stat_all(name, [p.ref for p in holders])
        for peer in holders:
            info = answers.get(peer.ref)
            if info is None or info.deleted or info.damaged or info.size != len(data):
                wrong.append(f"{name!r} on {peer.address}: {info}")
    assert not wrong, f"[seed {cr.seed}] " + "\n".join(wrong[:10])
    # ...and every peer's own listing: whole on exactly those k, nothing anywhere else.
    problems = placement_problems(cr.ring, client, peers, cr.corpus)
    assert not problems, f"[seed {cr.seed}]\n" + "\n".join(problems[:10])
    started = time.monotonic()
    cr.check_downloads("after upload")
    print(
        f"{len(cr.corpus)} files x {len(peers)} entry peers read back in "
        f"{time.monotonic() - started:.1f}s"
    )
    # Walking the ring from any peer lists every file once, with its owner.
    listed = ring_files(walk_from(cr.ring.transport, client, peers[-1].ref))
    assert sorted(row.info.name for row in listed) == sorted(cr.corpus)
    for row in listed:
        assert row.owner == expected_holders(cr.ring, peers, row.info.name)[0].ref


def _wait_repaired(
    cr: CorpusRing, name: str, data: bytes, holder: PeerProcess, timeout: float
) -> None:
    """Poll until ``holder``'s blob of ``name`` has the right bytes again and every
    holder reports a whole, undamaged copy."""
    sha = hashlib.sha256(data).hexdigest()
    path = holder.blob_path(sha)
    client = cr.client(holder)
    holders = [p.ref for p in expected_holders(cr.ring, cr.live(), name)]
    seen: dict[Any, FileInfo | None] = {}

    def repaired() -> bool:
        nonlocal seen
        seen = client.stat_all(name, holders)
        whole = [i for i in seen.values() if i and not i.damaged and i.sha256 == sha]
        return sha_of_file(path) == sha and len(whole) == len(holders)

    assert wait_for(repaired, timeout, interval=0.1), (
        f"[seed {cr.seed}] {name!r} not repaired on {holder.address} after {timeout}s: "
        f"blob sha {sha_of_file(path)}, expected {sha}; holders say "
        f"{ {p.address: i and (i.version, i.damaged) for p, i in seen.items()} }\n"
        + holder.log_tail(20)
    )


def test_a_corrupted_copy_that_is_read_is_never_served_and_gets_repaired(
    corpus_ring: CorpusRing,
) -> None:
    """One byte flipped in the owner's blob: a read through that very peer gets the right
    bytes (the bad chunk fails its hash, another holder serves the segment), the read
    marks the copy damaged, and anti-entropy replaces it."""
    cr = corpus_ring
    name = "corrupt/owner-copy.bin"
    data = cr.fresh_file(name, 2 * MIB + 99)  # 3 chunks: the middle one gets hit
    owner = expected_holders(cr.ring, cr.live(), name)[0]
    sha = hashlib.sha256(data).hexdigest()
    flip_byte(owner.blob_path(sha), MIB + cr.rng.randrange(MIB))

    # A 3-chunk file is one segment, read from the first holder with the newest
    # version: the owner, whose copy is corrupt.
    got = download(cr.client(owner), name)
    assert hashlib.sha256(got).hexdigest() == sha, "corrupted bytes were served"
    assert f"corrupt data: {name!r}" in owner.log_path.read_text(errors="replace"), (
        f"[seed {cr.seed}] the read did not touch the corrupt copy on {owner.address}; "
        "the test no longer exercises detection"
    )
    _wait_repaired(cr, name, data, owner, timeout=15)
    assert download(cr.client(owner), name) == data
    cr.corpus[name] = data  # from now on one more file the ring must keep


def test_a_rest_download_from_a_holder_with_a_corrupt_copy_gets_the_right_bytes(
    corpus_ring: CorpusRing,
) -> None:
    """A peer serves a REST download from its own copy without a gRPC hop (issue 15).
    One byte flipped in its blob's second chunk: curl still gets the right bytes (the bad
    chunk fails its hash before any of it is sent; the rest comes from the other holders
    from that point on), the copy is marked damaged, and repair replaces it."""
    cr = corpus_ring
    name = "corrupt/rest-local.bin"
    data = cr.fresh_file(name, 3 * MIB + 5)
    owner = expected_holders(cr.ring, cr.live(), name)[0]
    sha = hashlib.sha256(data).hexdigest()
    flip_byte(owner.blob_path(sha), MIB + cr.rng.randrange(MIB))
    url = f"{owner.api_url}/download_file?name={name}"
    done = subprocess.run(["curl", "-sSf", url], capture_output=True, timeout=60, check=True)
    assert hashlib.sha256(done.stdout).hexdigest() == sha, "corrupted bytes were served"
    assert f"corrupt data: {name!r}" in owner.log_path.read_text(errors="replace")
    _wait_repaired(cr, name, data, owner, timeout=15)
    again = subprocess.run(["curl", "-sSf", url], capture_output=True, timeout=60, check=True)
    assert again.stdout == data
    cr.corpus[name] = data


def test_a_rest_download_through_a_peer_without_a_copy_skips_a_corrupt_holder(
    corpus_ring: CorpusRing,
) -> None:
    """A peer with no copy lets each holder check the chunks it reads before sending
    (issue 15: the hashing is spread over the holders). The owner's copy has a flipped
    byte: it refuses that segment (DATA_LOSS), marks its copy damaged, the next holder
    serves it, curl gets the right bytes, and repair replaces the damaged copy."""
    cr = corpus_ring
    name = "corrupt/rest-through-other.bin"
    data = cr.fresh_file(name, 3 * MIB + 17)
    holders = expected_holders(cr.ring, cr.live(), name)
    other = next(p for p in cr.live() if p not in holders)
    owner = holders[0]
    sha = hashlib.sha256(data).hexdigest()
    flip_byte(owner.blob_path(sha), cr.rng.randrange(MIB))  # the first segment's chunk
    url = f"{other.api_url}/download_file?name={name}"
    done = subprocess.run(["curl", "-sSf", url], capture_output=True, timeout=60, check=True)
    assert hashlib.sha256(done.stdout).hexdigest() == sha, "corrupted bytes were served"
    _wait_repaired(cr, name, data, owner, timeout=15)
    cr.corpus[name] = data


@pytest.fixture
def heal_afterwards(corpus_ring: CorpusRing) -> Iterator[list[tuple[str, bytes, PeerProcess]]]:
    """(name, bytes, peer with a corrupt copy) to set right after the test, whatever its
    outcome, so the shared ring stays healthy: a read on that peer itself finds the
    damage (the read is refused), then anti-entropy repairs it."""
    damaged: list[tuple[str, bytes, PeerProcess]] = []
    yield damaged
    for name, data, peer in damaged:
        status = _fetch_status(corpus_ring.client(), peer, name)
        assert status in {"DATA_LOSS", f"served {len(data)} B"}, status
        _wait_repaired(corpus_ring, name, data, peer, timeout=15)
        corpus_ring.corpus[name] = data


def test_a_corrupted_copy_that_nobody_reads_gets_repaired(
    corpus_ring: CorpusRing, heal_afterwards: list[tuple[str, bytes, PeerProcess]]
) -> None:
    """One byte flipped in the last replica's blob, which reads do not touch (they go to
    the owner first): repair rounds must still find and fix it."""
    cr = corpus_ring
    name = "corrupt/replica-copy.bin"
    data = cr.fresh_file(name, 200_000)
    replica = expected_holders(cr.ring, cr.live(), name)[-1]
    sha = hashlib.sha256(data).hexdigest()
    flip_byte(replica.blob_path(sha), cr.rng.randrange(len(data)))
    heal_afterwards.append((name, data, replica))
    assert download(cr.client(replica), name) == data
    _wait_repaired(cr, name, data, replica, timeout=10)


def _inodes(peer: PeerProcess, infos: dict[str, FileInfo]) -> dict[str, int]:
    return {
        name: peer.blob_path(info.sha256).stat().st_ino
        for name, info in infos.items()
        if not info.deleted and info.size
    }


def test_a_crashed_peer_restarts_with_its_files(corpus_ring: CorpusRing) -> None:
    """kill -9, the ring repairs without it, then it restarts at the same address with
    the same data dir: it rejoins, holds and serves the files it had, from its own
    copies (not fetched again)."""
    cr = corpus_ring
    cr.wait_placed("before the crash")
    victim = cr.rng.choice(cr.live())
    before = holdings(cr.client(), [victim])[victim.address]
    assert before, f"[seed {cr.seed}] {victim.address} holds nothing: pick a bigger corpus"
    inodes = _inodes(victim, before)
    cr.ring.kill(victim)

    survivors = cr.live()
    wait_ideal(cr.ring, f"{cr.seed} after killing {victim.address}", 30, survivors)
    took = cr.wait_placed(f"after killing {victim.address}")
    print(f"k copies again {took:.1f}s after the ring healed")

    reborn = cr.ring.start_peer(victim.host, victim.port, join=cr.rng.choice(survivors).address)
    assert reborn.ref == victim.ref
    wait_ideal(cr.ring, f"{cr.seed} after restarting {victim.address}", 30)
    cr.wait_placed(f"after restarting {victim.address}")

    after = holdings(cr.client(reborn), [reborn])[reborn.address]
    assert {n: (i.version, i.sha256) for n, i in after.items()} == {
        n: (i.version, i.sha256) for n, i in before.items()
    }, f"[seed {cr.seed}] {reborn.address} holds other files than before its crash"
    refetched = sorted(n for n, ino in _inodes(reborn, after).items() if inodes.get(n) != ino)
    assert not refetched, (
        f"[seed {cr.seed}] {reborn.address} fetched {len(refetched)} of its "
        f"{len(inodes)} files again instead of keeping its own copies: {refetched[:5]}"
    )
    mine = [name for name in before if name in cr.corpus]
    wrong = download_problems(cr.ring, [reborn], cr.corpus, names=mine)
    assert not wrong, f"[seed {cr.seed}] via the restarted peer:\n" + "\n".join(wrong[:10])


def _fetch_status(client: FileClient, peer: PeerProcess, name: str) -> str:
    """What ``peer`` answers to a Fetch of ``name``: 'served N B' or a status code."""
    try:
        replies = client.stub(peer.ref).Fetch(fpb.FetchRequest(name=name, to_end=True), timeout=5)
        return f"served {sum(len(r.data) for r in replies)} B"
    except grpc.RpcError as exc:
        return str(exc.code().name)


def test_a_deleted_file_stays_deleted_through_crashes_and_repair(corpus_ring: CorpusRing) -> None:
    """Delete a file while one of its holders is down (that one keeps the old version
    on disk), crash another holder right after the delete, let the ring repair, then
    bring both back: the stale copy does not resurrect the file, nobody serves it, and
    the tombstone ends up on its k holders."""
    cr = corpus_ring
    cr.wait_placed("before the delete test")
    name = "delete/gone-for-good.txt"
    cr.fresh_file(name, 50_000)
    first, _, last = expected_holders(cr.ring, cr.live(), name)
    cr.ring.kill(last)  # misses the delete: keeps v1 on its disk
    client = cr.client(cr.rng.choice([p for p in cr.live() if p is not first]))
    tombstone = client.delete(name)
    assert tombstone.deleted and tombstone.version == 2, tombstone
    cr.ring.kill(first)  # had the tombstone
    with pytest.raises(NotFound):
        client.get(name)

    survivors = cr.live()
    wait_ideal(cr.ring, f"{cr.seed} after the kills", 30, survivors)
    cr.wait_placed("after killing two holders of a deleted file")
    for victim in (last, first):
        cr.ring.start_peer(victim.host, victim.port, join=cr.rng.choice(survivors).address)
    wait_ideal(cr.ring, f"{cr.seed} after the restarts", 30)
    cr.wait_placed("after the holders of a deleted file came back")

    peers = cr.live()
    holders = {p.address for p in expected_holders(cr.ring, peers, name)}
    seen: dict[str, dict[str, FileInfo]] = {}

    def tombstone_spread() -> bool:
        nonlocal seen
        seen = holdings(client, peers)
        having = {a for a, files in seen.items() if name in files}
        return having == holders and all(
            seen[a][name].deleted and seen[a][name].version == 2 for a in having
        )

    assert wait_for(tombstone_spread, 20, interval=0.2), (
        f"[seed {cr.seed}] records of {name!r}: "
        f"{ {a: (f[name].version, f[name].deleted) for a, f in seen.items() if name in f} }, "
        f"expected a v2 tombstone on exactly {sorted(holders)}"
    )
    for entry in peers:
        with pytest.raises(NotFound):
            client_via(cr.ring, entry).get(name)
    served = {p.address: _fetch_status(client, p, name) for p in peers}
    assert set(served.values()) == {"NOT_FOUND"}, served


def _addresses(peers: list[PeerProcess]) -> set[str]:
    return {p.address for p in peers}


def test_files_follow_crashes_joins_and_leaves(corpus_ring: CorpusRing) -> None:
    """Runs last on the shared ring (it leaves it changed). Two adjacent peers are
    killed (-9): every file is back to k copies on its new k successors. Two peers join:
    files migrate to them and the old holders drop their copies. One peer leaves
    gracefully: still k copies on the right peers. Every file reads back intact after
    each step."""
    cr = corpus_ring
    cr.wait_placed("before the churn test")
    ordered = by_id(cr.live())
    first = cr.rng.randrange(len(ordered))
    pair = [ordered[first], ordered[(first + 1) % len(ordered)]]
    killed = {p.address for p in pair}
    both = [n for n in cr.corpus if killed <= _addresses(expected_holders(cr.ring, ordered, n))]
    print(f"killing {describe(pair)}: {len(both)} files keep a single copy")
    for peer in pair:
        cr.ring.kill(peer)
    where = f"after killing adjacent {describe(pair)}"
    wait_ideal(cr.ring, f"{cr.seed} {where}", 30, cr.live())
    took = cr.wait_placed(where)
    print(f"{where}: k copies again {took:.1f}s after the ring healed")
    cr.check_downloads(where)

    ids = {p.ref.id for p in cr.ring.peers}
    joiners = []
    for _ in range(2):
        host, port = random_address(cr.rng, cr.ring.ring, ids)
        ids.add(cr.ring.ring.hash(f"{host}:{port}"))
        joiners.append(cr.ring.start_peer(host, port, join=cr.rng.choice(cr.live()).address))
    where = f"after {describe(joiners)} joined"
    new = {p.address for p in joiners}
    moving = [n for n in cr.corpus if new & _addresses(expected_holders(cr.ring, cr.live(), n))]
    assert moving, f"[seed {cr.seed}] no file moves to the joiners: nothing to test"
    wait_ideal(cr.ring, f"{cr.seed} {where}", 30)
    took = cr.wait_placed(where)
    print(f"{where}: {len(moving)} files migrated {took:.1f}s after the ring became ideal")
    cr.check_downloads(where, joiners)

    leaver = cr.rng.choice(cr.live())
    code = cr.ring.terminate(leaver)
    assert code == 0, f"[seed {cr.seed}] {leaver.address} exited with {code}:\n{leaver.log_tail()}"
    where = f"after {leaver.address} left"
    wait_ideal(cr.ring, f"{cr.seed} {where}", 15)
    took = cr.wait_placed(where)
    print(f"{where}: k copies again {took:.1f}s after the ring became ideal")
    cr.check_downloads(where, cr.rng.sample(cr.live(), 3))

    # Replication health agrees: each file reported once, by its owner, at k of k.
    client = cr.client()
    owners = {name: expected_holders(cr.ring, cr.live(), name)[0].ref for name in cr.corpus}

    def health_problems() -> list[str]:
        reported: dict[str, tuple[object, int, int]] = {}
        for peer in cr.live():
            for name, _, copies, wanted in client.health(peer.ref):
                reported[name] = (peer.ref, copies, wanted)
        wrong = [n for n in cr.corpus if reported.get(n) != (owners[n], K, K)]
        return [f"{n}: {reported.get(n)}" for n in wrong]

    assert wait_for(lambda: not health_problems(), 15, interval=0.2), (
        f"[seed {cr.seed}] {where}: health {health_problems()[:5]}"
    )


# ------------------------------------------------------------- rings of their own
def _start_peers(
    ring: LocalRing, rng: random.Random, seed: str, args: list[tuple[str, ...]]
) -> list[PeerProcess]:
    """One peer per entry of ``args`` (its extra flags), at random addresses."""
    peers: list[PeerProcess] = []
    ids: set[int] = set()
    for extra in args:
        host, port = random_address(rng, ring.ring, ids)
        ids.add(ring.ring.hash(f"{host}:{port}"))
        join = rng.choice(peers).address if peers else None
        peers.append(ring.start_peer(host, port, join=join, args=extra))
    wait_ideal(ring, seed, timeout=20)
    return peers


def test_a_full_peer_refuses_cleanly(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    """A holder with a 1 MiB quota refuses a 2 MiB upload (size announced up front, or
    only known at the end): put raises NoSpace and, since one full holder means no holder
    keeps the file, no peer stores it (not even the holders with room), nothing
    half-written stays on any disk, no quota leaks, the name stays free for a smaller
    upload, and repair rounds have nothing to spread."""
    ring = make_ring(extra_args=FAST_FILES)
    # Three peers and k = 3: every peer holds every file, the full one included.
    peers = _start_peers(ring, rng, seed, [(), (), ("--quota-mib", "1")])
    full = peers[2]
    client = client_via(ring, peers[0])
    small = rng.randbytes(300_000)
    assert set(client.put("fits.bin", [small]).holders) == {p.ref for p in peers}

    big = {"announced.bin": rng.randbytes(2 * MIB), "unannounced.bin": rng.randbytes(2 * MIB)}
    with pytest.raises(NoSpace):
        client.put("announced.bin", [big["announced.bin"]], size=2 * MIB)
    data = big["unannounced.bin"]
    with pytest.raises(NoSpace):
        client.put("unannounced.bin", (data[i : i + MIB // 4] for i in range(0, 2 * MIB, MIB // 4)))

    def check_clean(where: str) -> None:
        for name in big:
            held = client.stat_all(name, [p.ref for p in peers])
            assert set(held.values()) == {None}, f"[seed {seed}] {where}: {name} held: {held}"
            with pytest.raises(NotFound):
                download(client, name)
        usage = client.stub(full.ref).GetUsage(fpb.Empty2(), timeout=5)
        assert (usage.used, usage.files) == (len(small), 1), f"{where}: {usage}"
        for peer in peers:
            assert wait_for(partial(no_tmp_entries, peer), 5), (
                f"[seed {seed}] {where}: {peer.address} tmp/ holds {tmp_entries(peer)}"
            )

    check_clean("right after the refusals")

    # A few repair rounds later nothing has appeared, and the health report has only
    # "fits.bin" at its 3 copies.
    def health() -> dict[str, tuple[int, int]]:
        rows: dict[str, tuple[int, int]] = {}
        for peer in peers:
            for name, _, copies, wanted in client.health(peer.ref):
                assert name not in rows, f"[seed {seed}] {name} reported by two owners"
                rows[name] = (copies, wanted)
        return rows

    assert wait_for(lambda: health() == {"fits.bin": (3, 3)}, 10, interval=0.1), (
        f"[seed {seed}] health {health()}"
    )
    check_clean("after repair rounds")
    # The refused name is free: a file that fits is stored under it at version 1.
    stored = client.put("announced.bin", [small])
    assert stored.info.version == 1 and len(stored.holders) == 3
    assert download(client_via(ring, full), "announced.bin") == small


class PausingUpload:
    """Uploads ``data`` from a thread in 1 MiB blocks, pausing after ``pause_at`` bytes
    until ``resume()``, which returns the PutResult or the exception put raised."""

    def __init__(self, client: FileClient, name: str, data: bytes, pause_at: int) -> None:
        self.client, self.name, self.data, self.pause_at = client, name, data, pause_at
        self.paused = threading.Event()
        self._resume = threading.Event()
        self.outcome: PutResult | BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _blocks(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), MIB):
            if start == self.pause_at:
                self.paused.set()
                if not self._resume.wait(30):
                    raise TimeoutError("never resumed")
            yield self.data[start : start + MIB]

    def _run(self) -> None:
        try:
            self.outcome = self.client.put(self.name, self._blocks(), size=len(self.data))
        except BaseException as exc:
            self.outcome = exc

    def start(self) -> PausingUpload:
        self._thread.start()
        assert self.paused.wait(30), f"upload of {self.name!r} never got half way: {self.outcome}"
        return self

    def resume(self) -> PutResult | BaseException | None:
        self._resume.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), f"upload of {self.name!r} still running"
        return self.outcome


def test_a_holder_killed_during_an_upload_never_leads_to_a_partial_file(
    make_ring: Callable[..., LocalRing], rng: random.Random, seed: str
) -> None:
    """kill -9 of a holder while a 20 MiB upload streams to it. With write quorum 2 the
    put still succeeds on the other two, and repair brings the file to k copies; with
    quorum k it fails, and then no peer keeps it, before or after repair. Either way
    nothing is visible while the upload is half done, every read afterwards returns all
    the bytes or raises (never a prefix), and the killed peer restarts without a trace of
    the partial upload."""
    ring = make_ring(extra_args=FAST_FILES)
    _start_peers(ring, rng, seed, [()] * 5)
    size = 20 * MIB
    contents: dict[str, bytes] = {}
    victims: list[tuple[PeerProcess, list[str]]] = []  # with its unfinished writes
    refused: list[str] = []
    for name, quorum in [("quorum-2.bin", 2), ("quorum-k.bin", None)]:
        data = contents[name] = rng.randbytes(size)
        holders = expected_holders(ring, ring.live(), name)
        victim = rng.choice(holders)
        client = client_via(ring, rng.choice([p for p in ring.live() if p is not victim]))
        client.write_quorum = quorum
        upload = PausingUpload(client, name, data, pause_at=size // 2).start()
        with pytest.raises(NotFound):  # half an upload is invisible
            client.get(name)
        # The client paused half way; the bytes it sent may still be on their way to
        # the victim's staging file (polled, so a loaded machine does not kill too early).
        wait_for(partial(has_tmp_entries, victim), 10)
        ring.kill(victim)
        victims.append((victim, tmp_entries(victim)))
        assert victims[-1][1], f"[seed {seed}] {victim.address} had no upload in progress"
        outcome = upload.resume()
        if quorum == 2:
            assert isinstance(outcome, PutResult), f"[seed {seed}] {name}: {outcome!r}"
            assert list(outcome.holders) == [p.ref for p in holders if p is not victim]
        else:
            assert isinstance(outcome, Unavailable), f"[seed {seed}] {name}: {outcome!r}"
            refused.append(name)
        for reader in ring.live():
            try:
                got = download(client_via(ring, reader), name)
            except FileError:
                continue
            assert got == data, f"[seed {seed}] {name} via {reader.address}: {len(got)} B"

    # The first victim comes back: startup throws its unfinished write away, and what
    # it holds of the file afterwards (repair may copy it there) is whole.
    victim, unfinished = victims[0]
    reborn = ring.start_peer(victim.host, victim.port, join=ring.live()[0].address)
    assert not set(unfinished) & set(tmp_entries(reborn)), tmp_entries(reborn)
    wait_ideal(ring, seed, 20)
    client = client_via(ring, reborn)
    for name, data in contents.items():
        info = client.stat_all(name, [reborn.ref]).get(reborn.ref)
        assert info is None or info.sha256 == hashlib.sha256(data).hexdigest(), info
    acknowledged = {name: data for name, data in contents.items() if name not in refused}
    took = wait_placed(ring, acknowledged, f"[seed {seed}] after the interrupted uploads")
    print(f"k copies of both files {took:.1f}s after the ring became ideal")
    wrong = download_problems(ring, ring.live(), acknowledged)
    assert not wrong, f"[seed {seed}]\n" + "\n".join(wrong)
    for peer in ring.live():
        assert not tmp_entries(peer), f"[seed {seed}] {peer.address}: {tmp_entries(peer)}"
        for name in refused:  # the refused upload left nothing that repair could spread
            held = client.stat_all(name, [peer.ref]).get(peer.ref)
            assert held is None, f"[seed {seed}] {peer.address} has refused {name}: {held}"
