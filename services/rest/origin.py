"""Cross-site writes are refused: a page on another origin must not be able to upload,
delete or shut a peer down through a visitor's browser.

Multipart uploads and form or no-cors POSTs are "simple" requests that a browser sends
cross-site without a CORS preflight, and reads need no token, so without this check any
web page could write to a peer on the visitor's network when no API token is set (and,
with one, replay nothing but still cause the request). Every state-changing request
(anything but GET, HEAD and OPTIONS, so also routes added later) is refused with 403 when

* ``Sec-Fetch-Site`` (sent by every current browser) says it comes from another site or
  another origin of the same site (another peer's port), or else
* ``Origin`` names another host:port than the request's own ``Host`` (older browsers).

Clients that are not browsers (curl, client.py, newman) send neither header and pass;
the dashboard's own requests are same-origin and pass. Token or not makes no
difference. CORS stays closed for writes: no Access-Control-Allow-Origin on them, so a
preflighted cross-site write fails in the browser too.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import request

from services.rest.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME = frozenset({"same-origin", "none"})  # "none": typed by the user, a bookmark


def refuse_cross_site() -> None:
    """``before_request`` hook: raise 403 for a state-changing cross-site request."""
    why = cross_site(request.method, request.headers.get, request.host)
    if why is not None:
        raise ApiError(403, refusal(request.method, why))


def cross_site(method: str, header: Callable[[str], str | None], host: str | None) -> str | None:
    """Why a state-changing request comes from a page of another origin, else None
    (also used by the WebDAV gate, which runs outside Flask)."""
    if method in SAFE_METHODS:
        return None
    site = header("Sec-Fetch-Site")
    if site is not None:
        if site.strip().lower() not in SAME:
            return f"the browser says it comes from a page of another origin ({site})"
        return None
    origin = header("Origin")
    if origin is not None and _netloc(origin) != (host or "").lower():
        return f"it comes from a page of {origin!r}"
    return None


def refusal(method: str, why: str) -> str:
    return (
        f"cross-site {method} refused: {why}; only this peer's own pages, or "
        "clients that are not browsers, may change things here"
    )


def _netloc(origin: str) -> str | None:
    """'http://127.0.0.1:17000' -> '127.0.0.1:17000'; 'null' or junk -> None."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None
