"""What a peer can tell about itself and its ring, for the console menu and the REST API.

Plain functions over a peer's parts returning small frozen dataclasses; nothing here
prints or formats. Every remote call carries a deadline, and the ring walk is bounded
(``limit`` peers, each visited once) so inconsistent pointers cannot make it loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chord.ids import between_right
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.transport import PeerState, PeerUnreachable, Transport
from services.files.client import FileClient, FileInfo, PeerCallFailed
from services.files.replication import Health, Replicator
from services.storage import StorageEngine

LIST_TIMEOUT_FACTOR = 5  # a peer's file listing may take a few RPC deadlines, no more
MAX_WALK = 1024  # a walk never costs more than this many peers' listings


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
    files: tuple[FileInfo, ...] = ()  # everything it holds, tombstones included


@dataclass(frozen=True)
class RingFile:
    info: FileInfo  # the newest version any reachable peer holds
    owner: NodeRef  # the walked peer whose range (previous peer, peer] holds the key
    holders: tuple[NodeRef, ...]  # reachable peers holding that version undamaged, ring order

    @property
    def copies(self) -> int:
        return len(self.holders)


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


def ring_walk(node: ChordNode, files: FileClient, limit: int = MAX_WALK) -> list[RingPeer]:
    """Every peer in ring order from this one (see :func:`walk_from`); this peer's own
    state is read locally, not over the network."""
    local = node.state()
    here = PeerState(local.me, local.predecessor, local.successors)
    return walk_from(node.transport, files, node.me, limit, known=here)


def walk_from(
    transport: Transport,
    files: FileClient,
    start: NodeRef,
    limit: int = MAX_WALK,
    known: PeerState | None = None,
) -> list[RingPeer]:
    """Every peer in ring order from ``start``, following successor pointers (from
    inside the ring or from a client beside it; ``known`` is ``start``'s state if the
    caller has it).

    A peer that does not answer is listed as unreachable and the walk goes on with the
    next entry of the last live peer's successor list. It stops when it comes back to
    a peer already listed (normally this one), runs out of candidates, or has ``limit``
    peers: each peer costs at most two RPCs, each with its deadline.
    """
    list_timeout = files.rpc_timeout * LIST_TIMEOUT_FACTOR
    walked: list[RingPeer] = []
    seen: set[int] = set()
    candidates: list[NodeRef] = [start]
    while candidates and len(walked) < limit:
        peer = candidates.pop(0)
        if peer.id in seen:
            break
        seen.add(peer.id)
        try:
            state = known if known is not None and peer == start else transport.get_state(peer)
        except PeerUnreachable as exc:
            walked.append(RingPeer(peer, reachable=False, detail=exc.reason or "no answer"))
            continue
        candidates = list(state.successors)
        try:
            listing = files.list_peer(peer, timeout=list_timeout)
        except PeerCallFailed as exc:
            walked.append(RingPeer(state.node, reachable=False, detail=exc.details or "no answer"))
            continue
        primary, replica = _count(state, listing)
        walked.append(RingPeer(state.node, True, primary, replica, files=tuple(listing)))
    return walked


def ring_files(walked: list[RingPeer]) -> list[RingFile]:
    """One row per live file of a ring walk, by name: its newest version, the peer whose
    range holds its key, and how many reachable peers hold that version undamaged."""
    reachable = [peer for peer in walked if peer.reachable]
    held: dict[str, list[tuple[NodeRef, FileInfo]]] = {}
    for peer in reachable:
        for info in peer.files:
            held.setdefault(info.name, []).append((peer.node, info))
    rows = []
    for name in sorted(held):
        copies = held[name]
        newest = max((info for _, info in copies), key=lambda i: (i.version, not i.damaged))
        if newest.deleted:
            continue
        holders = tuple(
            peer
            for peer, info in copies
            if info.version == newest.version and not info.deleted and not info.damaged
        )
        rows.append(RingFile(newest, _owner(reachable, newest.key), holders))
    return rows


def wanted_copies(walked: list[RingPeer], replicas: int) -> int:
    """Healthy copies a file should have now: k, or every reachable peer when fewer
    than k are (a ring of two cannot hold three copies, and is not degraded for it)."""
    return min(replicas, sum(peer.reachable for peer in walked))


def _owner(ring_order: list[RingPeer], key: int) -> NodeRef:
    """The peer whose range (previous peer, peer] holds ``key``."""
    previous = ring_order[-1].node
    for peer in ring_order:
        if between_right(previous.id, key, peer.node.id):
            return peer.node
        previous = peer.node
    return ring_order[0].node


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
