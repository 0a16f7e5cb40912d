"""The web dashboard: ``/`` and its assets under ``/ui/``, plain files shipped in ``ui/``.

The page is static; everything it shows comes from the JSON API, read by the browser.
A peer page of another peer reads that peer's API directly, so GET answers allow any
origin (reads never need a token; writes are not opened up, their preflight fails).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, request, send_from_directory

UI = Path(__file__).with_name("ui")
# Only our own scripts and styles run; the browser may read JSON from any peer.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src *; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
READS = frozenset({"GET", "HEAD"})


def blueprint() -> Blueprint:
    routes = Blueprint("dashboard", __name__)

    @routes.get("/")
    def index() -> Response:
        return _asset("index.html")

    @routes.get("/ui/<path:asset>")
    def ui(asset: str) -> Response:
        return _asset(asset)

    return routes


def _asset(name: str) -> Response:
    """A file from ui/ (send_from_directory refuses paths leaving it with a 404)."""
    response = send_from_directory(UI, name, max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def allow_cross_origin_reads(response: Response) -> Response:
    """``after_request`` hook: any origin may read GET answers (the dashboard of one peer
    showing another peer's status, files and fingers)."""
    if request.method in READS:
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response
