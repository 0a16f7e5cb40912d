"""services.rest.walk.ring_files / wanted_copies over hand-made listings (no processes):
holders per file, the newest version winning, damaged and unreachable copies not counted."""

from __future__ import annotations

from chord.ids import to_hex
from chord.node_ref import NodeRef
from proto import files_pb2 as fpb
from services.rest.walk import Listing, ring_files, wanted_copies

A, B, C, D = (NodeRef(ident, f"127.0.0.1:{ident}") for ident in (10, 20, 30, 40))


def meta(name: str, key: int, version: int = 1, **flags: bool) -> fpb.FileMeta:
    return fpb.FileMeta(name=name, key=to_hex(key), version=version, size=7, **flags)


def test_holders_are_the_reachable_peers_with_a_healthy_newest_copy() -> None:
    listings = [
        Listing(A, True, (meta("f", 15),)),
        Listing(B, True, (meta("f", 15), meta("g", 35, version=2))),
        Listing(C, True, (meta("f", 15, damaged=True), meta("g", 35, version=1))),
        Listing(D, False, ()),  # its copies are unknown: they do not count
    ]
    rows = {row.meta.name: row for row in ring_files(listings)}
    assert rows["f"].holders == (A, B) and rows["f"].copies == 2
    assert rows["f"].owner == B  # key 15 lies in (10, 20]
    assert rows["g"].holders == (B,) and rows["g"].meta.version == 2
    assert rows["g"].owner == A  # key 35: D does not answer, so (30, 10] wraps to A


def test_a_tombstoned_file_is_not_listed() -> None:
    listings = [
        Listing(A, True, (meta("gone", 5, version=2, deleted=True),)),
        Listing(B, True, (meta("gone", 5, version=1),)),
    ]
    assert ring_files(listings) == []


def test_wanted_is_k_or_every_reachable_peer_when_fewer() -> None:
    four = [Listing(p, True, ()) for p in (A, B, C, D)]
    assert wanted_copies(four, 3) == 3
    two_alive = [Listing(A, True, ()), Listing(B, False, ()), Listing(C, True, ())]
    assert wanted_copies(two_alive, 3) == 2
    assert ring_files([]) == [] and wanted_copies([], 3) == 0
