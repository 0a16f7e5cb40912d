"""``run_node.py --local-ring N`` (what ``make run`` starts): N peers on this machine."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from types import FrameType

from tabulate import tabulate

from config.settings import API_PORT_OFFSET, ConfigError, Settings
from devtools.launcher import LocalRing, PeerProcess, free_port, port_is_free, wait_for
from services.rpc.security import RingSecurity, SecurityError


def choose_ports(host: str, first: int, count: int) -> list[int]:
    """first, first+1, ... when they (and their REST twins) are free; else any free ones."""
    ports: list[int] = []
    candidate = first
    while len(ports) < count and candidate + API_PORT_OFFSET <= 65535 and candidate < first + 100:
        if port_is_free(host, candidate) and port_is_free(host, candidate + API_PORT_OFFSET):
            ports.append(candidate)
        candidate += 1
    while len(ports) < count:
        ports.append(free_port(host, avoid=ports))
    return ports


def print_table(peers: list[PeerProcess]) -> None:
    rows = sorted(
        ([p.short_id, p.address, p.api_url, str(p.log_path)] for p in peers),
        key=lambda row: row[0],
    )
    print(tabulate(rows, headers=["peer", "gRPC address", "REST URL", "log"]), flush=True)


def run_local_ring(count: int, settings: Settings) -> int:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    workdir = Path(settings.data_dir or "data/local-ring")
    try:
        security = RingSecurity.from_settings(settings)
    except (SecurityError, ConfigError) as exc:
        print(f"run_node.py: error: {exc}", file=sys.stderr)
        return 1
    # The peers inherit the environment; a secret or TLS given as a flag or in a file
    # reaches them the same way (never on their command lines, which ps shows).
    env = {
        f"CHORD_{name.upper()}": value
        for name in ("tls_cert", "tls_key", "tls_ca")
        if (value := getattr(settings, name)) is not None
    }
    if security.secret is not None:
        env["CHORD_RING_SECRET"] = security.secret
        env["CHORD_RING_SECRET_FILE"] = ""  # '' is "not set": one of the two, not both
    ring = LocalRing(
        workdir,
        bits=settings.bits,
        successors=settings.successors,
        extra_args=("--log-level", settings.log_level),
        env=env,
        security=security,
    )
    stop = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        ports = choose_ports(host, settings.port, count)
        print(f"Starting a local ring of {count} peers on {host} ...", flush=True)
        first = ring.start_peer(host, ports[0])
        for port in ports[1:]:
            ring.start_peer(host, port, join=first.address)
        ring.wait_ideal(timeout=60)
        print_table(ring.peers)
        print(
            f"\nThe ring is ready. Open {first.api_url}/ for the dashboard, or try:\n"
            f"  curl {first.api_url}/finger_table\n"
            f"  .venv/bin/python client.py --node {first.host}:{first.api_port} upload README.md\n"
            f"  .venv/bin/python client.py --node {first.host}:{first.api_port} ls --all"
        )
        if settings.webdav:
            print(f"Or mount it as a network drive (WebDAV, docs/webdav.md): {first.api_url}/dav/")
        print("Press Ctrl-C to stop: every peer leaves the ring gracefully.", flush=True)
        while not stop:
            dead = [p for p in ring.peers if not p.running()]
            if dead:
                print(
                    f"peer {dead[0].address} exited unexpectedly:\n{dead[0].log_tail()}",
                    file=sys.stderr,
                )
                return 1
            wait_for(lambda: stop, timeout=1.0, interval=0.2)
    except (RuntimeError, TimeoutError) as exc:
        print(f"run_node.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nStopping: peers leave one by one ...", flush=True)
        for peer in reversed(ring.live()):
            with contextlib.suppress(Exception):
                code = ring.terminate(peer)
                print(f"  {peer.short_id} {peer.address} left (exit {code})", flush=True)
        ring.close()
    return 0
