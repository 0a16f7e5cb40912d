"""Ring routes: this peer's view (shapes fixed by the ring-core issue) and the ring walk."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from chord.ids import from_hex, to_hex
from services.peer import overview
from services.rest.context import ApiContext
from services.rest.errors import ApiError, bad_request
from services.rest.shapes import ref_json


def blueprint(ctx: ApiContext) -> Blueprint:
    routes = Blueprint("ring", __name__)
    handlers = RingRoutes(ctx)
    for path, view in [
        ("/health", handlers.health),
        ("/get_successor", handlers.get_successor),
        ("/get_predecessor", handlers.get_predecessor),
        ("/finger_table", handlers.finger_table),
        ("/lookup", handlers.lookup),
        ("/members", handlers.members),
    ]:
        routes.add_url_rule(path, view_func=view, methods=["GET"])
    if ctx.peer is not None:  # the ring walk asks every peer for its file counts
        routes.add_url_rule("/ring", view_func=handlers.ring, methods=["GET"])
    return routes


class RingRoutes:
    """The handlers of the ring routes, over one peer's context."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.node = ctx.node

    def health(self) -> Any:
        node = self.node
        if node.joined:
            return jsonify(status="ok", node=ref_json(node.me))
        return jsonify(
            status="unavailable",
            node=ref_json(node.me),
            detail="this peer is joining or leaving the ring",
        ), 503

    def get_successor(self) -> Any:
        state = self.node.state()
        return jsonify(
            node=ref_json(state.me),
            successor=ref_json(state.successor),
            successors=[ref_json(s) for s in state.successors],
        )

    def get_predecessor(self) -> Any:
        state = self.node.state()
        return jsonify(node=ref_json(state.me), predecessor=ref_json(state.predecessor))

    def finger_table(self) -> Any:
        state = self.node.state()
        fingers = [
            {"index": i, "start": to_hex(start), "node": ref_json(entry)}
            for i, (start, entry) in enumerate(zip(state.finger_starts, state.fingers, strict=True))
        ]
        return jsonify(node=ref_json(state.me), fingers=fingers)

    def lookup(self) -> Any:
        key_text, name = request.args.get("key"), request.args.get("name")
        if (key_text is None) == (name is None):
            raise bad_request("give exactly one of 'key' (40 hex digits) or 'name'")
        key = self.node.ring.hash(name) if name is not None else self._key(key_text or "")
        self._require_joined()
        found = self.ctx.lookup(key)  # LookupFailed becomes 503 lookup-failed
        return jsonify(
            key=to_hex(key),
            name=name,
            owner=ref_json(found.owner),
            successors=[ref_json(s) for s in found.successors],
            hops=found.hops,
            timeouts=found.timeouts,
        )

    def members(self) -> Any:
        self._require_joined()
        node = self.node
        known = node.known_members()
        return jsonify(
            node=ref_json(node.me),
            peers=[ref_json(p) for p in known],
            count=len(known),
            bits=node.ring.bits,
        )

    def ring(self) -> Any:
        assert self.ctx.peer is not None  # registered only then
        peers = [
            {
                **(ref_json(item.node) or {}),
                "files": {"primary": item.primary, "replica": item.replica}
                if item.reachable
                else None,
                "reachable": item.reachable,
            }
            for item in overview.ring_walk(self.node, self.ctx.peer.files)
        ]
        return jsonify(peers=peers, count=len(peers), bits=self.node.ring.bits)

    def _key(self, text: str) -> int:
        """A key given as hex digits, inside this ring."""
        try:
            key = from_hex(text)
        except ValueError as exc:
            raise bad_request(f"invalid key: {exc}") from None
        if key >= self.node.ring.size:
            raise bad_request(f"key is outside this ring of 2^{self.node.ring.bits}")
        return key

    def _require_joined(self) -> None:
        if not self.node.joined:
            raise ApiError(503, "this peer is joining or leaving the ring", "not-ready")
