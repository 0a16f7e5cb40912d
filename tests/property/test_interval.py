"""The interval helpers against a brute-force walk around small rings (m = 1..8)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chord.ids import between, between_right

PROPERTY_SETTINGS = settings(max_examples=500, deadline=None, derandomize=True)


@st.composite
def ring_points(draw: st.DrawFn, count: int) -> tuple[int, ...]:
    """``(m, p1, ..., p_count)``: a ring width m and ``count`` identifiers on it."""
    bits = draw(st.integers(min_value=1, max_value=8))
    size = 1 << bits
    points = draw(st.tuples(*[st.integers(0, size - 1)] * count))
    return (bits, *points)


def open_interval(bits: int, a: int, b: int) -> set[int]:
    """Walk clockwise from a + 1 until b: (a, b). With a == b the walk goes all the way
    round, so (a, a) is every identifier except a."""
    size = 1 << bits
    points: set[int] = set()
    point = (a + 1) % size
    while point != b:
        points.add(point)
        point = (point + 1) % size
    if a == b:
        points.discard(a)  # the walk from a + 1 to a never visits a: made explicit
    return points


def half_open_interval(bits: int, a: int, b: int) -> set[int]:
    """(a, b]: the same walk, also keeping b. (a, a] is the whole ring."""
    return open_interval(bits, a, b) | {b}


def test_brute_force_model_itself() -> None:
    assert open_interval(3, 6, 1) == {7, 0}
    assert open_interval(3, 1, 2) == set()
    assert open_interval(3, 2, 2) == {0, 1, 3, 4, 5, 6, 7}
    assert half_open_interval(3, 2, 2) == set(range(8))
    assert half_open_interval(3, 6, 1) == {7, 0, 1}


@PROPERTY_SETTINGS
@given(ring_points(3))
def test_between_matches_clockwise_walk(case: tuple[int, ...]) -> None:
    bits, a, x, b = case
    assert between(a, x, b) == (x in open_interval(bits, a, b))


@PROPERTY_SETTINGS
@given(ring_points(3))
def test_between_right_matches_clockwise_walk(case: tuple[int, ...]) -> None:
    bits, a, x, b = case
    assert between_right(a, x, b) == (x in half_open_interval(bits, a, b))
    assert between_right(a, x, b) == (x == b or between(a, x, b))


@PROPERTY_SETTINGS
@given(ring_points(3))
def test_half_open_intervals_either_side_partition_the_ring(case: tuple[int, ...]) -> None:
    """For a != b, (a, b] and (b, a] split the ring: each x is in exactly one."""
    _, a, x, b = case
    if a == b:
        assert between_right(a, x, b) and between_right(b, x, a)
        return
    assert between_right(a, x, b) != between_right(b, x, a)


@PROPERTY_SETTINGS
@given(ring_points(2))
def test_whole_ring_conventions(case: tuple[int, ...]) -> None:
    _, a, x = case
    assert between(a, x, a) == (x != a)
    assert between_right(a, x, a)


@PROPERTY_SETTINGS
@given(ring_points(3))
def test_open_interval_never_contains_its_ends(case: tuple[int, ...]) -> None:
    _, a, _, b = case
    assert not between(a, a, b)
    assert not between(a, b, b)


def test_exhaustively_on_ring_of_16() -> None:
    """Every (a, x, b) on m = 4: 4096 cases, cheap, and leaves nothing to chance."""
    bits = 4
    for a in range(16):
        for b in range(16):
            inside = open_interval(bits, a, b)
            closed = half_open_interval(bits, a, b)
            for x in range(16):
                assert between(a, x, b) == (x in inside), (a, x, b)
                assert between_right(a, x, b) == (x in closed), (a, x, b)
