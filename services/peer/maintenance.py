"""The only place protocol steps run on a timer.

One thread runs stabilize, check_predecessor and fix_fingers. Their intervals adapt
(chord.pacing): while the peer's view stays the same (``ChordNode.changes``:
neighbours, a challenger, fingers), each step waits twice as long after every run, up
to ``backoff`` times its configured interval (fingers FINGER_SLACK times more); any
change puts every step back to its configured interval. A peer in a quiet ring thus
spends almost nothing on upkeep, and one in a changing ring repairs at full speed.

``kick()`` (a neighbour changed, or left) runs stabilize at once and resets every
interval. Other threads hand work to the loop's thread through ``post()`` (a queue
drained at the start of every round) rather than by setting its fields, so each
field here has one writer or a lock, as noted where it is declared.

A crashed successor is found by the next stabilize: within stabilize_interval
x backoff (4 s by default) plus rpc_timeout if it hangs rather than refuses.

``background_steps`` run on a thread each, for steps that may wait on peers that do
not answer (the ring merge asks peers known from before a partition, which may stay
silent for a while; a repair may stream a big file): they must never hold up
stabilize. A background step returns whether it found work (None: count as work); one
that finds none backs off like the others, and a kick wakes it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chord.node import ChordNode
from chord.pacing import FINGER_SLACK, Pace

log = logging.getLogger("chord.maintenance")

StepFunction = Callable[[], bool | None]


@dataclass(frozen=True)
class Intervals:
    stabilize: float
    fix_fingers: float
    check_predecessor: float
    backoff: float = 1.0  # how many times longer an interval may grow while nothing changes


class MaintenanceLoop:
    def __init__(
        self,
        node: ChordNode,
        intervals: Intervals,
        after_round: Callable[[], None] | None = None,
        background_steps: Sequence[tuple[str, float, StepFunction]] = (),
    ) -> None:
        """``background_steps``: (name, interval, step) each run on a thread of its own,
        first one interval after start."""
        self.node = node
        self.intervals = intervals
        self.after_round = after_round
        self._steps: list[tuple[str, Callable[[], object], Pace]] = [
            (name, step, Pace.backing_off(interval, intervals.backoff, slack))
            for name, interval, slack, step in (
                ("stabilize", intervals.stabilize, 1, node.stabilize),
                ("check_predecessor", intervals.check_predecessor, 1, node.check_predecessor),
                ("fix_fingers", intervals.fix_fingers, FINGER_SLACK, node.fix_next_finger),
            )
        ]
        self._stop = threading.Event()
        self._wake = threading.Event()  # recompute the next due step now
        # Work for the loop's thread from other threads (kicks, the peer's neighbour
        # news), run before each round.
        self._inbox: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._stabilize_now = False  # the loop's thread only (set through the inbox)
        # Guards the paces and _seen (speed_up and changed() come from any thread).
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)
        self._background = [
            _Background(name, step, Pace.backing_off(interval, intervals.backoff), self)
            for name, interval, step in background_steps
        ]
        self._seen = -1  # _lock; node.changes at the end of the last step

    def start(self) -> None:
        now = time.monotonic()
        for background in self._background:
            background.pace.due = now + background.pace.base
            background.thread.start()
        self._thread.start()

    def kick(self) -> None:
        """Something changed around this peer: stabilize now, every step at full speed.
        From any thread (the stabilize request goes through the inbox)."""
        self.speed_up()
        self.post(self._stabilize_next)

    def post(self, event: Callable[[], object]) -> None:
        """Run ``event`` on the loop's thread before its next round (from any thread;
        wakes the loop). Events posted before start() run in its first round."""
        self._inbox.put(event)
        self._wake.set()

    def _stabilize_next(self) -> None:
        self._stabilize_now = True

    def _drain_inbox(self) -> None:
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._run_step("posted event", event)

    def speed_up(self) -> None:
        """Every step back to full speed (``ChordNode`` hooks call this from handlers:
        a joiner to adopt, a challenger to check)."""
        self._reset_paces()
        for background in self._background:
            background.wake.set()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for background in self._background:
            background.wake.set()
        deadline = time.monotonic() + 10
        threads = (self._thread, *(b.thread for b in self._background))
        for thread in threads:
            if thread.is_alive() and threading.current_thread() is not thread:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def intervals_now(self) -> dict[str, float]:
        """Each step's current interval (for the status page and the tests)."""
        with self._lock:
            paces = {name: pace.current for name, _, pace in self._steps}
            paces.update({b.name: b.pace.current for b in self._background})
        return paces

    def changed(self) -> bool:
        """Whether the node's view moved since the last call (any thread may ask)."""
        with self._lock:
            changes = self.node.changes
            moved, self._seen = changes != self._seen, changes
        return moved

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the drain: a post after it wakes the next round
            self._drain_inbox()
            kicked, self._stabilize_now = self._stabilize_now, False
            for name, step, pace in self._steps:
                if time.monotonic() >= pace.due or (kicked and name == "stabilize"):
                    outcome = self._run_step(name, step)
                    # fix_fingers runs in passes over the table: at full speed within a
                    # pass, with the growing pause only between passes.
                    self._ran(pace, worked=False, mid_pass=outcome is False)
            if self.after_round is not None:
                self._run_step("after_round", self.after_round)
            with self._lock:
                wait = min(pace.due for _, _, pace in self._steps) - time.monotonic()
            self._wake.wait(max(0.0, wait))

    def _ran(self, pace: Pace, worked: bool, mid_pass: bool = False) -> None:
        """After a step: a change anywhere puts every step back to full speed."""
        if self.changed():
            self.speed_up()  # wakes the background steps too, not only their paces
            worked = True
        with self._lock:
            if mid_pass and not worked:
                pace.again(time.monotonic())
            else:
                pace.ran(time.monotonic(), worked)

    def _reset_paces(self) -> None:
        now = time.monotonic()
        with self._lock:
            for _, _, other in self._steps:
                other.reset(now)
            for background in self._background:
                background.pace.reset(now)

    def _run_step(self, name: str, step: Callable[[], object]) -> object:
        if self._stop.is_set():
            return None
        try:
            return step()
        except Exception:  # a maintenance bug must not stop the peer's maintenance
            log.exception("%s failed", name)
            return None


class _Background:
    """A step on a thread of its own, paced like the loop's steps."""

    def __init__(self, name: str, step: StepFunction, pace: Pace, loop: MaintenanceLoop) -> None:
        self.name, self.step, self.pace, self.loop = name, step, pace, loop
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"maintenance-{name}", daemon=True)

    def _run(self) -> None:
        loop = self.loop
        while not loop._stop.is_set():
            with loop._lock:
                wait = self.pace.due - time.monotonic()
            if wait > 0:
                self.wake.wait(wait)
                self.wake.clear()
                continue
            found = loop._run_step(self.name, self.step)
            loop._ran(self.pace, worked=found is None or bool(found))
