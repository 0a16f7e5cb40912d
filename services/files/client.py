"""File operations available from any peer (and from any client process).

A file named X lives whole on its *holders*: successor(SHA-1(X)) and the next k-1
distinct peers. put streams the bytes once from the caller to all holders at the same
time (a bounded queue per holder, so memory stays at a few MiB whatever the size), in
two phases (services.files.write): it is acknowledged once ``write_quorum`` of them have
committed it, and a write refused anywhere leaves no copy anywhere. get pulls chunk ranges from
different holders in parallel and checks every chunk's SHA-256 before yielding it.

Versions give the conflict rule: uploading a name that exists stores the *same* version
again, which a holder accepts only for identical bytes (idempotent) and otherwise
refuses (Conflict); overwrite stores version + 1. Deletes store a tombstone version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import grpc

from chord.ids import Ring, to_hex
from chord.lookup import LookupResult, iterative_lookup
from chord.node_ref import NodeRef
from chord.placement import copies_wanted
from chord.replication import (
    Decision,
    Refusal,
    Role,
    current,
    decide,
    holders_found,
    newest,
    plan_delete,
    plan_write,
    write_quorum,
)
from proto import files_pb2 as fpb
from proto import files_pb2_grpc as fpb_grpc
from services.files.info import FileInfo
from services.files.local_holder import local_write
from services.files.servicer import meta_to_pb
from services.files.small_read import SMALL_FILE, LocalReads, intact
from services.files.write import TwoPhaseWrite, status_of
from services.rpc.transport import ChannelPool, GrpcTransport
from services.storage import FileRecord, StorageError

__all__ = [
    "ChecksumMismatch",
    "Conflict",
    "FileClient",
    "FileError",
    "FileInfo",
    "NoSpace",
    "NotFound",
    "PeerCallFailed",
    "PutResult",
    "SearchResult",
    "Unavailable",
    "holders_found",
    "remote_client",
]

SEGMENT_CHUNKS = 8  # chunks per parallel download task (8 MiB: read-ahead stays bounded)
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
RAMP_BYTES = 16 << 20  # a download reads no segment ahead until it has passed this on
WHOLE_RING = to_hex(0)
# Unary calls to several peers at once run on these kept threads, blocking, the first in
# the caller's own thread. gRPC Python's .future() starts a thread for each call made on
# a channel with no other call pending, which cost ~1.5 ms per call on this 2-core
# machine: three Stat futures took 5.5 ms (p50), the same calls one after the other
# 3.7 ms, and this way 2.6 ms (one blocking Stat: 0.8 ms).
FAN_OUT = futures.ThreadPoolExecutor(32, thread_name_prefix="fan-out")
T = TypeVar("T")


def fan_out(calls: Sequence[Callable[[], T]]) -> list[T | grpc.RpcError]:
    """Every call's result, or the RpcError it raised; all run at once."""
    if not calls:
        return []
    pending = [FAN_OUT.submit(call) for call in calls[1:]]
    outcomes: list[T | grpc.RpcError] = []
    try:
        outcomes.append(calls[0]())
    except grpc.RpcError as exc:
        outcomes.append(exc)
    for job in pending:
        try:
            outcomes.append(job.result())
        except grpc.RpcError as exc:
            outcomes.append(exc)
    return outcomes


class FileError(Exception):
    """Base of what file operations raise; ``code`` suits an HTTP status later."""

    code = "file-error"


class NotFound(FileError):
    code = "not-found"


class Conflict(FileError):
    code = "conflict"


class NoSpace(FileError):
    code = "no-space"


class Unavailable(FileError):
    """No live holder (or fewer than the write quorum) could do it."""

    code = "unavailable"


class ChecksumMismatch(FileError):
    code = "checksum-mismatch"


class PeerCallFailed(Unavailable):
    """A call to one named peer failed (a listing, its health): what gRPC said."""

    def __init__(self, peer: NodeRef, exc: grpc.RpcError) -> None:
        code, details = status_of(exc)
        super().__init__(f"a peer failed the call ({code}): {details}")
        self.peer = peer
        self.details = details  # the peer's own words, without the status


