"""The maintenance loop: a background step (the ring merge) runs on its own thread, so
a step that waits on silent peers never holds up stabilize, and stop() ends them all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


def test_posted_events_run_on_the_loop_thread_in_order() -> None:
    """Other threads hand work to the loop through post(), never by setting its fields:
    events from several threads all run on the loop's thread, each thread's in order,
    and a kick (itself posted) makes the next round stabilize."""
    node = FakeNode()
    loop = MaintenanceLoop(
        cast(Any, node),
        Intervals(stabilize=60, fix_fingers=60, check_predecessor=60),  # never due again
    )
    ran: list[tuple[str, int, str]] = []

    def event(name: str, i: int) -> Callable[[], None]:
        return lambda: ran.append((name, i, threading.current_thread().name))

    def poster(name: str) -> None:
        for i in range(50):
            loop.post(event(name, i))

    loop.start()
    try:
        assert wait_for(lambda: node.stabilized == 1, 5)  # the first round
        threads = [threading.Thread(target=poster, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wait_for(lambda: len(ran) == 200, 5)
        assert {where for _, _, where in ran} == {"maintenance"}
        for n in range(4):
            assert [i for name, i, _ in ran if name == f"t{n}"] == list(range(50))
        loop.kick()
        assert wait_for(lambda: node.stabilized == 2, 5)
    finally:
        loop.stop()
