"""NodeRef <-> protobuf. Everything arriving from another peer is validated here:
a malformed or forged reference raises :class:`BadReference`, never crashes."""

from __future__ import annotations

from collections.abc import Iterable

from chord.ids import Ring, from_hex
from chord.node_ref import NodeRef
from proto import chord_pb2 as pb


class BadReference(ValueError):
    """A peer reference that is malformed or whose ID is not SHA-1 of its address."""


def ref_to_pb(ref: NodeRef) -> pb.NodeRef:
    return pb.NodeRef(id=ref.hex, address=ref.address, api=ref.api)


def refs_to_pb(refs: Iterable[NodeRef]) -> list[pb.NodeRef]:
    return [ref_to_pb(ref) for ref in refs]


def ref_from_pb(ring: Ring, message: pb.NodeRef) -> NodeRef:
    try:
        ident = from_hex(message.id)
    except ValueError as exc:
        raise BadReference(f"bad node id: {exc}") from None
    if not message.address or len(message.address) > 300:
        raise BadReference("node address missing or too long")
    if ident != ring.hash(message.address):
        raise BadReference(f"node id {message.id} is not SHA-1 of {message.address!r}")
    return NodeRef(ident, message.address, message.api)


def refs_from_pb(ring: Ring, messages: Iterable[pb.NodeRef]) -> tuple[NodeRef, ...]:
    return tuple(ref_from_pb(ring, message) for message in messages)


def key_from_text(text: str) -> int:
    """A lookup key from the wire (40 hex digits)."""
    return from_hex(text)
