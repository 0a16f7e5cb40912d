#!/usr/bin/env python3
"""Command-line client: talks to any peer's REST API (docs/rest-api.md).

    python client.py --node 127.0.0.1:17000 upload report.pdf --name docs/report.pdf
    python client.py download docs/report.pdf ~/Downloads/ --parallel 3
    python client.py search docs/report.pdf
    python client.py ls --all                       # every file in the ring
    python client.py ring                           # every peer, in ring order
    python client.py rm docs/report.pdf
    python client.py --json finger-table            # JSON instead of tables, for scripts
    python client.py --token "$(cat data/admin_token)" shutdown
    python client.py mount ~/ring                   # the ring as a folder (FUSE), Ctrl-C ends

Global options may also follow the command (``client.py ls --json``). The token comes from
--token or the environment variable CHORD_TOKEN and is sent as ``Authorization: Bearer``.
An interrupted download resumes when run again; the file's SHA-256 is always verified
before it is renamed into place. Names are checked by the rules every peer applies before
anything is sent. A 429 (over the peer's rate or transfer limit) is retried after its
Retry-After, at most 5 times, with a line on stderr each time.

Exit codes: 0 ok; 1 not found, the peer failed or could not be reached, or a local file
problem; 2 bad usage (a file name the ring refuses included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from chord.names import name_problem
from clientlib import progress
from clientlib.download import download
from clientlib.mount import mount
from clientlib.peer import Address, ClientError, HttpError, PeerApi, parse_address
from clientlib.ringmap import RingMap
from clientlib.upload import upload

DEFAULT_NODE = os.environ.get("CHORD_NODE", "127.0.0.1:17000")


# ------------------------------------------------------------------------------- rendering
def emit(args: argparse.Namespace, data: Any, table: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON with --json, else as the table ``table`` renders."""
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else table(data))


def short_id(ref: dict[str, Any] | None) -> str:
    return str(ref["id"])[:8] if ref else "-"


def ref_cells(ref: dict[str, Any] | None) -> list[str]:
    if not ref:
        return ["-", "(unknown)", "-"]
    return [short_id(ref), str(ref.get("address") or "-"), str(ref.get("api") or "-")]


