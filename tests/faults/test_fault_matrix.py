"""The fault scenarios at a small scale (6-8 peers, ~60 files): real peer processes,
real faults, every acknowledged upload classified. ``python -m faults`` runs them at
the issue's scale (make faults); docs/reliability.md has the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faults.harness import Options
from faults.report import problems
from faults.scenarios import run

pytestmark = pytest.mark.integration


def small(tmp_path: Path, seed: int, **changes: Any) -> Options:
    options = Options(
        peers=8,
        replicas=3,
        files=60,
        seed=seed,
        clients=4,
        repair_interval=0.5,
        converge_timeout=60,
        workdir=tmp_path / "faults",
    )
    for key, value in changes.items():
        setattr(options, key, value)
    return options


def check(result: dict[str, Any]) -> None:
    print(json.dumps(result))
    assert not problems(result), (problems(result), result)
    assert result["corrupt"] == 0 and result["rings_seen"] == 1, result
    assert result["files_acked"] > 0, result


@pytest.mark.parametrize("scenario", ["baseline", "kill1", "kill2-adjacent", "restart", "leave4"])
def test_nothing_acknowledged_is_lost(tmp_path: Path, seed: int, scenario: str) -> None:
    result = run(scenario, small(tmp_path, seed))
    check(result)
    assert result["lost"] == 0 and result["ok"] == result["files_acked"], result
    if scenario == "restart":
        assert result["same_id"] and result["rejoined"], result


def test_three_adjacent_kills_lose_exactly_what_placement_predicts(
    tmp_path: Path, seed: int
) -> None:
    result = run("kill3-adjacent", small(tmp_path, seed))
    check(result)
    assert result["lost"] == result["predicted_lost"] and result["lost_as_predicted"], result


def test_a_flipped_byte_is_never_served_and_is_repaired(tmp_path: Path, seed: int) -> None:
    result = run("corrupt", small(tmp_path, seed))
    check(result)
    assert result["served_damaged"] == 0 and result["repaired"] and result["lost"] == 0, result


def test_sigstop_under_load_bounded_waits(tmp_path: Path, seed: int) -> None:
    result = run("sigstop", small(tmp_path, seed, stop_seconds=6.0))
    check(result)
    assert result["lost"] == 0 and not result.get("hung_threads"), result
    assert result["max_op_ms"] <= result["op_budget_ms"], result


def test_short_churn(tmp_path: Path, seed: int) -> None:
    result = run("churn", small(tmp_path, seed, churn_seconds=16.0, churn_clients=4, files=80))
    check(result)
    assert result["lost"] == 0 and result["op_ok_rate"] >= 0.99, result


def test_partition_heals_into_one_ring(tmp_path: Path, seed: int) -> None:
    result = run(
        "partition", small(tmp_path, seed, peers=6, partition_seconds=6.0, converge_timeout=15)
    )
    print(json.dumps(result))
    assert result["rings_during"] == 2, result
    check(result)
    assert result["lost"] == 0, result
