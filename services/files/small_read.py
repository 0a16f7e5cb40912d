"""A small file in one round trip: read from its owner, who confirms it owns the key.

The general read path costs a lookup, a Stat of every holder, then a Fetch stream. For
a file of at most ``SMALL_FILE`` bytes the peer that owns its key can answer alone: it
knows its own range (predecessor, itself] and whether it holds a live, undamaged copy,
and the bytes fit in one message. The caller finds the owner from its own tables (the
one-hop table or its successor list, no call) and asks it with ``Files/Read``; when it
is itself the owner, it reads its own storage. Any doubt (not the owner, no copy,
too large, damaged, unreachable) sends the caller down the general path, so a stale
table costs one round trip, never a wrong answer.

Freshness: writes are acknowledged only once every holder has the version (the default
``write_quorum``), so the owner has the newest acknowledged version unless it became
the owner after that write (a join or a restart moved the key to it): then it usually
has no copy yet (the general path answers) and anti-entropy brings the newest one
within ``repair_interval``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chord.node import ChordNode
from chord.node_ref import NodeRef
from services.storage import CorruptData, FileRecord, StorageEngine

SMALL_FILE = 64 * 1024  # bytes: answered in one gRPC message


class NotOwner(Exception):
    """The asked peer does not own the key (as it sees its own range)."""


class TooLarge(Exception):
    """Larger than the caller's limit: stream it instead."""


def read_owned(
    engine: StorageEngine,
    owns: Callable[[int], bool],
    name: str,
    key: int,
    max_size: int,
    meta_only: bool = False,
) -> tuple[FileRecord, bytes]:
    """The live copy of ``name`` here and its bytes (each chunk verified), if we own
    ``key`` and the file is at most ``max_size`` bytes (``meta_only``: the record, any
    size, and no bytes). Raises NotOwner, LookupError (no live, undamaged copy here),
    TooLarge or CorruptData (found damaged just now)."""
    if not owns(key):
        raise NotOwner(f"{key:x} is not in this peer's range")
    record = engine.get(name)
    if record is None or record.deleted or record.damaged:
        raise LookupError(f"{name!r}: no live copy here")
    if meta_only:
        return record, b""
    if record.size > max_size:
        raise TooLarge(f"{name!r} has {record.size} bytes, more than {max_size}")
    return record, b"".join(engine.read(record))


def intact(data: bytes, sha256: str) -> bool:
    return hashlib.sha256(data).hexdigest() == sha256


@dataclass(frozen=True)
class LocalReads:
    """What a peer's FileClient needs for owner reads: its node (whose tables name the
    owner without a call) and its storage (read when the owner is itself)."""

    node: ChordNode
    engine: StorageEngine

    @property
    def me(self) -> NodeRef:
        return self.node.me

    def owners(self, key: int, count: int = 2) -> tuple[NodeRef, ...]:
        return self.node.owner_candidates(key, count)

    def copy_of(self, name: str, version: int, sha256: str) -> FileRecord | None:
        """This peer's live, undamaged copy of exactly that version, if it holds one."""
        record = self.engine.get(name)
        if record is None or record.deleted or record.damaged:
            return None
        return record if (record.version, record.sha256) == (version, sha256) else None

    def stream(self, record: FileRecord, offset: int, end: int) -> Iterator[bytes]:
        """Bytes [offset, end) of our own copy, every chunk hashed before any of its bytes
        are yielded (StorageEngine.read): a damaged chunk raises CorruptData, is marked for
        repair, and none of its bytes leave."""
        return self.engine.read(record, offset, end - offset)

    def read(
        self, name: str, key: int, max_size: int, meta_only: bool = False
    ) -> tuple[FileRecord, bytes] | None:
        try:
            return read_owned(self.engine, self.node.owns, name, key, max_size, meta_only)
        except (NotOwner, LookupError, TooLarge, CorruptData):
            return None
