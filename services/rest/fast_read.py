"""``GET /download_file?name=N`` of a small file answered before Flask.

The commonest small operation: a client fetching a small file by name, with no Range
or validators. The owner answers it in one round trip (services.files.small_read), or this
peer from its own storage when it is the owner; Flask's per-request machinery would
cost about as much again (see fast_health). The response is the Flask route's, header
for header (the route shares ``file_headers``), and the client's transfer slot is taken
as there. Anything else (other parameters, Range, If-None-Match, a file the owner cannot
serve alone, a client over its limit) goes on to Flask unchanged, which answers it or
reports the error in its usual shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chord.names import InvalidName, validate_name
from chord.node import ChordNode
from services.files.client import FileClient
from services.rest.download import file_headers
from services.rest.errors import ApiError
from services.rest.health import StartResponse, WsgiApp
from services.rest.limits import ClientLimits
from services.rest.metrics import PeerMetrics
from services.rest.params import query_pairs

# Any of these needs the route's logic (ranges, validators, preconditions).
CONDITIONAL = ("HTTP_RANGE", "HTTP_IF_NONE_MATCH", "HTTP_IF_RANGE", "HTTP_IF_MATCH")


def only_name(query: str) -> str | None:
    """The file name if the query string is exactly ``name=N`` with a valid name."""
    pairs = query_pairs(query.encode("latin-1"))
    if len(pairs) != 1 or pairs[0][0] != b"name":
        return None
    try:
        return validate_name(pairs[0][1].decode("utf-8"))
    except (UnicodeDecodeError, InvalidName):
        return None


def fast_small_reads(
    app: WsgiApp,
    node: ChordNode,
    files: FileClient,
    limits: ClientLimits,
    metrics: PeerMetrics,
) -> WsgiApp:
    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != "/download_file"
            or environ.get("REQUEST_METHOD") != "GET"
            or not node.joined
            or any(header in environ for header in CONDITIONAL)
        ):
            return app(environ, start_response)
        name = only_name(environ.get("QUERY_STRING", ""))
        if name is None:
            return app(environ, start_response)
        try:
            slot = limits.transfer(environ.get("REMOTE_ADDR") or "unknown")
        except ApiError:  # over its limit: the route answers the 429
            return app(environ, start_response)
        try:
            small = files.read_small(name)
        finally:
            slot.release()  # the bytes are in memory: the transfer is over
        if small is None:
            return app(environ, start_response)
        info, data = small
        metrics.bytes_out.inc(len(data))
        headers = [
            *file_headers(info).items(),
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(data))),
            ("Access-Control-Allow-Origin", "*"),  # as every GET (dashboard.py)
        ]
        start_response("200 OK", headers)
        return [data]

    return serve
