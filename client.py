#!/usr/bin/env python3
"""Command-line client: talks to any peer's REST API.

    python client.py --node 127.0.0.1:17000 status
    python client.py --node 127.0.0.1:17000 ring          # walk the ring in order
    python client.py --node 127.0.0.1:17000 fingers
    python client.py --node 127.0.0.1:17000 lookup report.pdf
    python client.py --node 127.0.0.1:17000 lookup --key 3857b672471862eab426eba0622e44bd2cedbd5d

Exit codes: 0 ok, 1 the peer answered with an error or could not be reached, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tabulate import tabulate

DEFAULT_NODE = os.environ.get("CHORD_NODE", "127.0.0.1:17000")


class ClientError(Exception):
    pass


def short(node: dict[str, str] | None) -> list[str]:
    if not node:
        return ["-", "(unknown)", "-"]
    return [node["id"][:8], node["address"], f"http://{node['api']}" if node.get("api") else "-"]


def get(api: str, path: str, timeout: float) -> Any:
    url = f"http://{api}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
            detail = f"{body.get('error')}: {body.get('detail')}"
        except ValueError:
            detail = exc.reason
        raise ClientError(f"{url} answered {exc.code} ({detail})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach the peer at {api}: {reason}") from None
    except ValueError:
        raise ClientError(f"{url} did not answer with JSON: is {api} a peer's REST port?") from None


def cmd_status(args: argparse.Namespace) -> None:
    successor = get(args.node, "/get_successor", args.timeout)
    predecessor = get(args.node, "/get_predecessor", args.timeout)
    rows = [
        ["this peer", *short(successor["node"])],
        ["predecessor", *short(predecessor["predecessor"])],
        *[[f"successor {i}", *short(s)] for i, s in enumerate(successor["successors"], 1)],
    ]
    print(tabulate(rows, headers=["", "id", "gRPC address", "REST URL"]))


def cmd_ring(args: argparse.Namespace) -> None:
    """Follow successor pointers from the given peer until back at the start."""
    start = get(args.node, "/get_successor", args.timeout)
    rows: list[list[object]] = []
    seen: set[str] = set()
    current = start
    while current["node"]["id"] not in seen and len(rows) < args.limit:
        seen.add(current["node"]["id"])
        rows.append([len(rows) + 1, *short(current["node"])])
        api = current["successor"]["api"]
        if current["successor"]["id"] in seen:
            break
        current = get(api, "/get_successor", args.timeout)
    print(tabulate(rows, headers=["#", "id", "gRPC address", "REST URL"]))
    print(f"\n{len(rows)} peers")


def cmd_fingers(args: argparse.Namespace) -> None:
    table = get(args.node, "/finger_table", args.timeout)
    rows, previous = [], None
    for finger in table["fingers"]:
        node_id = finger["node"]["id"] if finger["node"] else None
        if args.all or node_id != previous:
            rows.append([finger["index"], finger["start"][:8], *short(finger["node"])[:2]])
        previous = node_id
    print(tabulate(rows, headers=["index", "start", "node", "gRPC address"]))
    if not args.all:
        print("\n(consecutive fingers with the same node are folded; --all shows every entry)")


def cmd_lookup(args: argparse.Namespace) -> None:
    if (args.name is None) == (args.key is None):
        raise ClientError("give a file name or --key (40 hex digits), not both")
    query = {"key": args.key} if args.key else {"name": args.name}
    found = get(args.node, "/lookup?" + urllib.parse.urlencode(query), args.timeout)
    rows = [["key", found["key"]], ["owner", " ".join(short(found["owner"])[:2])],
            ["replicas", ", ".join(s["address"] for s in found["successors"][1:]) or "-"],
            ["hops", found["hops"]], ["timeouts", found["timeouts"]]]  # fmt: skip
    print(tabulate(rows, tablefmt="plain"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="client.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--node",
        default=DEFAULT_NODE,
        help="REST address host:port of any peer (default %(default)s, env CHORD_NODE)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="this peer, its predecessor and successors").set_defaults(
        run=cmd_status
    )
    ring = commands.add_parser("ring", help="walk the whole ring in order")
    ring.add_argument("--limit", type=int, default=10000, help="stop after this many peers")
    ring.set_defaults(run=cmd_ring)
    fingers = commands.add_parser("fingers", help="the peer's finger table")
    fingers.add_argument("--all", action="store_true", help="show all m entries")
    fingers.set_defaults(run=cmd_fingers)
    lookup = commands.add_parser("lookup", help="which peer owns a file name or key")
    lookup.add_argument("name", nargs="?")
    lookup.add_argument("--key")
    lookup.set_defaults(run=cmd_lookup)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ClientError as exc:
        print(f"client.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
