"""The baseline of bench.smallops: bmuller/kademlia 2.2.3 (PyPI ``kademlia``), N nodes
in processes of their own on loopback, driven from a reader node in this process.

The reader keeps nothing (its storage drops every value), so each ``get`` crawls the
network as a node that holds none of the values would; ``set`` stores on the k
nearest other nodes. Values are written before the gets, and every get must return
the value written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kademlia.network import Server  # type: ignore[import-untyped]
from kademlia.storage import ForgetfulStorage  # type: ignore[import-untyped]

from devtools.launcher import ROOT, free_port


class KeepNothing(ForgetfulStorage):  # type: ignore[misc]  # kademlia ships no types
    """Storage of the reader node: it never holds a value."""

    def __setitem__(self, key: bytes, value: object) -> None:
        return None


@dataclass
class KademliaRun:
    nodes: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.nodes):
            port = free_port(avoid=self.ports)
            args = [sys.executable, "-m", "bench.kad_node", str(port)]
            if index:
                args.append(str(self.ports[0]))
            process = subprocess.Popen(
                args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            self.processes.append(process)
            self.ports.append(port)
            if index == 0:  # the others bootstrap through it: it must listen first
                self._wait_ready(process)
        for process in self.processes[1:]:
            self._wait_ready(process)

    @staticmethod
    def _wait_ready(process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("a kademlia node did not start")

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait(timeout=10)


@contextlib.contextmanager
def kademlia_network(nodes: int) -> Iterator[KademliaRun]:
    run = KademliaRun(nodes)
    try:
        run.start()
        yield run
    finally:
        run.close()


async def _reader(run: KademliaRun) -> Any:
    reader = Server(storage=KeepNothing())
    await reader.listen(free_port(avoid=run.ports), interface="127.0.0.1")
    await reader.bootstrap([("127.0.0.1", port) for port in run.ports])
    return reader


async def _measure(
    run: KademliaRun,
    gets: int,
    small: int,
    uploads: int,
    size: int,
    clients: int,
    rnd: random.Random,
) -> dict[str, Any]:
    reader = await _reader(run)
    try:
        values = {f"small-{i}": rnd.randbytes(small) for i in range(200)}
        for key, value in values.items():
            if not await reader.set(key, value):
                raise RuntimeError(f"kademlia set {key} failed")
        keys = list(values)
        latencies: list[float] = []
        for _ in range(gets):
            key = rnd.choice(keys)
            begin = time.perf_counter()
            got = await reader.get(key)
            latencies.append(time.perf_counter() - begin)
            if got != values[key]:
                raise RuntimeError(f"kademlia get {key} returned the wrong value")
        blobs = [rnd.randbytes(size) for _ in range(uploads)]
        queue = list(enumerate(blobs))

        async def client() -> None:
            while queue:
                index, blob = queue.pop()
                if not await reader.set(f"upload-{index}", blob):
                    raise RuntimeError("kademlia set failed")

        begin = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - begin
        return {"get_s": latencies, "set_per_s": uploads / elapsed}
    finally:
        reader.stop()


def measure(
    nodes: int, gets: int, small: int, uploads: int, size: int, clients: int, seed: int
) -> dict[str, Any]:
    """Get latencies (seconds) of ``small``-byte values and sets per second of
    ``size``-byte values from ``clients`` concurrent tasks, on ``nodes`` processes."""
    logging.getLogger("kademlia").setLevel(logging.CRITICAL)
    logging.getLogger("rpcudp").setLevel(logging.CRITICAL)
    with kademlia_network(nodes) as run:
        time.sleep(1.0)  # let the bootstraps' own crawls finish
        return asyncio.run(_measure(run, gets, small, uploads, size, clients, random.Random(seed)))
