"""Small operations on a real ring, against bmuller/kademlia measured in the same run.

    python -m bench.smallops [--peers 32] [--gets 2000] [--uploads 1000] [--json]

Both systems run N nodes, one process each, on loopback. Measured here:

* kademlia (bench.kad_baseline): ``get`` of a 100-byte value from a node that holds
  none of the values; ``set`` of 4 KiB values from 8 concurrent tasks.
* this ring, over keep-alive HTTP: ``GET /download_file`` of a 100-byte file from a
  random peer; the same from a client that knows the ring (it read ``GET /ring`` once
  and asks the file's owner, as client.py, the mount and the dashboard do);
  ``/search_file``, ``/lookup`` (with its hops), ``/get_successor`` (a REST round trip
  through the same Flask stack as /lookup, with no remote call), ``/health`` (answered
  before Flask) and a bare gRPC round trip (the standard health check) for the ratios;
  1,000 uploads of 4 KiB by 8 concurrent clients (threads, one connection per peer each).

Every answer is checked (status, bytes). Ratios are against figures of the same run;
the machine's load average is printed before and after, since other work on the same
cores moves every figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tabulate import tabulate

from bench import kad_baseline
from clientlib.multipart import build_frame
from clientlib.ringmap import RingMap
from devtools.launcher import LocalRing, PeerProcess

SMALL = 100  # bytes of a "small file" / kademlia value
UPLOAD_SIZE = 4096
CLIENTS = 8
SMALL_FILES = 200


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000


class Http:
    """One keep-alive connection per peer REST address."""

    def __init__(self) -> None:
        self._conns: dict[str, http.client.HTTPConnection] = {}

    def request(
        self,
        api: str,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = self._conns.get(api)
        if conn is not None:
            try:
                return self._exchange(api, conn, method, path, body, headers)
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The peer closed this kept-alive connection while it sat idle (its
                # idle_timeout): the request never reached it, so send it again anew.
                conn.close()
                self._conns.pop(api, None)
        host, port = api.rsplit(":", 1)
        conn = self._conns[api] = http.client.HTTPConnection(host, int(port), timeout=10)
        return self._exchange(api, conn, method, path, body, headers)

    def _exchange(
        self,
        api: str,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str] | None,
    ) -> tuple[int, bytes]:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            del self._conns[api]
        return response.status, data

    def json(self, api: str, path: str) -> Any:
        status, data = self.request(api, "GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} from {api}: {status} {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()


def upload(client: Http, api: str, name: str, data: bytes) -> None:
    frame = build_frame([("name", name)], "file", name.rsplit("/", 1)[-1])
    body = frame.head + data + frame.tail
    status, answer = client.request(
        api, "POST", "/upload_file", body, {"Content-Type": frame.content_type}
    )
    if status != 201:
        raise RuntimeError(f"upload of {name} to {api}: {status} {answer[:200]!r}")


def timed(samples: int, operation: Callable[[int], None]) -> list[float]:
    latencies = []
    for index in range(samples):
        begin = time.perf_counter()
        operation(index)
        latencies.append(time.perf_counter() - begin)
    return latencies


def grpc_rtts(peers: Sequence[PeerProcess], samples: int, rnd: random.Random) -> list[float]:
    channels = [grpc.insecure_channel(p.address) for p in peers]
    stubs = [health_pb2_grpc.HealthStub(c) for c in channels]
    request = health_pb2.HealthCheckRequest(service="")
    for stub in stubs:
        stub.Check(request, timeout=5)
    try:
        return timed(samples, lambda _: rnd.choice(stubs).Check(request, timeout=5))
    finally:
        for channel in channels:
            channel.close()


def start_ring(workdir: Path, peers: int) -> LocalRing:
    ring = LocalRing(
        workdir,
        extra_args=(
            "--stabilize-interval",
            "0.5",
            "--fix-fingers-interval",
            "0.25",
            "--log-level",
            "warning",
        ),
    )
    ring.start_ring(peers, timeout=180)
    return ring


def measure_ring(peers: int, gets: int, uploads: int, rnd: random.Random) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-smallops-") as workdir:
        ring = start_ring(Path(workdir), peers)
        client = Http()
        try:
            apis = [f"{p.host}:{p.api_port}" for p in ring.peers]
            files = {f"small/{i}": rnd.randbytes(SMALL) for i in range(SMALL_FILES)}
            for name, data in files.items():
                upload(client, rnd.choice(apis), name, data)
            names = list(files)
            settle(client, apis)

            def get_from(api: str, name: str) -> None:
                status, data = client.request(api, "GET", f"/download_file?name={quote(name)}")
                if status != 200 or data != files[name]:
                    raise RuntimeError(f"GET {name} from {api}: {status}")

            for api in apis:  # open every connection before timing
                client.json(api, "/health")
            random_peer = timed(gets, lambda _: get_from(rnd.choice(apis), rnd.choice(names)))
            ring_map = RingMap.from_ring(membership(client, apis[0]))

            def knows_ring(_: int) -> None:
                name = rnd.choice(names)
                get_from(ring_map.holders(name)[0], name)

            direct = timed(gets, knows_ring)
            hops: list[int] = []

            def lookup(_: int) -> None:
                path = f"/lookup?name={quote(rnd.choice(names))}"
                hops.append(client.json(rnd.choice(apis), path)["hops"])

            lookups = timed(gets, lookup)
            searches = timed(
                gets,
                lambda _: client.json(rnd.choice(apis), f"/search_file?name={rnd.choice(names)}"),
            )
            health = timed(gets, lambda _: client.json(rnd.choice(apis), "/health"))
            flask = timed(gets, lambda _: client.json(rnd.choice(apis), "/get_successor"))
            rtts = grpc_rtts(ring.peers, gets, rnd)
            files_per_s = upload_rate(apis, uploads, rnd)
        finally:
            client.close()
            ring.close()
    return {
        "random_peer_s": random_peer,
        "knows_ring_s": direct,
        "lookup_s": lookups,
        "lookup_hops": statistics.mean(hops),
        "search_s": searches,
        "health_s": health,
        "flask_s": flask,
        "grpc_rtt_s": rtts,
        "files_per_s": files_per_s,
    }


def settle(client: Http, apis: Sequence[str], timeout: float = 120.0) -> None:
    """Until every peer's view of the membership lists the whole ring (its one-hop table
    has converged; peers without /members: their ring walk reaches every peer)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [membership(client, api)["count"] for api in apis]
        if all(count == len(apis) for count in counts):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"membership views still partial after {timeout:.0f} s: {counts}")
        time.sleep(0.2)


