"""Every error the API answers: ``{"error": code, "detail": sentence}`` with a status.

Handlers raise ApiError (or let a FileClient / lookup error escape); the app's error
handlers turn all of them, and Flask's own 404/405/413..., into this one shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from chord.lookup import LookupFailed
from chord.transport import PeerUnreachable
from services.files import client as fc

log = logging.getLogger("chord.api")

# The code each status answers with unless the raiser names a more specific one.
CODES: dict[int, str] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "timeout",
    409: "conflict",
    411: "length-required",
    413: "too-large",
    415: "unsupported-media-type",
    416: "range-not-satisfiable",
    422: "checksum-mismatch",
    429: "too-many-requests",
    431: "headers-too-large",
    500: "internal-error",
    503: "unavailable",
    507: "no-space",
}

# FileClient's errors carry their contract code already; only the status is needed.
_FILE_STATUS: dict[type[fc.FileError], int] = {
    fc.NotFound: 404,
    fc.Conflict: 409,
    fc.NoSpace: 507,
    fc.Unavailable: 503,
    fc.ChecksumMismatch: 422,
}


class ApiError(Exception):
    """Answer ``status`` with ``{"error": code, "detail": detail}`` (and ``headers``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.detail = detail
        self.headers = dict(headers or {})


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def error_response(error: ApiError) -> Response:
    response = jsonify(error=error.code, detail=error.detail)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def from_exception(exc: Exception) -> ApiError | None:
    """The ApiError an exception from the file or ring layer stands for (None: a bug)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, fc.FileError):
        return ApiError(_FILE_STATUS.get(type(exc), 503), str(exc), exc.code)
    if isinstance(exc, LookupFailed):
        return ApiError(503, f"the lookup failed: {exc}", "lookup-failed")
    if isinstance(exc, PeerUnreachable):
        return ApiError(503, f"a peer did not answer: {exc}", "unavailable")
    return None


def http_error(exc: HTTPException) -> WerkzeugResponse:
    """Flask's own errors (unknown route, wrong method...) in the same JSON shape; the
    response keeps their headers, e.g. Allow on 405."""
    response = exc.get_response()
    status = exc.code or 500
    body = jsonify(error=CODES.get(status, "error"), detail=exc.description or exc.name)
    response.set_data(body.get_data())
    response.content_type = "application/json"
    return response
