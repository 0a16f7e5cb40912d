"""Thin gRPC servicer for file bytes: validate, call the storage engine, map errors.

Write (a client's upload) and Store (a peer's copy of an acknowledged version) are the
calls that write; both check the trailer's size and SHA-256 against what arrived. Store
commits at once; Write stages (durable, invisible), answers, and commits only on the
writer's decision, so an upload refused by any holder leaves nothing on the others.
Fetch streams a verified range. No handler makes a call to another peer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import grpc

from chord.ids import Ring, from_hex, to_hex
from chord.placement import copies_wanted
from chord.replication import Role
from proto import files_pb2 as fpb
from proto import files_pb2_grpc as fpb_grpc
from services.files.small_read import NotOwner, TooLarge, read_owned
from services.storage import (
    BlobWriter,
    CorruptData,
    FileRecord,
    IntegrityError,
    QuotaExceeded,
    StaleVersion,
    StorageEngine,
    StorageError,
)
from services.storage.record import check_replicas, check_version

T = TypeVar("T")

log = logging.getLogger("chord.files")
ROLES = tuple(role.value for role in Role)  # what a header may name


def meta_to_pb(record: FileRecord) -> fpb.FileMeta:
    return fpb.FileMeta(
        name=record.name,
        key=to_hex(record.key),
        version=record.version,
        size=record.size,
        sha256=record.sha256,
        chunk_size=record.chunk_size,
        chunk_hashes=list(record.chunk_hashes),
        deleted=record.deleted,
        role=record.role,
        created=record.created,
        damaged=record.damaged,
        replicas=record.replicas,
    )


def staged_meta(writer: BlobWriter) -> fpb.FileMeta:
    """What a staged (verified, durable, not yet visible) write will become."""
    sha, chunks = writer.staged
    return fpb.FileMeta(
        name=writer.name, key=to_hex(writer.key), version=writer.version,
        size=writer.bytes_written, sha256=sha, chunk_size=writer.chunk_size,
        chunk_hashes=list(chunks), role=writer.role, replicas=writer.replicas,
    )  # fmt: skip


# (name, version, copies, wanted) of each primary file, from the replicator's last round.
HealthSource = Callable[[], Sequence[tuple[str, int, int, int]]]


class FilesServicer(fpb_grpc.FilesServicer):
    def __init__(
        self,
        engine: StorageEngine,
        ring: Ring,
        health: HealthSource = tuple,
        default_replicas: int = 3,
        owns: Callable[[int], bool] = lambda _: False,
    ) -> None:
        """``owns(key)``: whether this peer owns ``key`` now (chord.node.ChordNode.owns);
        only then does it answer Read."""
        self.engine = engine
        self.ring = ring
        self.health = health
        self.default_replicas = default_replicas
        self.owns = owns

    def _key_of(self, name: str, key_hex: str) -> int:
        key = from_hex(key_hex)
        if key != self.ring.hash(name):
            raise ValueError(f"key {key_hex} is not SHA-1 of the name {name!r}")
        return key

    def _guarded(self, context: grpc.ServicerContext, call: Callable[[], T]) -> T:
        """Whatever a caller sends, it gets a status code, never a crashed handler."""
        try:
            return call()
        except QuotaExceeded as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"no space: {exc}")
        except StaleVersion as exc:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except (IntegrityError, CorruptData) as exc:
            context.abort(grpc.StatusCode.DATA_LOSS, str(exc))
        except LookupError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (ValueError, StorageError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable: context.abort raises")

    def _open_writer(self, first: fpb.StoreRequest | None) -> BlobWriter:
        if first is None or first.WhichOneof("part") != "header":
            raise ValueError("a Store or Write stream starts with a header")
        header = first.header
        if header.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        return self.engine.writer(
            header.name,
            self._key_of(header.name, header.key),
            header.version,
            role=header.role,
            expected_size=header.size if header.size_known else None,
            replicas=header.replicas,
        )

    @staticmethod
    def _receive(writer: BlobWriter, requests: Iterator[fpb.StoreRequest]) -> None:
        """Data up to and including the trailer into ``writer``."""
        for message in requests:
            part = message.WhichOneof("part")
            if part == "data":
                writer.write(message.data)
            elif part == "trailer":
                writer.expect(message.trailer.size, message.trailer.sha256)
                if message.trailer.replicas:  # the count was settled after the bytes
                    check_replicas(message.trailer.replicas)
                    writer.replicas = message.trailer.replicas
                return
            else:
                raise ValueError(f"unexpected {part} before the trailer")
        raise ValueError("the stream ended without a trailer; nothing was stored")

    def Store(
        self, request_iterator: Iterator[fpb.StoreRequest], context: grpc.ServicerContext
    ) -> fpb.FileMeta:
        def store() -> fpb.FileMeta:
            with self._open_writer(next(request_iterator, None)) as writer:
                self._receive(writer, request_iterator)
                return meta_to_pb(writer.commit())

        return self._guarded(context, store)

    def Write(
        self, request_iterator: Iterator[fpb.StoreRequest], context: grpc.ServicerContext
    ) -> Iterator[fpb.WriteReply]:
        writer = self._guarded(context, lambda: self._open_writer(next(request_iterator, None)))
        with writer:  # leaving without a commit (an abort, a broken stream) aborts
            staged = self._guarded(context, lambda: self._stage(writer, request_iterator))
            yield fpb.WriteReply(meta=staged)
            decision = next(request_iterator, None)  # None: the writer went away
            if decision is None or decision.WhichOneof("part") != "decision":
                return
            if decision.decision.commit:
                record = self._guarded(context, writer.commit)
                yield fpb.WriteReply(meta=meta_to_pb(record), committed=True)

    def _stage(self, writer: BlobWriter, requests: Iterator[fpb.StoreRequest]) -> fpb.FileMeta:
        self._receive(writer, requests)
        writer.stage()
        return staged_meta(writer)

    def Fetch(
        self, request: fpb.FetchRequest, context: grpc.ServicerContext
    ) -> Iterator[fpb.FetchReply]:
        record = self._guarded(context, lambda: self._live(request.name, request.version))
        length = None if request.to_end else request.length
        try:
            pieces = self.engine.read(
                record, request.offset, length, verify=not request.caller_verifies
            )
            yield fpb.FetchReply(meta=meta_to_pb(record))
            for piece in pieces:
                yield fpb.FetchReply(data=piece)
        except CorruptData as exc:
            log.warning("refusing to serve %s: %s", request.name, exc)
            context.abort(grpc.StatusCode.DATA_LOSS, str(exc))
        except (ValueError, StorageError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def _live(self, name: str, version: int) -> FileRecord:
        record = self.engine.get(name)
        if record is None or record.deleted:
            raise LookupError(f"{name!r} is not stored here")
        if version and record.version != version:
            raise LookupError(
                f"{name!r} version {version} is not stored here (have {record.version})"
            )
        if record.damaged:
            raise CorruptData(f"{name!r} is damaged here and awaits repair")
        return record

    def Read(self, request: fpb.ReadRequest, context: grpc.ServicerContext) -> fpb.ReadReply:
        def read() -> fpb.ReadReply:
            key = self._key_of(request.name, request.key)
            try:
                record, data = read_owned(
                    self.engine, self.owns, request.name, key, request.max_size, request.meta_only
                )
            except NotOwner as exc:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            except TooLarge as exc:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
            return fpb.ReadReply(meta=meta_to_pb(record), data=data)

        return self._guarded(context, read)

    def Stat(self, request: fpb.NameRequest, context: grpc.ServicerContext) -> fpb.FileMeta:
        def stat() -> fpb.FileMeta:
            record = self.engine.get(request.name)
            if record is None:
                raise LookupError(f"{request.name!r} was never stored here")
            return meta_to_pb(record)

        return self._guarded(context, stat)

    def Delete(self, request: fpb.DeleteRequest, context: grpc.ServicerContext) -> fpb.FileMeta:
        def delete() -> fpb.FileMeta:
            if request.role not in ROLES:
                raise ValueError(f"role must be one of {ROLES}")
            key = self._key_of(request.name, request.key)
            return meta_to_pb(
                self.engine.delete(
                    request.name, key, request.version, role=request.role,
                    replicas=request.replicas,
                )
            )  # fmt: skip

        return self._guarded(context, delete)

    def Drop(self, request: fpb.DropRequest, context: grpc.ServicerContext) -> fpb.Empty2:
        def drop() -> fpb.Empty2:
            check_version(request.below_version)
            self.engine.drop(request.name, below_version=request.below_version)
            return fpb.Empty2()

        return self._guarded(context, drop)

    def Digest(self, request: fpb.RangeRequest, context: grpc.ServicerContext) -> fpb.RangeDigest:
        def digest() -> fpb.RangeDigest:
            start, end = from_hex(request.start), from_hex(request.end)
            position = request.position

            def held_at_position(record: FileRecord) -> bool:
                return copies_wanted(record.replicas, self.default_replicas) > position

            return fpb.RangeDigest(
                digest=self.engine.digest(start, end, held_at_position),
                count=len(self.engine.in_range(start, end)),
            )

        return self._guarded(context, digest)

    def ListRange(
        self, request: fpb.RangeRequest, context: grpc.ServicerContext
    ) -> Iterator[fpb.FileMeta]:
        records = self._guarded(
            context, lambda: self.engine.in_range(from_hex(request.start), from_hex(request.end))
        )
        for record in records:
            yield meta_to_pb(record)

    def GetUsage(self, request: fpb.Empty2, context: grpc.ServicerContext) -> fpb.Usage:
        used, quota = self.engine.usage()
        files = len(self.engine.records())
        return fpb.Usage(used=used, quota=quota or 0, files=files)

    def Health(self, request: fpb.Empty2, context: grpc.ServicerContext) -> fpb.HealthReply:
        files = [
            fpb.FileHealth(name=name, version=version, copies=copies, wanted=wanted)
            for name, version, copies, wanted in self.health()
        ]
        return fpb.HealthReply(files=files)
