"""Thin gRPC servicer for file bytes: validate, call the storage engine, map errors.

Store is the only call that writes, and it commits a version only after the trailer's
size and SHA-256 match what arrived; Fetch streams a verified range. Neither makes a
call to another peer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import grpc

from chord.ids import Ring, from_hex, to_hex
from proto import files_pb2 as fpb
from proto import files_pb2_grpc as fpb_grpc
from services.storage import (
    CorruptData,
    FileRecord,
    IntegrityError,
    QuotaExceeded,
    StaleVersion,
    StorageEngine,
    StorageError,
)

T = TypeVar("T")
log = logging.getLogger("chord.files")
ROLES = ("primary", "replica")


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
    )


# (name, version, copies, wanted) of each primary file, from the replicator's last round.
HealthSource = Callable[[], Sequence[tuple[str, int, int, int]]]


class FilesServicer(fpb_grpc.FilesServicer):
    def __init__(self, engine: StorageEngine, ring: Ring, health: HealthSource = tuple) -> None:
        self.engine = engine
        self.ring = ring
        self.health = health

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

    def Store(
        self, request_iterator: Iterator[fpb.StoreRequest], context: grpc.ServicerContext
    ) -> fpb.FileMeta:
        def store() -> fpb.FileMeta:
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("part") != "header":
                raise ValueError("a Store stream starts with a header")
            header = first.header
            if header.role not in ROLES:
                raise ValueError(f"role must be one of {ROLES}")
            writer = self.engine.writer(
                header.name,
                self._key_of(header.name, header.key),
                header.version,
                role=header.role,
                expected_size=header.size if header.size_known else None,
            )
            with writer:
                for message in request_iterator:
                    part = message.WhichOneof("part")
                    if part == "data":
                        writer.write(message.data)
                    elif part == "trailer":
                        writer.expect(message.trailer.size, message.trailer.sha256)
                        return meta_to_pb(writer.commit())
                    else:
                        raise ValueError("a second header in one Store stream")
            raise ValueError("the Store stream ended without a trailer; nothing was stored")

        return self._guarded(context, store)

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
                self.engine.delete(request.name, key, request.version, role=request.role)
            )

        return self._guarded(context, delete)

    def Digest(self, request: fpb.RangeRequest, context: grpc.ServicerContext) -> fpb.RangeDigest:
        def digest() -> fpb.RangeDigest:
            start, end = from_hex(request.start), from_hex(request.end)
            return fpb.RangeDigest(
                digest=self.engine.digest(start, end), count=len(self.engine.in_range(start, end))
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
