"""The upkeep experiment: adaptive pacing cuts maintenance messages while routing stays
correct, in a quiet ring and under churn; the same seed gives the same figures."""

from __future__ import annotations

from chord.sim.upkeep import upkeep


def test_adaptive_pacing_sends_far_fewer_messages_and_loses_no_lookup() -> None:
    result = upkeep(
        nodes=64, duration=30.0, warmup=90.0, rates=(0.0, 0.1), backoffs=(1.0, 8.0), seed=3
    )
    rows = {(row["rate"], row["backoff"]): row for row in result.rows}
    # A quiet ring costs a small fraction; churn (a join or failure every ~5 s in this
    # 64-peer ring) keeps the peers near it at full speed, so less is saved.
    for rate, saving in ((0.0, 4), (0.1, 2)):
        fixed, adaptive = rows[(rate, 1.0)], rows[(rate, 8.0)]
        assert adaptive["messages_per_peer_s"] < fixed["messages_per_peer_s"] / saving, rows
        assert fixed["failed"] == adaptive["failed"] == 0, rows
        assert adaptive["lookups"] >= 119
    again = upkeep(nodes=64, duration=30.0, warmup=90.0, rates=(0.1,), backoffs=(8.0,), seed=3)
    assert again.rows == [rows[(0.1, 8.0)]]
