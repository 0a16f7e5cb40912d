"""Streaming a new file version to tmp/, hashing as it goes, then handing it to the engine."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from .errors import IntegrityError, QuotaExceeded, StorageError
from .hashing import ChunkHasher
from .record import FileRecord, Role, check_sha256


class WriterHost(Protocol):
    """What a writer needs from its engine (quota and the final, locked install step)."""

    def _reserve(self, amount: int) -> None: ...  # raises QuotaExceeded

    def _install(self, writer: BlobWriter, sha256: str, chunks: tuple[str, ...]) -> FileRecord: ...

    def _check_stage(self, writer: BlobWriter, sha256: str) -> None: ...  # raises StaleVersion

    def _writer_done(self, writer: BlobWriter) -> None: ...  # releases its reservation


class BlobWriter:
    """One in-progress file version. Not thread-safe: one writer is fed by one thread.

    Use as a context manager: leaving the block without ``commit()`` (normally or by an
    exception) aborts, so nothing half-written ever becomes visible.

    A write can be done in two phases: ``stage()`` verifies the bytes and makes them
    durable in tmp/ (the quota stays reserved) without publishing anything; a later
    ``commit()`` publishes them, ``abort()`` throws them away. A client's upload stages on
    every holder first and commits only once enough holders have staged, so a refused
    upload leaves no copy anywhere. A crash while staged loses the stage (tmp/ is emptied
    at start), never a committed version.
    """

    def __init__(
        self,
        host: WriterHost,
        tmp: tuple[BinaryIO, Path],
        *,
        name: str,
        key: int,
        version: int,
        role: Role,
        replicas: int,
        chunk_size: int,
        expected_size: int | None,
        expected_sha256: str | None,
        reserved: int,
    ) -> None:
        self._host = host
        self._fh, self.tmp_path = tmp
        self.name = name
        self.key = key
        self.version = version
        self.role = role
        self.replicas = replicas
        self.chunk_size = chunk_size
        self.expected_size = expected_size
        self.expected_sha256 = expected_sha256
        self.reserved = reserved  # quota bytes held for us by the engine
        self.bytes_written = 0
        self._hasher = ChunkHasher(chunk_size)
        self._state = "open"  # -> "staged" -> "committed" | "aborted"
        self._staged: tuple[str, tuple[str, ...]] | None = None  # (sha256, chunk hashes)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()  # no-op after a successful commit

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def _require_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"writer for {self.name!r} is {self._state}")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._require_open()
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size == 0:
            return
        end = self.bytes_written + size
        if self.expected_size is not None and end > self.expected_size:
            self.abort()
            raise IntegrityError(f"{self.name!r}: more than the announced {self.expected_size} B")
        if end > self.reserved:
            try:
                self._host._reserve(end - self.reserved)
            except QuotaExceeded:
                self.abort()
                raise
            self.reserved = end
        try:
            self._fh.write(data)
        except (OSError, ValueError) as exc:  # ENOSPC, or closed under us by engine.close()
            self.abort()
            raise StorageError(f"writing {self.name!r} failed: {exc}") from exc
        self._hasher.update(data)
        self.bytes_written = end

    def expect(self, size: int | None = None, sha256: str | None = None) -> None:
        """Announce the size and/or SHA-256 late, e.g. from a stream trailer; commit checks
        them. Contradicting an earlier announcement or the bytes already written is an
        IntegrityError, and like any failure here it aborts the writer."""
        self._require_open()
        try:
            if size is not None:
                if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                    raise ValueError("expected size must be a non-negative int")
                if self.expected_size not in (None, size) or self.bytes_written > size:
                    raise IntegrityError(
                        f"{self.name!r}: announced {size} B, but earlier {self.expected_size} B"
                        f" / {self.bytes_written} B already written"
                    )
                self.expected_size = size
            if sha256 is not None:
                check_sha256(sha256)
                if self.expected_sha256 not in (None, sha256):
                    raise IntegrityError(f"{self.name!r}: two different SHA-256 announced")
                self.expected_sha256 = sha256
        except BaseException:
            self.abort()
            raise

    @property
    def staged(self) -> tuple[str, tuple[str, ...]]:
        """(SHA-256, chunk hashes) of a staged write."""
        if self._staged is None:
            raise StorageError(f"writer for {self.name!r} is {self._state}, not staged")
        return self._staged

    def stage(self) -> tuple[str, tuple[str, ...]]:
        """Verify the bytes against what was announced and make them durable, without
        publishing them; returns (SHA-256, chunk hashes). Raises IntegrityError (content
        differs from what was announced) or StaleVersion (this version may no longer be
        stored here); either way the writer is aborted."""
        self._require_open()
        try:
            if self.expected_size is not None and self.bytes_written != self.expected_size:
                raise IntegrityError(
                    f"{self.name!r}: got {self.bytes_written} B, announced {self.expected_size} B"
                )
            sha, chunks = self._hasher.finish()
            if self.expected_sha256 is not None and sha != self.expected_sha256:
                raise IntegrityError(
                    f"{self.name!r}: SHA-256 {sha} != announced {self.expected_sha256}"
                )
            self._host._check_stage(self, sha)
            # The blob must be durable before any record points at it.
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except BaseException:
            self.abort()
            raise
        self._state = "staged"
        self._staged = (sha, chunks)
        return self._staged

    def commit(self) -> FileRecord:
        """Publish the version (staging it first if that was not done). Raises
        IntegrityError or StaleVersion (lost a race with a newer write); either way the
        writer is aborted."""
        if self._state == "open":
            self.stage()
        if self._state != "staged":
            raise StorageError(f"writer for {self.name!r} is {self._state}")
        sha, chunks = self.staged
        try:
            record = self._host._install(self, sha, chunks)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return record

    def abort(self) -> None:
        if self._state not in ("open", "staged"):
            return
        self._state = "aborted"
        with contextlib.suppress(OSError):  # the tmp file is going away anyway
            self._fh.close()
        self.tmp_path.unlink(missing_ok=True)
        self._host._writer_done(self)
