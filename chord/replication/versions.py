"""File versions and the rules that order them: which version wins, which copy is
behind, which version a holder may still accept, and the two roles a copy can have.

Every rule reads a version through :class:`Version`, which the storage engine's
records, the file client's stat answers and the simulator's copies all satisfy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Protocol, TypeVar


class Role(StrEnum):
    """Why a peer holds a copy: it owns the file's key, or it is one of the next
    k - 1 peers. A ``str`` enum: stored and sent as the same two words as before."""

    PRIMARY = "primary"
    REPLICA = "replica"

    @classmethod
    def at(cls, position: int) -> Role:
        """The role of the holder at ``position`` in a key's holder list (owner first)."""
        return cls.PRIMARY if position == 0 else cls.REPLICA


class Version(Protocol):
    """What the rules read of one version of one file, wherever it is held."""

    @property
    def name(self) -> str: ...
    @property
    def key(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def sha256(self) -> str: ...  # "" for a tombstone
    @property
    def deleted(self) -> bool: ...  # a tombstone: the file was deleted at this version
    @property
    def damaged(self) -> bool: ...  # bytes that failed their checksum, awaiting repair
    @property
    def replicas(self) -> int: ...  # copies its writer chose; 0: the ring's default


V = TypeVar("V", bound=Version)
P = TypeVar("P")


def newest(versions: Iterable[V | None]) -> V | None:
    """Newest wins; at the same version an intact copy is preferred to a damaged one."""
    known = [v for v in versions if v is not None]
    return max(known, key=lambda v: (v.version, not v.damaged)) if known else None


def current(answers: Mapping[P, V | None]) -> tuple[V | None, list[P]]:
    """The newest live version among holders' answers (None if absent or deleted) and
    the holders with an intact copy of it, in the order asked (owner first)."""
    found = newest(answers.values())
    if found is None or found.deleted:
        return None, []
    having = [
        holder
        for holder, v in answers.items()
        if v is not None and v.version == found.version and not v.damaged
    ]
    return found, having


def should_pull(theirs: Version | None, mine: Version | None) -> bool:
    """Should a holder copy ``theirs``? It is newer, or ours is missing or damaged."""
    if theirs is None or theirs.damaged:
        return False
    if mine is None or mine.damaged:
        return mine is None or theirs.version >= mine.version
    return theirs.version > mine.version


def should_send(theirs: Version | None, mine: Version | None) -> bool:
    """Should a holder send ``mine``? Theirs is older, missing, or a damaged copy of it."""
    if mine is None or mine.damaged:
        return False
    if theirs is None or theirs.version < mine.version:
        return True
    return theirs.damaged and theirs.version == mine.version


def store_refusal(held: Version | None, version: int, sha256: str | None) -> str | None:
    """Why a holder of ``held`` must refuse to store ``version`` with content ``sha256``
    (None: it may). Versions only grow; the same version again is accepted only with the
    same bytes (an idempotent re-store), never after it was deleted."""
    if held is None or version > held.version:
        return None
    if version < held.version:
        return f"{held.name!r}: v{version} is older than held v{held.version}"
    if held.deleted:
        return f"{held.name!r}: v{version} was deleted"
    if sha256 is not None and sha256 != held.sha256:
        return f"{held.name!r}: v{version} is held with different content"
    return None


def delete_refusal(held: Version | None, version: int) -> str | None:
    """Why a holder of ``held`` must refuse a tombstone for ``version`` (None: it may)."""
    if held is not None and held.version > version:
        return f"{held.name!r}: delete of v{version} but v{held.version} is held"
    return None
