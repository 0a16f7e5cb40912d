"""The maintenance loop: a background step (the ring merge) runs on its own thread, so
a step that waits on silent peers never holds up stabilize, and stop() ends them all."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from devtools.launcher import wait_for
from services.peer.maintenance import Intervals, MaintenanceLoop


class FakeNode:
    def __init__(self) -> None:
        self.stabilized = 0
        self.changes = 0  # the view never changes

    def stabilize(self) -> None:
        self.stabilized += 1

    def check_predecessor(self) -> None:
        pass

    def fix_next_finger(self) -> None:
        pass


def test_a_blocked_background_step_does_not_hold_up_stabilize() -> None:
    node = FakeNode()
    release = threading.Event()
    merges: list[str] = []

    def slow_merge() -> None:  # a probe of a peer that does not answer
        merges.append(threading.current_thread().name)
        release.wait(5)

    loop = MaintenanceLoop(
        cast(Any, node),
        Intervals(stabilize=0.01, fix_fingers=0.01, check_predecessor=0.01),
        background_steps=[("merge", 0.01, slow_merge)],
    )
    loop.start()
    try:
        assert wait_for(lambda: bool(merges), 5)
        before = node.stabilized
        assert wait_for(lambda: node.stabilized > before + 20, 5), "stabilize stalled"
        assert merges == ["maintenance-merge"]  # still inside its first, blocked run
    finally:
        release.set()
        started = time.monotonic()
        loop.stop()
    assert time.monotonic() - started < 5
    assert not any(t.name.startswith("maintenance") for t in threading.enumerate())
