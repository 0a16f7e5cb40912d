"""File routes: upload, download, search, listings, delete, degraded files.

Handlers are thin: read and validate parameters (params, names), call FileClient,
shape the JSON. Errors are raised and turned into responses by the app.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, jsonify, request

from chord.ids import to_hex
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.placement import copies_wanted
from services.files.client import FileInfo
from services.peer import overview
from services.rest import download
from services.rest.auth import Need, authorize
from services.rest.context import ApiContext, PeerServices
from services.rest.errors import ApiError, bad_request
from services.rest.limits import client_of
from services.rest.params import name_param, parse_bool
from services.rest.shapes import ref_json
from services.rest.store import store_upload


def require_joined(node: ChordNode) -> None:
    if not node.joined:
        raise ApiError(503, "this peer is joining or leaving the ring", "not-ready")


def info_json(info: FileInfo) -> dict[str, Any]:
    return {"size": info.size, "sha256": info.sha256, "version": info.version}


def blueprint(ctx: ApiContext, peer: PeerServices) -> Blueprint:
    routes = Blueprint("files", __name__)
    node, files = ctx.node, peer.files

    @routes.post("/upload_file")
    def upload_file() -> Any:
        client = client_of(request)
        peer.limits.spend(client)  # before the token check: slows guessing down too
        authorize(peer.tokens, request.headers.get("Authorization"), Need.WRITE)
        slot = peer.limits.transfer(client)
        try:
            return store_upload(ctx, peer)
        finally:
            slot.release()

    @routes.route("/download_file", methods=["GET", "POST"])
    def download_file() -> Any:
        name = name_param()
        require_joined(node)
        # A small file comes whole from its owner in one round trip; anything else (or
        # an owner that cannot answer alone) takes the general path: stat the holders,
        # then stream chunk ranges from them.
        redirect = parse_bool(request.args.get("redirect", "false"), "redirect")
        small = files.read_small(name)
        if small is not None:
            info, having = small[0], list[NodeRef]()
        else:
            info, having, _ = files.stat(name)
            holder = next((h for h in having if h.api), None)
            if redirect and node.me not in having and holder is not None:
                # A holder serves its own copy without a hop: twice this peer's rate.
                query = request.query_string.decode("latin-1")
                location = f"http://{holder.api}/download_file?{query}"
                return Response(status=307, headers={"Location": location})
        headers = download.file_headers(info)
        if download.not_modified(info):
            return Response(status=304, headers=headers)
        span = download.requested_range(info)
        offset, length = (span.start, span.length) if span else (0, None)
        slot = peer.limits.transfer(client_of(request))
        try:
            if small is not None:
                body = download.sliced(small[1], offset, length)
            else:
                body = files.open(info, having, offset, length)
            chunks = download.counted(body, ctx.metrics)
            response = download.file_response(info, span, slot.held_over(chunks), headers)
        except BaseException:
            slot.release()
            raise
        response.call_on_close(slot.release)  # also if the body is never iterated
        return response

    @routes.route("/search_file", methods=["GET", "POST"])
    def search_file() -> Any:
        name = name_param()
        require_joined(node)
        found = files.search(name)
        info = found.info
        return jsonify(
            name=found.name,
            key=to_hex(found.key),
            found=found.found,
            owner=ref_json(found.owner),
            replicas=[ref_json(r) for r in found.replicas],
            hops=found.hops,
            **(info_json(info) if info else {"size": None, "sha256": None, "version": None}),
        )

    @routes.get("/show_files")
    def show_files() -> Any:
        scope = request.args.get("scope", "peer")
        if scope == "peer":
            return jsonify(node=ref_json(node.me), files=_peer_files(peer))
        if scope != "ring":
            raise bad_request(f"scope must be 'peer' or 'ring', got {scope!r}")
        require_joined(node)
        walked = overview.ring_walk(node, files)
        wanted = overview.wanted_copies(walked, peer.replicas)
        rows = [
            _ring_row(
                row, overview.wanted_copies(walked, copies_wanted(row.info.replicas, peer.replicas))
            )
            for row in overview.ring_files(walked)
        ]
        degraded = sum(row["degraded"] for row in rows)
        return jsonify(files=rows, peers=len(walked), wanted=wanted, degraded=degraded)

    @routes.route("/delete_file", methods=["DELETE", "POST"])
    def delete_file() -> Any:
        peer.limits.spend(client_of(request))
        authorize(peer.tokens, request.headers.get("Authorization"), Need.WRITE)
        name = name_param()
        require_joined(node)
        info = files.delete(name)
        return jsonify(name=name, key=to_hex(info.key), deleted=True, version=info.version)

    @routes.get("/degraded_files")
    def degraded_files() -> Any:
        rows = [
            {"name": h.name, "version": h.version, "copies": h.copies, "wanted": h.wanted}
            for h in peer.replicator.degraded()
        ]
        return jsonify(node=ref_json(node.me), files=rows)

    return routes


def _peer_files(peer: PeerServices) -> list[dict[str, Any]]:
    """This peer's live files (tombstones omitted), damaged ones flagged."""
    return [
        {**dataclasses.asdict(row), "key": to_hex(row.key)}
        for row in overview.local_files(peer.storage)
    ]


def _ring_row(row: overview.RingFile, wanted: int) -> dict[str, Any]:
    info = row.info
    return dict(
        name=info.name,
        key=to_hex(info.key),
        size=info.size,
        sha256=info.sha256,
        version=info.version,
        owner=ref_json(row.owner),
        copies=row.copies,
        created=info.created,
        holders=[ref_json(holder) for holder in row.holders],
        wanted=wanted,
        degraded=row.copies < wanted,
    )
