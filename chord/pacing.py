"""How often maintenance runs: fast while the view changes, lazily while it does not.

A pure policy, shared by the real maintenance loop (services/peer/maintenance.py, on the wall
clock) and the simulator (chord/sim/upkeep.py, on a virtual clock), so the message
counts the simulator reports are those of the code that runs.

Each step keeps its configured interval (``base``) and a ``ceiling``. After a run that
found nothing to do, the step waits twice as long as last time, up to the ceiling;
after a run that found work, or when anything in the peer's view changed
(``ChordNode.changes``), every step is back at its base interval at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Fingers only speed lookups up (correctness rests on successor lists) and a stale one
# costs a hop. They are refreshed in passes over the table (about log2 N lookups at the
# base interval), and the pauses between passes that changed nothing grow this many
# times further than the other steps' intervals.
FINGER_SLACK = 16


@dataclass
class Pace:
    """One step's timer on some clock: its interval now and when it is next due."""

    base: float
    ceiling: float
    current: float = field(init=False)
    due: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.ceiling:
            raise ValueError("a pace needs 0 < base <= ceiling")
        self.current = self.base

    @classmethod
    def backing_off(cls, base: float, backoff: float, slack: float = 1.0) -> Pace:
        """``base``, growing up to ``backoff`` x ``slack`` times it (``backoff`` 1: fixed)."""
        growth = backoff * slack if backoff > 1 else 1.0
        return cls(base, base * growth)

    def ran(self, now: float, worked: bool) -> None:
        """After a run: due again after the base interval if it found work, else after
        twice the last interval (up to the ceiling)."""
        self.current = self.base if worked else min(self.current * 2, self.ceiling)
        self.due = now + self.current

    def again(self, now: float) -> None:
        """Run once more after the base interval, keeping the backoff level: a step done
        in several runs (a pass over the finger table) backs off between passes only."""
        self.due = now + self.base

    def reset(self, now: float) -> None:
        """Back to full speed: due no later than one base interval from now."""
        self.current = self.base
        self.due = min(self.due, now + self.base)
