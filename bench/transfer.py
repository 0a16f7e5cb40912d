"""File transfer throughput on a real ring, every figure beside a same-run baseline.

    python -m bench.transfer                 # every figure of issue 15, data in /dev/shm
    python -m bench.transfer --disk          # the same with the data on the disk
    python -m bench.transfer --size-mib 1024 # peak RSS during 1 GiB up and down
    python -m bench.transfer --via rest      # only through a peer's REST API (rest_transfer.py)
    python -m bench.transfer --via grpc      # only a gRPC client beside the ring
    python -m bench.transfer --via dav       # WebDAV PUT/GET against REST (dav_transfer.py)

Baselines, measured in the same run: raw loopback TCP between two Python processes
(sendall / recv_into, 1 MiB buffers); nginx (sendfile on) serving the same bytes from the
same place to curl, the client used for every REST figure too; a bare gRPC stream of
1 MiB raw-bytes messages with and without SHA-256 at the receiver (what a verified
download could reach here); and the data root's own rate for k copies written and
fsynced at once (what k durable copies on ONE disk can reach: on a real deployment every
peer has its own disk). Then, on a ring of 4 peers with k = 3: upload and download with
a gRPC client beside the ring (chunk ranges from the holders in parallel, every chunk's
SHA-256 checked), kill -9 of a holder and the time to restore k copies (detection
reported apart), and through REST with curl: an upload, a download from a peer holding a
copy and one from the peer holding none; peak RSS of every peer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from tabulate import tabulate

from bench.dav_transfer import measure_dav
from bench.rest_transfer import measure_rest
from chord.placement import holders_of, successor_index
from devtools.launcher import LocalRing, PeerProcess, wait_for
from services.files.client import FileClient, remote_client

MIB = 1 << 20
# The Makefile's malloc settings (see there for the measurements behind them).
MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "67108864",
    "MALLOC_TRIM_THRESHOLD_": "16777216",
    "MALLOC_ARENA_MAX": "1",
}
RECEIVER = """
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
connection, _ = listener.accept()
buffer = bytearray(1 << 20)
view = memoryview(buffer)
total = 0
while (n := connection.recv_into(view)):
    total += n
connection.sendall(total.to_bytes(8, "big"))
"""


GRPC_SENDER = """
import os, sys, grpc
from concurrent import futures
block = os.urandom(1 << 20)
def stream(request, context):
    for _ in range(int.from_bytes(request, "big")):
        yield block
handler = grpc.method_handlers_generic_handler(
    "bench.Bulk", {"Stream": grpc.unary_stream_rpc_method_handler(stream)})
