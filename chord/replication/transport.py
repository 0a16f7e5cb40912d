"""What the replication core needs from the outside world: the other holders' copies
(:class:`FileTransport`) and this peer's own (:class:`LocalStore`).

The real adapters are ``services.files.transport`` (the Files gRPC service, with a
deadline on every call) and the storage engine; the simulator's are in
``chord.sim.files``. A holder that does not answer, or a transfer that fails on
either side, raises :class:`TransferFailed`: the caller leaves that copy for the next
round, which is all the core needs to know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from chord.node_ref import NodeRef
from chord.replication.versions import Role, Version


class TransferFailed(Exception):
    """A call to another holder failed (no answer, a refusal, a broken transfer), or
    this peer could not store what it received."""


H = TypeVar("H", bound=Version)  # a version held by this peer (its storage's record)


class FileTransport(Protocol[H]):
    """This peer's calls to other holders of files. Reads raise TransferFailed when the
    holder does not answer; stat_all leaves such holders out instead."""

    def stat_all(self, name: str, peers: Sequence[NodeRef]) -> dict[NodeRef, Version | None]:
        """What each reachable peer holds of ``name`` (None: nothing), all asked at once."""
        ...

    def digest(self, peer: NodeRef, start: int, end: int, position: int) -> str:
        """The digest of what ``peer`` holds in (start, end] that a holder ``position``
        places after the range's owner must hold (0: everything)."""
        ...

    def list_range(self, peer: NodeRef, start: int, end: int) -> list[Version]:
        """Everything ``peer`` holds in (start, end], tombstones included."""
        ...

    def push(self, peer: NodeRef, record: H, role: Role) -> None:
        """Send our copy ``record`` (bytes or tombstone) to ``peer``, held there as ``role``."""
        ...

    def pull(self, peer: NodeRef, version: Version, role: Role) -> H:
        """Copy ``peer``'s ``version`` into our own storage as ``role``; our new record."""
        ...

    def drop_older(self, name: str, version: int, peers: Iterable[NodeRef]) -> None:
        """Best effort: ``peers`` forget their copy of ``name`` if older than ``version``."""
        ...


class LocalStore(Protocol[H]):
    """This peer's own copies."""

    def in_range(self, start: int, end: int) -> list[H]:
        """Every version held in (start, end], tombstones included."""
        ...

    def digest(self, start: int, end: int, include: Callable[[H], bool] | None = None) -> str:
        """A digest of the versions in (start, end] (those ``include`` accepts) that two
        holders agree on exactly when they hold the same versions, damage included."""
        ...

    def held(self) -> list[H]:
        """Every version held here, tombstones included."""
        ...

    def role_of(self, record: H) -> Role: ...

    def set_role(self, name: str, role: Role) -> None: ...

    def drop(self, name: str) -> None:
        """Forget ``name`` here, without a tombstone: it is held elsewhere."""
        ...
