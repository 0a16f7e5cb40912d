"""The WebDAV share of a peer at ``/dav/``: wsgidav with the ring provider, behind a gate.

The gate does what the REST API does for its own routes, before wsgidav sees a request:

* **cross-site writes** refused (403), by the same rule as the REST API (services.rest.origin);
* **writes need the API token** when one is configured: HTTP Basic with the token as the
  password (any user name), which is what desktop WebDAV clients can send, or a Bearer
  token as curl and client.py send it; reads are anonymous. A failed attempt spends the
  client's write budget, so tokens cannot be guessed fast;
* **transfers per client**: a GET or PUT holds one of the client's transfer slots while
  its bytes move (429 with Retry-After beyond ``max_transfers_per_client``).

wsgidav keeps locks in memory on this peer (class-2 LOCK/UNLOCK with timeouts) and dead
properties (PROPPATCH) in ``<data_dir>/dav-properties`` on this peer; docs/webdav.md
explains what that means for clients that use several peers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.datastructures import Authorization, EnvironHeaders
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.prop_man.property_manager import PropertyManager, ShelvePropertyManager
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from chord.node import ChordNode
from services.dav.listing import RingListing
from services.dav.options import PREFIX, DavOptions, is_dav_path
from services.dav.provider import RingDav
from services.files.client import FileInfo
from services.peer import overview
from services.rest.auth import Tokens, _same
from services.rest.context import PeerServices
from services.rest.errors import ApiError
from services.rest.limits import ClientLimits, TransferSlot
from services.rest.origin import cross_site, refusal

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

REALM = "chord"
BLOCK_SIZE = 1 << 20  # bytes per read of a PUT body and per block of a GET
WRITE_METHODS = frozenset(
    {"PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "POST"}
)
TRANSFER_METHODS = frozenset({"GET", "PUT"})
# PROPFIND, PROPPATCH and LOCK bodies are XML that wsgidav reads whole into memory
# (parsed by defusedxml: no entity expansion); no honest one comes near this.
MAX_XML_BODY = 1 << 20
CHALLENGE = [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')]

log = logging.getLogger("chord.dav")


def dav_app(dav: RingDav, properties: Path | None) -> WsgiApp:
    """wsgidav serving ``dav`` at /dav; dead properties in the shelve ``properties``
    (None: in memory)."""
    props = ShelvePropertyManager(str(properties)) if properties is not None else PropertyManager()
    config: dict[str, Any] = {
        "provider_mapping": {PREFIX: dav},
        "lock_storage": True,  # in memory, on this peer
        "property_manager": props,
        # The gate authenticates; the dir browser answers a browser's GET of a folder.
        "middleware_stack": [ErrorPrinter, WsgiDavDirBrowser, RequestResolver],
        "dir_browser": {
            "enable": True,
            "davmount": False,
            "ms_sharepoint_support": False,
            "libre_office_support": False,
            "show_user": False,
            "icon": True,
            "response_trailer": "Chord ring — WebDAV share",
        },
        "block_size": BLOCK_SIZE,
        "verbose": 1,
        "logging": {"enable": False},  # our handlers (the peer's short ID in every line)
        "add_header_MS_Author_Via": True,
        "suppress_version_info": True,
    }
    return WsgiDAVApp(config)  # type: ignore[no-any-return]


def _json(
    start_response: StartResponse,
    status: int,
    error: ApiError,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps({"error": error.code, "detail": error.detail}).encode()
    reason = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        413: "Content Too Large",
        429: "Too Many Requests",
    }.get(status, "Error")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    headers += list(error.headers.items()) + (extra or [])
    start_response(f"{status} {reason}", headers)
    return [body]


def credential(header: str | None) -> tuple[str, str] | None:
    """(user, token) of an ``Authorization`` header: Basic (the token is the password)
    or Bearer (user ''); None if absent, malformed or of another scheme."""
    auth = Authorization.from_header(header)
    if auth is None:
        return None
    if auth.type == "bearer" and auth.token:
        return "", auth.token
    if auth.type == "basic" and auth.password is not None:
        return auth.username or "", auth.password
    return None


def _declared_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # the HTTP server has refused a malformed length already


def _held(slot: TransferSlot, body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        slot.release()


@dataclass(frozen=True)
class _Refusal:
    """A request the gate answers itself: status, JSON error, extra headers."""

    status: int
    error: ApiError
    headers: list[tuple[str, str]] = field(default_factory=list)


def _check_shape(environ: dict[str, Any], method: str) -> _Refusal | None:
    """An oversized XML body or a cross-site write."""
    if method != "PUT" and _declared_length(environ) > MAX_XML_BODY:
        detail = f"a {method} body is at most {MAX_XML_BODY} bytes of XML"
        return _Refusal(413, ApiError(413, detail))
    if method in WRITE_METHODS:
        why = cross_site(method, EnvironHeaders(environ).get, environ.get("HTTP_HOST"))
        if why is not None:
            return _Refusal(403, ApiError(403, refusal(method, why)))
    return None


def _user(
    environ: dict[str, Any], method: str, tokens: Tokens, limits: ClientLimits, client: str
) -> str | _Refusal:
    """The user name a request acts as, or why it may not: a write needs the API (or
    admin) token as its Basic password; a wrong one spends from the client's budget."""
    given = credential(environ.get("HTTP_AUTHORIZATION"))
    if method not in WRITE_METHODS or tokens.api is None:
        return ""
    if given is not None and (_same(given[1], tokens.api) or _same(given[1], tokens.admin)):
        return given[0]
    try:
        limits.spend(client)
    except ApiError as exc:
        return _Refusal(429, exc)
    detail = (
        "this WebDAV write needs the API token as the password of HTTP Basic "
        "authentication (any user name)"
    )
    return _Refusal(401, ApiError(401, detail), CHALLENGE)


def gate(app: WsgiApp, tokens: Tokens, limits: ClientLimits) -> WsgiApp:
    """Cross-site check, token check for writes, transfer slots (see the module doc)."""

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        client = environ.get("REMOTE_ADDR", "?")
        user = _check_shape(environ, method) or _user(environ, method, tokens, limits, client)
        if isinstance(user, _Refusal):
            return _json(start_response, user.status, user.error, user.headers)
        environ["wsgidav.auth.user_name"] = user
        environ["wsgidav.auth.realm"] = REALM
        environ["wsgidav.auth.roles"] = None
        environ["wsgidav.auth.permissions"] = None
        if method not in TRANSFER_METHODS:
            return app(environ, start_response)
        try:
            slot = limits.transfer(client)
        except ApiError as exc:
            return _json(start_response, exc.status, exc)
        try:
            body = app(environ, start_response)
        except BaseException:
            slot.release()
            raise
        return _held(slot, body)

    return serve


def mount(app: WsgiApp, dav: WsgiApp) -> WsgiApp:
    """Requests below /dav go to ``dav``, every other one to ``app``."""

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if is_dav_path(environ.get("PATH_INFO", "")):
            return dav(environ, start_response)
        return app(environ, start_response)

    return serve


def build(node: ChordNode, peer: PeerServices, options: DavOptions) -> WsgiApp:
    """The gated WebDAV app of a full peer."""

    def walk() -> list[FileInfo]:
        return [row.info for row in overview.ring_files(overview.ring_walk(node, peer.files))]

    listing = RingListing(walk, options.listing_ttl, time.monotonic)
    provider = RingDav(
        peer.files,
        listing,
        max_upload_bytes=peer.max_upload_bytes,
        store_macos_metadata=options.store_macos_metadata,
    )
    return gate(dav_app(provider, options.properties), peer.tokens, peer.limits)
