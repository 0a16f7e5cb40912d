"""The Flask app factory: blueprints plus one error shape for everything."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from services.common.log_limits import LogLimiter
from services.dav import app as dav
from services.rest import dashboard, files, peer, ring
from services.rest.context import ApiContext
from services.rest.errors import ApiError, error_response, from_exception, http_error
from services.rest.fast_read import fast_small_reads
from services.rest.health import WsgiApp, fast_health
from services.rest.origin import refuse_cross_site
from services.rest.params import strict_query

log = logging.getLogger("chord.api")
# At most one line per client IP and minute of each kind: clients cannot flood the log.
_warned, _crashed = LogLimiter(), LogLimiter()


def create_app(ctx: ApiContext) -> Flask:
    """The REST app of a peer; a context without ``peer`` gets the ring routes only."""
    app = Flask("chord")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # names stay readable
    app.register_blueprint(ring.blueprint(ctx))
    app.register_blueprint(peer.blueprint(ctx))
    if ctx.peer is not None:
        app.register_blueprint(files.blueprint(ctx, ctx.peer))
    app.register_blueprint(dashboard.blueprint())
    app.before_request(refuse_cross_site)  # before any route, its token check included
    app.before_request(strict_query)  # every route: no parameter with invalid UTF-8
    app.after_request(dashboard.allow_cross_origin_reads)
    served: WsgiApp = app.wsgi_app
    if ctx.peer is not None:
        served = fast_small_reads(served, ctx.node, ctx.peer.files, ctx.peer.limits, ctx.metrics)
    served = fast_health(served, ctx.node)
    if ctx.peer is not None and ctx.peer.webdav is not None:
        served = dav.mount(served, dav.build(ctx.node, ctx.peer, ctx.peer.webdav))
    app.wsgi_app = served  # type: ignore[method-assign,assignment]

    @app.errorhandler(HTTPException)
    def flask_error(exc: HTTPException) -> WerkzeugResponse:
        return http_error(exc)

    @app.errorhandler(Exception)
    def any_error(exc: Exception) -> Response:
        known = from_exception(exc)
        client = request.remote_addr or "?"
        if known is not None:
            if known.status >= 500 and _warned.allow(client):
                log.warning("%s %s: %s", request.method, request.path, known.detail)
            return error_response(known)
        if _crashed.allow(client):  # a bug: its traceback, but not once per request
            log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError(500, "the peer hit an unexpected error; see its log"))

    return app
