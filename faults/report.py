"""What each scenario promises (``problems``) and the Markdown report (``make faults``
writes docs/reliability.md with it)."""

from __future__ import annotations

import datetime
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faults import abuse

COLUMNS = (
    "scenario",
    "peers",
    "replicas",
    "files_acked",
    "ok",
    "lost",
    "corrupt",
    "under_replicated",
    "rings_seen",
    "converge_s",
    "op_ok_rate",
    "p50_ms",
    "p99_ms",
    "max_op_ms",
)


def problems(result: dict[str, Any]) -> list[str]:
    """The promises this result breaks (empty: all kept)."""
    if "error" in result:
        return [f"error: {result['error']}"]
    return _data_problems(result) + _operation_problems(result) + _scenario_problems(result)


def _data_problems(result: dict[str, Any]) -> list[str]:
    """Acknowledged files lost or corrupt, the ring split or under-replicated at the end."""
    wrong = []
    if result["corrupt"]:
        wrong.append(f"{result['corrupt']} acknowledged files corrupt")
    if result["scenario"] == "kill3-adjacent":
        if not result.get("lost_as_predicted"):
            wrong.append(f"lost {result['lost']}, placement predicts {result['predicted_lost']}")
    elif result["lost"]:
        wrong.append(f"{result['lost']} acknowledged files lost")
    if result["rings_seen"] != 1:
        wrong.append(f"{result['rings_seen']} rings at the end")
    if result["under_replicated"]:
        wrong.append(f"{result['under_replicated']} files under-replicated at the end")
    if result["converge_s"] is None:
        wrong.append("did not converge")
    return wrong


def _operation_problems(result: dict[str, Any]) -> list[str]:
    """Client operations too slow, hung or failing more than the scenario allows."""
    name = result["scenario"]
    wrong = []
    if result["max_op_ms"] > result["op_budget_ms"]:
        wrong.append(f"an operation took {result['max_op_ms']} ms > {result['op_budget_ms']} ms")
    if result.get("hung_threads"):
        wrong.append(f"{result['hung_threads']} client threads hung")
    if name == "churn" and result["op_ok_rate"] < 0.99:
        wrong.append(f"only {result['op_ok_rate']:.2%} of operations succeeded")
    if name != "churn" and name != "sigstop" and result["op_ok_rate"] < 1.0:
        wrong.append(f"{result['op_ok_rate']:.2%} of operations succeeded, not all")
    return wrong


def _scenario_problems(result: dict[str, Any]) -> list[str]:
    """The promises particular to one scenario."""
    name = result["scenario"]
    wrong = []
    if name == "corrupt" and (result.get("served_damaged") or not result.get("repaired")):
        wrong.append(
            f"damaged bytes served {result.get('served_damaged')} times, "
            f"repaired: {result.get('repaired')}"
        )
    if name == "restart" and not (result.get("same_id") and result.get("rejoined")):
        wrong.append(f"same id {result.get('same_id')}, rejoined {result.get('rejoined')}")
    if name == "partition" and result.get("rings_during") != 2:
        wrong.append(f"{result.get('rings_during')} rings during the partition, expected 2")
    if name.startswith(abuse.SCENARIO_PREFIX):
        wrong += abuse.problems(result)
    return wrong


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join((*COLUMNS, "promises")) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for result in results:
        if "error" in result:
            cells = [result["scenario"], *["—"] * (len(COLUMNS) - 1), result["error"][:80]]
        else:
            broken = result.get("problems") or []
            cells = [_cell(result.get(c)) for c in COLUMNS]
            cells.append("kept" if not broken else "BROKEN: " + "; ".join(broken))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(path: Path, results: Sequence[dict[str, Any]], argv: Sequence[str]) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m faults " + " ".join(argv)
    intro = path.read_text(encoding="utf-8").split("<!-- results -->")[0] if path.exists() else ""
    body = (
        "<!-- results -->\n"
        f"## Last run\n\n{now} on {platform.node()} ({platform.machine()}, "
        f"{platform.python_version()}), command:\n\n```\n{command}\n```\n\n"
        + table(results)
        + "\n\nRaw results (one JSON object per scenario):\n\n```\n"
        + "\n".join(_json(r) for r in results)
        + "\n```\n"
    )
    path.write_text((intro or "# Reliability\n\n") + body, encoding="utf-8")


def _json(result: dict[str, Any]) -> str:
    import json

    return json.dumps(result)