def human_size(size: Any) -> str:
    if not isinstance(size, int):
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def when(stamp: Any) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``."""
    if not isinstance(stamp, int | float):
        return "-" if stamp is None else str(stamp)
    return datetime.fromtimestamp(stamp).isoformat(" ", "seconds")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def pairs(rows: Sequence[tuple[str, Any]]) -> str:
    cells = [[key, "-" if value is None else value] for key, value in rows]
    return tabulate(cells, tablefmt="plain")


def addresses(refs: Sequence[dict[str, Any]] | None) -> str:
    return ", ".join(str(ref.get("address")) for ref in refs or []) or "-"


# -------------------------------------------------------------------------------- commands
def api_of(args: argparse.Namespace) -> PeerApi:
    return PeerApi(args.node, args.token or None, args.timeout, notify=say)


def say(message: str) -> None:
    """A one-line notice on stderr (a 429 being retried), apart from the output."""
    print(f"client.py: {message}", file=sys.stderr, flush=True)


def ring_name(name: str, what: str = "file name") -> str:
    """``name`` if the ring accepts it (the rules every peer applies, chord.names), else a
    usage error saying which character and why: nothing is sent."""
    problem = name_problem(name)
    if problem is not None:
        raise UsageError(f"invalid {what} {name!r}: {problem}")
    return name


def cmd_health(args: argparse.Namespace) -> int:
    conn, response = api_of(args).send("GET", "/health")
    try:
        body = json.loads(response.read() or b"null")
    except (OSError, ValueError):
        body = None
    finally:
        conn.close()
    if not isinstance(body, dict):
        raise ClientError(f"{args.node}/health did not answer with JSON: is it a peer?")
    rows = [("status", body.get("status")), ("node", " ".join(ref_cells(body.get("node"))))]
    emit(args, body, lambda b: pairs(rows + ([("detail", b["detail"])] if b.get("detail") else [])))
    return 0 if response.status == 200 else 1


def cmd_status(args: argparse.Namespace) -> int:
    api = api_of(args)
    data = {
        "status": api.get("/status"),
        "predecessor": api.get("/get_predecessor")["predecessor"],
        "successors": api.get("/get_successor")["successors"],
    }

    def table(d: dict[str, Any]) -> str:
        s = d["status"]
        storage, files = s.get("storage") or {}, s.get("files") or {}
        quota = storage.get("quota_bytes")
        summary = pairs(
            [
                ("node", " ".join(ref_cells(s.get("node")))),
                ("joined", s.get("joined")),
                ("uptime", f"{s.get('uptime_s', 0):.0f} s"),
                (
                    "storage",
                    f"{human_size(storage.get('used_bytes'))} of "
                    f"{human_size(quota) if quota is not None else 'unlimited'}",
                ),
                ("files", f"{files.get('primary', 0)} primary, {files.get('replica', 0)} replica"),
                ("degraded", s.get("degraded")),
                ("active transfers", s.get("active_transfers")),
                ("replicas (k)", s.get("replicas")),
                ("version", s.get("version")),
            ]
        )
        rows = [["predecessor", *ref_cells(d["predecessor"])]]
        rows += [[f"successor {i}", *ref_cells(r)] for i, r in enumerate(d["successors"], 1)]
        return summary + "\n\n" + tabulate(rows, headers=["", "id", "gRPC address", "REST"])

    emit(args, data, table)
    return 0


def cmd_ring(args: argparse.Namespace) -> int:
    def table(d: dict[str, Any]) -> str:
        rows = [
            [
                i,
                *ref_cells(p),
                (p.get("files") or {}).get("primary", "-"),
                (p.get("files") or {}).get("replica", "-"),
                "yes" if p.get("reachable") else "NO",
            ]
            for i, p in enumerate(d["peers"], 1)
        ]
        headers = ["#", "id", "gRPC address", "REST", "primary", "replica", "reachable"]
        return tabulate(rows, headers=headers) + f"\n\n{count(d.get('count', len(rows)), 'peer')}"

    emit(args, api_of(args).get("/ring"), table)
    return 0


def cmd_fingers(args: argparse.Namespace) -> int:
    def table(d: dict[str, Any]) -> str:
        rows, previous = [], None
        for finger in d["fingers"]:
            node_id = finger["node"]["id"] if finger["node"] else None
            if args.every or node_id != previous:
                rows.append([finger["index"], finger["start"][:8], *ref_cells(finger["node"])[:2]])
            previous = node_id
        text = tabulate(rows, headers=["index", "start", "node", "gRPC address"])
        if not args.every:
            text += "\n\n(consecutive fingers with the same node are folded; --all shows all)"
        return text

    emit(args, api_of(args).get("/finger_table"), table)
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.key is None):
        raise UsageError("lookup: give a file name or --key (40 hex digits), not both")
    query = {"key": args.key} if args.key else {"name": args.name}
    found = api_of(args).call("GET", "/lookup", query)
    emit(
        args,
        found,
        lambda f: pairs(
            [
                ("key", f["key"]),
                ("owner", " ".join(ref_cells(f["owner"])[:2])),
                ("replicas", addresses(f["successors"][1:])),
                ("hops", f["hops"]),
                ("timeouts", f["timeouts"]),
            ]
        ),
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    found = api_of(args).call("GET", "/search_file", {"name": ring_name(args.name)})
    emit(
        args,
        found,
        lambda f: pairs(
            [
                ("name", f.get("name")),
                ("found", "yes" if f.get("found") else "no"),
                ("key", f.get("key")),
                ("size", human_size(f.get("size"))),
                ("sha256", f.get("sha256")),
                ("version", f.get("version")),
                ("owner", " ".join(ref_cells(f.get("owner"))[:2])),
                ("replicas", addresses(f.get("replicas"))),
                ("hops", f.get("hops")),
            ]
        ),
    )
    if not found.get("found"):
        print(f"client.py: {args.name!r} not found in the ring", file=sys.stderr)
        return 1
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    api = api_of(args)
    if args.every:
        data = api.call("GET", "/show_files", {"scope": "ring"})
        headers = ["name", "size", "version", "owner", "copies", "sha256"]
        rows = [
            [
                f["name"],
                human_size(f.get("size")),
                f.get("version"),
                (f.get("owner") or {}).get("address", "-"),
                f.get("copies"),
                str(f.get("sha256") or "")[:12],
            ]
            for f in data["files"]
        ]
        footer = f"\n\n{count(len(rows), 'file')} on {count(data.get('peers', 0), 'peer')}"
    else:
        data = api.get("/show_files")
        headers = ["name", "size", "version", "role", "damaged", "sha256", "created"]
        rows = [
            [
                f["name"],
                human_size(f.get("size")),
                f.get("version"),
                f.get("role"),
                "DAMAGED" if f.get("damaged") else "",
                str(f.get("sha256") or "")[:12],
                when(f.get("created")),
            ]
            for f in data["files"]
        ]
        footer = f"\n\n{count(len(rows), 'file')} on {short_id(data.get('node'))}"
    emit(args, data, lambda _: tabulate(rows, headers=headers) + footer)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    gone = api_of(args).call("DELETE", "/delete_file", {"name": ring_name(args.name)})
    emit(args, gone, lambda g: f"deleted {g['name']} (version {g.get('version')})")
    return 0


def cmd_degraded(args: argparse.Namespace) -> int:
    data = api_of(args).get("/degraded_files")
    rows = [[f["name"], f.get("version"), f.get("copies"), f.get("wanted")] for f in data["files"]]
    emit(args, data, lambda _: tabulate(rows, headers=["name", "version", "copies", "wanted"]))
    return 0


def cmd_shutdown(args: argparse.Namespace) -> int:
    answer = api_of(args).call("POST", "/shutdown", ok=(200, 202))
    emit(args, answer, lambda a: f"{short_id(a.get('node'))} is {a.get('status', 'leaving')}")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    if args.name is not None:
        name = ring_name(args.name)
    else:
        name = ring_name(args.path.name, "file name (from the local file's; give --name)")
    stored = upload(
        api_of(args), args.path, name, args.replicas, args.overwrite, progress.wanted(args.progress)
    )
    emit(
        args,
        stored,
        lambda s: pairs(
            [
                ("name", s.get("name")),
                ("key", s.get("key")),
                ("size", human_size(s.get("size"))),
                ("sha256", s.get("sha256")),
                ("version", s.get("version")),
                ("holders", addresses(s.get("holders"))),
                ("hops", s.get("hops")),
            ]
        ),
    )
    return 0


def owner_api(api: PeerApi, name: str) -> PeerApi:
    """The peer that owns ``name``, from the given peer's view of the membership
    (``GET /members``): the download then goes straight to it, which serves a small
    file from its own storage. Only when the given address is one the ring itself
    advertises (not a proxy or a forwarded port, which the ring's own addresses may
    not reach); on any trouble, the given peer."""
    try:
        view = api.get("/members")
        if str(api.address) not in {str(peer.get("api")) for peer in view["peers"]}:
            return api
        return api.at(parse_address(RingMap.from_ring(view).holders(name, 1)[0]))
    except (ClientError, ValueError, KeyError, TypeError):
        return api


def cmd_download(args: argparse.Namespace) -> int:
    name = ring_name(args.name)
    result = download(
        owner_api(api_of(args), name),
        name,
        args.dest,
        args.parallel,
        args.force,
        progress.wanted(args.progress),
    )
    resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
    emit(
        args,
        vars(result),
        lambda r: f"saved {r['path']} ({human_size(r['size'])}, sha256 verified{resumed})",
    )
    return 0


def cmd_mount(args: argparse.Namespace) -> int:
    return mount(api_of(args), args.mountpoint, not args.no_clobber, args.cache_mib)


# ---------------------------------------------------------------------------------- parser
class UsageError(Exception):
    """Arguments argparse accepted but the command cannot use; exit 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def node_address(text: str) -> Address:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_global_options(parser: argparse.ArgumentParser, in_command: bool) -> None:
    """On the main parser with defaults; again on every command without (so they may come
    after the command and an absent one keeps the main parser's value)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if in_command else value

    parser.add_argument(
        "--node",
        type=node_address,
        default=default(DEFAULT_NODE),
        help=f"REST address HOST:PORT of any peer (env CHORD_NODE, default {DEFAULT_NODE})",
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get("CHORD_TOKEN")),
        help="bearer token (env CHORD_TOKEN); the admin token for shutdown",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=default(10.0),
        help="seconds to wait on the network per step (default 10)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON instead of tables"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        default=default(False),
        help="show transfer progress bars even when stderr is not a terminal",
    )


Command = Callable[[argparse.Namespace], int]


def add_command(
    commands: Any, name: str, run: Command, help_text: str, aliases: Sequence[str] = ()
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text, aliases=list(aliases)
    )
    add_global_options(parser, in_command=True)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="client.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_global_options(parser, in_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = add_command(commands, "upload", cmd_upload, "store a local file in the ring")
    up.add_argument("path", type=Path, help="the local file")
    up.add_argument("--name", help="name in the ring (default: the file's name)")
    up.add_argument("--replicas", type=positive_int, help="copies to keep (default: the ring's)")
    up.add_argument("--overwrite", action="store_true", help="replace a file of the same name")

    down = add_command(commands, "download", cmd_download, "fetch a file, verified and resumable")
    down.add_argument("name", help="the file's name in the ring")
    down.add_argument(
        "dest",
        nargs="?",  # a str: Path() would drop the trailing '/' that demands a directory
        help="file or directory to save to (default: ./<last part of name>); DIR/ must "
        "be an existing directory",
    )
    down.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        metavar="N",
        help="fetch byte ranges from the holders over N connections at once",
    )
    down.add_argument("--force", action="store_true", help="replace an existing destination")

    find = add_command(commands, "search", cmd_search, "where a file is stored (exit 1: absent)")
    find.add_argument("name")
    ls = add_command(commands, "ls", cmd_ls, "files on this peer (--all: in the whole ring)")
    ls.add_argument("--all", dest="every", action="store_true", help="every file in the ring")
    add_command(commands, "ring", cmd_ring, "every peer in ring order with its file counts")
    rm = add_command(commands, "rm", cmd_rm, "delete a file from the ring")
    rm.add_argument("name")
    fingers = add_command(
        commands, "finger-table", cmd_fingers, "the peer's finger table", aliases=["fingers"]
    )
    fingers.add_argument("--all", dest="every", action="store_true", help="all m entries")
    add_command(commands, "health", cmd_health, "is the peer serving (exit 1 if not)")
    add_command(commands, "status", cmd_status, "storage, files, neighbours of the peer")
    add_command(commands, "degraded", cmd_degraded, "files with fewer copies than wanted")
    add_command(commands, "shutdown", cmd_shutdown, "make the peer leave (admin token)")
    mnt = add_command(
        commands, "mount", cmd_mount, "the ring as a folder (FUSE) until Ctrl-C or fusermount3 -u"
    )
    mnt.add_argument("mountpoint", type=Path, help="an existing directory to mount on")
    clobbering = mnt.add_mutually_exclusive_group()
    clobbering.add_argument(
        "--no-clobber",
        action="store_true",
        help="never replace an existing file: writing over one, or "
        "renaming onto one, is EEXIST (default: replaced)",
    )
    clobbering.add_argument(
        "--overwrite", action="store_true", help="the default, accepted so older command lines work"
    )
    mnt.add_argument(
        "--cache-mib",
        type=positive_int,
        default=256,
        metavar="N",
        help="local cache of file blocks, in MiB (default 256)",
    )
    lookup = add_command(commands, "lookup", cmd_lookup, "which peer owns a name or key")
    lookup.add_argument("name", nargs="?")
    lookup.add_argument("--key", help="a 40-hex-digit key instead of a name")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
        return code
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except HttpError as exc:
        print(f"client.py: error: {exc}", file=sys.stderr)
    except ClientError as exc:
        print(f"client.py: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nclient.py: interrupted (a download resumes when run again)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # quiet exit flush
    except Exception as exc:  # no tracebacks, ever: one line, and CHORD_DEBUG=1 to see more
        if os.environ.get("CHORD_DEBUG"):
            raise
        print(f"client.py: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
