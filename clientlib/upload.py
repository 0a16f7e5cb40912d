"""Streaming a local file to ``POST /upload_file`` as ``multipart/form-data``.

The body is the multipart frame's head, the file read in 1 MiB blocks, and the frame's
tail, sent with a precomputed ``Content-Length``: the file is never held in memory.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from clientlib import progress
from clientlib.multipart import MultipartFrame, build_frame
from clientlib.peer import ClientError, PeerApi, error_from, read_json

BLOCK = 1024 * 1024


class Source(Protocol):
    """Where an upload's bytes come from: a file, or a stream out of the ring."""

    def read(self, size: int = -1, /) -> bytes: ...


def open_local(path: Path) -> tuple[BinaryIO, int]:
    """The file opened for reading and its size; a one-line ClientError if impossible."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not os.path.isfile(path):
        handle.close()
        raise ClientError(f"cannot upload {path}: not a regular file")
    return handle, os.fstat(handle.fileno()).st_size


def upload_fields(name: str, replicas: int | None, overwrite: bool) -> list[tuple[str, str]]:
    """The fields, all ahead of the file part. ``overwrite`` is always sent: when the peer
    has every option before the bytes (``replicas`` too, if given) it streams them to the
    holders without keeping a copy in case a later field changes the write."""
    fields = [("name", name)]
    fields.append(("replicas", "default" if replicas is None else str(replicas)))
    fields.append(("overwrite", "true" if overwrite else "false"))
    return fields


def send_body(
    conn: http.client.HTTPConnection,
    frame: MultipartFrame,
    source: Source,
    size: int,
    show: bool,
    label: str,
) -> None:
    conn.send(frame.head)
    sent = 0
    with progress.bar(size, label, show) as meter:
        while sent < size:
            block = source.read(min(BLOCK, size - sent))
            if not block:
                raise ClientError(f"{label} shrank while it was being uploaded; nothing stored")
            conn.send(block)
            sent += len(block)
            meter.update(len(block))
    conn.send(frame.tail)


def upload(
    api: PeerApi,
    path: Path,
    name: str | None = None,
    replicas: int | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Any:
    """Upload ``path`` (as ``name``, default its file name); returns the peer's 201 body."""
    source, size = open_local(path)
    with source:
        return upload_stream(
            api,
            source,
            size,
            name if name is not None else path.name,
            path.name,
            replicas,
            overwrite,
            show_progress,
            str(path),
        )


def upload_stream(
    api: PeerApi,
    source: Source,
    size: int,
    name: str,
    filename: str | None = None,
    replicas: int | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
    label: str | None = None,
) -> Any:
    """Upload ``size`` bytes read from ``source`` (any object with ``read(n)``: a file, or
    a stream from the ring itself) as ``name``; returns the peer's 201 body. A 429 is
    retried after its Retry-After, the body sent again from its start, when ``source``
    can seek back there (a stream from the ring cannot: the 429 is reported)."""
    filename = filename or name.rsplit("/", 1)[-1]
    frame = build_frame(upload_fields(name, replicas, overwrite), "file", filename)
    headers = api.headers(
        {"Content-Type": frame.content_type, "Content-Length": str(frame.content_length(size))}
    )
    start = start_of(source)
    for attempt in itertools.count(1):
        conn = api.connect()
        try:
            response = post(api, conn, headers, frame, source, size, show_progress, label or name)
            if start is None or not api.backoff(response, attempt, "/upload_file"):
                return read_upload_answer(api, response)
        except (OSError, http.client.HTTPException) as exc:
            raise api.unreachable(exc) from None
        finally:
            conn.close()
        source.seek(start)  # type: ignore[attr-defined]  # start_of checked it can
    raise AssertionError("unreachable")  # itertools.count never ends


def start_of(source: Source) -> int | None:
    """Where ``source`` is now, if it can come back there for a retry (else None)."""
    try:
        return int(source.seek(0, os.SEEK_CUR))  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def post(
    api: PeerApi,
    conn: http.client.HTTPConnection,
    headers: dict[str, str],
    frame: MultipartFrame,
    source: Source,
    size: int,
    show: bool,
    label: str,
) -> http.client.HTTPResponse:
    """Send the request and its body; the (unread) answer. The peer may answer before
    the body is all sent (401, 413, a 429 that is retried) and close the connection:
    that answer is returned rather than the broken pipe it caused."""
    try:
        conn.putrequest("POST", "/upload_file", skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        send_body(conn, frame, source, size, show, label)
    except OSError as exc:
        early = early_answer(conn)
        if early is None:
            raise api.unreachable(exc) from None
        return early
    return conn.getresponse()


def early_answer(conn: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
    """An error answer the peer sent before closing the connection under the body."""
    if conn.sock is None:  # never connected
        return None
    with contextlib.suppress(OSError, http.client.HTTPException):
        response = conn.getresponse()
        if response.status >= 400:
            return response
    return None


def read_upload_answer(api: PeerApi, response: http.client.HTTPResponse) -> Any:
    if response.status not in (200, 201):
        raise error_from(response, api.where("/upload_file"))
    return read_json(response, api.where("/upload_file"))
