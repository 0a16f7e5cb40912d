"""``GET /health`` answered before Flask: load balancers, probes and dashboards poll it
far more often than anything else, and Flask's per-request machinery cost about 120 µs of
the ~230 µs a health check took (bench.transfer --via rest). The answer is the Flask
route's, byte for byte; every other request goes on to Flask unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from chord.node import ChordNode
from services.rest.shapes import ref_json

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _body(status: str, node: ChordNode, detail: str | None = None) -> bytes:
    answer: dict[str, Any] = {"status": status, "node": ref_json(node.me)}
    if detail is not None:
        answer["detail"] = detail
    return (json.dumps(answer, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


Headers = list[tuple[bytes, bytes]]


def inline_health(node: ChordNode) -> Callable[[str, str], tuple[int, Headers, bytes] | None]:
    """The same answer for the HTTP server's event loop (services.web): GET /health
    then costs no thread at all, so probes get their answer even while every worker
    is busy. None for any other request."""
    ok = _body("ok", node)
    busy = _body("unavailable", node, "this peer is joining or leaving the ring")

    def answer(method: str, path: str) -> tuple[int, Headers, bytes] | None:
        if path != "/health" or method != "GET":
            return None
        body, status = (ok, 200) if node.joined else (busy, 503)
        return (
            status,
            [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"access-control-allow-origin", b"*"),  # as every GET (dashboard.py)
            ],
            body,
        )

    return answer


def fast_health(app: WsgiApp, node: ChordNode) -> WsgiApp:
    ok = _body("ok", node)
    busy = _body("unavailable", node, "this peer is joining or leaving the ring")

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health" or environ.get("REQUEST_METHOD") != "GET":
            return app(environ, start_response)
        body, status = (ok, "200 OK") if node.joined else (busy, "503 SERVICE UNAVAILABLE")
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Access-Control-Allow-Origin", "*"),  # as every GET (dashboard.py)
            ],
        )
        return [body]

    return serve
