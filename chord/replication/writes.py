"""The rules of a client's write and delete: which version it stores, on how many
holders, how many must acknowledge it, and whether the holders' answers let it commit.

The two-phase write itself (streaming the bytes, staging, the decision) is the
adapter's (services.files.write, or the simulator's chord.sim.files); both ask these
functions what to do.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from chord.placement import copies_wanted
from chord.replication.versions import Version


@dataclass(frozen=True)
class WritePlan:
    version: int  # the version number the write stores
    copies: int  # holders it goes to (the file's own k)
    inherited: int  # the current version's own count (0: none), for a count settled late


def plan_write(
    held: Version | None, *, replicas: int | None, default: int, tentative: bool
) -> WritePlan:
    """The version a write of a file whose newest version is ``held`` stores.

    A new name starts at 1; after a delete, or for an overwrite (``tentative``: an
    overwrite, or options only known after the bytes), the next version; otherwise the
    same version again, which holders accept only for identical bytes (else a conflict).
    The count: the one asked for, else the current version's, else the ring's default.
    """
    if held is None:
        version = 1
    elif held.deleted or tentative:
        version = held.version + 1
    else:
        version = held.version
    inherited = held.replicas if held is not None and not held.deleted else 0
    return WritePlan(version, replicas or inherited or default, inherited)


def write_quorum(configured: int | None, copies: int, holders: int) -> int:
    """Holders that must stage (and commit) a write before it is acknowledged: the
    configured quorum, else every one of its k copies; never more than the holders the
    ring has."""
    return min(configured or copies, holders)


class Refusal(Enum):
    """A holder's answer that stops the whole write: the version cannot be stored."""

    CONFLICT = "conflict"  # the same version is held with other bytes (or was deleted)
    NO_SPACE = "no-space"  # the holder is full
    DAMAGED = "damaged"  # the bytes arrived other than the trailer said


class Decision(Enum):
    COMMIT = "commit"
    CONFLICT = "conflict"
    NO_SPACE = "no-space"
    DAMAGED = "damaged"
    TOO_FEW = "too-few"  # fewer holders than the quorum staged it


def decide(refusals: Collection[Refusal], staged: int, quorum: int) -> Decision:
    """Commit only if no holder refused the version and at least ``quorum`` staged it:
    a single refusal aborts the write everywhere, so a refused upload leaves no copy."""
    for refusal, decision in (
        (Refusal.CONFLICT, Decision.CONFLICT),
        (Refusal.NO_SPACE, Decision.NO_SPACE),
        (Refusal.DAMAGED, Decision.DAMAGED),
    ):
        if refusal in refusals:
            return decision
    return Decision.COMMIT if staged >= quorum else Decision.TOO_FEW


@dataclass(frozen=True)
class DeletePlan:
    version: int  # the tombstone's version: one above the deleted one
    copies: int  # the deleted version's count: the tombstone goes to the same holders


def plan_delete(held: Version | None, default: int) -> DeletePlan | None:
    """The tombstone that deletes ``held`` (None: nothing live to delete)."""
    if held is None or held.deleted:
        return None
    return DeletePlan(held.version + 1, copies_wanted(held.replicas, default))