# The holder's refusals that stop a whole write, as the replication core names them.
REFUSALS = {
    grpc.StatusCode.ALREADY_EXISTS: Refusal.CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Refusal.NO_SPACE,
    grpc.StatusCode.DATA_LOSS: Refusal.DAMAGED,
}


@dataclass(frozen=True)
class Segment:
    """Whole chunks of one version, fetched by one download task."""

    first: int  # index of chunks[0] in the file
    chunks: list[bytes]


@dataclass(frozen=True)
class PutResult:
    info: FileInfo
    holders: tuple[NodeRef, ...]  # the ones that acknowledged
    hops: int


@dataclass(frozen=True)
class SearchResult:
    name: str
    key: int
    found: bool
    owner: NodeRef
    replicas: tuple[NodeRef, ...]  # holders after the owner that hold the newest version
    hops: int
    info: FileInfo | None


class FileClient:
    def __init__(
        self,
        ring: Ring,
        lookup: Callable[[int], LookupResult],
        pool: ChannelPool,
        *,
        replicas: int = 3,
        write_quorum: int | None = None,
        rpc_timeout: float = 5.0,
        transfer_timeout: float = 600.0,
        local: LocalReads | None = None,
    ) -> None:
        """``local``: this process is a peer (its tables name a key's owner without a
        call, and its storage answers when it is the owner): small files are then read
        from the owner in one round trip (services.files.small_read)."""
        self.local = local
        # Who hashes the chunks of a download: a client process checks what it receives
        # (it is the end of the line); a peer serving a REST client lets each holder check
        # what it reads from its disk before sending (a damaged chunk is never sent, is
        # marked and repaired), which spreads the hashing over the holders instead of
        # piling it on the one busy process; the wire is TCP (mutual TLS in production),
        # and the REST client can check the whole content against X-Content-SHA256.
        self.holders_verify = local is not None
        self._local_write = local_write(local.engine, ring) if local is not None else None
        self.ring = ring
        self.lookup = lookup
        self.pool = pool
        self.replicas = replicas
        self.write_quorum = write_quorum
        self.rpc_timeout = rpc_timeout
        self.transfer_timeout = transfer_timeout

    def stub(self, peer: NodeRef) -> fpb_grpc.FilesStub:
        return fpb_grpc.FilesStub(self.pool.channel(peer.address))

    # ----------------------------------------------------------------- locate
    def locate(
        self, name: str, copies: int | None = None
    ) -> tuple[int, LookupResult, tuple[NodeRef, ...]]:
        key = self.ring.hash(name)
        found = self.lookup(key)
        return key, found, holders_found(found, copies or self.replicas)

    def stat_all(self, name: str, holders: Iterable[NodeRef]) -> dict[NodeRef, FileInfo | None]:
        """What each reachable holder has for ``name`` (None: nothing); unreachable ones omitted."""
        # All at once (fan_out): every download, search and upload starts here, and
        # asking k holders one after the other cost k round trips.
        peers = list(holders)
        return self._stat_answers(peers, fan_out([self._stat_call(name, p) for p in peers]))

    def _stat_call(self, name: str, peer: NodeRef) -> Callable[[], fpb.FileMeta]:
        return partial(self.stub(peer).Stat, fpb.NameRequest(name=name), timeout=self.rpc_timeout)

    @staticmethod
    def _stat_answers(
        peers: Sequence[NodeRef], outcomes: Sequence[Any]
    ) -> dict[NodeRef, FileInfo | None]:
        answers: dict[NodeRef, FileInfo | None] = {}
        for peer, outcome in zip(peers, outcomes, strict=True):
            if not isinstance(outcome, grpc.RpcError):
                answers[peer] = FileInfo.from_pb(outcome)
            elif status_of(outcome)[0] == grpc.StatusCode.NOT_FOUND:
                answers[peer] = None
        return answers

    @staticmethod
    def newest(answers: dict[NodeRef, FileInfo | None]) -> FileInfo | None:
        return newest(answers.values())

    # -------------------------------------------------------------------- put
    def put(
        self,
        name: str,
        data: Iterable[bytes],
        *,
        size: int | None = None,
        replicas: int | None = None,
        overwrite: bool = False,
        settle: Callable[[], tuple[int | None, bool]] | None = None,
    ) -> PutResult:
        """Store ``data`` as ``name`` on its holders, in two phases (services.files.write):
        acknowledged only once ``write_quorum`` holders committed it; if any holder
        refuses it, or too few can store it, or ``data`` raises, no holder keeps it.

        ``replicas`` is this file's own number of copies (default: the current version's
        count for an overwrite, else the ring's default); it travels with the version and
        placement, repair and migration honour it.

        ``settle``: the options are final only once ``data`` is exhausted (a REST form
        whose fields follow the file part): called then, it returns the final
        (replicas, overwrite), and the bytes were streamed meanwhile with the options
        known before them, never spooled. The version is staged as an overwrite would be
        and the final overwrite applied at the decision: without it, a name that exists
        is kept as it is (identical bytes: the answer is the current version; other
        bytes: Conflict) and the stage is thrown away. The final count travels in the
        trailer: a lower one releases the extra holders, a higher one is completed by
        repair."""
        key, found, held = self._current_version(name, replicas)
        tentative = overwrite or settle is not None
        plan = plan_write(held, replicas=replicas, default=self.replicas, tentative=tentative)
        version, copies, inherited = plan.version, plan.copies, plan.inherited
        holders = holders_found(found, copies)
        quorum = write_quorum(self.write_quorum, copies, len(holders))
        header = fpb.StoreHeader(name=name, key=to_hex(key), version=version, replicas=copies)
        local = None
        if self.local is not None and self._local_write is not None:
            local = (self.local.me, self._local_write)
        write = TwoPhaseWrite(
            lambda peer: self.pool.channel(peer.address), header, holders, quorum,
            self.transfer_timeout, local,
        )  # fmt: skip
        settled: list[tuple[int | None, bool]] = []

        def late_copies() -> int:
            assert settle is not None
            settled.append(settle())
            return settled[0][0] or inherited or self.replicas

        write.stage(data, size, late_copies if settle is not None else None)
        if settled:
            final_replicas, final_overwrite = settled[0]
            copies = final_replicas or inherited or self.replicas
            if copies < len(holders):
                write.release(holders[copies:])
                holders = holders[:copies]
                quorum = write_quorum(self.write_quorum, copies, len(holders))
            if not final_overwrite and held is not None and not held.deleted:
                write.decide(commit=False)
                if write.sha256 == held.sha256 and not write.refused():
                    kept = holders_found(found, copies_wanted(held.replicas, self.replicas))
                    return PutResult(held, kept, found.hops)
                raise Conflict(f"{name!r} already exists with other content (use overwrite)")
        refusal = self._refusal(name, write, quorum)
        write.decide(commit=refusal is None)
        if refusal is not None:
            raise refusal
        committed = write.committed()
        if not committed:
            raise self._refusal(name, write, quorum) or Unavailable(
                f"no holder committed {name!r}: {self._problems(write)}"
            )
        assert committed[0].committed is not None
        info = FileInfo.from_pb(committed[0].committed)
        if held is not None:
            # An overwrite that lowered the count: the old version's last holders are no
            # longer holders, and nothing else would visit them (repair reaches as far
            # as a file's count). Anti-entropy drops them too when it meets them.
            previous = holders_found(found, copies_wanted(held.replicas, self.replicas))
            self.drop_older(name, version, previous[len(holders) :])
        return PutResult(info, tuple(h.peer for h in committed), found.hops)

    def drop_older(self, name: str, version: int, peers: Iterable[NodeRef]) -> None:
        """Best effort: ``peers`` forget their copy of ``name`` if older than ``version``."""
        request = fpb.DropRequest(name=name, below_version=version)
        # An unreachable peer is left alone: anti-entropy or a later overwrite tries again.
        fan_out([partial(self.stub(p).Drop, request, timeout=self.rpc_timeout) for p in peers])

    def _current_version(
        self, name: str, replicas: int | None
    ) -> tuple[int, LookupResult, FileInfo | None]:
        """The key, its lookup and the newest version its holders have (any count: the
        default's holders and the requested ones are both asked)."""
        key, found, holders = self.locate(name, max(replicas or 0, self.replicas))
        return key, found, self.newest(self.stat_all(name, holders))

    @staticmethod
    def _problems(write: TwoPhaseWrite) -> str:
        return "; ".join(f"{p.address}: {d}" for p, (_, d) in write.problems().items())

    def _refusal(self, name: str, write: TwoPhaseWrite, quorum: int) -> FileError | None:
        """Why the write must be aborted (None: commit), as the replication core decides
        it: a holder refusing the version stops it whatever the others did, so one full
        holder means no holder keeps it."""
        refusals = {REFUSALS[code] for code, _ in write.problems().values() if code in REFUSALS}
        staged = len(write.staged())
        decision = decide(refusals, staged, quorum)
        detail = self._problems(write)
        if decision is Decision.CONFLICT:
            return Conflict(f"{name!r} already exists with other content (use overwrite)")
        if decision is Decision.NO_SPACE:
            return NoSpace(f"a holder of {name!r} is full, so no holder stored it: {detail}")
        if decision is Decision.DAMAGED:
            return ChecksumMismatch(f"{name!r} arrived damaged: {detail}")
        if decision is Decision.TOO_FEW:
            return Unavailable(f"{staged} of {quorum} holders could store {name!r}: {detail}")
        return None

    # -------------------------------------------------------------------- get
    @staticmethod
    def _current(
        answers: dict[NodeRef, FileInfo | None],
    ) -> tuple[FileInfo | None, list[NodeRef]]:
        """The newest live version (None if absent or deleted) and the holders with an
        undamaged copy of it, in the order asked (owner first)."""
        return current(answers)

    def stat(self, name: str) -> tuple[FileInfo, list[NodeRef], LookupResult]:
        """The newest live version and the holders that have it, owner first."""
        _, found, holders = self.locate(name)
        answers = self.stat_all(name, holders)
        newest, having = self._current(answers)
        if newest is None:
            if not answers:
                raise Unavailable(f"no holder of {name!r} answered")
            raise NotFound(f"{name!r} is not in the ring")
        if not having:
            raise Unavailable(f"every copy of {name!r} v{newest.version} is damaged")
        return newest, having, found

    def read_small(self, name: str, max_size: int = SMALL_FILE) -> tuple[FileInfo, bytes] | None:
        """``name``'s bytes from its owner in one round trip (none if we own it), if it
        has at most ``max_size`` of them; None whenever the owner cannot answer alone
        (see services.files.small_read): the caller takes the general path then."""
        if self.local is None:
            return None
        key = self.ring.hash(name)
        request = fpb.ReadRequest(name=name, key=to_hex(key), max_size=max_size)
        for peer in self.local.owners(key):
            if peer == self.local.me:
                found = self.local.read(name, key, max_size)
                if found is None:
                    return None
                record, data = found
                return FileInfo.from_pb(meta_to_pb(record)), data
            try:
                reply = self.stub(peer).Read(request, timeout=self.rpc_timeout)
            except grpc.RpcError as exc:
                if status_of(exc)[0] in (grpc.StatusCode.UNAVAILABLE, DEADLINE):
                    continue  # gone: the table's next candidate may own it now
                return None
            info = FileInfo.from_pb(reply.meta)
            return (info, reply.data) if intact(reply.data, info.sha256) else None
        return None

    def get(
        self, name: str, offset: int = 0, length: int | None = None
    ) -> tuple[FileInfo, Iterator[bytes]]:
        """The newest version's bytes [offset, offset + length), verified chunk by chunk.
        Chunk ranges are fetched from the holders in parallel, a few segments ahead."""
        info, having, _ = self.stat(name)
        return info, self.open(info, having, offset, length)

    def open(
        self, info: FileInfo, having: list[NodeRef], offset: int = 0, length: int | None = None
    ) -> Generator[bytes, None, None]:
        """Like get, for a version already found by stat (the REST API checks its
        validators and Range against it first, so it is not looked up twice)."""
        end = info.size if length is None else min(info.size, offset + length)
        if not 0 <= offset <= info.size or end < offset:
            raise ValueError(f"range {offset}+{length} is outside {info.size} bytes")
        if self.local is not None and self.local.me in having:
            record = self.local.copy_of(info.name, info.version, info.sha256)
            if record is not None:
                others = [peer for peer in having if peer != self.local.me]
                return self._local_stream(record, info, others, offset, end)
        return self._stream(info, having, offset, end)

    def _local_stream(
        self, record: FileRecord, info: FileInfo, others: list[NodeRef], offset: int, end: int
    ) -> Generator[bytes, None, None]:
        """Our own copy, read from storage with no gRPC hop (each chunk verified before it
        is yielded). If a chunk turns out damaged (now marked for repair) or the version
        was replaced under us, the rest comes from the other holders, from the first byte
        not yet yielded."""
        assert self.local is not None
        position = offset
        try:
            for piece in self.local.stream(record, offset, end):
                position += len(piece)
                yield piece
            return
        except StorageError:  # CorruptData too
            if not others:
                raise Unavailable(f"the only copy of {info.name!r} here is damaged") from None
        yield from self._stream(info, others, position, end)

    def _stream(
        self, info: FileInfo, having: list[NodeRef], offset: int, end: int
    ) -> Generator[bytes, None, None]:
        if end == offset:
            return
        first_chunk, last_chunk = offset // info.chunk_size, (end - 1) // info.chunk_size
        segments = _segments(first_chunk, last_chunk + 1)
        with futures.ThreadPoolExecutor(max_workers=len(having)) as pool:
            pending: list[futures.Future[Segment]] = []
            # Segments fetched beyond the one being read: none for the first RAMP_BYTES,
            # then one more each time the reader had to wait, up to one per holder. A
            # reader that stops early (an HTTP client that stopped reading, once the
            # socket buffers are full) leaves a few MiB fetched, not (k + 1) x 8 MiB.
            ahead, passed = 0, 0
            for index, (low, high) in enumerate(segments):
                pending.append(pool.submit(self._fetch_segment, info, having, index, low, high))
                if len(pending) > ahead:
                    task = pending.pop(0)
                    if not task.done() and passed >= RAMP_BYTES:  # fetching is the bottleneck
                        ahead = min(len(having), ahead + 1)
                    for piece in self._trim(task.result(), info, offset, end):
                        passed += len(piece)
                        yield piece
            for task in pending:
                yield from self._trim(task.result(), info, offset, end)

    @staticmethod
    def _trim(segment: Segment, info: FileInfo, offset: int, end: int) -> Iterator[bytes]:
        """The parts of a segment's whole chunks that fall inside [offset, end); whole
        chunks are passed on as they are (no copy)."""
        for position, chunk in enumerate(segment.chunks):
            start = (segment.first + position) * info.chunk_size
            low, high = max(offset, start), min(end, start + len(chunk))
            if high - low == len(chunk):
                yield chunk
            elif high > low:
                yield chunk[low - start : high - start]

    def _fetch_segment(
        self, info: FileInfo, having: list[NodeRef], index: int, low: int, high: int
    ) -> Segment:
        """Chunks [low, high) from the holder this segment is assigned to, or from the
        others in turn if it fails; each chunk's SHA-256 is checked as it arrives."""
        start = low * info.chunk_size
        length = min(info.size, high * info.chunk_size) - start
        problems = []
        for attempt in range(len(having)):
            peer = having[(index + attempt) % len(having)]
            try:
                chunks = self._fetch_chunks(peer, info, low, start, length)
            except grpc.RpcError as exc:
                problems.append(f"{peer.address}: {status_of(exc)[1]}")
                continue
            except ChecksumMismatch as exc:
                problems.append(f"{peer.address}: {exc}")
                self._holder_checks(peer, info, start, length)
                continue
            return Segment(low, chunks)
        raise Unavailable(f"no holder served chunks {low}-{high - 1} of {info.name!r}: {problems}")

    def _fetch_chunks(
        self, peer: NodeRef, info: FileInfo, low: int, start: int, length: int
    ) -> list[bytes]:
        """Whole chunks from ``low`` on, each verified against its SHA-256 (here, or by
        the holder before it sends: ``holders_verify``). A holder sends one message per
        chunk; a chunk split over messages is joined first."""
        request = fpb.FetchRequest(
            name=info.name, version=info.version, offset=start, length=length,
            caller_verifies=not self.holders_verify,
        )  # fmt: skip
        chunks: list[bytes] = []
        partial: list[bytes] = []
        received = 0
        for reply in self.stub(peer).Fetch(request, timeout=self.transfer_timeout):
            if reply.WhichOneof("part") != "data":
                continue
            data = reply.data  # each access of a bytes field may copy it: read it once
            partial.append(data)
            received += len(data)
            expected = min(info.chunk_size, length - (len(chunks) * info.chunk_size))
            if sum(len(p) for p in partial) < expected:
                continue
            chunk = partial[0] if len(partial) == 1 else b"".join(partial)
            partial = []
            if (
                not self.holders_verify
                and hashlib.sha256(chunk).hexdigest() != info.chunk_hashes[low + len(chunks)]
            ):
                raise ChecksumMismatch(f"chunk {low + len(chunks)} failed its checksum")
            chunks.append(chunk)
        if received != length or partial:
            raise ChecksumMismatch(f"expected {length} bytes, got {received}")
        return chunks

    def _holder_checks(self, peer: NodeRef, info: FileInfo, start: int, length: int) -> None:
        """Ask ``peer`` for the same bytes with its own check on: the holder then finds
        the mismatch itself, marks its copy damaged (no longer served) and repair
        replaces it. What it sends is not used."""
        request = fpb.FetchRequest(
            name=info.name, version=info.version, offset=start, length=length
        )
        try:
            for _ in self.stub(peer).Fetch(request, timeout=self.transfer_timeout):
                pass
        except grpc.RpcError:
            pass  # DATA_LOSS is the expected answer; anything else changes nothing here

    # ---------------------------------------------------------- search / delete
    def search(self, name: str) -> SearchResult:
        quick = self._search_at_owner(name)
        if quick is not None:
            return quick
        key, found, holders = self.locate(name)
        answers = self.stat_all(name, holders)
        newest = self.newest(answers)
        if newest is not None and copies_wanted(newest.replicas, self.replicas) > len(holders):
            # A file kept on more peers than the default: ask its other holders too.
            more = holders_found(found, newest.replicas)[len(holders) :]
            answers.update(self.stat_all(name, more))
        newest, having = self._current(answers)
        replicas = tuple(p for p in having if p != found.owner)
        return SearchResult(
            name, key, newest is not None, found.owner, replicas, found.hops, newest
        )

    def _search_at_owner(self, name: str) -> SearchResult | None:
        """search in one round trip: our tables name the holders; the owner confirms it
        owns the key and has the file (Files/Read, meta only) while the other holders
        are asked with Stat, all at once. None when that does not settle it (no owner
        confirmation, the file absent or deleted there, more copies than asked)."""
        if self.local is None:
            return None
        key = self.ring.hash(name)
        holders = self.local.owners(key, self.replicas)
        if len(holders) < min(self.replicas, 2) or holders[0] in holders[1:]:
            return None
        owner, local = holders[0], self.local
        request = fpb.ReadRequest(name=name, key=to_hex(key), meta_only=True)
        ask_owner: Callable[[], Any] = (
            partial(local.read, name, key, 0, meta_only=True)
            if owner == local.me
            else partial(self.stub(owner).Read, request, timeout=self.rpc_timeout)
        )
        others = holders[1:]
        first, *rest = fan_out([ask_owner, *(self._stat_call(name, p) for p in others)])
        if first is None or isinstance(first, grpc.RpcError):
            return None
        if owner == local.me:
            info, hops = FileInfo.from_pb(meta_to_pb(first[0])), 0
        else:
            info, hops = FileInfo.from_pb(first.meta), 1
        answers = {owner: info, **self._stat_answers(others, rest)}
        newest, having = self._current(answers)
        if newest is None or copies_wanted(newest.replicas, self.replicas) > len(holders):
            return None
        replicas = tuple(p for p in having if p != owner)
        return SearchResult(name, key, True, owner, replicas, hops, newest)

    def delete(self, name: str) -> FileInfo:
        key, found, held = self._current_version(name, None)
        plan = plan_delete(held, self.replicas)
        if plan is None:
            raise NotFound(f"{name!r} is not in the ring")
        # The tombstone goes to the deleted version's holders, with its count.
        holders = holders_found(found, plan.copies)
        request = fpb.DeleteRequest(
            name=name, key=to_hex(key), version=plan.version, replicas=plan.copies
        )
        done: list[FileInfo] = []
        for index, peer in enumerate(holders):
            request.role = Role.at(index).value
            try:
                done.append(
                    FileInfo.from_pb(self.stub(peer).Delete(request, timeout=self.rpc_timeout))
                )
            except grpc.RpcError:
                continue  # anti-entropy spreads the tombstone to it later
        if not done:
            raise Unavailable(f"no holder of {name!r} answered")
        return done[0]

    def health(self, peer: NodeRef) -> list[tuple[str, int, int, int]]:
        """(name, version, copies, wanted) for each file ``peer`` is primary for; copies
        below wanted means degraded (until the peer's anti-entropy repairs it)."""
        try:
            reply = self.stub(peer).Health(fpb.Empty2(), timeout=self.rpc_timeout)
        except grpc.RpcError as exc:
            raise PeerCallFailed(peer, exc) from None
        return [(f.name, f.version, f.copies, f.wanted) for f in reply.files]

    def list_peer(self, peer: NodeRef, timeout: float | None = None) -> list[FileInfo]:
        """Everything ``peer`` holds (primary and replica), tombstones included."""
        request = fpb.RangeRequest(start=WHOLE_RING, end=WHOLE_RING)
        try:
            stream = self.stub(peer).ListRange(request, timeout=timeout or self.transfer_timeout)
            return [FileInfo.from_pb(meta) for meta in stream]
        except grpc.RpcError as exc:
            raise PeerCallFailed(peer, exc) from None


def _segments(first: int, stop: int) -> list[tuple[int, int]]:
    """Chunk ranges [low, high) of a download's tasks: SEGMENT_CHUNKS each, except that a
    range longer than one segment starts small (1, 2, 4 chunks), so that a reader that
    stops early holds a few MiB, not a whole segment. A range of at most one segment
    stays one task (read from one holder)."""
    if stop - first <= SEGMENT_CHUNKS:
        return [(first, stop)]
    ranges, low, size = [], first, 1
    while low < stop:
        ranges.append((low, min(low + size, stop)))
        low += size
        size = min(size * 2, SEGMENT_CHUNKS)
    return ranges


def remote_client(
    ring: Ring, transport: GrpcTransport, entry: NodeRef, **options: Any
) -> FileClient:
    """A FileClient for a process outside the ring: lookups start at ``entry`` and are
    driven from here, one step RPC per hop, ending at the owner's own answer."""

    def lookup(key: int) -> LookupResult:
        return iterative_lookup(
            ring, key, [entry], transport.find_successor_step, 2 * ring.bits, verify=True
        )

    return FileClient(ring, lookup, transport.pool, **options)
