"""Flask app factory for a peer's REST API (the read-only part the ring needs now).

Shapes are fixed: IDs are 40-char lowercase hex strings, a node reference is
``{"id", "address", "api"}``, errors are ``{"error", "detail"}`` with a 4xx/5xx.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from chord.ids import from_hex, to_hex
from chord.lookup import LookupFailed
from chord.node import ChordNode
from chord.node_ref import NodeRef

log = logging.getLogger("chord.api")


def ref_json(ref: NodeRef | None) -> dict[str, str] | None:
    if ref is None:
        return None
    return {"id": ref.hex, "address": ref.address, "api": ref.api}


def error(status: int, code: str, detail: str) -> tuple[Response, int]:
    return jsonify(error=code, detail=detail), status


def create_app(node: ChordNode) -> Flask:
    app = Flask("chord")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.get("/health")
    def health() -> Any:
        if node.joined:
            return jsonify(status="ok", node=ref_json(node.me))
        return jsonify(
            status="unavailable",
            node=ref_json(node.me),
            detail="this peer is joining or leaving the ring",
        ), 503

    @app.get("/get_successor")
    def get_successor() -> Any:
        state = node.state()
        return jsonify(
            node=ref_json(state.me),
            successor=ref_json(state.successor),
            successors=[ref_json(s) for s in state.successors],
        )

    @app.get("/get_predecessor")
    def get_predecessor() -> Any:
        state = node.state()
        return jsonify(node=ref_json(state.me), predecessor=ref_json(state.predecessor))

    @app.get("/finger_table")
    def finger_table() -> Any:
        state = node.state()
        fingers = [
            {"index": i, "start": to_hex(start), "node": ref_json(entry)}
            for i, (start, entry) in enumerate(zip(state.finger_starts, state.fingers, strict=True))
        ]
        return jsonify(node=ref_json(state.me), fingers=fingers)

    @app.get("/lookup")
    def lookup() -> Any:
        key_text, name = request.args.get("key"), request.args.get("name")
        if (key_text is None) == (name is None):
            return error(400, "bad-request", "give exactly one of 'key' (40 hex digits) or 'name'")
        if name is not None:
            key = node.ring.hash(name)
        else:
            try:
                key = from_hex(key_text or "")
            except ValueError as exc:
                return error(400, "bad-request", f"invalid key: {exc}")
            if key >= node.ring.size:
                return error(400, "bad-request", f"key is outside this ring of 2^{node.ring.bits}")
        if not node.joined:
            return error(503, "not-ready", "this peer is joining or leaving the ring")
        try:
            found = node.lookup(key)
        except LookupFailed as exc:
            return error(503, "lookup-failed", str(exc))
        return jsonify(
            key=to_hex(key),
            name=name,
            owner=ref_json(found.owner),
            successors=[ref_json(s) for s in found.successors],
            hops=found.hops,
            timeouts=found.timeouts,
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> WerkzeugResponse:
        response = exc.get_response()  # keeps headers such as Allow on 405
        response.data = jsonify(
            error=(exc.name or "error").lower().replace(" ", "-"),
            detail=exc.description or "",
        ).get_data()
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error(500, "internal-error", "the peer hit an unexpected error; see its log")

    return app
