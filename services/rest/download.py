"""The headers and body of a download: validators, Range, Content-Disposition."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from urllib.parse import quote

from flask import Response, request

from chord.names import last_segment
from services.files.client import FileInfo
from services.rest.errors import ApiError, bad_request
from services.rest.metrics import PeerMetrics
from services.rest.ranges import BadRange, ByteRange, Unsatisfiable, parse_range


def content_disposition(name: str) -> str:
    """``attachment`` with the last path segment, percent-encoded UTF-8 (RFC 6266 /
    8187) plus an ASCII-only fallback for clients that ignore ``filename*``."""
    base = last_segment(name)
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in base)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


def file_headers(info: FileInfo) -> dict[str, str]:
    return {
        "ETag": f'"{info.sha256}"',
        "X-Content-SHA256": info.sha256,
        "X-Chord-Version": str(info.version),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(info.name),
    }


def not_modified(info: FileInfo) -> bool:
    """If-None-Match names this content (weak comparison, as RFC 9110 asks for it)."""
    return request.if_none_match.contains_weak(info.sha256)


def requested_range(info: FileInfo) -> ByteRange | None:
    """The Range to serve, or None for the whole file. A Range under an If-Range that
    no longer matches (the file changed) is ignored: the client gets the new whole file."""
    header = request.headers.get("Range")
    changed = "If-Range" in request.headers and request.if_range.etag != info.sha256
    if header is not None and changed:
        return None
    try:
        return parse_range(header, info.size)
    except BadRange as exc:
        raise bad_request(str(exc)) from None
    except Unsatisfiable as exc:
        raise ApiError(416, str(exc), headers={"Content-Range": f"bytes */{info.size}"}) from None


def sliced(data: bytes, offset: int, length: int | None) -> Generator[bytes, None, None]:
    """A small file already in memory, as the body generator ``counted`` expects."""
    yield data[offset : None if length is None else offset + length]


def counted(chunks: Generator[bytes, None, None], metrics: PeerMetrics) -> Iterator[bytes]:
    """Pass the bytes on, counting them and the transfer; closing this (the HTTP server
    does when the client goes away) closes the fetch and its worker threads too."""
    with metrics.transfer():
        try:
            for chunk in chunks:
                metrics.bytes_out.inc(len(chunk))
                yield chunk
        finally:
            chunks.close()


def file_response(
    info: FileInfo, span: ByteRange | None, chunks: Iterator[bytes], headers: dict[str, str]
) -> Response:
    response = Response(
        chunks,
        status=206 if span is not None else 200,
        headers=headers,
        mimetype="application/octet-stream",
        direct_passthrough=True,  # stream the generator as is, never buffered
    )
    if span is not None:
        response.headers["Content-Range"] = span.content_range(info.size)
    response.headers["Content-Length"] = str(span.length if span else info.size)
    return response
