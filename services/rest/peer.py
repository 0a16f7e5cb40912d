"""Peer routes: status, Prometheus metrics, graceful shutdown, the OpenAPI document."""

from __future__ import annotations

import functools
import time
import tomllib
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, request

from services.rest.auth import Need, authorize
from services.rest.context import ApiContext, PeerServices
from services.rest.limits import client_of
from services.rest.metrics import Snapshot
from services.rest.shapes import ref_json

OPENAPI = Path(__file__).with_name("openapi.yaml")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@functools.cache
def software_version() -> str:
    try:
        with PYPROJECT.open("rb") as source:
            return str(tomllib.load(source)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The YAML spec, read once (it does not change while the peer runs)."""
    document = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{OPENAPI} is not an OpenAPI document")
    return document


def snapshot(peer: PeerServices) -> Snapshot:
    """Storage and replication numbers now (for /status and the metrics gauges)."""
    files = {"primary": 0, "replica": 0}
    for record in peer.storage.records():
        files[record.role] = files.get(record.role, 0) + 1
    used, _ = peer.storage.usage()
    return Snapshot(used, files, len(peer.replicator.degraded()))


def blueprint(ctx: ApiContext) -> Blueprint:
    routes = Blueprint("peer", __name__)

    @routes.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(openapi_document())

    if ctx.peer is None:
        return routes
    peer = ctx.peer
    ctx.metrics.watch(lambda: snapshot(peer))

    @routes.get("/status")
    def status() -> Any:
        now = snapshot(peer)
        used, quota = peer.storage.usage()
        return jsonify(
            node=ref_json(ctx.node.me),
            joined=ctx.node.joined,
            uptime_s=round(time.monotonic() - ctx.started, 3),
            storage={"used_bytes": used, "quota_bytes": quota},
            files=now.files,
            degraded=now.degraded,
            active_transfers=ctx.metrics.active_transfers(),
            replicas=peer.replicas,
            version=software_version(),
        )

    @routes.get("/metrics")
    def metrics() -> Any:
        return Response(ctx.metrics.render(), mimetype=None, content_type=PROMETHEUS_TEXT)

    @routes.post("/shutdown")
    def shutdown() -> Any:
        peer.limits.spend(client_of(request))
        authorize(peer.tokens, request.headers.get("Authorization"), Need.ADMIN)
        response = jsonify(status="leaving", node=ref_json(ctx.node.me))
        response.status_code = 202
        # Only once the answer has been written: the leave then stops this server.
        response.call_on_close(peer.request_shutdown)
        return response

    return routes
