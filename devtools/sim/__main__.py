"""``python -m devtools.sim EXPERIMENT``: the Chord paper's experiments on the real core.

    python -m devtools.sim path-length                     # N = 2^3 .. 2^14
    python -m devtools.sim path-length --nodes 64 128 --json
    python -m devtools.sim failures --nodes 1000 --successors 20 --plot failures.png
    python -m devtools.sim load-balance
    python -m devtools.sim churn --rates 0.05 0.4 --lookups 2000
    python -m devtools.sim upkeep --nodes 1000 --backoffs 1 8 --rates 0 0.05
    python -m devtools.sim file-churn --nodes 12 --runs 5 --steps 400   # files, k = 3

Same seed and parameters, same output, byte for byte, whatever --workers is:
work is cut into fixed tasks that each seed their own random stream, and the
worker processes only decide where the tasks run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from tabulate import tabulate

from chord.sim import experiments as ex
from chord.sim.file_churn import file_churn
from chord.sim.upkeep import UPKEEP_BACKOFFS, UPKEEP_RATES, upkeep

T = TypeVar("T")
R = TypeVar("R")

EXPERIMENTS = ("path-length", "failures", "load-balance", "churn", "upkeep", "file-churn")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        metavar="N",
        help="peers (path-length: a list of sizes; default 2^3..2^14; failures and churn: "
        "1000; load-balance: 10000)",
    )
    parser.add_argument(
        "--successors",
        type=int,
        metavar="R",
        help="successor list length (default: 8 for path-length, else 20)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="write the main figure (matplotlib)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes to spread independent tasks over (default: CPU count)",
    )
    parser.add_argument(
        "--lookups",
        type=int,
        help="failures / churn: lookups per setting (default 10000); "
        "path-length: lookups per peer (default 100)",
    )
    parser.add_argument("--fractions", type=float, nargs="+", help="failures: fractions failing")
    parser.add_argument(
        "--rates", type=float, nargs="+", help="churn, upkeep: join and leave rates, 1/s"
    )
    parser.add_argument(
        "--backoffs", type=float, nargs="+", help="upkeep: maintenance backoff factors (1: fixed)"
    )
    parser.add_argument(
        "--duration", type=float, default=120.0, help="upkeep: simulated seconds per row"
    )
    parser.add_argument(
        "--check-every",
        type=float,
        default=100.0,
        help="churn: check Zave's invariants every this many simulated seconds",
    )
    parser.add_argument(
        "--graceful",
        action="store_true",
        help="churn: departing peers leave gracefully instead of failing",
    )
    parser.add_argument(
        "--one-hop",
        action="store_true",
        help="failures, churn: peers keep the one-hop membership table (chord.membership)",
    )
    parser.add_argument("--keys", type=int, nargs="+", help="load-balance: key counts")
    parser.add_argument(
        "--virtual-keys",
        type=int,
        default=1_000_000,
        help="load-balance: keys for the virtual-peer rows",
    )
    parser.add_argument(
        "--virtual", type=int, nargs="+", help="load-balance: virtual peers per real peer"
    )
    parser.add_argument(
        "--steps", type=int, default=400, help="file-churn: steps (one event + a round) per run"
    )
    parser.add_argument("--runs", type=int, default=5, help="file-churn: runs (seeds from --seed)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Reject what would crash, hang or silently mean something else (exit 2)."""
    for name in ("nodes", "keys", "virtual"):
        if any(v < 1 for v in getattr(args, name) or ()):
            parser.error(f"--{name} values must be positive")
    for name in ("successors", "workers", "lookups", "virtual_keys", "steps", "runs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if any(not 0 <= p < 1 for p in args.fractions or ()):
        parser.error("--fractions must lie in [0, 1): someone has to survive")
    lowest = 0 if args.experiment == "upkeep" else 1e-300  # upkeep: 0 is a quiet ring
    if any(not lowest <= r <= 100 for r in args.rates or ()):
        parser.error("--rates must be positive (per second, at most 100)")
    if any(not 1 <= b <= 1000 for b in args.backoffs or ()):
        parser.error("--backoffs must lie in 1..1000")
    if not 0 < args.duration <= 1e6:
        parser.error("--duration must be a positive number of seconds")
    if not 0 < args.check_every < float("inf"):
        parser.error("--check-every must be a positive number of seconds")


def single(values: Sequence[int] | None, default: int, parser: argparse.ArgumentParser) -> int:
    if values is None:
        return default
    if len(values) != 1:
        parser.error("this experiment takes one --nodes value")
    return values[0]


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ex.ExperimentResult:
    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    if args.experiment == "file-churn":  # files over the replication core, one process
        return file_churn(
            peers=single(args.nodes, 12, parser),
            seeds=args.runs,
            seed=args.seed,
            steps=args.steps,
            progress=progress,
        )
    workers = args.workers or multiprocessing.cpu_count()
    parallel = args.experiment in ("path-length", "failures")  # the ones made of tasks
    pool = multiprocessing.get_context("fork").Pool(workers) if parallel and workers > 1 else None

    def map_tasks(function: Callable[[T], R], tasks: Sequence[T]) -> Iterable[R]:
        if pool is None:
            return map(function, tasks)
        return pool.imap(function, tasks)

    try:
        return experiment(args, parser, progress, map_tasks)
    finally:
        if pool is not None:
            pool.close()
            pool.join()


def experiment(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    progress: Callable[[str], None],
    map_tasks: ex.MapTasks,
) -> ex.ExperimentResult:
    """Run the experiment the arguments name (file-churn is run before a pool exists)."""
    if args.experiment == "path-length":
        return ex.path_length(
            sizes=args.nodes or ex.PATH_LENGTH_SIZES,
            successors=args.successors or 8,
            seed=args.seed,
            lookups_per_node=100 if args.lookups is None else args.lookups,
            progress=progress,
            map_tasks=map_tasks,
        )
    if args.experiment == "failures":
        return ex.failures(
            nodes=single(args.nodes, 1000, parser),
            successors=args.successors or 20,
            seed=args.seed,
            fractions=args.fractions or ex.FAIL_FRACTIONS,
            lookups=10_000 if args.lookups is None else args.lookups,
            progress=progress,
            map_tasks=map_tasks,
            one_hop=args.one_hop,
        )
    if args.experiment == "load-balance":
        return ex.load_balance(
            nodes=single(args.nodes, 10_000, parser),
            seed=args.seed,
            key_counts=args.keys or ex.LOAD_KEYS,
            virtual_nodes=args.virtual or ex.VIRTUAL_NODES,
            virtual_keys=args.virtual_keys,
            progress=progress,
        )
    if args.experiment == "upkeep":
        return upkeep(
            nodes=single(args.nodes, 1000, parser),
            successors=args.successors or 8,
            seed=args.seed,
            backoffs=args.backoffs or UPKEEP_BACKOFFS,
            rates=UPKEEP_RATES if args.rates is None else args.rates,
            duration=args.duration,
            progress=progress,
        )
    return ex.churn(
        nodes=single(args.nodes, 1000, parser),
        successors=args.successors or 20,
        seed=args.seed,
        rates=args.rates or ex.CHURN_RATES,
        lookups=10_000 if args.lookups is None else args.lookups,
        check_every=args.check_every,
        graceful=args.graceful,
        progress=progress,
        one_hop=args.one_hop,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    try:
        result = run(args, parser)
    except ex.InvariantViolated as exc:
        print(f"python -m devtools.sim: invariant violated: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(result.to_json())
    else:
        rows = result.rows
        print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]) if rows else []))
    if args.plot:
        from devtools.sim.plot import plot

        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
