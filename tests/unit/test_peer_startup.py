"""A peer that cannot start releases everything it took: ports, the storage directory,
threads. Peer.__init__ registers each resource on an ExitStack as it takes it, so a
failure at any later step unwinds them all before StartupError leaves."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from config.settings import Settings
from devtools.launcher import free_port
from services.peer.peer import Peer, StartupError
from services.storage import StorageEngine

HOST = "127.0.0.1"


def settings(tmp_path: Path, port: int, api_port: int) -> Settings:
    return Settings(
        host=HOST, port=port, api_port=api_port, data_dir=str(tmp_path / "data"), menu=False
    )


def bindable(port: int) -> bool:
    """Whether a listener could take ``port`` now (as the next peer's server would)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
            probe.listen()
        except OSError:
            return False
    return True


@contextmanager
def occupied(port: int) -> Iterator[None]:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((HOST, port))
        holder.listen()
        yield


def threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_a_busy_rest_port_releases_the_grpc_port_storage_and_threads(tmp_path: Path) -> None:
    grpc_port = free_port(HOST)
    api_port = free_port(HOST, avoid=[grpc_port])
    before = threads()
    with occupied(api_port), pytest.raises(StartupError, match=f"{api_port}"):
        Peer(settings(tmp_path, grpc_port, api_port))
    assert bindable(grpc_port), "the gRPC port stayed bound"
    assert threads() <= before, threads() - before
    # The storage directory is unlocked: a peer with the same settings starts.
    peer = Peer(settings(tmp_path, grpc_port, api_port))
    peer.stop(graceful=False)
    assert bindable(grpc_port) and bindable(api_port)
    assert threads() <= before, threads() - before


def test_a_busy_grpc_port_releases_the_storage(tmp_path: Path) -> None:
    grpc_port = free_port(HOST)
    api_port = free_port(HOST, avoid=[grpc_port])
    with occupied(grpc_port), pytest.raises(StartupError, match=f"{grpc_port}"):
        Peer(settings(tmp_path, grpc_port, api_port))
    assert bindable(api_port)
    StorageEngine(tmp_path / "data" / "files").close()  # not locked any more


def test_a_storage_failure_binds_nothing_and_leaves_no_thread(tmp_path: Path) -> None:
    """The storage directory is held by another engine (another peer on the same data
    directory): the start fails, and neither port is left bound."""
    grpc_port = free_port(HOST)
    api_port = free_port(HOST, avoid=[grpc_port])
    before = threads()
    with (
        StorageEngine(tmp_path / "data" / "files"),
        pytest.raises(StartupError, match="cannot open file storage"),
    ):
        Peer(settings(tmp_path, grpc_port, api_port))
    assert bindable(grpc_port) and bindable(api_port)
    assert threads() <= before, threads() - before


def test_a_started_peer_releases_everything_when_stopped(tmp_path: Path) -> None:
    grpc_port = free_port(HOST)
    api_port = free_port(HOST, avoid=[grpc_port])
    peer = Peer(settings(tmp_path, grpc_port, api_port))
    peer.start()
    assert not bindable(grpc_port) and not bindable(api_port)
    peer.stop(graceful=False)
    peer.stop()  # twice is harmless
    assert bindable(grpc_port) and bindable(api_port)
    StorageEngine(tmp_path / "data" / "files").close()
