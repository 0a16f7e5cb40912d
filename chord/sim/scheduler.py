"""Virtual time for the simulator: a clock, an event queue on it, and message latency.

Events are plain callables run in order of their due time (ties: in the order they
were scheduled), so a run is a pure function of the seed. The queue may be run from
inside an event: a peer operation written as blocking code (join, stabilize) waits
for a reply by running the events due before it (other peers' messages and
operations), which then interleave with it. An event that becomes due while an
outer wait is still running is run late, at the current time: the same execution
as with a slower network, so every run stays one a real network could produce.
(The waits nest, so the simulator bounds how many operations may be stacked:
see chord.sim.network.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappop, heappush

from chord.sim.rng import SimRandom

# How long a caller waits for a reply before it treats the peer as dead, in seconds:
# the real peers' RPC deadline for a routing step (services/rpc/transport.py) is 1 s.
DEFAULT_TIMEOUT = 1.0


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, moment: float) -> None:
        self._now = max(self._now, moment)


class Scheduler:
    """A priority queue of events on a :class:`VirtualClock`."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.ran = 0  # events run so far
        self.depth = 0  # events now running: more than one while an event waits inside

    def __len__(self) -> int:
        return len(self._queue)

    def at(self, moment: float, event: Callable[[], None]) -> None:
        """Run ``event`` at ``moment`` (at once, in order, if that is already past)."""
        self._seq += 1
        heappush(self._queue, (moment, self._seq, event))

    def after(self, delay: float, event: Callable[[], None]) -> None:
        self.at(self.clock.now() + delay, event)

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def run_next(self) -> None:
        moment, _, event = heappop(self._queue)
        self.clock.advance_to(moment)
        self.ran += 1
        self.depth += 1
        try:
            event()
        finally:
            self.depth -= 1

    def run_until(self, moment: float) -> None:
        """Run every event due at or before ``moment`` (and those they schedule in that
        span), then move the clock to ``moment``."""
        while self._queue and self._queue[0][0] <= moment:
            self.run_next()
        self.clock.advance_to(moment)

    def run(self, limit: int = 1_000_000) -> None:
        """Run events until none is left; RuntimeError after ``limit`` of them (an
        event that always schedules another would never end)."""
        for _ in range(limit):
            if not self._queue:
                return
            self.run_next()
        raise RuntimeError(f"still {len(self._queue)} events after {limit}")


@dataclass
class Latency:
    """One-way message delay, uniform in [``low``, ``high``] seconds, drawn from
    ``rng`` for every message: two replies sent in one order may arrive in the other.
    A round trip longer than ``timeout`` counts as no answer (the request was still
    delivered and handled: the reply came too late)."""

    rng: SimRandom
    low: float = 0.0
    high: float = 0.0
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError("latency needs 0 <= low <= high")
        if self.timeout <= 0:
            raise ValueError("the timeout must be positive")

    def draw(self) -> float:
        if self.high == self.low:
            return self.low
        return self.rng.uniform(self.low, self.high)
