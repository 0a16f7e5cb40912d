"""The local storage engine: file versions as content-addressed blobs plus a sqlite index.

Locking: one lock guards the sqlite connection and the quota counters. It is held for
metadata work and for the short rename/fsync-directory step of a commit, never while file
bytes are streamed or hashed, so many gRPC threads can read and write at once.

Crash safety rests on ordering: a blob is written in tmp/, fsynced, renamed into blobs/
(directory fsynced) and only then does a sqlite transaction insert its record. Whatever a
crash interrupts, startup finds either an unreferenced blob (garbage-collected) or a tmp
file (deleted); a record never points at a blob that was not durable.

Layout under ``data_dir``: ``blobs/<sha[:2]>/<sha256>``, ``tmp/``, ``index.sqlite3`` (WAL)
and ``LOCK`` (flock held while an engine has the directory open).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, NoReturn

from chord.ids import between_right
from chord.names import validate_name
from chord.replication.digest import range_digest
from chord.replication.versions import delete_refusal, store_refusal

from .blobs import BlobStore
from .errors import CorruptData, QuotaExceeded, StaleVersion, StorageError
from .index import Index
from .reader import BlobReader
from .record import (
    CHUNK_SIZE,
    FileRecord,
    check_key,
    check_name,
    check_replicas,
    check_role,
    check_sha256,
    check_version,
)
from .writer import BlobWriter

log = logging.getLogger(__name__)


def _lock_dir(data_dir: Path) -> BinaryIO:
    """One engine per data dir: a second one would empty tmp/ under the first one's writers.
    The flock dies with the process, so a killed peer never leaves a stale lock."""
    handle = (data_dir / "LOCK").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StorageError(f"{data_dir} is in use by another storage engine") from None
    return handle


def _check_newer(current: FileRecord | None, version: int, sha256: str | None) -> None:
    """StaleVersion unless ``version`` (with content ``sha256``, if known) may be stored
    (the replication core's rule)."""
    refusal = store_refusal(current, version, sha256)
    if refusal is not None:
        raise StaleVersion(refusal)


def _check_count(value: int | None, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{what} must be a non-negative int")


class StorageEngine:
    def __init__(
        self, data_dir: Path, quota_bytes: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> None:
        _check_count(quota_bytes, "quota_bytes")
        _check_count(chunk_size, "chunk_size")
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.data_dir = Path(data_dir)
        self.quota_bytes = quota_bytes
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._writers: set[BlobWriter] = set()
        self._reserved = 0  # quota held by open writers
        self._closed = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = _lock_dir(self.data_dir)
        try:
            self._blobs = BlobStore(self.data_dir)
            leftovers = self._blobs.empty_tmp()
            if leftovers:
                log.info("removed %d unfinished writes from %s", leftovers, self._blobs.tmp)
            self._index = Index(self.data_dir / "index.sqlite3")
            try:
                self._blob_bytes = self._recover()  # bytes of all blob files on disk
            except BaseException:
                self._index.close()
                raise
        except BaseException:
            self._dir_lock.close()
            raise

    def _recover(self) -> int:
        """Startup: drop blobs no record needs, flag records whose blob is gone or truncated."""
        on_disk = dict(self._blobs.scan())
        needed = self._index.referenced()
        total = 0
        for sha, size in on_disk.items():
            if sha in needed:
                total += size
            else:
                self._blobs.remove(sha)
                log.info("removed unreferenced blob %s (%d B)", sha, size)
        now = time.time()
        with self._index.transaction():
            for record in self._index.live():
                if not record.damaged and on_disk.get(record.sha256) != record.size:
                    log.warning("%r v%d: blob missing or wrong size", record.name, record.version)
                    self._index.set_damaged(record.name, now)
        return total

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage engine is closed")

    # -- writing -----------------------------------------------------------------------

    def writer(
        self,
        name: str,
        key: int,
        version: int,
        *,
        role: str,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
        replicas: int = 0,
    ) -> BlobWriter:
        validate_name(name)  # new content obeys the ring's name rules (reads stay lenient)
        check_key(key)
        check_version(version)
        role = check_role(role)
        check_replicas(replicas)
        _check_count(expected_size, "expected_size")
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        reserve = expected_size or 0
        tmp = self._blobs.new_tmp()
        try:
            with self._lock:
                self._check_open()
                _check_newer(self._index.get(name), version, expected_sha256)
                self._reserve_locked(reserve)
                writer = BlobWriter(
                    self,
                    tmp,
                    name=name,
                    key=key,
                    version=version,
                    role=role,
                    replicas=replicas,
                    chunk_size=self.chunk_size,
                    expected_size=expected_size,
                    expected_sha256=expected_sha256,
                    reserved=reserve,
                )
                self._writers.add(writer)
        except BaseException:
            tmp[0].close()
            tmp[1].unlink(missing_ok=True)
            raise
        return writer

    def put_bytes(
        self, name: str, key: int, version: int, data: bytes, *, role: str, replicas: int = 0
    ) -> FileRecord:
        with self.writer(
            name, key, version, role=role, expected_size=len(data), replicas=replicas
        ) as writer:
            view = memoryview(data)
            for start in range(0, len(view), self.chunk_size):
                writer.write(view[start : start + self.chunk_size])
            return writer.commit()

    def _reserve_locked(self, amount: int) -> None:
        if amount and self.quota_bytes is not None:
            used = self._blob_bytes + self._reserved
            if used + amount > self.quota_bytes:
                raise QuotaExceeded(
                    f"need {amount} B, {max(self.quota_bytes - used, 0)} B free "
                    f"of {self.quota_bytes} B"
                )
        self._reserved += amount

    def _reserve(self, amount: int) -> None:  # WriterHost
        with self._lock:
            self._check_open()
            self._reserve_locked(amount)

    def _release_writer_locked(self, writer: BlobWriter) -> None:
        self._reserved -= writer.reserved
        writer.reserved = 0
        self._writers.discard(writer)

    def _writer_done(self, writer: BlobWriter) -> None:  # WriterHost
        with self._lock:
            self._release_writer_locked(writer)

    def _check_stage(self, writer: BlobWriter, sha256: str) -> None:  # WriterHost
        """Refuse to stage what a commit would refuse now (a conflict is found before
        any holder commits); _install checks again, since a newer write may land."""
        with self._lock:
            self._check_open()
            _check_newer(self._index.get(writer.name), writer.version, sha256)

    def _install(self, writer: BlobWriter, sha256: str, chunks: tuple[str, ...]) -> FileRecord:
        """WriterHost: publish a fully written, fsynced tmp file as ``writer``'s version.
        On error nothing is published and the writer (not us) releases its reservation."""
        size = writer.bytes_written
        with self._lock:
            self._check_open()
            current = self._index.get(writer.name)
            # Re-checked here: another writer may have committed since writer() checked.
            _check_newer(current, writer.version, sha256)
            now = time.time()
            same = current is not None and current.version == writer.version
            if (
                same
                and current is not None
                and not current.damaged
                and self._blob_healthy_locked(sha256, size)
            ):
                writer.tmp_path.unlink()  # idempotent re-store: keep what we have
                if current.role != writer.role:
                    self._index.set_role(current.name, writer.role, now)
                    current = replace(current, role=writer.role, updated=now)
                self._release_writer_locked(writer)
                return current
            self._store_blob_locked(writer.tmp_path, sha256, size)
            record = FileRecord(
                name=writer.name,
                key=writer.key,
                version=writer.version,
                size=size,
                sha256=sha256,
                chunk_size=writer.chunk_size,
                chunk_hashes=chunks,
                role=writer.role,
                created=current.created if same and current is not None else now,
                updated=now,
                deleted=False,
                damaged=False,
                replicas=writer.replicas,
            )
            try:
                with self._index.transaction():
                    self._index.put(record)
                    # The blob now holds verified bytes: names sharing it are whole again.
                    self._index.heal_sha(sha256, now)
            except BaseException:
                self._release_blob_locked(sha256)
                raise
            if current is not None and not current.deleted and current.sha256 != sha256:
                self._release_blob_locked(current.sha256)
            self._release_writer_locked(writer)
            return record

    def _blob_healthy_locked(self, sha256: str, size: int) -> bool:
        """The blob exists with the right size and records use it without having seen it
        corrupt; a fresh copy may then be discarded instead of replacing it."""
        if self._blobs.size_of(sha256) != size:
            return False
        users, damaged = self._index.refs(sha256)
        return users > 0 and damaged == 0

    def _store_blob_locked(self, tmp: Path, sha256: str, size: int) -> None:
        if self._blob_healthy_locked(sha256, size):
            tmp.unlink()  # dedupe: identical content is already stored
            return
        # Missing, or suspect (a damaged record uses it): replace it, which also repairs it.
        previous = self._blobs.size_of(sha256) or 0
        self._blobs.place(tmp, sha256)
        self._blob_bytes += size - previous

    def _release_blob_locked(self, sha256: str) -> None:
        users, _ = self._index.refs(sha256)
        if users == 0:
            self._blob_bytes -= self._blobs.remove(sha256)

    # -- metadata ----------------------------------------------------------------------

    def get(self, name: str) -> FileRecord | None:
        check_name(name)
        with self._lock:
            self._check_open()
            return self._index.get(name)

    def delete(
        self, name: str, key: int, version: int, *, role: str, replicas: int = 0
    ) -> FileRecord:
        """Store a tombstone for ``version``; ``replicas`` is the count of the version it
        deletes, so the tombstone reaches (and stays on) the same holders."""
        check_name(name)
        check_key(key)
        check_version(version)
        role = check_role(role)
        check_replicas(replicas)
        with self._lock:
            self._check_open()
            current = self._index.get(name)
            now = time.time()
            refusal = delete_refusal(current, version)
            if refusal is not None:
                raise StaleVersion(refusal)
            if current is not None and current.version == version and current.deleted:
                if current.role != role:
                    self._index.set_role(name, role, now)
                    current = replace(current, role=role, updated=now)
                return current
            tombstone = FileRecord(
                name=name,
                key=key,
                version=version,
                size=0,
                sha256="",
                chunk_size=self.chunk_size,
                chunk_hashes=(),
                role=role,
                created=now,
                updated=now,
                deleted=True,
                damaged=False,
                replicas=replicas,
            )
            self._index.put(tombstone)
            if current is not None and not current.deleted:
                self._release_blob_locked(current.sha256)
            return tombstone

    def drop(self, name: str, below_version: int | None = None) -> None:
        """Forget ``name`` here (no tombstone): it is held elsewhere. With
        ``below_version``, only if what is held here is older than that."""
        check_name(name)
        with self._lock:
            self._check_open()
            current = self._index.get(name)
            if current is None:
                return
            if below_version is not None and current.version >= below_version:
                return
            self._index.remove(name)
            if not current.deleted:
                self._release_blob_locked(current.sha256)

    def set_role(self, name: str, role: str) -> None:
        check_name(name)
        check_role(role)
        with self._lock:
            self._check_open()
            if self._index.get(name) is None:
                raise KeyError(name)
            self._index.set_role(name, role, time.time())

    def mark_damaged(self, name: str) -> None:
        """Flag ``name`` (not a tombstone: it has no bytes) as unservable until repaired."""
        check_name(name)
        with self._lock:
            self._check_open()
            if self._index.get(name) is None:
                raise KeyError(name)
            self._index.set_damaged(name, time.time())

    def records(
        self,
        *,
        role: str | None = None,
        include_deleted: bool = False,
        include_damaged: bool = True,
    ) -> list[FileRecord]:
        if role is not None:
            check_role(role)
        with self._lock:
            self._check_open()
            return self._index.select(
                role=role, include_deleted=include_deleted, include_damaged=include_damaged
            )

    def in_range(self, start: int, end: int) -> list[FileRecord]:
        check_key(start)
        check_key(end)
        with self._lock:
            self._check_open()
            candidates = self._index.key_range(start, end)
        return [r for r in candidates if between_right(start, r.key, end)]

    def digest(
        self, start: int, end: int, include: Callable[[FileRecord], bool] | None = None
    ) -> str:
        """The replication core's range digest (chord.replication.digest) of the records
        in (start, end]; ``include`` narrows it to some records (those a given replica
        holder must have)."""
        return range_digest(r for r in self.in_range(start, end) if include is None or include(r))

    def usage(self) -> tuple[int, int | None]:
        with self._lock:
            return self._blob_bytes + self._reserved, self.quota_bytes

    def close(self) -> None:
        """Abort open writers and release the data dir. Call after the servers stopped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writers = list(self._writers)
        for writer in writers:
            writer.abort()
        with self._lock:
            self._index.close()
            self._dir_lock.close()

    def __enter__(self) -> StorageEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def read(
        self, record: FileRecord, offset: int = 0, length: int | None = None, verify: bool = True
    ) -> Iterator[bytes]:
        """Stream ``[offset, offset + length)`` in pieces of at most one chunk. A chunk is
        hashed before any of its bytes are yielded, so a consumer never sees bad data; a
        mismatch marks the record damaged and raises CorruptData (mid-stream, possibly
        after earlier good pieces). Range and state are checked now, not at first next().
        ``verify=False`` skips the hashing (only the length is checked) for a consumer
        that checks every chunk against ``chunk_hashes`` itself."""
        _check_count(offset, "offset")
        _check_count(length, "length")
        if length is None:
            length = record.size - offset
        if offset > record.size or length < 0 or offset + length > record.size:
            raise ValueError(f"range {offset}+{length} outside {record.size} B of {record.name!r}")
        current = self._current(record)
        return self._stream(current, offset, length, verify)

    def _stream(
        self, record: FileRecord, offset: int, length: int, verify: bool
    ) -> Iterator[bytes]:
        if length == 0:
            return
        end = offset + length
        reader = self._open(record)
        try:
            for index in range(offset // record.chunk_size, (end - 1) // record.chunk_size + 1):
                data = self._chunk(reader, index, verify)
                start = index * record.chunk_size
                lo, hi = max(offset - start, 0), min(end - start, len(data))
                yield data if (lo, hi) == (0, len(data)) else data[lo:hi]
        finally:
            reader.close()

    def read_chunk(self, record: FileRecord, index: int) -> bytes:
        current = self._current(record)
        if isinstance(index, bool) or not 0 <= index < len(current.chunk_hashes):
            raise ValueError(f"{record.name!r} has no chunk {index}")
        reader = self._open(current)
        try:
            return self._chunk(reader, index)
        finally:
            reader.close()

    def verify(self, record: FileRecord) -> bool:
        """Re-hash everything. False (and the record marked damaged) on any mismatch; also
        False for a record already damaged, since it is not served until repaired."""
        try:
            current = self._current(record)
            reader = self._open(current)
        except CorruptData:
            return False
        try:
            whole = hashlib.sha256()
            for index in range(len(current.chunk_hashes)):
                whole.update(self._chunk(reader, index))
            if whole.hexdigest() != current.sha256:
                self._damaged(reader.record, reader, "whole-content SHA-256 mismatch")
        except CorruptData:
            return False
        finally:
            reader.close()
        return True

    def _current(self, record: FileRecord) -> FileRecord:
        """The index's row for the version ``record`` describes (the caller's copy may be
        stale); StorageError if that version is no longer servable."""
        if record.deleted:
            raise StorageError(f"{record.name!r} v{record.version} is deleted")
        with self._lock:
            self._check_open()
            current = self._index.get(record.name)
        if current is not None and current.deleted:
            raise StorageError(f"{record.name!r} is deleted (v{current.version})")
        if current is None or (current.version, current.sha256) != (record.version, record.sha256):
            raise StorageError(f"{record.name!r} v{record.version} is no longer stored here")
        if current.damaged:
            raise CorruptData(f"{record.name!r} v{record.version} is damaged, awaiting repair")
        return current

    def _open(self, record: FileRecord) -> BlobReader:
        try:
            reader = BlobReader(self._blobs.path(record.sha256), record)
        except FileNotFoundError:
            self._damaged(record, None, "blob file missing")
        if not reader.size_ok():
            reader.close()  # it remembers which file it was, for _damaged
            self._damaged(record, reader, "blob file has the wrong size")
        return reader

    def _chunk(self, reader: BlobReader, index: int, verify: bool = True) -> bytes:
        data = reader.chunk(index, verify)
        if data is None:
            what = "does not match its hash" if verify else "is shorter than recorded"
            self._damaged(reader.record, reader, f"chunk {index} {what}")
        return data

    def _damaged(self, record: FileRecord, reader: BlobReader | None, what: str) -> NoReturn:
        """Record a detected corruption, then raise CorruptData (or StorageError if the
        record was superseded meanwhile: its blob may legitimately be gone)."""
        message = f"{record.name!r} v{record.version}: {what}"
        with self._lock:
            if self._closed:
                raise CorruptData(message)
            current = self._index.get(record.name)
            if current is None or current.deleted or current.sha256 != record.sha256:
                raise StorageError(f"{record.name!r} v{record.version} is no longer stored here")
            # Blame the blob only if it is still the file we read (not a fresh repair copy).
            if reader is None or reader.is_file_at(self._blobs.path(record.sha256)):
                log.warning("corrupt data: %s", message)
                self._index.set_damaged_sha(record.sha256, time.time())
        raise CorruptData(message)
