"""What a peer can tell about itself and its ring, for the console menu and the REST API.

Plain functions over a peer's parts returning small frozen dataclasses; nothing here
prints or formats. Every remote call carries a deadline, and the ring walk is bounded
(``limit`` peers, each visited once) so inconsistent pointers cannot make it loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from chord.ids import between_right
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.transport import PeerState, PeerUnreachable
from services.file_client import FileClient, FileInfo
from services.replication import Health, Replicator
from services.storage import StorageEngine

LIST_TIMEOUT_FACTOR = 5  # a peer's file listing may take a few RPC deadlines, no more


class PeerParts(Protocol):
    """What the overview (and the menu) need from a running peer; ``server.Peer`` has it."""

    @property
    def node(self) -> ChordNode: ...

    @property
    def files(self) -> FileClient: ...

    @property
    def storage(self) -> StorageEngine: ...

    @property
    def replicator(self) -> Replicator: ...


@dataclass(frozen=True)
class RingPeer:
    """One peer met on the ring walk. Counts are None when it did not answer."""

    node: NodeRef
    reachable: bool
    primary: int | None = None  # live files in its range (predecessor, node]
    replica: int | None = None  # live files it holds for others
    detail: str = ""  # why it was not reachable


@dataclass(frozen=True)
class LocalFile:
    name: str
    key: int
    size: int
    sha256: str
    version: int
    role: str
    damaged: bool
    created: float  # Unix time this version was stored here


@dataclass(frozen=True)
class PeerStatus:
    node: NodeRef
    joined: bool
    used_bytes: int
    quota_bytes: int | None  # None: unlimited
    primary: int
    replica: int
    degraded: int


def _count(state: PeerState, listing: list[FileInfo]) -> tuple[int, int]:
    """(primary, replica) live files: primary ones fall in (predecessor, peer]."""
    me = state.node.id
    start = state.predecessor.id if state.predecessor else me  # alone: everything
    live = [info for info in listing if not info.deleted]
    primary = sum(1 for info in live if between_right(start, info.key, me))
    return primary, len(live) - primary


def ring_walk(node: ChordNode, files: FileClient, limit: int = 1000) -> list[RingPeer]:
    """Every peer in ring order from this one, following successor pointers.

    A peer that does not answer is listed as unreachable and the walk goes on with the
    next entry of the last live peer's successor list. It stops when it comes back to
    a peer already listed (normally this one), runs out of candidates, or has ``limit``
    peers: each peer costs at most two RPCs, each with its deadline.
    """
    list_timeout = files.rpc_timeout * LIST_TIMEOUT_FACTOR
    walked: list[RingPeer] = []
    seen: set[int] = set()
    candidates: list[NodeRef] = [node.me]
    while candidates and len(walked) < limit:
        peer = candidates.pop(0)
        if peer.id in seen:
            break
        seen.add(peer.id)
        try:
            if peer == node.me:
                local = node.state()
                state = PeerState(local.me, local.predecessor, local.successors)
            else:
                state = node.transport.get_state(peer)
        except PeerUnreachable as exc:
            walked.append(RingPeer(peer, reachable=False, detail=exc.reason or "no answer"))
            continue
        candidates = list(state.successors)
        try:
            primary, replica = _count(state, files.list_peer(peer, timeout=list_timeout))
        except grpc.RpcError as exc:
            detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            walked.append(RingPeer(state.node, reachable=False, detail=detail or "no answer"))
            continue
        walked.append(RingPeer(state.node, True, primary, replica))
    return walked


def local_files(storage: StorageEngine) -> list[LocalFile]:
    """This peer's live copies (tombstones left out), by name."""
    return sorted(
        (
            LocalFile(r.name, r.key, r.size, r.sha256, r.version, r.role, r.damaged, r.created)
            for r in storage.records()
        ),
        key=lambda f: f.name,
    )


def degraded(replicator: Replicator) -> list[Health]:
    """Files this peer is primary for with fewer healthy copies than wanted, as of the
    last anti-entropy round."""
    return replicator.degraded()


def peer_status(node: ChordNode, storage: StorageEngine, replicator: Replicator) -> PeerStatus:
    used, quota = storage.usage()
    held = storage.records()
    primary = sum(1 for r in held if r.role == "primary")
    return PeerStatus(
        node.me, node.joined, used, quota, primary, len(held) - primary, len(degraded(replicator))
    )
