"""A client's upload to a file's holders, in two phases: stage everywhere, then decide.

The bytes are streamed once to every holder at the same time (a bounded queue and a
sending thread per holder, so one slow or dead holder never stalls the others beyond
its queue). Each holder verifies what it got against the trailer's size and SHA-256,
makes it durable and answers "staged" — the version is not visible yet. Only then is the
decision taken, once for all:

* commit when enough holders (the write quorum) staged and none refused the version
  (a conflict, no space, a damaged transfer): every staged holder publishes it;
* abort otherwise — or when the source fails (a REST body cut short or malformed): every
  holder throws its stage away, so an upload that was not acknowledged leaves no
  servable copy anywhere. A holder whose stream breaks (the writer crashed) aborts by
  itself; a holder that crashes while staged loses only its stage (tmp/ is emptied at
  start). The one window left is the writer crashing while it sends the commit
  decision: the holders that got it keep the version, and anti-entropy spreads it.
"""

from __future__ import annotations

import functools
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from chord.node_ref import NodeRef
from chord.replication import Role
from proto import files_pb2 as fpb
from services.files.local_holder import LocalAbort, LocalWrite

PIECE = 1 << 20  # bytes per gRPC message: the measured sweet spot
QUEUE_DEPTH = 4  # pieces buffered per holder
# With a write quorum below k, how long the writer still waits for the slower holders
# once the quorum has staged (or committed): they usually finish within a moment.
STRAGGLER_GRACE = 1.0
# Refusals that stop the whole write: the version cannot be stored as it is.
REFUSALS = (
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DATA_LOSS,
)

Status = tuple[grpc.StatusCode, str]
WRITE_METHOD = "/chord.v1.Files/Write"


def _decision(commit: bool) -> fpb.StoreRequest:
    return fpb.StoreRequest(decision=fpb.WriteDecision(commit=commit))


@dataclass
class HolderWrite:
    """One holder's side of the write, filled in by its sending thread."""

    peer: NodeRef
    role: Role
    local: bool = False  # this process's own storage: messages go unserialized, no gRPC
    feed: queue.Queue[fpb.StoreRequest | bytes | None] = field(  # bytes: serialized
        default_factory=lambda: queue.Queue(QUEUE_DEPTH)
    )
    staged: fpb.FileMeta | None = None
    committed: fpb.FileMeta | None = None
    problem: Status | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def answered(self) -> bool:
        return self.staged is not None or self.done.is_set()


def status_of(exc: grpc.RpcError) -> Status:
    if isinstance(exc, grpc.Call):
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.UNKNOWN, str(exc)


