"""The seeded file experiment: deterministic, nothing acknowledged is lost, and every
file ends on exactly its k holders."""

from __future__ import annotations

import contextlib
import io
import json

from chord.sim.file_churn import FileRing, file_churn
from devtools.sim.__main__ import main


def test_same_seed_same_rows_and_nothing_lost() -> None:
    first = file_churn(peers=8, seeds=2, steps=120)
    again = file_churn(peers=8, seeds=2, steps=120)
    assert first.rows == again.rows
    for row in first.rows:
        assert row["acked"] > 0 and row["crashes"] + row["leaves"] > 0
        assert row["lost"] == 0 and row["thin"] == 0, row
        assert row["converged"] and row["exact_k"], row


def test_a_crash_of_k_minus_1_adjacent_holders_loses_nothing() -> None:
    ring = FileRing.ideal(8, seed=3, k=3)
    for index in range(6):
        assert ring.write(index, f"f{index}", overwrite=False) == "acked"
    name = "f0"
    key = ring.net.ring.hash(name)
    owner = ring.files.ideal_holders(key, 1)[0]
    members = ring.members()
    first = next(i for i, n in enumerate(members) if n.me.address == owner)
    assert ring.crash(first, 2)  # the owner and its first successor
    assert not ring.problems()
    ring.converge()
    assert not ring.problems() and not ring.misplaced()
    assert len(ring.files.holding(name)) == 3


def test_delete_then_restart_of_a_stale_holder_resurrects_nothing() -> None:
    ring = FileRing.ideal(7, seed=5, k=3)
    assert ring.write(0, "doc", overwrite=False) == "acked"
    holder = ring.files.ideal_holders(ring.net.ring.hash("doc"), 3)[1]
    ring.net.crash(holder)  # keeps v1 on its disk
    ring.changes = ring.failures = 1
    ring.converge()
    assert ring.delete(0, "doc") == "acked"
    assert ring.restart(0)  # back with the deleted version
    ring.converge()
    top = ring.files.newest_held("doc")
    assert top is not None and top.deleted
    assert all(c.deleted for c in ring.files.holding("doc").values())


def test_cli_runs_the_file_experiment() -> None:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["file-churn", "--nodes", "6", "--runs", "1", "--steps", "40", "--json"]) == 0
    result = json.loads(buffer.getvalue())
    assert result["rows"][0]["lost"] == 0
