"""Bytes in and out of the ring for WebDAV: a seekable reader over a verified download,
the body of a PUT regrouped into the pieces FileClient.put sends, and errors as DAVErrors.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from types import TracebackType

from wsgidav.dav_error import (
    HTTP_BAD_GATEWAY,
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
)

from chord.names import InvalidName
from chord.node_ref import NodeRef
from services.files.client import (
    ChecksumMismatch,
    Conflict,
    FileClient,
    FileInfo,
    NoSpace,
    NotFound,
    Unavailable,
)

PIECE = 1 << 20  # bytes per piece handed to FileClient.put (its gRPC message size)
HTTP_SERVICE_UNAVAILABLE = 503

_STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, HTTP_NOT_FOUND),
    (Conflict, HTTP_CONFLICT),
    (NoSpace, HTTP_INSUFFICIENT_STORAGE),
    (Unavailable, HTTP_SERVICE_UNAVAILABLE),
    (ChecksumMismatch, HTTP_BAD_GATEWAY),
    (InvalidName, HTTP_BAD_REQUEST),
]


def as_dav_error(exc: Exception) -> DAVError:
    """A FileClient error as the DAV status that says the same (500 for anything else)."""
    if isinstance(exc, DAVError):
        return exc
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return DAVError(status, str(exc))
    return DAVError(HTTP_INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def pieces_of(blocks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """``blocks`` (any sizes) as PIECE-sized pieces; 413 past ``limit`` bytes (raised
    inside put's iteration, so no holder keeps a byte of it)."""
    pending = bytearray()
    received = 0
    for block in blocks:
        received += len(block)
        if received > limit:
            raise DAVError(
                HTTP_REQUEST_ENTITY_TOO_LARGE,
                f"the file is larger than this peer's upload limit of {limit} bytes; "
                "nothing was stored",
            )
        if not pending and len(block) == PIECE:
            yield block  # the common case: no copy
            continue
        pending += block
        while len(pending) >= PIECE:
            yield bytes(pending[:PIECE])
            del pending[:PIECE]
    if pending:
        yield bytes(pending)


class RingReader:
    """A read-only file over one version of a ring file: ``seek`` (wsgidav seeks to a
    Range's start before the first read) then ``read``. The download starts at the first
    read, from the position sought, and is closed with the reader (its fetch threads
    with it)."""

    def __init__(self, files: FileClient, info: FileInfo, having: list[NodeRef]) -> None:
        self._files, self._info, self._having = files, info, having
        self._position = 0
        self._stream: Generator[bytes, None, None] | None = None
        self._chunk, self._used = b"", 0  # the piece being read and how much of it

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._stream is not None:
            raise OSError("a ring download can only seek before its first read")
        base = {0: 0, 1: self._position, 2: self._info.size}[whence]
        self._position = min(max(0, base + offset), self._info.size)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (a whole piece, uncopied, when it fits); b"" at the end."""
        if self._used >= len(self._chunk):
            if self._stream is None:
                self._stream = self._files.open(self._info, self._having, self._position)
            try:
                self._chunk, self._used = next(self._stream), 0
            except StopIteration:
                return b""
            except Exception as exc:
                raise as_dav_error(exc) from None
        left = len(self._chunk) - self._used
        if self._used == 0 and (size < 0 or size >= left):
            piece = self._chunk
        else:
            count = left if size < 0 else min(size, left)
            piece = self._chunk[self._used : self._used + count]
        self._used += len(piece)
        self._position += len(piece)
        return piece

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> RingReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
