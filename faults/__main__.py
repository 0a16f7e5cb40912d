"""python -m faults SCENARIO [--peers 16 --replicas 3 --files 500 --seed S]

Runs one scenario (or ``all`` of them, or a comma-separated list) on a fresh ring of
real peer processes and prints one JSON line per scenario on stdout; progress goes to
stderr. ``--report FILE`` also writes the results as a Markdown table (make faults).
Exit status 1 if a scenario broke a promise (see faults.report.problems).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from faults.harness import Options
from faults.report import problems, write_report
from faults.scenarios import SCENARIOS, run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", help=f"all, or one or more of: {', '.join(SCENARIOS)}")
    defaults = Options()
    parser.add_argument("--peers", type=int, default=defaults.peers)
    parser.add_argument("--replicas", type=int, default=defaults.replicas)
    parser.add_argument("--files", type=int, default=defaults.files)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--stop-seconds", type=float, default=defaults.stop_seconds)
    parser.add_argument("--churn-seconds", type=float, default=defaults.churn_seconds)
    parser.add_argument("--churn-clients", type=int, default=defaults.churn_clients)
    parser.add_argument("--partition-seconds", type=float, default=defaults.partition_seconds)
    parser.add_argument("--abuse-seconds", type=float, default=defaults.abuse_seconds)
    parser.add_argument("--converge-timeout", type=float, default=defaults.converge_timeout)
    parser.add_argument("--repair-interval", type=float, default=defaults.repair_interval)
    parser.add_argument("--fault-rules", help="static fault rules for every peer (faults.py)")
    parser.add_argument("--workdir", type=Path, help="keep peers' data and logs here")
    parser.add_argument("--report", type=Path, help="write a Markdown report here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    results = []
    status = 0
    for name in names:
        options = Options(
            peers=args.peers,
            replicas=args.replicas,
            files=args.files,
            seed=args.seed,
            clients=args.clients,
            stop_seconds=args.stop_seconds,
            churn_seconds=args.churn_seconds,
            churn_clients=args.churn_clients,
            partition_seconds=args.partition_seconds,
            abuse_seconds=args.abuse_seconds,
            converge_timeout=args.converge_timeout,
            repair_interval=args.repair_interval,
            fault_rules=args.fault_rules,
            workdir=args.workdir / name if args.workdir else None,
            keep=args.workdir is not None,
        )
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            result = run(name, options)
        except Exception as exc:
            result = {"scenario": name, "seed": args.seed, "error": f"{type(exc).__name__}: {exc}"}
        wrong = problems(result)
        if wrong:
            result["problems"] = wrong
            status = 1
        print(json.dumps(result), flush=True)
        results.append(result)
        if args.report:
            write_report(args.report, results, argv)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
