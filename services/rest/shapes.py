"""JSON shapes shared by the routes."""

from __future__ import annotations

from chord.node_ref import NodeRef


def ref_json(ref: NodeRef | None) -> dict[str, str] | None:
    """A node reference: ``{"id", "address", "api"}`` (None stays null)."""
    if ref is None:
        return None
    return {"id": ref.hex, "address": ref.address, "api": ref.api}
