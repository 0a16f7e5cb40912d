"""How one peer names another."""

from __future__ import annotations

from dataclasses import dataclass, field

from chord.ids import Ring, to_hex


@dataclass(frozen=True, eq=False)
class NodeRef:
    """A peer: its identifier, advertised gRPC address and advertised REST address.

    Equality is on (id, address): two refs with the same ID but different addresses
    are different peers (an ID collision the admission check refuses). The REST
    address is informational and does not take part in equality.
    """

    id: int
    address: str
    api: str = field(default="", compare=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeRef):
            return NotImplemented
        return self.id == other.id and self.address == other.address

    def __hash__(self) -> int:
        # Refs are hashed on every routing step: the ID alone is a fine hash (equal
        # refs have equal IDs) and much cheaper than hashing an (id, address) tuple.
        return hash(self.id)

    @classmethod
    def for_address(cls, ring: Ring, address: str, api: str = "") -> NodeRef:
        return cls(ring.hash(address), address, api)

    @property
    def hex(self) -> str:
        return to_hex(self.id)

    def describe(self, ring: Ring) -> str:
        return f"{ring.short(self.id)}@{self.address}"
