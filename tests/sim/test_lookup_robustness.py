"""Lookups under mass failure with no repair (the Chord paper's Table II setting): none
fails while a live route exists, with or without the one-hop table; and the
one-hop table's behaviour under churn. Small rings, so the file runs in seconds; the
full-size figures are in docs/paper-reproduction.md."""

from __future__ import annotations

import pytest

from chord.sim import experiments as ex

FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_no_lookup_fails_with_half_the_ring_dead(seed: int) -> None:
    """r = 20 survives any p <= 0.5 (every peer keeps a live successor): a lookup that
    meets dead peers asks live responders again, excluding them, and ends at the live
    owner's own answer. Before that, 7-20 lookups in 10,000 failed at p >= 0.3."""
    result = ex.failures(nodes=200, seed=seed, fractions=FRACTIONS, lookups=1000)
    for row in result.rows:
        assert row["failed"] == 0, row


@pytest.mark.parametrize("seed", [1, 2])
def test_no_lookup_fails_with_the_one_hop_table(seed: int) -> None:
    """The table still names peers that died (nothing repairs it here): each costs a
    timeout, never a failure; with no failures a lookup is one hop, the owner's answer."""
    result = ex.failures(
        nodes=200, seed=seed, fractions=[0.0, *FRACTIONS], lookups=1000, one_hop=True
    )
    for row in result.rows:
        assert row["failed"] == 0, row
    # One hop, the owner's answer (none when the lookup starts at the owner).
    assert 0.99 <= result.rows[0]["mean_path"] <= 1.0
    assert result.rows[0]["mean_timeouts"] == 0


def test_timeouts_follow_the_dead_fraction() -> None:
    """Each routing choice meets about p / (1 - p) dead peers before a live one, as in
    the paper's Table II: timeouts grow with p, path length only slowly."""
    rows = ex.failures(nodes=200, fractions=FRACTIONS, lookups=1000).rows
    timeouts = [row["mean_timeouts"] for row in rows]
    assert timeouts == sorted(timeouts)
    for row in rows:
        p = row["fail_fraction"]
        expected = (row["mean_path"]) * p / (1 - p)
        assert 0.6 * expected <= row["mean_timeouts"] <= 1.6 * expected, row


def test_one_hop_table_under_churn() -> None:
    """Joins and failures at the paper's rates, with stabilization every 15-45 s: the
    table goes stale between gossip rounds, yet lookups stay near one hop and the
    owner's answer keeps them right (Zave's invariants are checked throughout)."""
    plain = ex.churn(nodes=120, rates=[0.2], lookups=300, check_every=50).rows[0]
    table = ex.churn(nodes=120, rates=[0.2], lookups=300, check_every=50, one_hop=True).rows[0]
    assert table["mean_path"] < 0.7 * plain["mean_path"], (table, plain)
    assert table["failed"] <= plain["failed"] + 4, (table, plain)
    assert table["failed"] <= 0.02 * table["lookups"], table
