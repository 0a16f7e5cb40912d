"""The sqlite metadata index: one row per file name (its newest version or tombstone).

Not thread-safe by itself: the engine serialises every call with its lock. Keys are stored
as 40-char lowercase hex so that text order equals ring order and range scans use the index
(sqlite integers are 64-bit; ring keys are 160-bit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chord.ids import from_hex, to_hex

from .errors import StorageError
from .record import FileRecord, Role

SCHEMA_VERSION = 2

_SCHEMA_V1 = """
CREATE TABLE files (
    name         TEXT PRIMARY KEY,
    key_hex      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    chunk_size   INTEGER NOT NULL,
    chunk_hashes BLOB NOT NULL,
    role         TEXT NOT NULL,
    created      REAL NOT NULL,
    updated      REAL NOT NULL,
    deleted      INTEGER NOT NULL,
    damaged      INTEGER NOT NULL
);
CREATE INDEX files_by_key ON files (key_hex, name);
CREATE INDEX files_by_sha ON files (sha256);
"""

# v2: the per-file replica count (0 for rows written before it: the ring's default).
_SCHEMA_V2 = "ALTER TABLE files ADD COLUMN replicas INTEGER NOT NULL DEFAULT 0"

_COLUMNS = (
    "name, key_hex, version, size, sha256, chunk_size, chunk_hashes, role, created, updated, "
    "deleted, damaged, replicas"
)
_SELECT = f"SELECT {_COLUMNS} FROM files"
_ORDER = " ORDER BY key_hex, name"


def _to_row(r: FileRecord) -> tuple[Any, ...]:
    hashes = b"".join(bytes.fromhex(h) for h in r.chunk_hashes)
    return (
        r.name,
        r.key_hex,
        r.version,
        r.size,
        r.sha256,
        r.chunk_size,
        hashes,
        r.role,
        r.created,
        r.updated,
        int(r.deleted),
        int(r.damaged),
        r.replicas,
    )


def _from_row(row: tuple[Any, ...]) -> FileRecord:
    name, key_hex, version, size, sha, chunk_size, hashes, role, created, updated, dl, dm, rep = row
    raw = bytes(hashes)
    return FileRecord(
        name=name,
        key=from_hex(key_hex),
        version=version,
        size=size,
        sha256=sha,
        chunk_size=chunk_size,
        chunk_hashes=tuple(raw[i : i + 32].hex() for i in range(0, len(raw), 32)),
        role=Role(role),
        created=created,
        updated=updated,
        deleted=bool(dl),
        damaged=bool(dm),
        replicas=rep,
    )


class Index:
    def __init__(self, path: Path) -> None:
        try:
            # isolation_level=None: autocommit; multi-statement changes use transaction().
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open index {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed record survives power loss, matching the fsynced blob.
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open index {path}: {exc}") from exc
            raise

    def _migrate(self) -> None:
        (current,) = self._db.execute("PRAGMA user_version").fetchone()
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"index schema v{current} is newer than this code (v{SCHEMA_VERSION})"
            )
        if current == 0:
            with self.transaction():
                for statement in _SCHEMA_V1.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("PRAGMA user_version=1")
            current = 1
        if current == 1:
            with self.transaction():
                self._db.execute(_SCHEMA_V2)
                self._db.execute("PRAGMA user_version=2")
        # Future schema versions: add "if current < N" steps here, each in a transaction.

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- single rows -------------------------------------------------------------------

    def get(self, name: str) -> FileRecord | None:
        row = self._db.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return None if row is None else _from_row(row)

    def put(self, record: FileRecord) -> None:
        marks = ", ".join("?" * 13)
        self._db.execute(
            f"INSERT OR REPLACE INTO files ({_COLUMNS}) VALUES ({marks})", _to_row(record)
        )

    def remove(self, name: str) -> None:
        self._db.execute("DELETE FROM files WHERE name = ?", (name,))

    def set_role(self, name: str, role: str, now: float) -> None:
        self._db.execute("UPDATE files SET role = ?, updated = ? WHERE name = ?", (role, now, name))

    def set_damaged(self, name: str, now: float) -> None:
        self._db.execute(
            "UPDATE files SET damaged = 1, updated = ? WHERE name = ? AND deleted = 0", (now, name)
        )

    # -- by content --------------------------------------------------------------------

    def referenced(self) -> set[str]:
        """SHA-256 of every blob some live record needs."""
        rows = self._db.execute("SELECT DISTINCT sha256 FROM files WHERE deleted = 0")
        return {sha for (sha,) in rows}

    def refs(self, sha: str) -> tuple[int, int]:
        """``(live records using sha, of which damaged)``."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(damaged), 0) FROM files"
            " WHERE sha256 = ? AND deleted = 0",
            (sha,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def set_damaged_sha(self, sha: str, now: float) -> None:
        # All names sharing a blob share its corruption.
        self._db.execute(
            "UPDATE files SET damaged = 1, updated = ?"
            " WHERE sha256 = ? AND deleted = 0 AND damaged = 0",
            (now, sha),
        )

    def heal_sha(self, sha: str, now: float) -> None:
        self._db.execute(
            "UPDATE files SET damaged = 0, updated = ?"
            " WHERE sha256 = ? AND deleted = 0 AND damaged = 1",
            (now, sha),
        )

    # -- listings ----------------------------------------------------------------------

    def live(self) -> list[FileRecord]:
        return [_from_row(r) for r in self._db.execute(f"{_SELECT} WHERE deleted = 0")]

    def select(
        self, *, role: str | None, include_deleted: bool, include_damaged: bool
    ) -> list[FileRecord]:
        where = ["1"]
        args: list[Any] = []
        if role is not None:
            where.append("role = ?")
            args.append(role)
        if not include_deleted:
            where.append("deleted = 0")
        if not include_damaged:
            where.append("damaged = 0")
        query = f"{_SELECT} WHERE {' AND '.join(where)}{_ORDER}"
        return [_from_row(r) for r in self._db.execute(query, args)]

    def key_range(self, start: int, end: int) -> list[FileRecord]:
        """Rows whose key is in the ring interval ``(start, end]`` (whole ring if equal).
        The engine re-checks each row with ``between_right``; this only narrows the scan."""
        args: tuple[str, ...] = (to_hex(start), to_hex(end))
        if start < end:
            query = f"{_SELECT} WHERE key_hex > ? AND key_hex <= ?"
        elif start > end:
            query = f"{_SELECT} WHERE key_hex > ? OR key_hex <= ?"
        else:
            query, args = _SELECT, ()  # the whole ring
        return [_from_row(r) for r in self._db.execute(query + _ORDER, args)]
