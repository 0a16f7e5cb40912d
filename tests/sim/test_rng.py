"""SimRandom, the simulator's seeded generator: reproducible, in range, and the
published algorithm (SplitMix64 seeding + xoshiro256**), checked against an
independent implementation written here from the reference C code."""

from __future__ import annotations

import pytest

from chord.sim.rng import SimRandom

MASK = (1 << 64) - 1


# ------------------------------------------------ independent reference code
def reference_splitmix64(seed: int, count: int) -> list[int]:
    """Vigna's splitmix64.c: x += golden gamma, then two xor-shift-multiply rounds."""
    x = seed
    out = []
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) % 2**64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        out.append(z ^ (z >> 31))
    return out


def rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) % 2**64


def reference_xoshiro256starstar(seed: int, count: int) -> list[int]:
    """Blackman & Vigna's xoshiro256starstar.c, state seeded with four SplitMix64
    outputs as the authors recommend."""
    s = reference_splitmix64(seed, 4)
    out = []
    for _ in range(count):
        out.append(rotl(s[1] * 5 % 2**64, 7) * 9 % 2**64)
        t = (s[1] << 17) % 2**64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def test_reference_splitmix64_matches_published_vector() -> None:
    """The reference itself is right: SplitMix64 from seed 0 is a widely published
    vector (e.g. the test vectors of Java's SplittableRandom ports)."""
    assert reference_splitmix64(0, 3) == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


@pytest.mark.parametrize("seed", [0, 1, 42, 2**64 - 1])
def test_known_answer_against_reference(seed: int) -> None:
    rng = SimRandom(seed)
    assert [rng.next64() for _ in range(3)] == reference_xoshiro256starstar(seed, 3)


def test_known_answer_seed_0_first_outputs() -> None:
    """The first three outputs for seed 0, pinned, so a change to the stream (which
    would change every experiment's output) is noticed even if both sides drift."""
    expected = reference_xoshiro256starstar(0, 3)
    rng = SimRandom(0)
    assert [rng.next64() for _ in range(3)] == expected
    assert expected == [0x99EC5F36CB75F2B4, 0xBF6E1F784956452A, 0x1A5F849D4933E6E0]


def test_longer_stream_matches_reference() -> None:
    rng = SimRandom(7)
    assert [rng.next64() for _ in range(1000)] == reference_xoshiro256starstar(7, 1000)


# --------------------------------------------------------------- determinism
def test_same_seed_same_stream() -> None:
    a, b = SimRandom(123), SimRandom(123)
    assert [a.next64() for _ in range(100)] == [b.next64() for _ in range(100)]


def test_different_seeds_differ() -> None:
    streams = {tuple(SimRandom(seed).next64() for _ in range(4)) for seed in range(50)}
    assert len(streams) == 50


def test_outputs_are_64_bit() -> None:
    rng = SimRandom(5)
    values = [rng.next64() for _ in range(2000)]
    assert all(0 <= v <= MASK for v in values)
    assert max(values) >= 1 << 63  # the top bit is used


# ------------------------------------------------------------------- ranges
@pytest.mark.parametrize("n", [1, 2, 3, 2**64 + 1, 2**160])
def test_randrange_bounds(n: int) -> None:
    rng = SimRandom(n % 1000)
    values = [rng.randrange(n) for _ in range(3000)]
    assert all(0 <= v < n for v in values)
    if n <= 3:
        assert set(values) == set(range(n))  # every value turns up
    else:
        # Large ranges: spread over the whole range, not stuck in a low part.
        assert max(values) > n // 2 > min(values)


def test_randrange_small_is_roughly_uniform() -> None:
    rng = SimRandom(9)
    counts = [0] * 3
    for _ in range(30_000):
        counts[rng.randrange(3)] += 1
    assert all(9_000 < c < 11_000 for c in counts)


@pytest.mark.parametrize("n", [0, -1, -(2**70)])
def test_randrange_rejects_non_positive(n: int) -> None:
    with pytest.raises(ValueError):
        SimRandom(0).randrange(n)


@pytest.mark.parametrize("bits", [1, 7, 64, 65, 160])
def test_getrandbits_bounds(bits: int) -> None:
    rng = SimRandom(bits)
    values = [rng.getrandbits(bits) for _ in range(500)]
    assert all(0 <= v < 2**bits for v in values)
    assert max(values) >= 2 ** (bits - 1)


def test_random_in_unit_interval() -> None:
    rng = SimRandom(3)
    values = [rng.random() for _ in range(20_000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert min(values) < 0.01 and max(values) > 0.99
    assert abs(sum(values) / len(values) - 0.5) < 0.01


def test_uniform_in_range() -> None:
    rng = SimRandom(4)
    values = [rng.uniform(15.0, 45.0) for _ in range(5000)]
    assert all(15.0 <= v < 45.0 for v in values)


@pytest.mark.parametrize("rate", [0.05, 1.0, 4.0])
def test_expovariate_mean(rate: float) -> None:
    rng = SimRandom(11)
    draws = [rng.expovariate(rate) for _ in range(20_000)]
    assert all(d >= 0 for d in draws)
    # Standard error of the mean is (1/rate)/sqrt(20000), about 0.7 %.
    assert sum(draws) / len(draws) == pytest.approx(1 / rate, rel=0.05)


# ------------------------------------------------------- sequence helpers
def test_choice_deterministic_and_valid() -> None:
    items = list("abcdefgh")
    picks = [SimRandom(2).choice(items) for _ in range(3)]
    assert len(set(picks)) == 1  # same seed, same first pick
    rng = SimRandom(2)
    seen = {rng.choice(items) for _ in range(500)}
    assert seen == set(items)


def test_sample_without_replacement() -> None:
    population = list(range(50))
    for k in (0, 1, 10, 50):
        sample = SimRandom(k).sample(population, k)
        assert len(sample) == k
        assert len(set(sample)) == k
        assert set(sample) <= set(population)
    assert SimRandom(8).sample(population, 10) == SimRandom(8).sample(population, 10)
    assert population == list(range(50))  # the input is not touched
    with pytest.raises(ValueError):
        SimRandom(0).sample(population, 51)
    with pytest.raises(ValueError):
        SimRandom(0).sample(population, -1)


def test_shuffle_is_a_deterministic_permutation() -> None:
    a, b = list(range(100)), list(range(100))
    SimRandom(6).shuffle(a)
    SimRandom(6).shuffle(b)
    assert a == b
    assert sorted(a) == list(range(100))
    assert a != list(range(100))
    c = list(range(100))
    SimRandom(7).shuffle(c)
    assert c != a


def test_fork_streams_are_deterministic_and_independent() -> None:
    def children(seed: int) -> list[list[int]]:
        parent = SimRandom(seed)
        forks = [parent.fork(label) for label in range(4)]
        return [[f.next64() for _ in range(5)] for f in forks]

    first = children(10)
    assert first == children(10)  # reproducible
    assert len({tuple(stream) for stream in first}) == 4  # labels give distinct streams
    # The same label forked at the same point of the parent's stream gives the same
    # child; forking again later gives another one.
    parent = SimRandom(10)
    early = parent.fork(1)
    late = parent.fork(1)
    assert [early.next64() for _ in range(5)] != [late.next64() for _ in range(5)]
    # Drawing from a child does not disturb the parent.
    p1, p2 = SimRandom(10), SimRandom(10)
    child = p1.fork(3)
    p2.fork(3)
    for _ in range(50):
        child.next64()
    assert [p1.next64() for _ in range(5)] == [p2.next64() for _ in range(5)]
