"""Small pieces of issue 14's defences: JSON nesting, Range digits, cross-site origins,
log limiting per caller IP, the REST connection table."""

from __future__ import annotations

import pytest

from services.common.log_limits import LogLimiter, caller_ip
from services.rest.json_input import depth
from services.rest.origin import _netloc
from services.rest.ranges import MAX_DIGITS, BadRange, parse_range
from services.web.limits import ConnectionTable, HttpLimits


def test_depth_counts_nesting_and_skips_strings() -> None:
    assert depth('{"filename": "a[[[{{{"}') == 1
    assert depth("[" * 1000 + "]" * 1000) == 1000
    assert depth('{"a": [1, {"b": "\\"]]]"}]}') == 3
    assert depth("7") == 0


def test_range_positions_longer_than_max_digits_are_400_not_500() -> None:
    with pytest.raises(BadRange):
        parse_range("bytes=" + "9" * 5000 + "-", 10)
    with pytest.raises(BadRange):
        parse_range("bytes=0-" + "1" * (MAX_DIGITS + 1), 10)
    with pytest.raises(BadRange):
        parse_range("bytes=\u0663-", 10)  # ARABIC-INDIC DIGIT THREE: not an ASCII digit
    assert parse_range("bytes=0-" + "9" * MAX_DIGITS, 10) is not None


@pytest.mark.parametrize(
    ("origin", "netloc"),
    [
        ("http://127.0.0.1:17000", "127.0.0.1:17000"),
        ("https://Peer.Example", "peer.example"),
        ("null", None),
        ("file://", None),
        ("http://[::1", None),
        ("javascript:x", None),
    ],
)
def test_origins_reduce_to_host_and_port(origin: str, netloc: str | None) -> None:
    assert _netloc(origin) == netloc


def test_log_limits_are_per_ip_not_per_port() -> None:
    now = [0.0]
    limiter = LogLimiter(60.0, clock=lambda: now[0])
    assert caller_ip("ipv4:10.0.0.1:5000") == caller_ip("ipv4:10.0.0.1:6000") == "10.0.0.1"
    assert caller_ip("ipv6:[::1]:5000") == "::1"
    assert limiter.allow(caller_ip("ipv4:10.0.0.1:5000"))
    assert not limiter.allow(caller_ip("ipv4:10.0.0.1:5001"))
    assert limiter.allow("10.0.0.2")
    now[0] = 61.0
    assert limiter.allow("10.0.0.1")


class Idle:
    closed = 0

    def close_idle(self) -> None:
        Idle.closed += 1


def test_connection_table_caps_per_ip_and_makes_room_from_idle_ones() -> None:
    table = ConnectionTable(HttpLimits(connections=3, per_ip=2))
    first = Idle()
    assert table.admit("a") is None and table.admit("a") is None
    assert table.admit("a") is not None  # a third from one address
    table.idle(first, True)
    assert table.admit("b") is None
    assert table.admit("c") is None  # full: the idle one is closed to make room
    assert Idle.closed == 1
    table.leave("a", first)
    assert table.total == 3
