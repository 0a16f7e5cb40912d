"""ClientLimits: a token bucket per client (a minute's worth, refilled steadily) and a
cap on concurrent transfers per client; both answer 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from services.rest.errors import ApiError
from services.rest.limits import MAX_CLIENTS, ClientLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_a_minute_and_refills() -> None:
    clock = Clock()
    limits = ClientLimits(per_minute=6, clock=clock)
    for _ in range(6):
        limits.spend("10.0.0.1")
    with pytest.raises(ApiError) as caught:
        limits.spend("10.0.0.1")
    assert caught.value.status == 429 and caught.value.code == "too-many-requests"
    assert caught.value.headers["Retry-After"] == "10"  # 6 a minute: one every 10 s
    limits.spend("10.0.0.2")  # another client has its own bucket
    clock.now += 10
    limits.spend("10.0.0.1")
    with pytest.raises(ApiError):
        limits.spend("10.0.0.1")


def test_transfers_are_capped_per_client_and_released_once() -> None:
    limits = ClientLimits(max_transfers=2)
    first, second = limits.transfer("a"), limits.transfer("a")
    with pytest.raises(ApiError) as caught:
        limits.transfer("a")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    limits.transfer("b").release()
    first.release()
    first.release()  # idempotent: does not free a slot twice
    assert limits.active("a") == 1
    third = limits.transfer("a")
    with pytest.raises(ApiError):
        limits.transfer("a")
    second.release()
    third.release()
    assert limits.active("a") == 0


def test_a_slot_is_released_when_the_stream_ends_or_is_closed() -> None:
    limits = ClientLimits(max_transfers=1)
    slot = limits.transfer("a")
    stream = slot.held_over(iter([b"1", b"2"]))
    assert isinstance(stream, Generator)
    assert next(stream) == b"1"
    stream.close()  # the client went away mid-download
    assert limits.active("a") == 0
    slot = limits.transfer("a")
    assert list(slot.held_over(iter([b"x"]))) == [b"x"]
    assert limits.active("a") == 0


def test_memory_is_bounded() -> None:
    limits = ClientLimits(per_minute=1)
    for i in range(MAX_CLIENTS + 50):
        limits.spend(f"client-{i}")
    assert len(limits._buckets) == MAX_CLIENTS
