"""This peer as one of the holders of its own two-phase write, in-process.

An upload through a peer that is itself one of the file's holders used to send that copy
to itself over gRPC: serialized, framed, copied through the loopback and parsed again,
in the process that is already the busiest (it parses the HTTP body and feeds the other
holders). Here the same Files/Write handler gets the messages directly; its refusals
arrive as LocalAbort carrying the status code a remote holder would have sent, so the
write's decision logic (services.files.write) treats both alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NoReturn

import grpc

from chord.ids import Ring
from proto import files_pb2 as fpb
from services.files.servicer import FilesServicer
from services.storage import StorageEngine

LocalWrite = Callable[[Iterator[fpb.StoreRequest]], Iterator[fpb.WriteReply]]


class LocalAbort(Exception):
    """A local holder refused, as context.abort would have told a remote writer."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _LocalCall:
    """The one part of a grpc.ServicerContext the Files/Write handler uses."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise LocalAbort(code, details)


def local_write(engine: StorageEngine, ring: Ring) -> LocalWrite:
    """The handler in-process. No gRPC deadline applies to it: the requests it is fed
    end at the write's own deadline (services.files.write)."""
    servicer = FilesServicer(engine, ring)
    return lambda requests: servicer.Write(requests, _LocalCall())  # type: ignore[arg-type]
