"""A small ideal ring in the simulator, for tests of the layers above the core."""

from __future__ import annotations

from chord.ids import Ring
from chord.invariants import ideal_violations
from chord.node import ChordNode
from chord.sim.network import SimNetwork
from services.rest.context import ApiContext


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
