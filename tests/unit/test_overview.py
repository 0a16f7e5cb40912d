"""services.peer.overview over a simulated ring and a real storage engine (no processes)."""

from __future__ import annotations

from pathlib import Path

import grpc

from chord.node_ref import NodeRef
from chord.transport import PeerState
from services.files.client import FileInfo, PeerCallFailed
from services.files.replication import Health, Replicator
from services.peer.overview import local_files, peer_status, ring_walk
from services.storage import StorageEngine
from tests.unit.sim_ring import ideal_sim_ring


class FakeFiles:
    """list_peer answers from a table; peers in ``broken`` fail like a gRPC error."""

    rpc_timeout = 1.0

    def __init__(
        self, held: dict[str, list[FileInfo]], broken: frozenset[str] = frozenset()
    ) -> None:
        self.held = held
        self.broken = broken
        self.timeouts: list[float | None] = []

    def list_peer(self, peer: NodeRef, timeout: float | None = None) -> list[FileInfo]:
        self.timeouts.append(timeout)
        if peer.address in self.broken:
            raise PeerCallFailed(peer, grpc.RpcError("boom"))
        return self.held.get(peer.address, [])


def info(name: str, key: int, deleted: bool = False) -> FileInfo:
    return FileInfo(name, key, 1, 3, "0" * 64, 1 << 20, (), deleted)


def test_walk_lists_every_peer_in_ring_order_with_file_counts() -> None:
    net = ideal_sim_ring(4)
    start = net.members()[0]
    ordered = sorted(net.members(), key=lambda n: n.me.id)
    i = ordered.index(start)
    expected = [n.me for n in ordered[i:] + ordered[:i]]
    second = expected[1]
    # the second peer's primary range is (start, second]
    files = FakeFiles(
        {
            second.address: [
                info("mine", second.id),
                info("other", start.me.id),
                info("gone", second.id, deleted=True),
            ]
        }
    )
    walk = ring_walk(start, files)  # type: ignore[arg-type]
    assert [p.node for p in walk] == expected
    assert all(p.reachable for p in walk)
    assert (walk[1].primary, walk[1].replica) == (1, 1)
    assert (walk[0].primary, walk[0].replica) == (0, 0)
    assert all(t is not None and t <= 10 for t in files.timeouts)  # bounded deadline


def test_walk_reports_dead_and_silent_peers_and_goes_on() -> None:
    net = ideal_sim_ring(5)
    start = net.members()[0]
    ordered = sorted(net.members(), key=lambda n: n.me.id)
    i = ordered.index(start)
    ring = [n.me for n in ordered[i:] + ordered[:i]]
    net.crash(ring[1].address)
    walk = ring_walk(start, FakeFiles({}, broken=frozenset({ring[3].address})))  # type: ignore[arg-type]
    assert [p.node for p in walk] == ring
    assert [p.reachable for p in walk] == [True, False, True, False, True]
    assert walk[1].primary is None and walk[1].detail


def test_walk_is_bounded_when_pointers_loop_elsewhere() -> None:
    net = ideal_sim_ring(4)
    start = net.members()[0]
    others = [n for n in net.members() if n is not start]
    a, b, c = (n.me for n in others)

    class Looping:
        """a -> b -> c -> b: never back to the start."""

        def get_state(self, peer: NodeRef) -> PeerState:
            nxt = {a: b, b: c, c: b}[peer]
            return PeerState(peer, None, (nxt,))

    start.bootstrap(None, (a,), tuple(a for _ in start.state().fingers))
    start.transport = Looping()  # type: ignore[assignment]
    walk = ring_walk(start, FakeFiles({}))  # type: ignore[arg-type]
    assert [p.node for p in walk] == [start.me, a, b, c]
    assert len(ring_walk(start, FakeFiles({}), limit=2)) == 2  # type: ignore[arg-type]


def test_local_files_and_status(tmp_path: Path) -> None:
    net = ideal_sim_ring(2)
    node = net.members()[0]
    with StorageEngine(tmp_path / "files", quota_bytes=1000) as storage:
        storage.put_bytes("b.txt", 2, 1, b"hello", role="primary")
        storage.put_bytes("a.txt", 1, 1, b"hi", role="replica")
        storage.put_bytes("gone", 3, 1, b"x", role="primary")
        storage.delete("gone", 3, 2, role="primary")
        listed = local_files(storage)
        assert [(f.name, f.size, f.role, f.version) for f in listed] == [
            ("a.txt", 2, "replica", 1),
            ("b.txt", 5, "primary", 1),
        ]
        replicator = Replicator(node, storage, object(), 3)  # type: ignore[arg-type]
        replicator._health = {"b.txt": Health("b.txt", 1, 1, 3)}
        status = peer_status(node, storage, replicator)
        assert status.joined and status.node == node.me
        assert (status.primary, status.replica, status.degraded) == (1, 1, 1)
        assert status.used_bytes == 7 and status.quota_bytes == 1000
