"""A small ideal ring in the simulator, for tests of the layers above the core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from flask import Flask

from chord.ids import Ring
from chord.invariants import ideal_violations
from chord.node import ChordNode
from chord.sim.network import SimNetwork
from services.files.client import FileClient
from services.files.replication import Replicator
from services.rest import create_app
from services.rest.auth import Tokens
from services.rest.context import ApiContext, PeerServices
from services.rpc.transport import GrpcTransport
from services.storage import StorageEngine


def ideal_sim_ring(count: int, bits: int = 16, successors: int = 3) -> SimNetwork:
    net = SimNetwork(Ring(bits), successors=successors)
    used: set[int] = set()
    addresses: list[str] = []
    port = 7000
    while len(addresses) < count:
        address = f"127.0.0.1:{port}"
        port += 1
        if net.ring.hash(address) not in used:
            used.add(net.ring.hash(address))
            addresses.append(address)
    net.add(addresses[0]).create()
    for address in addresses[1:]:
        net.add(address).join(addresses[0])
        net.run_maintenance_round()
    for _ in range(100):
        if not ideal_violations([n.state() for n in net.members()], successors):
            break
        net.run_maintenance_round()
    for node in net.members():
        node.fix_all_fingers()
    return net


def ring_context(node: ChordNode) -> ApiContext:
    """What the REST app needs for the ring routes alone (no files: a simulated node)."""
    return ApiContext(node, node.lookup)


@contextmanager
def full_peer_app(data_dir: Path, api_token: str, admin_token: str) -> Iterator[Flask]:
    """A full peer's REST app, built as services/peer builds it, over a simulated node:
    routing depends on neither a live ring nor the file client, so those parts are
    stand-ins (real storage, tokens and metrics)."""
    node = ideal_sim_ring(3).members()[0]
    storage = StorageEngine(data_dir / "files", None)
    try:
        services = PeerServices(
            files=mock.create_autospec(FileClient, instance=True),
            storage=storage,
            replicator=mock.create_autospec(Replicator, instance=True),
            transport=mock.create_autospec(GrpcTransport, instance=True),
            tokens=Tokens(api=api_token, admin=admin_token),
            request_shutdown=lambda: None,
            replicas=3,
            successors=8,
        )
        yield create_app(ApiContext(node, node.lookup, peer=services))
    finally:
        storage.close()
