"""Text tables for the menu: pure functions from the peer's data to strings."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tabulate import tabulate

from chord.ids import Ring, to_hex
from chord.node import NodeState
from chord.node_ref import NodeRef
from services.files.client import PutResult, SearchResult
from services.files.replication import Health
from services.peer.overview import LocalFile, PeerStatus, RingPeer

NODE_HEADERS = ["id", "gRPC address", "REST URL"]


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def node_row(ring: Ring, ref: NodeRef | None) -> list[str]:
    if ref is None:
        return ["-", "(unknown)", "-"]
    return [ring.short(ref.id), ref.address, f"http://{ref.api}" if ref.api else "-"]


def neighbours(ring: Ring, state: NodeState) -> str:
    rows = [
        ["this peer", *node_row(ring, state.me)],
        ["predecessor", *node_row(ring, state.predecessor)],
        ["successor", *node_row(ring, state.successor)],
    ]
    return tabulate(rows, headers=["", *NODE_HEADERS])


def successors(ring: Ring, state: NodeState) -> str:
    rows = [[i, *node_row(ring, s)] for i, s in enumerate(state.successors, 1)]
    if not rows:
        return "No successors: this peer is alone in its ring."
    return tabulate(rows, headers=["#", *NODE_HEADERS])


def finger_rows(ring: Ring, state: NodeState) -> list[list[str]]:
    """Consecutive fingers with the same node are folded into one row (with m = 160
    most of the 160 entries point at the successor)."""
    rows: list[list[str]] = []
    start = 0
    for i in range(1, len(state.fingers) + 1):
        if i == len(state.fingers) or state.fingers[i] != state.fingers[start]:
            span = str(start) if i - 1 == start else f"{start}-{i - 1}"
            short = ring.short(state.finger_starts[start])
            rows.append([span, short, *node_row(ring, state.fingers[start])[:2]])
            start = i
    return rows


def fingers(ring: Ring, state: NodeState) -> str:
    return tabulate(finger_rows(ring, state), headers=["fingers", "start", "node", "gRPC address"])


def status(ring: Ring, peer: PeerStatus) -> str:
    quota = "unlimited" if peer.quota_bytes is None else size_text(peer.quota_bytes)
    rows: list[list[object]] = [
        ["peer", peer.node.describe(ring)],
        ["joined", "yes" if peer.joined else "no (joining or leaving)"],
        ["storage used", f"{size_text(peer.used_bytes)} of {quota}"],
        ["files (primary)", peer.primary],
        ["files (replica)", peer.replica],
        ["degraded files", peer.degraded],
    ]
    return tabulate(rows, tablefmt="plain")


def local_files(files: Sequence[LocalFile]) -> str:
    if not files:
        return "This peer holds no files."
    rows = [
        [
            f.name,
            size_text(f.size),
            f.version,
            f.role,
            "DAMAGED" if f.damaged else "ok",
            f.sha256[:12],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(f.created)),
        ]
        for f in files
    ]
    return tabulate(rows, headers=["name", "size", "ver", "role", "state", "sha256", "stored"])


def ring_overview(ring: Ring, peers: Sequence[RingPeer], me: NodeRef) -> str:
    rows = [
        [
            i,
            *node_row(ring, p.node),
            "-" if p.primary is None else p.primary,
            "-" if p.replica is None else p.replica,
            ("ok" if p.reachable else f"unreachable: {p.detail}")
            + (" (this peer)" if p.node == me else ""),
        ]
        for i, p in enumerate(peers, 1)
    ]
    headers = ["#", *NODE_HEADERS, "primary", "replica", "status"]
    return f"{len(peers)} peer(s) in ring order:\n" + tabulate(rows, headers=headers)


def degraded(health: Sequence[Health]) -> str:
    if not health:
        return "No degraded files: every file this peer is primary for has all its copies."
    rows = [[h.name, h.version, h.copies, h.wanted] for h in health]
    return tabulate(rows, headers=["name", "version", "copies", "wanted"])


def holders(ring: Ring, refs: Sequence[NodeRef]) -> str:
    return ", ".join(r.describe(ring) for r in refs) or "-"


def put_result(ring: Ring, result: PutResult) -> str:
    info = result.info
    rows: list[list[object]] = [
        ["name", info.name],
        ["key", to_hex(info.key)],
        ["size", size_text(info.size)],
        ["sha256", info.sha256],
        ["version", info.version],
        ["holders", holders(ring, result.holders)],
        ["hops", result.hops],
    ]
    return tabulate(rows, tablefmt="plain")


def search_result(ring: Ring, found: SearchResult) -> str:
    rows: list[list[object]] = [
        ["name", found.name],
        ["key", to_hex(found.key)],
        ["found", "yes" if found.found else "no"],
        ["owner", found.owner.describe(ring)],
        ["replicas", holders(ring, found.replicas)],
        ["hops", found.hops],
    ]
    if found.info is not None and found.found:
        rows += [
            ["size", size_text(found.info.size)],
            ["sha256", found.info.sha256],
            ["version", found.info.version],
        ]
    return tabulate(rows, tablefmt="plain")
