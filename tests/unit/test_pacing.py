"""The maintenance pacing policy (chord.pacing) and the loop that applies it."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from chord.pacing import Pace
from devtools.launcher import wait_for
from services.peer.maintenance import Intervals, MaintenanceLoop


def test_a_pace_doubles_while_idle_up_to_its_ceiling_and_resets_on_work() -> None:
    pace = Pace.backing_off(0.5, backoff=8)
    waits = []
    for now in range(6):
        pace.ran(float(now), worked=False)
        waits.append(pace.current)
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    pace.ran(10.0, worked=True)
    assert (pace.current, pace.due) == (0.5, 10.5)
    pace.ran(11.0, worked=False)
    pace.reset(11.2)  # something changed: due within one base interval
    assert (pace.current, pace.due) == (0.5, 11.7)


def test_backoff_1_means_fixed_intervals_even_for_slack_steps() -> None:
    pace = Pace.backing_off(0.5, backoff=1, slack=4)
    pace.ran(0.0, worked=False)
    assert pace.current == 0.5
    assert Pace.backing_off(0.5, backoff=8, slack=4).ceiling == 16.0
    with pytest.raises(ValueError):
        Pace(0.0, 1.0)


class QuietNode:
    """A node whose view never changes unless told to."""

    def __init__(self) -> None:
        self.changes = 0
        self.stabilized = 0
        self.lock = threading.Lock()

    def stabilize(self) -> None:
        with self.lock:
            self.stabilized += 1

    def check_predecessor(self) -> None:
        pass

    def fix_next_finger(self) -> None:
        pass


def test_the_loop_backs_off_while_nothing_changes_and_speeds_up_on_a_change() -> None:
    node = QuietNode()
    loop = MaintenanceLoop(
        cast(Any, node),
        Intervals(stabilize=0.01, fix_fingers=0.01, check_predecessor=0.01, backoff=16),
    )
    loop.start()
    try:
        assert wait_for(lambda: loop.intervals_now()["stabilize"] == 0.16, 5)
        node.changes += 1  # a neighbour changed
        assert wait_for(lambda: loop.intervals_now()["stabilize"] < 0.16, 5)
        before = node.stabilized
        loop.kick()
        assert wait_for(lambda: node.stabilized > before, 1)
    finally:
        loop.stop()
