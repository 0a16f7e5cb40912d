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
    handlers = FileRoutes(ctx, peer)
    for path, view, methods in [
        ("/upload_file", handlers.upload_file, ["POST"]),
        ("/download_file", handlers.download_file, ["GET", "POST"]),
        ("/search_file", handlers.search_file, ["GET", "POST"]),
        ("/show_files", handlers.show_files, ["GET"]),
        ("/delete_file", handlers.delete_file, ["DELETE", "POST"]),
        ("/degraded_files", handlers.degraded_files, ["GET"]),
    ]:
        routes.add_url_rule(path, view_func=view, methods=methods)
    return routes


class FileRoutes:
    """The handlers of the file routes, over one peer's context and file services."""

    def __init__(self, ctx: ApiContext, peer: PeerServices) -> None:
        self.ctx = ctx
        self.peer = peer
        self.node = ctx.node
        self.files = peer.files

    def upload_file(self) -> Any:
        peer = self.peer
        client = client_of(request)
        peer.limits.spend(client)  # before the token check: slows guessing down too
        authorize(peer.tokens, request.headers.get("Authorization"), Need.WRITE)
        slot = peer.limits.transfer(client)
        try:
            return store_upload(self.ctx, peer)
        finally:
            slot.release()

    def download_file(self) -> Any:
        name = name_param()
        require_joined(self.node)
        # A small file comes whole from its owner in one round trip; anything else (or
        # an owner that cannot answer alone) takes the general path: stat the holders,
        # then stream chunk ranges from them.
        redirect = parse_bool(request.args.get("redirect", "false"), "redirect")
        small = self.files.read_small(name)
        if small is not None:
            info, having = small[0], list[NodeRef]()
        else:
            info, having, _ = self.files.stat(name)
            if redirect:
                moved = self._to_a_holder(having)
                if moved is not None:
                    return moved
        headers = download.file_headers(info)
        if download.not_modified(info):
            return Response(status=304, headers=headers)
        return self._send(info, having, None if small is None else small[1], headers)

    def _to_a_holder(self, having: list[NodeRef]) -> Response | None:
        """A redirect to a holder of the file when this peer is not one: a holder serves
        its own copy without a hop, at twice this peer's rate."""
        holder = next((h for h in having if h.api), None)
        if self.node.me in having or holder is None:
            return None
        query = request.query_string.decode("latin-1")
        location = f"http://{holder.api}/download_file?{query}"
        return Response(status=307, headers={"Location": location})

    def _send(
        self, info: FileInfo, having: list[NodeRef], whole: bytes | None, headers: dict[str, str]
    ) -> Response:
        """The file's bytes (``whole`` when already read, else streamed from ``having``)
        under a transfer slot held until the response is closed."""
        span = download.requested_range(info)
        offset, length = (span.start, span.length) if span else (0, None)
        slot = self.peer.limits.transfer(client_of(request))
        try:
            if whole is not None:
                body = download.sliced(whole, offset, length)
            else:
                body = self.files.open(info, having, offset, length)
            chunks = download.counted(body, self.ctx.metrics)
            response = download.file_response(info, span, slot.held_over(chunks), headers)
        except BaseException:
            slot.release()
            raise
        response.call_on_close(slot.release)  # also if the body is never iterated
        return response

    def search_file(self) -> Any:
        name = name_param()
        require_joined(self.node)
        found = self.files.search(name)
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

    def show_files(self) -> Any:
        node, peer = self.node, self.peer
        scope = request.args.get("scope", "peer")
        if scope == "peer":
            return jsonify(node=ref_json(node.me), files=_peer_files(peer))
        if scope != "ring":
            raise bad_request(f"scope must be 'peer' or 'ring', got {scope!r}")
        require_joined(node)
        walked = overview.ring_walk(node, self.files)
        wanted = overview.wanted_copies(walked, peer.replicas)
        rows = [
            _ring_row(
                row, overview.wanted_copies(walked, copies_wanted(row.info.replicas, peer.replicas))
            )
            for row in overview.ring_files(walked)
        ]
        degraded = sum(row["degraded"] for row in rows)
        return jsonify(files=rows, peers=len(walked), wanted=wanted, degraded=degraded)

    def delete_file(self) -> Any:
        peer = self.peer
        peer.limits.spend(client_of(request))
        authorize(peer.tokens, request.headers.get("Authorization"), Need.WRITE)
        name = name_param()
        require_joined(self.node)
        info = self.files.delete(name)
        return jsonify(name=name, key=to_hex(info.key), deleted=True, version=info.version)

    def degraded_files(self) -> Any:
        rows = [
            {"name": h.name, "version": h.version, "copies": h.copies, "wanted": h.wanted}
            for h in self.peer.replicator.degraded()
        ]
        return jsonify(node=ref_json(self.node.me), files=rows)


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