server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_generic_rpc_handlers((handler,))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
"""


def grpc_stream_mb_s(size: int) -> tuple[float, float]:
    """A bare gRPC server stream of 1 MiB raw-bytes messages (no protobuf, no disk):
    (plain, with SHA-256 of every message at the receiver). Best of two runs each."""
    sender = subprocess.Popen(
        [sys.executable, "-c", GRPC_SENDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sender.stdout is not None
        port = int(sender.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_stream("/bench.Bulk/Stream", None, None)  # raw bytes
            best = {False: 0.0, True: 0.0}
            for verify in (False, True, False, True):
                digest = hashlib.sha256()
                begin = time.perf_counter()
                received = 0
                for message in call((size // MIB).to_bytes(8, "big"), timeout=120):
                    received += len(message)
                    if verify:
                        digest.update(message)
                best[verify] = max(best[verify], received / (time.perf_counter() - begin) / 1e6)
        return best[False], best[True]
    finally:
        if sender.stdin is not None:
            sender.stdin.close()
        sender.wait(timeout=10)


def disk_mb_s(root: Path, size: int, copies: int) -> float:
    """File bytes per second when ``copies`` files of ``size`` are written (1 MiB writes)
    and fsynced on ``root`` at the same time, as k holders on this one disk would."""
    block = os.urandom(MIB)
    paths = [root / f"disk-probe-{i}" for i in range(copies)]
    begin = time.perf_counter()
    try:
        files = [path.open("wb") for path in paths]
        for _ in range(size // MIB):
            for fh in files:
                fh.write(block)
        for fh in files:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        return size / (time.perf_counter() - begin) / 1e6
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def raw_tcp_mb_s(size: int) -> float:
    """Loopback TCP between two processes, 1 MiB buffers: the ceiling for everything else."""
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        block = os.urandom(MIB)
        with socket.create_connection(("127.0.0.1", port)) as connection:
            begin = time.perf_counter()
            for _ in range(size // MIB):
                connection.sendall(block)
            connection.shutdown(socket.SHUT_WR)
            received = int.from_bytes(connection.recv(8), "big")
            elapsed = time.perf_counter() - begin
        assert received == size // MIB * MIB
        return received / elapsed / 1e6
    finally:
        receiver.wait(timeout=10)


def payload(size: int, seed: bytes) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB pieces from a 16 MiB random pool: nothing holds the file."""
    pool = [hashlib.sha256(seed + bytes([i])).digest() * (MIB // 32) for i in range(16)]
    sent = 0
    index = 0
    while sent < size:
        piece = pool[index % len(pool)][: min(MIB, size - sent)]
        index += 1
        sent += len(piece)
        yield piece


def holders_now(client: FileClient, name: str, live: list[PeerProcess], copies: int) -> bool:
    """True when the k live successors of the name's key all hold its newest version."""
    ids = sorted(p.ref.id for p in live)
    first = successor_index(ids, client.ring.hash(name))
    by_id = {p.ref.id: p.ref for p in live}
    wanted = holders_of([by_id[ids[(first + i) % len(ids)]] for i in range(len(ids))], copies)
    answers = client.stat_all(name, wanted)
    return len(answers) == len(wanted) and all(
        info is not None and not info.deleted and not info.damaged for info in answers.values()
    )


def forgotten(ring: LocalRing, live: list[PeerProcess], victim: PeerProcess) -> bool:
    """The killed peer's predecessor has dropped it: its first successor is another."""
    for peer in live:
        try:
            state = ring.transport.get_state(peer.ref)
        except Exception:
            return False
        if state.successors and state.successors[0] == victim.ref:
            return False
    return True


def measure(size: int, peers: int, copies: int, data_root: str | None) -> dict[str, float]:
    raw = max(raw_tcp_mb_s(min(size, 256 * MIB)) for _ in range(2))  # best of two: less noise
    bare_grpc, verified_grpc = grpc_stream_mb_s(min(size, 256 * MIB))
    with tempfile.TemporaryDirectory(prefix="bench-transfer-", dir=data_root) as workdir:
        disk = disk_mb_s(Path(workdir), min(size, 256 * MIB), copies)
        ring = LocalRing(
            Path(workdir),
            extra_args=(
                "--stabilize-interval",
                "0.2",
                "--check-predecessor-interval",
                "0.2",
                "--repair-interval",
                "0.2",
                "--replicas",
                str(copies),
                "--log-level",
                "warning",
            ),
            env=MALLOC,
        )
        try:
            first = ring.start_ring(peers)[0]
            client = remote_client(ring.ring, ring.transport, first.ref, replicas=copies)
            name = "bench/big.bin"

            begin = time.perf_counter()
            put = client.put(name, payload(size, b"bench"), size=size)
            upload_s = time.perf_counter() - begin

            begin = time.perf_counter()
            info, stream = client.get(name)
            received = sum(len(piece) for piece in stream)
            download_s = time.perf_counter() - begin
            assert received == size == info.size

            rss = [p.memory_mib("VmHWM") for p in ring.peers]
            victim = next(p for p in ring.peers if p.ref == put.holders[-1])
            ring.kill(victim)
            begin = time.perf_counter()
            live = ring.live()
            if not wait_for(lambda: forgotten(ring, live, victim), 60, interval=0.05):
                raise TimeoutError("the killed peer was not detected")
            detect_s = time.perf_counter() - begin
            if not wait_for(lambda: holders_now(client, name, live, copies), 300, interval=0.1):
                raise TimeoutError("k copies were not restored")
            repair_s = time.perf_counter() - begin
        finally:
            ring.close()
    mb = size / 1e6
    return {
        "size_mib": size / MIB,
        "peers": peers,
        "copies": copies,
        "raw_tcp_mb_s": raw,
        "bare_grpc_stream_mb_s": bare_grpc,
        "verified_grpc_stream_mb_s": verified_grpc,
        "disk_k_copies_mb_s": disk,
        "upload_mb_s": mb / upload_s,
        "upload_ratio": mb / upload_s / raw,
        "upload_vs_disk_k_copies": mb / upload_s / disk,
        "download_mb_s": mb / download_s,
        "download_ratio": mb / download_s / raw,
        "download_vs_verified_grpc": mb / download_s / verified_grpc,
        "repair_s": repair_s,
        "repair_detect_s": detect_s,
        "repair_mb_s": mb / (repair_s - detect_s),
        "repair_ratio": mb / (repair_s - detect_s) / raw,
        "peak_rss_mib_max": max(rss),
    }


Row = tuple[str, float, str, str, float, float | None, str]


def figures(size: int, peers: int, copies: int, data_root: str, disk: bool) -> list[Row]:
    """Every figure of issue 15 beside its same-run baseline and target."""
    grpc_part = measure(size, peers, copies, data_root)
    raw = grpc_part["raw_tcp_mb_s"]
    rest = measure_rest(size, peers, copies, data_root, raw, MALLOC)
    upload = rest["rest_upload_mb_s"]
    rows: list[Row] = [
        (
            "REST download, peer holds a copy",
            rest["rest_download_holder_mb_s"],
            "MB/s",
            "nginx -> curl",
            rest["nginx_curl_mb_s"],
            0.5,
            ">=",
        ),
        (
            "REST download, peer holds no copy",
            rest["rest_download_other_mb_s"],
            "MB/s",
            "nginx -> curl",
            rest["nginx_curl_mb_s"],
            0.35,
            ">=",
        ),
    ]
    if disk:
        rows.append(
            (
                f"REST upload, k = {copies}, data on disk",
                upload,
                "MB/s",
                f"{copies} fsynced copies on that disk",
                grpc_part["disk_k_copies_mb_s"],
                0.8,
                ">=",
            )
        )
    else:
        rows.append(
            (
                f"REST upload, k = {copies}, data in RAM",
                upload,
                "MB/s",
                "raw loopback TCP",
                raw,
                0.12,
                ">=",
            )
        )
    rows += [
        (
            f"gRPC-client download ({copies} holders)",
            grpc_part["download_mb_s"],
            "MB/s",
            "verified gRPC stream",
            grpc_part["verified_grpc_stream_mb_s"],
            0.7,
            ">=",
        ),
        ("gRPC-client upload", grpc_part["upload_mb_s"], "MB/s", "raw loopback TCP", raw, None, ""),
        (
            f"peak RSS per peer ({size // MIB} MiB up and down)",
            max(grpc_part["peak_rss_mib_max"], rest["peak_rss_mib_max"]),
            "MiB",
            "",
            150,
            1.0,
            "<=",
        ),
        (
            "repair after kill -9 (after detection)",
            grpc_part["repair_mb_s"],
            "MB/s",
            "raw loopback TCP",
            raw,
            0.2,
            ">=",
        ),
        ("  detection of the killed holder", grpc_part["repair_detect_s"], "s", "", 0, None, ""),
        (
            "GET /health, 16 clients",
            rest["health_req_s"],
            "req/s",
            "bare waitress",
            rest["hello_waitress_req_s"],
            None,
            "",
        ),
    ]
    return rows


def table(rows: list[Row]) -> str:
    lines = []
    for figure, value, unit, base_name, base, target, sense in rows:
        if unit == "MiB" and sense == "<=":
            met = "met" if value <= base else "MISSED"
            lines.append([figure, f"{value:.1f} {unit}", "", "", f"<= {base:.0f} MiB", met])
            continue
        ratio = value / base if base else None
        goal = f"{sense} {target} x" if target is not None else ""
        met = "" if target is None or ratio is None else ("met" if ratio >= target else "MISSED")
        lines.append(
            [
                figure,
                f"{value:.2f} {unit}" if unit == "s" else f"{value:.0f} {unit}",
                f"{base_name} {base:.0f}" if base_name else "",
                f"{ratio:.2f} x" if ratio is not None else "",
                goal,
                met,
            ]
        )
    return tabulate(
        lines, headers=["figure", "measured", "baseline (same run)", "ratio", "target", ""]
    )


def main() -> None:
    if any(os.environ.get(k) != v for k, v in MALLOC.items()):
        # glibc reads these at start-up only: re-run with them (they double gRPC throughput).
        os.execve(
            sys.executable,
            [sys.executable, "-m", "bench.transfer", *sys.argv[1:]],
            {**os.environ, **MALLOC},
        )
    parser = argparse.ArgumentParser(
        prog="python -m bench.transfer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument(
        "--data-root",
        help="where the peers' data directories go (default /dev/shm: the protocol path "
        "without the shared disk; --disk: the system temp dir)",
    )
    parser.add_argument(
        "--disk",
        action="store_true",
        help="data on the disk: the upload is judged against k fsynced copies on it",
    )
    parser.add_argument(
        "--via",
        choices=("all", "grpc", "rest", "dav"),
        default="all",
        help="all: every figure with its target (default); grpc: a client beside the ring; "
        "rest: through one peer's REST API; dav: WebDAV PUT and GET against REST",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = args.size_mib * MIB
    root = args.data_root or (tempfile.gettempdir() if args.disk else "/dev/shm")
    if args.via == "all":
        rows = figures(size, args.peers, args.replicas, root, args.disk)
        if args.json:
            print(
                json.dumps(
                    [
                        dict(
                            zip(
                                (
                                    "figure",
                                    "value",
                                    "unit",
                                    "baseline",
                                    "baseline_value",
                                    "target",
                                    "sense",
                                ),
                                row,
                                strict=True,
                            )
                        )
                        for row in rows
                    ]
                )
            )
        else:
            print(f"{args.size_mib} MiB, {args.peers} peers, k = {args.replicas}, data in {root}")
            print(table(rows))
        return
    if args.via == "dav":
        result = measure_dav(size, args.peers, args.replicas, root, MALLOC)
        targets = "dav_put_ratio >= 0.8, dav_get_ratio >= 0.8 (each against REST, same run)"
    elif args.via == "rest":
        raw = max(raw_tcp_mb_s(min(size, 256 * MIB)) for _ in range(2))
        result = measure_rest(size, args.peers, args.replicas, root, raw, MALLOC)
        targets = (
            "rest_download_holder_vs_nginx >= 0.5, rest_download_other_vs_nginx >= 0.35, "
            "rest_upload_ratio >= 0.12, health_ratio >= 0.6"
        )
    else:
        result = measure(size, args.peers, args.replicas, root)
        targets = (
            "download_vs_verified_grpc >= 0.7, repair_ratio >= 0.2, "
            "peak RSS <= 150 MiB during a 1 GiB transfer"
        )
    if args.json:
        print(json.dumps(result))
    else:
        print(tabulate([[k, v] for k, v in result.items()], floatfmt=".2f"))
        print(f"\ntargets: {targets}")


if __name__ == "__main__":
    main()
