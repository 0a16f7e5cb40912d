"""``python -m devtools.sim`` in a subprocess: the same seed and parameters give the
same bytes, whatever the worker count and the string-hash seed of the process; a
different seed gives different output; the output formats; bad input is refused.

The runs are small and are started a few at a time up front (module fixture), so
the whole file costs a few seconds of wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from chord.sim import experiments as ex

# Runs python -m devtools.sim in subprocesses (about half a minute): make test runs it,
# make check (the fast layers) leaves it out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120  # seconds per run; each takes well under 5 s
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SMALL: dict[str, list[str]] = {
    "path-length": ["path-length", "--nodes", "8", "32", "--lookups", "5"],
    "failures": [
        "failures",
        "--nodes",
        "50",
        "--successors",
        "5",
        "--fractions",
        "0",
        "0.2",
        "0.4",
        "--lookups",
        "100",
    ],
    # The CLI has no option for the key count of the virtual-node rows (1,000,000 in
    # the API's default), so one --virtual value costs about 2 s: keep it to one.
    "load-balance": ["load-balance", "--nodes", "50", "--keys", "500", "1000", "--virtual", "1"],
    "churn": [
        "churn",
        "--nodes",
        "30",
        "--successors",
        "8",
        "--rates",
        "0.1",
        "0.3",
        "--lookups",
        "50",
        "--check-every",
        "10",
    ],
}
ROW_KEYS = {
    "path-length": ["nodes", "mean", "p1", "p99"],
    "failures": [
        "fail_fraction",
        "mean_path",
        "path_p1",
        "path_p99",
        "mean_timeouts",
        "timeouts_p1",
        "timeouts_p99",
        "failed",
        "lookups",
    ],
    "load-balance": ["keys", "virtual_nodes", "mean", "p1", "p99", "max"],
    "churn": ["rate", "mean_path", "path_p1", "path_p99", "mean_timeouts", "failed", "lookups"],
}
POOLED = ("path-length", "failures")  # the experiments that spread tasks over --workers
TABLES = ("path-length", "failures", "churn")


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: bytes
    stderr: str


def run_cli(args: Sequence[str], hash_seed: int = 0) -> Outcome:
    """One ``python -m devtools.sim`` run from the repository root. ``PYTHONHASHSEED``
    is set explicitly so that two runs can be made to differ in string hashing."""
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    done = subprocess.run(
        [sys.executable, "-m", "devtools.sim", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr.decode(errors="replace"))


def plan() -> dict[tuple[str, str], tuple[list[str], int]]:
    """(experiment, variant) -> (arguments, hash seed)."""
    runs: dict[tuple[str, str], tuple[list[str], int]] = {}
    for name, args in SMALL.items():
        base = [*args, "--json", "--quiet", "--seed", "1"]
        runs[name, "first"] = ([*base, "--workers", "1"], 0)
        runs[name, "again"] = ([*base, "--workers", "1"], 1)
        runs[name, "seed2"] = ([*args, "--json", "--quiet", "--seed", "2", "--workers", "1"], 0)
        if name in POOLED:
            runs[name, "workers2"] = ([*base, "--workers", "2"], 2)
        if name in TABLES:
            runs[name, "table"] = ([*args, "--quiet", "--seed", "1", "--workers", "1"], 0)
    return runs


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], Outcome]:
    runs = plan()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda item: run_cli(*item), runs.values())
        return dict(zip(runs, results, strict=True))


def ok(outcome: Outcome) -> bytes:
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stderr == ""  # --quiet: no progress lines
    return outcome.stdout


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("experiment", list(SMALL))
def test_same_seed_gives_identical_bytes(
    outcomes: dict[tuple[str, str], Outcome], experiment: str
) -> None:
    first = ok(outcomes[experiment, "first"])
    assert first.strip()
    assert ok(outcomes[experiment, "again"]) == first


@pytest.mark.parametrize("experiment", POOLED)
def test_worker_count_does_not_change_output(
    outcomes: dict[tuple[str, str], Outcome], experiment: str
) -> None:
    assert ok(outcomes[experiment, "workers2"]) == ok(outcomes[experiment, "first"])


@pytest.mark.parametrize("experiment", list(SMALL))
def test_different_seed_gives_different_output(
    outcomes: dict[tuple[str, str], Outcome], experiment: str
) -> None:
    one = json.loads(ok(outcomes[experiment, "first"]))
    two = json.loads(ok(outcomes[experiment, "seed2"]))
    assert (one["params"]["seed"], two["params"]["seed"]) == (1, 2)
    assert one["rows"] != two["rows"]


# --------------------------------------------------------------------- formats
@pytest.mark.parametrize("experiment", list(SMALL))
def test_json_output_shape(outcomes: dict[tuple[str, str], Outcome], experiment: str) -> None:
    stdout = ok(outcomes[experiment, "first"])
    assert stdout.count(b"\n") == 1  # one JSON object on one line
    decoded = json.loads(stdout)
    assert list(decoded) == ["experiment", "params", "rows"]
    assert decoded["experiment"] == experiment
    assert isinstance(decoded["params"], dict)
    assert decoded["rows"]
    assert all(list(row) == ROW_KEYS[experiment] for row in decoded["rows"])


@pytest.mark.parametrize("experiment", TABLES)
def test_table_output_has_header_with_row_keys(
    outcomes: dict[tuple[str, str], Outcome], experiment: str
) -> None:
    lines = ok(outcomes[experiment, "table"]).decode().splitlines()
    rows = json.loads(ok(outcomes[experiment, "first"]))["rows"]
    assert lines[0].split() == ROW_KEYS[experiment]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(rows)
    # The table shows the same numbers as the JSON.
    for line, row in zip(lines[2:], rows, strict=True):
        assert [float(cell) for cell in line.split()] == [float(v) for v in row.values()]


def test_cli_plot_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "out.png"
    outcome = run_cli([*SMALL["path-length"], "--quiet", "--workers", "1", "--plot", str(target)])
    ok(outcome)
    assert target.read_bytes().startswith(PNG_SIGNATURE)


# plot.py's load-balance inset is an add_axes that tight_layout cannot arrange: it
# warns (and leaves the inset where it was put). Harmless for the figure.
@pytest.mark.filterwarnings("ignore:This figure includes Axes that are not compatible")
@pytest.mark.parametrize("experiment", list(SMALL))
def test_plot_draws_every_experiment(tmp_path: Path, experiment: str) -> None:
    """Every branch of devtools.sim.plot, in process on small results (the CLI test above
    covers the --plot wiring)."""
    pytest.importorskip("matplotlib")
    from devtools.sim.plot import plot

    result = {
        "path-length": lambda: ex.path_length(sizes=[8, 16], lookups_per_node=5),
        "failures": lambda: ex.failures(nodes=30, successors=4, fractions=[0, 0.3], lookups=50),
        "load-balance": lambda: ex.load_balance(
            nodes=30, key_counts=[100, 200], virtual_nodes=[1, 2], virtual_keys=200
        ),
        "churn": lambda: ex.churn(nodes=30, successors=8, rates=[0.1, 0.2], lookups=20),
    }[experiment]()
    target = tmp_path / f"{experiment}.png"
    plot(result, str(target))
    assert target.read_bytes().startswith(PNG_SIGNATURE)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["path-length", "--nodes", "0"], "--nodes values must be positive"),
        (["failures", "--nodes", "0"], "--nodes values must be positive"),
        (["failures", "--nodes", "10", "20"], "one --nodes value"),
        (["churn", "--nodes", "10", "20"], "one --nodes value"),
        (["load-balance", "--keys", "0"], "--keys values must be positive"),
        (["failures", "--successors", "0"], "--successors must be at least 1"),
        (["no-such-experiment"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], message: str) -> None:
    outcome = run_cli([*args, "--quiet", "--workers", "1"])
    assert outcome.returncode == 2, outcome
    assert message in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.stdout == b""


@pytest.mark.parametrize(
    "args",
    [
        ["path-length", "--nodes", "8", "--lookups", "0"],
        ["path-length", "--nodes", "8", "--lookups", "-1"],
        ["failures", "--nodes", "20", "--fractions", "1.5", "--lookups", "10"],
        ["churn", "--nodes", "30", "--rates", "0", "--lookups", "10"],
    ],
)
def test_out_of_range_values_exit_2(args: list[str]) -> None:
    outcome = run_cli([*args, "--quiet", "--workers", "1"])
    assert outcome.returncode == 2, outcome
    assert "Traceback" not in outcome.stderr
