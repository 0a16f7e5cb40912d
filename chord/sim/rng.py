"""Seeded pseudo-random numbers for the simulator.

``chord/`` may not import ``random`` (the core must not hide any source of
nondeterminism), so the simulator carries its own generator: xoshiro256**
(Blackman & Vigna), seeded through SplitMix64 as its authors recommend. The same
seed gives the same stream on every machine and Python version, which is what
makes experiment output byte-identical from run to run.
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence, Sequence
from typing import TypeVar

T = TypeVar("T")
MASK64 = (1 << 64) - 1


def _splitmix64(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


class SimRandom:
    def __init__(self, seed: int) -> None:
        state = seed & MASK64
        words = []
        for _ in range(4):
            state, word = _splitmix64(state)
            words.append(word)
        self._s = words

    def fork(self, label: int) -> SimRandom:
        """An independent stream for a sub-task, derived from this one and ``label``."""
        return SimRandom(self.next64() ^ (label * 0x9E3779B97F4A7C15 & MASK64))

    def next64(self) -> int:
        s0, s1, s2, s3 = self._s
        result = (((s1 * 5) & MASK64) << 7 | ((s1 * 5) & MASK64) >> 57) & MASK64
        result = (result * 9) & MASK64
        t = (s1 << 17) & MASK64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & MASK64
        self._s = [s0, s1, s2, s3]
        return result

    def getrandbits(self, bits: int) -> int:
        value = 0
        produced = 0
        while produced < bits:
            value = (value << 64) | self.next64()
            produced += 64
        return value >> (produced - bits)

    def randrange(self, n: int) -> int:
        """Uniform in [0, n), by rejection (no modulo bias)."""
        if n <= 0:
            raise ValueError("randrange needs n > 0")
        bits = n.bit_length()
        while True:
            value = self.getrandbits(bits)
            if value < n:
                return value

    def random(self) -> float:
        """Uniform in [0, 1) with 53 random bits."""
        return (self.next64() >> 11) * (1.0 / (1 << 53))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def expovariate(self, rate: float) -> float:
        """Exponential inter-arrival time of a Poisson process with ``rate`` per second."""
        return -math.log(1.0 - self.random()) / rate

    def choice(self, items: Sequence[T]) -> T:
        return items[self.randrange(len(items))]

    def shuffle(self, items: MutableSequence[T]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.randrange(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        pool = list(items)
        if not 0 <= k <= len(pool):
            raise ValueError("sample larger than population")
        for i in range(k):
            j = i + self.randrange(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]
