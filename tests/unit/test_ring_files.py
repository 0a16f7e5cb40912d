"""services.peer.overview.ring_files / wanted_copies over hand-made ring walks (no processes):
holders per file, the newest version winning, damaged and unreachable copies not counted."""

from __future__ import annotations

from chord.node_ref import NodeRef
from services.files.client import FileInfo
from services.peer.overview import RingPeer, ring_files, wanted_copies

A, B, C, D = (NodeRef(ident, f"127.0.0.1:{ident}") for ident in (10, 20, 30, 40))


def info(
    name: str, key: int, version: int = 1, deleted: bool = False, damaged: bool = False
) -> FileInfo:
    return FileInfo(name, key, version, 7, "0" * 64, 1 << 20, (), deleted, damaged)


def held(peer: NodeRef, *files: FileInfo) -> RingPeer:
    return RingPeer(peer, True, 0, 0, files=files)


def test_holders_are_the_reachable_peers_with_a_healthy_newest_copy() -> None:
    walked = [
        held(A, info("f", 15)),
        held(B, info("f", 15), info("g", 35, version=2)),
        held(C, info("f", 15, damaged=True), info("g", 35, version=1)),
        RingPeer(D, False),  # its copies are unknown: they do not count
    ]
    rows = {row.info.name: row for row in ring_files(walked)}
    assert rows["f"].holders == (A, B) and rows["f"].copies == 2
    assert rows["f"].owner == B  # key 15 lies in (10, 20]
    assert rows["g"].holders == (B,) and rows["g"].info.version == 2
    assert rows["g"].owner == A  # key 35: D does not answer, so (30, 10] wraps to A


def test_a_tombstoned_file_is_not_listed() -> None:
    walked = [held(A, info("gone", 5, version=2, deleted=True)), held(B, info("gone", 5))]
    assert ring_files(walked) == []


def test_wanted_is_k_or_every_reachable_peer_when_fewer() -> None:
    four = [held(p) for p in (A, B, C, D)]
    assert wanted_copies(four, 3) == 3
    two_alive = [held(A), RingPeer(B, False), held(C)]
    assert wanted_copies(two_alive, 3) == 2
    assert ring_files([]) == [] and wanted_copies([], 3) == 0
