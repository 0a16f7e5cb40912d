"""The abuse scenarios at a small scale (make test): one 4-peer ring, one victim, every
hostile client of issue 14 in turn for a few seconds while the probe from 127.0.0.2
measures. ``python -m faults abuse-...`` runs each on a fresh 8-peer ring for 20 s
(docs/reliability.md has the figures). Peers here cut idle streams after 3 s and drop a
client that takes no response byte after 3 s, so the cuts happen within the test.

Latency is judged against 2 s here, not the issue's 1 s (which ``python -m faults``
checks): make test shares this 2-core machine with other suites (load average 6-8
measured), and a 4 s window of ~50 polls makes the p99 its single worst poll; one run
under that load saw 1022 ms. Every other promise is the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.launcher import LocalRing
from faults import abuse
from faults.harness import Harness, Options

pytestmark = pytest.mark.integration
QUICK = ("--stream-idle-timeout", "3", "--http-send-timeout", "3")
LIMIT_MS = 2000.0


def test_hostile_clients_do_not_knock_a_peer_over(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LocalRing, "extra_args", (*LocalRing.extra_args, *QUICK))
    options = Options(
        peers=4,
        replicas=3,
        files=24,
        seed=seed,
        clients=4,
        repair_interval=0.5,
        converge_timeout=60,
        abuse_seconds=4.0,
        workdir=tmp_path / "abuse",
    )
    with Harness(options) as h:
        _, results = abuse.series(h, list(abuse.ATTACKS))
        h.converge()
        verdict = h.classify()
    broken = {}
    for kind, figures in results.items():
        print(kind, json.dumps(figures))
        if abuse.problems(figures, LIMIT_MS):
            broken[kind] = abuse.problems(figures, LIMIT_MS)
    assert not broken, broken
    assert not verdict.lost and not verdict.corrupt, verdict
    assert (
        results["cross-site"]["attack"].get("skipped")
        or (results["cross-site"]["attack"]["fetches"])
    )
