"""The only place protocol steps run on a timer.

One thread runs stabilize, check_predecessor and fix_fingers at their intervals.
``kick()`` (called when a neighbour leaves or the node's neighbours change) runs
stabilize at once instead of waiting for the next tick, so the ring closes gaps
quickly without a fast timer burning CPU when nothing happens.

``background_steps`` run on a thread each, for steps that may wait on peers that do
not answer (the ring merge asks peers known from before a partition, which may stay
silent for a while): they must never hold up stabilize.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chord.node import ChordNode

log = logging.getLogger("chord.maintenance")


@dataclass(frozen=True)
class Intervals:
    stabilize: float
    fix_fingers: float
    check_predecessor: float


class MaintenanceLoop:
    def __init__(
        self,
        node: ChordNode,
        intervals: Intervals,
        after_round: Callable[[], None] | None = None,
        extra_steps: Sequence[tuple[str, float, Callable[[], None]]] = (),
        background_steps: Sequence[tuple[str, float, Callable[[], None]]] = (),
    ) -> None:
        """``extra_steps``: more (name, interval, step) run on the same thread, such as
        the storage layer's anti-entropy. ``background_steps``: (name, interval, step)
        each run on a thread of its own, first one interval after start."""
        self.node = node
        self.intervals = intervals
        self.after_round = after_round
        self.extra_steps = list(extra_steps)
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)
        self._background = [
            threading.Thread(
                target=self._run_alone,
                args=(name, interval, step),
                name=f"maintenance-{name}",
                daemon=True,
            )
            for name, interval, step in background_steps
        ]
        self.rounds = 0

    def start(self) -> None:
        self._thread.start()
        for thread in self._background:
            thread.start()

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        deadline = time.monotonic() + 10
        for thread in (self._thread, *self._background):
            if thread.is_alive() and threading.current_thread() is not thread:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        steps: list[tuple[str, float, Callable[[], None]]] = [
            ("stabilize", self.intervals.stabilize, self.node.stabilize),
            ("check_predecessor", self.intervals.check_predecessor, self.node.check_predecessor),
            ("fix_fingers", self.intervals.fix_fingers, self.node.fix_next_finger),
            *self.extra_steps,
        ]
        due = {name: 0.0 for name, _, _ in steps}
        while not self._stop.is_set():
            kicked = self._kick.is_set()
            self._kick.clear()
            now = time.monotonic()
            for name, interval, step in steps:
                if now >= due[name] or (kicked and name == "stabilize"):
                    self._run_step(name, step)
                    due[name] = time.monotonic() + interval
            self.rounds += 1
            if self.after_round is not None:
                self._run_step("after_round", self.after_round)
            wait = max(0.0, min(due.values()) - time.monotonic())
            self._kick.wait(wait)

    def _run_alone(self, name: str, interval: float, step: Callable[[], None]) -> None:
        while not self._stop.wait(interval):
            self._run_step(name, step)

    def _run_step(self, name: str, step: Callable[[], None]) -> None:
        if self._stop.is_set():
            return
        try:
            step()
        except Exception:  # a maintenance bug must not stop the peer's maintenance
            log.exception("%s failed", name)