def membership(client: Http, api: str) -> Any:
    """``GET /members``, or the ring walk on peers that predate it (to measure them)."""
    status, data = client.request(api, "GET", "/members")
    return json.loads(data) if status == 200 else client.json(api, "/ring")


def upload_rate(apis: Sequence[str], uploads: int, rnd: random.Random) -> float:
    """``uploads`` files of 4 KiB from CLIENTS threads, each to a random peer."""
    blobs = [(f"up/{i}", rnd.randbytes(UPLOAD_SIZE), rnd.choice(apis)) for i in range(uploads)]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        client = Http()
        try:
            while True:
                with lock:
                    if not blobs:
                        return
                    name, data, api = blobs.pop()
                upload(client, api, name, data)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    if errors:
        raise errors[0]
    return uploads / elapsed


def report(ours: dict[str, Any], kad: dict[str, Any], peers: int) -> dict[str, Any]:
    kad_p50, kad_p99 = ms(kad["get_s"], 50), ms(kad["get_s"], 99)
    rtt = ms(ours["grpc_rtt_s"], 50)
    rest = ms(ours["flask_s"], 50)
    lookup = ms(ours["lookup_s"], 50)
    hops = ours["lookup_hops"]
    return {
        "peers": peers,
        "kademlia_get_p50_ms": kad_p50,
        "kademlia_get_p99_ms": kad_p99,
        "kademlia_set_per_s": kad["set_per_s"],
        "get_random_peer_p50_ms": ms(ours["random_peer_s"], 50),
        "get_random_peer_p99_ms": ms(ours["random_peer_s"], 99),
        "get_knows_ring_p50_ms": ms(ours["knows_ring_s"], 50),
        "search_p50_ms": ms(ours["search_s"], 50),
        "lookup_p50_ms": lookup,
        "lookup_hops_mean": hops,
        "rest_health_p50_ms": ms(ours["health_s"], 50),
        "rest_rtt_p50_ms": rest,
        "grpc_rtt_p50_ms": rtt,
        "files_per_s": ours["files_per_s"],
        # The targets, as ratios (<= 1 meets the target).
        "random_peer_p50_vs_1.5x_kad": ms(ours["random_peer_s"], 50) / (1.5 * kad_p50),
        "random_peer_p99_vs_3x_kad": ms(ours["random_peer_s"], 99) / (3 * kad_p99),
        "knows_ring_p50_vs_kad": ms(ours["knows_ring_s"], 50) / kad_p50,
        "search_vs_lookup_plus_rtt": ms(ours["search_s"], 50) / (lookup + rtt),
        "lookup_vs_1.3_hops_rtt_plus_rest": lookup / (1.3 * hops * rtt + rest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.smallops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--peers", type=int, default=32)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    load_before = os.getloadavg()
    kad = kad_baseline.measure(
        args.peers, args.gets, SMALL, args.uploads, UPLOAD_SIZE, CLIENTS, args.seed
    )
    ours = measure_ring(args.peers, args.gets, args.uploads, rnd)
    result = report(ours, kad, args.peers)
    result["load_before"] = [round(x, 2) for x in load_before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result))
        return
    print(tabulate([(k, v) for k, v in result.items()], floatfmt=".3f"))


if __name__ == "__main__":
    main()
