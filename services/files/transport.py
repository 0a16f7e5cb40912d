"""The replication core's FileTransport and LocalStore over gRPC and the storage engine.

``chord.replication`` decides what to copy, drop or keep; this module only carries it
out: the Files service's Stat, Digest, ListRange, Store, Delete, Fetch and Drop calls
(each with its deadline) and the engine's records. Every failure, a call's or the
engine's, reaches the core as TransferFailed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import grpc

from chord.ids import to_hex
from chord.node_ref import NodeRef
from chord.replication import FileTransport, LocalStore, Role, TransferFailed, Version
from proto import files_pb2 as fpb
from services.files.info import FileInfo
from services.files.write import status_of
from services.storage import FileRecord, StorageEngine, StorageError

if TYPE_CHECKING:
    from services.files.client import FileClient


def _failed(exc: grpc.RpcError | StorageError) -> TransferFailed:
    if isinstance(exc, grpc.RpcError):
        code, details = status_of(exc)
        return TransferFailed(f"{code.name}: {details}")
    return TransferFailed(str(exc))


class GrpcFileTransport:
    """FileTransport[FileRecord] of a peer whose own copies are in ``engine``."""

    def __init__(self, files: FileClient, engine: StorageEngine) -> None:
        self.files = files
        self.engine = engine

    def stat_all(self, name: str, peers: Sequence[NodeRef]) -> dict[NodeRef, Version | None]:
        return dict(self.files.stat_all(name, peers))

    def digest(self, peer: NodeRef, start: int, end: int, position: int) -> str:
        request = fpb.RangeRequest(start=to_hex(start), end=to_hex(end), position=position)
        try:
            reply = self.files.stub(peer).Digest(request, timeout=self.files.rpc_timeout)
        except grpc.RpcError as exc:
            raise _failed(exc) from exc
        digest: str = reply.digest
        return digest

    def list_range(self, peer: NodeRef, start: int, end: int) -> list[Version]:
        request = fpb.RangeRequest(start=to_hex(start), end=to_hex(end))
        try:
            stream = self.files.stub(peer).ListRange(request, timeout=self.files.transfer_timeout)
            return [FileInfo.from_pb(meta) for meta in stream]
        except grpc.RpcError as exc:
            raise _failed(exc) from exc

    def push(self, peer: NodeRef, record: FileRecord, role: Role) -> None:
        """Our copy of ``record`` (bytes: Store, or its tombstone: Delete) to ``peer``."""
        stub = self.files.stub(peer)
        try:
            if record.deleted:
                request = fpb.DeleteRequest(
                    name=record.name, key=to_hex(record.key), version=record.version,
                    role=role.value, replicas=record.replicas,
                )  # fmt: skip
                stub.Delete(request, timeout=self.files.rpc_timeout)
                return
            stub.Store(self._store_requests(record, role), timeout=self.files.transfer_timeout)
        except (grpc.RpcError, StorageError) as exc:
            raise _failed(exc) from exc

    def _store_requests(self, record: FileRecord, role: Role) -> Iterator[fpb.StoreRequest]:
        yield fpb.StoreRequest(
            header=fpb.StoreHeader(
                name=record.name, key=to_hex(record.key), version=record.version,
                role=role.value, size=record.size, size_known=True, replicas=record.replicas,
            )
        )  # fmt: skip
        for piece in self.engine.read(record):
            yield fpb.StoreRequest(data=piece)
        yield fpb.StoreRequest(trailer=fpb.StoreTrailer(sha256=record.sha256, size=record.size))

    def pull(self, peer: NodeRef, version: Version, role: Role) -> FileRecord:
        """``peer``'s ``version`` into our storage (bytes: Fetch, or its tombstone)."""
        try:
            if version.deleted:
                return self.engine.delete(
                    version.name, version.key, version.version, role=role,
                    replicas=version.replicas,
                )  # fmt: skip
            return self._fetch_into_storage(peer, version, role)
        except (grpc.RpcError, StorageError) as exc:
            raise _failed(exc) from exc

    def _fetch_into_storage(self, peer: NodeRef, version: Version, role: Role) -> FileRecord:
        assert isinstance(version, FileInfo)  # what list_range and stat_all answer
        request = fpb.FetchRequest(name=version.name, version=version.version, to_end=True)
        with self.engine.writer(
            version.name, version.key, version.version, role=role,
            expected_size=version.size, expected_sha256=version.sha256,
            replicas=version.replicas,
        ) as writer:  # fmt: skip
            for reply in self.files.stub(peer).Fetch(request, timeout=self.files.transfer_timeout):
                if reply.WhichOneof("part") == "data":
                    writer.write(reply.data)
            return writer.commit()

    def drop_older(self, name: str, version: int, peers: Iterable[NodeRef]) -> None:
        self.files.drop_older(name, version, peers)


class EngineStore:
    """LocalStore[FileRecord]: this peer's storage engine."""

    def __init__(self, engine: StorageEngine) -> None:
        self.engine = engine

    def in_range(self, start: int, end: int) -> list[FileRecord]:
        return self.engine.in_range(start, end)

    def digest(
        self, start: int, end: int, include: Callable[[FileRecord], bool] | None = None
    ) -> str:
        return self.engine.digest(start, end, include)

    def held(self) -> list[FileRecord]:
        return self.engine.records(include_deleted=True)

    def role_of(self, record: FileRecord) -> Role:
        return Role(record.role)

    def set_role(self, name: str, role: Role) -> None:
        self.engine.set_role(name, role)

    def drop(self, name: str) -> None:
        self.engine.drop(name)


def _conforms(transport: GrpcFileTransport, store: EngineStore) -> None:
    """Type-checked only: the adapters are what the core asks for."""
    _: FileTransport[FileRecord] = transport
    __: LocalStore[FileRecord] = store
