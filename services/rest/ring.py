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
    node = ctx.node

    @routes.get("/health")
    def health() -> Any:
        if node.joined:
            return jsonify(status="ok", node=ref_json(node.me))
        return jsonify(
            status="unavailable",
            node=ref_json(node.me),
            detail="this peer is joining or leaving the ring",
        ), 503

    @routes.get("/get_successor")
    def get_successor() -> Any:
        state = node.state()
        return jsonify(
            node=ref_json(state.me),
            successor=ref_json(state.successor),
            successors=[ref_json(s) for s in state.successors],
        )

    @routes.get("/get_predecessor")
    def get_predecessor() -> Any:
        state = node.state()
        return jsonify(node=ref_json(state.me), predecessor=ref_json(state.predecessor))

    @routes.get("/finger_table")
    def finger_table() -> Any:
        state = node.state()
        fingers = [
            {"index": i, "start": to_hex(start), "node": ref_json(entry)}
            for i, (start, entry) in enumerate(zip(state.finger_starts, state.fingers, strict=True))
        ]
        return jsonify(node=ref_json(state.me), fingers=fingers)

    @routes.get("/lookup")
    def lookup() -> Any:
        key_text, name = request.args.get("key"), request.args.get("name")
        if (key_text is None) == (name is None):
            raise bad_request("give exactly one of 'key' (40 hex digits) or 'name'")
        if name is not None:
            key = node.ring.hash(name)
        else:
            try:
                key = from_hex(key_text or "")
            except ValueError as exc:
                raise bad_request(f"invalid key: {exc}") from None
            if key >= node.ring.size:
                raise bad_request(f"key is outside this ring of 2^{node.ring.bits}")
        if not node.joined:
            raise ApiError(503, "this peer is joining or leaving the ring", "not-ready")
        found = ctx.lookup(key)  # LookupFailed becomes 503 lookup-failed
        return jsonify(
            key=to_hex(key),
            name=name,
            owner=ref_json(found.owner),
            successors=[ref_json(s) for s in found.successors],
            hops=found.hops,
            timeouts=found.timeouts,
        )

    @routes.get("/members")
    def members() -> Any:
        if not node.joined:
            raise ApiError(503, "this peer is joining or leaving the ring", "not-ready")
        known = node.known_members()
        return jsonify(
            node=ref_json(node.me),
            peers=[ref_json(p) for p in known],
            count=len(known),
            bits=node.ring.bits,
        )

    if ctx.peer is not None:
        peer = ctx.peer

        @routes.get("/ring")
        def ring() -> Any:
            peers = [
                {
                    **(ref_json(item.node) or {}),
                    "files": {"primary": item.primary, "replica": item.replica}
                    if item.reachable
                    else None,
                    "reachable": item.reachable,
                }
                for item in overview.ring_walk(node, peer.files)
            ]
            return jsonify(peers=peers, count=len(peers), bits=node.ring.bits)

    return routes
