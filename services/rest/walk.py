"""Walking the ring from this peer along successor pointers, listing each peer's files.

Used by GET /ring (peers with file counts) and GET /show_files?scope=ring (every live
file once, with its owner and how many healthy copies exist). Bounded by a peer limit,
and a peer that does not answer is reported as unreachable and stepped over using the
previous peer's successor list, so one dead peer never hides the rest of the ring.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from chord.ids import between_right, from_hex
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.transport import PeerUnreachable
from proto import files_pb2 as fpb
from services.file_client import WHOLE_RING, FileClient
from services.grpc_transport import GrpcTransport

MAX_PEERS = 1024  # a walk never costs more than this many peers' listings


@dataclass(frozen=True)
class Listing:
    peer: NodeRef
    reachable: bool
    files: tuple[fpb.FileMeta, ...]  # as the peer holds them, tombstones included

    def counts(self) -> dict[str, int]:
        live = [meta for meta in self.files if not meta.deleted]
        return {
            "primary": sum(meta.role == "primary" for meta in live),
            "replica": sum(meta.role != "primary" for meta in live),
        }


@dataclass(frozen=True)
class RingFile:
    meta: fpb.FileMeta  # the newest version
    owner: NodeRef
    holders: tuple[NodeRef, ...]  # reachable peers holding that version undamaged, ring order

    @property
    def copies(self) -> int:
        return len(self.holders)


def _list(files: FileClient, peer: NodeRef) -> tuple[fpb.FileMeta, ...]:
    request = fpb.RangeRequest(start=WHOLE_RING, end=WHOLE_RING)
    return tuple(files.stub(peer).ListRange(request, timeout=files.rpc_timeout * 5))


def walk(
    node: ChordNode, transport: GrpcTransport, files: FileClient, limit: int = MAX_PEERS
) -> list[Listing]:
    """Every peer in ring order starting with this one (unreachable ones included)."""
    state = node.state()
    listings = [Listing(node.me, True, _list(files, node.me))]
    seen = {node.me}
    successors = state.successors
    while len(listings) < limit:
        for candidate in successors:
            if candidate in seen:
                return listings  # back at the start (or a loop): the walk is complete
            seen.add(candidate)
            try:
                nxt = transport.get_state(candidate)
                listings.append(Listing(nxt.node, True, _list(files, candidate)))
            except (PeerUnreachable, grpc.RpcError):
                listings.append(Listing(candidate, False, ()))
                continue
            successors = nxt.successors
            break
        else:
            return listings  # nobody left to ask
    return listings


def ring_files(listings: list[Listing]) -> list[RingFile]:
    """One row per live file: the newest version any reachable peer holds, the peer
    whose range holds its key, and the peers holding a healthy copy of that version."""
    reachable = [item for item in listings if item.reachable]
    if not reachable:
        return []
    held: dict[str, list[tuple[NodeRef, fpb.FileMeta]]] = {}
    for item in reachable:
        for meta in item.files:
            held.setdefault(meta.name, []).append((item.peer, meta))
    rows = []
    for name in sorted(held):
        copies = held[name]
        newest = max((meta for _, meta in copies), key=lambda m: (m.version, not m.damaged))
        if newest.deleted:
            continue
        holders = tuple(
            peer
            for peer, meta in copies
            if meta.version == newest.version and not meta.deleted and not meta.damaged
        )
        rows.append(RingFile(newest, _owner(reachable, from_hex(newest.key)), holders))
    return rows


def wanted_copies(listings: list[Listing], replicas: int) -> int:
    """Healthy copies a file should have now: k, or every reachable peer when fewer
    than k are (a ring of two cannot hold three copies, and is not degraded for it)."""
    return min(replicas, sum(item.reachable for item in listings))


def _owner(ring_order: list[Listing], key: int) -> NodeRef:
    """The peer whose range (previous peer, peer] holds ``key``."""
    previous = ring_order[-1].peer
    for item in ring_order:
        if between_right(previous.id, key, item.peer.id):
            return item.peer
        previous = item.peer
    return ring_order[0].peer