class TwoPhaseWrite:
    """One upload of ``header``'s version to ``holders`` (owner first)."""

    def __init__(
        self,
        channel: Callable[[NodeRef], grpc.Channel],
        header: fpb.StoreHeader,
        holders: tuple[NodeRef, ...],
        quorum: int,
        timeout: float,
        local: tuple[NodeRef, LocalWrite] | None = None,
    ) -> None:
        """``local``: this process is a peer (its ref, and its own Files/Write handler):
        when it is one of the holders its copy is written in-process."""
        self._channel = channel
        self._local = local
        self._header = header
        self._quorum = quorum
        self._timeout = timeout
        # Notified whenever some holder staged, committed or failed; the holders' fields
        # are written before the notification, so a waiter that checks them holding this
        # condition's lock never misses one.
        self._changed = threading.Condition()
        self.holders = [
            HolderWrite(peer, Role.at(index), local=local is not None and peer == local[0])
            for index, peer in enumerate(holders)
        ]
        self._threads: list[threading.Thread] = []
        self.sha256 = ""  # of the staged bytes, once stage() has read them all

    # ----------------------------------------------------------------- phases
    def stage(
        self, data: Iterable[bytes], size: int | None, late_copies: Callable[[], int] | None = None
    ) -> None:
        """Stream ``data`` to every holder and wait until they staged it (or failed, or
        enough staged a while ago). If ``data`` raises, every holder aborts and the
        exception propagates. ``late_copies``, called once ``data`` is exhausted, gives
        the version's copy count for the trailer (options that followed the bytes)."""
        for holder in self.holders:
            thread = threading.Thread(target=self._send, args=(holder,), daemon=True)
            thread.start()
            self._threads.append(thread)
            header = fpb.StoreHeader()
            header.CopyFrom(self._header)
            header.role = holder.role.value
            header.size, header.size_known = size or 0, size is not None
            self._deliver(fpb.StoreRequest(header=header), [holder])
        digest = hashlib.sha256()
        total = 0
        try:
            for block in data:
                for start in range(0, len(block), PIECE):
                    piece = block[start : start + PIECE]
                    digest.update(piece)
                    total += len(piece)
                    self._deliver(fpb.StoreRequest(data=piece), self.holders)
                if self.refused():  # say a full holder: the write is over for everyone
                    return
        except BaseException:
            # End every stream before its trailer: each holder discards what it got and
            # frees its reservation now rather than at the transfer deadline.
            self._deliver(None, self.holders)
            self._join(self._timeout_short)
            raise
        self.sha256 = digest.hexdigest()
        replicas = late_copies() if late_copies is not None else 0
        trailer = fpb.StoreTrailer(sha256=self.sha256, size=total, replicas=replicas)
        self._deliver(fpb.StoreRequest(trailer=trailer), self.holders)
        self._wait(
            lambda: self.refused() or all(h.answered for h in self.holders),
            lambda: len(self.staged()) >= self._quorum,
        )

    def release(self, peers: Iterable[NodeRef]) -> None:
        """These holders are not wanted after all (a count lowered after the bytes): they
        abort their stage and leave the write."""
        leaving = set(peers)
        for holder in [h for h in self.holders if h.peer in leaving]:
            self._deliver(_decision(commit=False), [holder])
            self._deliver(None, [holder])
            self.holders.remove(holder)

    def decide(self, commit: bool) -> None:
        """Send the decision to every holder still listening and, on commit, wait for
        the commits. A holder still receiving (a straggler, with a write quorum below
        k) gets it after its trailer and commits when it has staged too."""
        decision = _decision(commit)
        wire = decision.SerializeToString()
        for holder in self.holders:
            for message in (decision if holder.local else wire, None):
                if holder.done.is_set():
                    break
                try:  # never block on a straggler: its stream ends at its deadline
                    holder.feed.put(message, timeout=1.0)
                except queue.Full:
                    break
        if not commit:
            self._join(self._timeout_short)
            return
        staged = [h for h in self.holders if h.staged is not None]
        self._wait(
            lambda: all(h.done.is_set() for h in staged),
            lambda: len(self.committed()) >= self._quorum,
        )

    # ---------------------------------------------------------------- outcome
    def staged(self) -> list[HolderWrite]:
        return [h for h in self.holders if h.staged is not None and h.problem is None]

    def committed(self) -> list[HolderWrite]:
        return [h for h in self.holders if h.committed is not None]

    def problems(self) -> dict[NodeRef, Status]:
        return {h.peer: h.problem for h in self.holders if h.problem is not None}

    def refused(self) -> bool:
        """A holder refused the version itself (not merely failed to answer)."""
        return any(code in REFUSALS for code, _ in self.problems().values())

    # -------------------------------------------------------------- internals
    @property
    def _timeout_short(self) -> float:
        return min(self._timeout, 10.0)

    def _wait(self, complete: Callable[[], bool], enough: Callable[[], bool]) -> None:
        """Until ``complete()``, or ``enough()`` has held for STRAGGLER_GRACE, or the
        transfer deadline; woken by each holder's news, not by polling."""
        deadline = time.monotonic() + self._timeout
        enough_since: float | None = None
        with self._changed:
            while not complete():
                now = time.monotonic()
                until = deadline
                if enough():
                    enough_since = enough_since or now
                    until = min(deadline, enough_since + STRAGGLER_GRACE)
                if now >= until:
                    return
                self._changed.wait(until - now)

    def _news(self) -> None:
        """A holder staged, committed or failed: wake the writer waiting in _wait."""
        with self._changed:
            self._changed.notify_all()

    def _deliver(self, message: fpb.StoreRequest | None, holders: list[HolderWrite]) -> None:
        """``message`` to each of ``holders``: as it is to our own, serialized once for
        all the others (it was once per holder: k copies of every piece)."""
        wire: bytes | None = None
        for holder in holders:
            item: fpb.StoreRequest | bytes | None = message
            if message is not None and not holder.local:
                wire = wire if wire is not None else message.SerializeToString()
                item = wire
            # A holder that failed stops being fed. A put blocked on its full queue is
            # released when its sending thread ends: it empties the queue (_send).
            if not holder.done.is_set():
                holder.feed.put(item)

    def _join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))

    def _requests(self, holder: HolderWrite) -> Iterator[Any]:
        """The messages fed for ``holder``, until the end mark (None)."""
        # The write's deadline holds here too: our own holder has no gRPC deadline,
        # and a remote call's request thread must not wait for a message forever.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                message = holder.feed.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise TimeoutError("the writer sent nothing before its deadline") from None
            if message is None:
                return
            yield message

    def _send(self, holder: HolderWrite) -> None:
        requests = functools.partial(self._requests, holder)
        try:
            if holder.local and self._local is not None:
                replies: Iterable[fpb.WriteReply] = self._local[1](requests())
            else:
                write = self._channel(holder.peer).stream_stream(
                    WRITE_METHOD,
                    request_serializer=None,  # the messages are serialized already
                    response_deserializer=fpb.WriteReply.FromString,
                )
                replies = write(requests(), timeout=self._timeout)
            for reply in replies:
                if reply.committed:
                    holder.committed = reply.meta
                else:
                    holder.staged = reply.meta
                self._news()
        except grpc.RpcError as exc:
            holder.problem = status_of(exc)
        except LocalAbort as exc:
            holder.problem = (exc.code, exc.details)
        except Exception as exc:  # our own holder's handler failed: as a remote one would
            holder.problem = (grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            holder.done.set()
            _empty(holder.feed)  # frees a writer blocked on this full queue (_deliver)
            self._news()


def _empty(feed: queue.Queue[fpb.StoreRequest | bytes | None]) -> None:
    """Discard what ``feed`` holds: its consumer is gone."""
    while True:
        try:
            feed.get_nowait()
        except queue.Empty:
            return
