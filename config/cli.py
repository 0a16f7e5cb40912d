"""Command line of run_node.py: flags, the ancestor positional form, --local-ring."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config.settings import (
    ConfigError,
    Settings,
    check_node_mode,
    format_address,
    load_settings,
)

PROG = "run_node.py"

DESCRIPTION = """\
Start a Chord DHT peer: a gRPC server for the other peers and a REST API for clients.
Settings come from, highest precedence first: flags, CHORD_<SETTING> environment
variables (e.g. CHORD_PORT=7001), the YAML file given by --config or $CHORD_CONFIG,
and the defaults documented in config/default.yaml. In containers, NODE_MODE=master
(create a ring) or NODE_MODE=slave (join the seed CHORD_JOIN) states the intent and is
checked against the seed."""

EPILOG = """\
examples:
  run_node.py 127.0.0.1 7000                      create a ring at 127.0.0.1:7000
  run_node.py 127.0.0.1 8000 127.0.0.1 7000       join the ring through 127.0.0.1:7000
  run_node.py --port 8001 --join 127.0.0.1:7000   the same with flags
  run_node.py --host 0.0.0.0 --advertise-host 10.1.2.3 --port 7000
                                                  bind all interfaces, tell peers 10.1.2.3
  run_node.py --config config/peerSlave_config.yaml
  run_node.py --local-ring 4                      start 4 peers on this machine"""

# Flags whose value is passed to the loader as a string, so that every bad value is
# reported the same way (naming the setting) rather than by argparse.
_VALUE_FLAGS: dict[str, tuple[str, str]] = {
    "host": ("HOST", "address to bind gRPC and REST on (default 127.0.0.1)"),
    "port": ("PORT", "gRPC port (default 7000; 0: any free port, see --port-file)"),
    "join": ("HOST:PORT", "join the ring through this peer; omit to create a new ring"),
    "advertise_host": ("HOST", "address other peers are told (default: --host)"),
    "api_port": ("PORT", "REST API port (default: port + 10000; 0: any free port)"),
    "port_file": ("FILE", "write the bound ports here as JSON once listening"),
    "data_dir": ("DIR", "where the peer keeps its data (default data/<host>_<port>)"),
    "log_level": ("LEVEL", "debug, info, warning or error (default info)"),
    "bits": ("M", "identifier bits m, 1..160 (default 160)"),
    "successors": ("R", "successor list length r, 1..64 (default 8)"),
    "stabilize_interval": ("SECONDS", "period of stabilize (default 0.5)"),
    "fix_fingers_interval": ("SECONDS", "period of fix_fingers (default 0.5)"),
    "check_predecessor_interval": ("SECONDS", "period of check_predecessor (default 1.0)"),
    "maintenance_backoff": ("X", "intervals grow up to X times while nothing changes (default 8)"),
    "rpc_timeout": ("SECONDS", "deadline of every peer RPC (default 2.0)"),
    "join_timeout": ("SECONDS", "give up joining after this long (default 15.0)"),
    "max_workers": ("N", "gRPC server threads (default 16)"),
    "max_concurrent_rpcs": ("N", "concurrent RPCs before RESOURCE_EXHAUSTED (default 64)"),
    "replicas": ("K", "copies of every file, owner included (default 3, <= successors)"),
    "write_quorum": (
        "W",
        "holders that must store an upload before it is acknowledged (default K)",
    ),
    "quota_mib": ("MIB", "disk this peer may fill with files, in MiB (default unlimited)"),
    "repair_interval": ("SECONDS", "period of anti-entropy and migration rounds (default 5.0)"),
    "merge_interval": (
        "SECONDS",
        "period of the check for another ring to merge with, after a partition (default 5.0)",
    ),
    "api_token": ("TOKEN", "bearer token REST uploads and deletes need (default: none needed)"),
    "admin_token": (
        "TOKEN",
        "bearer token for POST /shutdown (default: generated into DATA_DIR/admin_token)",
    ),
    "max_upload_mib": ("MIB", "largest file a REST upload may carry, in MiB (default 10240)"),
    "webdav_macos_files": (
        "POLICY",
        "refuse|store macOS' ._* and .DS_Store files written over WebDAV (default refuse)",
    ),
    "fault_rules": (
        "RULES",
        "TESTING ONLY: inject delays/drops/failures into RPCs (JSON or compact rules; "
        "see devtools/fault_injection.py; default off)",
    ),
    "fault_rules_file": (
        "FILE",
        "TESTING ONLY: fault rules re-read whenever FILE changes (default off)",
    ),
    "ring_secret": (
        "SECRET",
        "secret every peer of the ring shares (16+ characters; prefer CHORD_RING_SECRET or "
        "--ring-secret-file: a flag shows in ps)",
    ),
    "ring_secret_file": ("FILE", "read the ring secret from FILE (a Docker/Kubernetes secret)"),
    "tls_cert": ("FILE", "mutual TLS: this peer's PEM certificate, signed by the ring CA"),
    "tls_key": ("FILE", "mutual TLS: the certificate's PEM private key"),
    "tls_ca": ("FILE", "mutual TLS: the ring CA's PEM certificate"),
    "max_transfers_per_client": (
        "N",
        "concurrent REST uploads and downloads per client IP (default 8)",
    ),
    "rate_limit_per_minute": (
        "N",
        "uploads, deletes and shutdowns per client IP and minute (default 120)",
    ),
    "transfer_workers": ("N", "gRPC threads for file streams, apart from Chord's (default 48)"),
    "stream_idle_timeout": ("SECONDS", "cut a gRPC stream moving no message (default 30)"),
    "http_connections": ("N", "REST connections open at once (default 1024)"),
    "http_connections_per_ip": ("N", "REST connections open at once per client IP (default 64)"),
    "http_idle_timeout": ("SECONDS", "close a REST connection idle this long (default 15)"),
    "http_header_timeout": ("SECONDS", "time to send a whole request head (default 10)"),
    "http_body_timeout": ("SECONDS", "most time between request body bytes (default 20)"),
    "http_send_timeout": ("SECONDS", "cut a client taking no response byte (default 30)"),
    "http_workers": ("N", "threads for small REST requests (default 8)"),
    "http_transfer_workers": ("N", "threads for REST uploads and downloads (default 32)"),
}

LOCAL_RING_MAX = 64


@dataclass(frozen=True)
class CliOptions:
    settings: Settings
    local_ring: int | None  # --local-ring N: launch N peers on this machine


def _local_ring_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= LOCAL_RING_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in 1..{LOCAL_RING_MAX}, got {text!r}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [HOST PORT [SEED_HOST SEED_PORT]] [options]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "address",
        nargs="*",
        metavar="HOST PORT [SEED_HOST SEED_PORT]",  # shown in --help only
        help="positional form: this peer's host and port, then optionally a seed to join",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML settings file")
    for name, (metavar, text) in _VALUE_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, metavar=metavar, help=text)
    parser.add_argument(
        "--menu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="interactive console menu when stdin is a terminal (default on)",
    )
    parser.add_argument(
        "--one-hop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the whole membership and route lookups straight to the owner "
        "(default on; --no-one-hop: fingers and successor lists only)",
    )
    parser.add_argument(
        "--webdav",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve the ring over WebDAV at http://HOST:API_PORT/dav/ (default on)",
    )
    parser.add_argument(
        "--insecure",
        action="store_const",
        const=True,
        default=None,
        help="allow binding a non-loopback address without a ring secret or mutual TLS "
        "(an open ring anyone who reaches the port can join)",
    )
    parser.add_argument(
        "--local-ring",
        type=_local_ring_count,
        metavar="N",
        help=f"start N (1..{LOCAL_RING_MAX}) peers on this machine; ignores host/port/join",
    )
    return parser


def _positional_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fold the ancestor form `HOST PORT [SEED_HOST SEED_PORT]` into the flag values."""
    words: list[str] = args.address
    if len(words) not in (0, 2, 4):
        parser.error(
            f"expected HOST PORT or HOST PORT SEED_HOST SEED_PORT, got {len(words)} "
            f"positional argument{'s' if len(words) != 1 else ''}: {' '.join(words)}"
        )
    if not words:
        return
    given = {"host": words[0], "port": words[1]}
    if len(words) == 4:
        given["join"] = format_address(words[2], words[3])
    for name, value in given.items():
        flag = getattr(args, name)
        if flag is not None and flag.strip() != value.strip():
            parser.error(
                f"--{name} {flag} contradicts the positional {name} {value}; give one of them"
            )
        setattr(args, name, value)


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> CliOptions:
    """Parse `argv` (without the program name). Bad input exits with status 2."""
    parser = build_parser()
    args = parser.parse_intermixed_args(list(argv))
    _positional_overrides(parser, args)
    overrides: dict[str, object] = {name: getattr(args, name) for name in _VALUE_FLAGS}
    overrides["menu"] = args.menu
    overrides["insecure"] = args.insecure
    overrides["one_hop"] = args.one_hop
    overrides["webdav"] = args.webdav
    if args.local_ring is not None:
        # The launcher picks each peer's address and has them join one another, so a
        # join from the environment or the file must not get in the way ('' means None).
        overrides["join"] = ""
    try:
        settings = load_settings(overrides, args.config, environ)
        if args.local_ring is None:
            settings = check_node_mode(settings, environ)
    except ConfigError as err:
        # Like parser.error() but without the long usage text: the message names the
        # setting, which is all the user needs.
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    return CliOptions(settings=settings, local_ring=args.local_ring)
