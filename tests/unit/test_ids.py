"""Identifiers and intervals on a ring of m = 6 (64 ids), every value checked by hand."""

from __future__ import annotations

import hashlib

import pytest

from chord.ids import HEX_DIGITS, MAX_BITS, Ring, between, between_right, from_hex, to_hex

RING = Ring(6)


# ------------------------------------------------------------------ Ring basics
def test_ring_size_is_two_to_the_bits() -> None:
    assert RING.size == 64
    assert Ring(1).size == 2
    assert Ring().bits == MAX_BITS == 160


@pytest.mark.parametrize("bits", [0, -1, 161])
def test_ring_rejects_bits_out_of_range(bits: int) -> None:
    with pytest.raises(ValueError):
        Ring(bits)


def test_hash_is_sha1_reduced_mod_ring_size() -> None:
    digest = hashlib.sha1(b"10.0.0.1:7000").hexdigest()
    assert digest == "2c49bceae3b0d01c9b0fbc1e78cfff0d175b9b29"
    # Last byte 0x29 = 41, and 64 divides 256, so the value mod 64 is 41 mod 64 = 41.
    assert RING.hash("10.0.0.1:7000") == 41
    assert RING.hash("10.0.0.1:7000") == int(digest, 16) % 64


def test_hash_on_full_ring_is_whole_digest() -> None:
    digest = hashlib.sha1(b"hello.txt").hexdigest()
    assert Ring().hash("hello.txt") == int(digest, 16)
    assert to_hex(Ring().hash("hello.txt")) == digest


def test_hash_encodes_text_as_utf8() -> None:
    text = "fïlé-名前"
    assert RING.hash(text) == int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % 64


def test_distance_is_clockwise_and_wraps() -> None:
    assert RING.distance(10, 20) == 10
    assert RING.distance(20, 10) == 54
    assert RING.distance(60, 2) == 6
    assert RING.distance(7, 7) == 0


# ----------------------------------------------------------------- between (a, b)
@pytest.mark.parametrize(
    ("a", "x", "b"),
    [
        (2, 3, 5),  # plain inside
        (2, 4, 5),
        (60, 2, 5),  # interval wraps past zero, x after zero
        (60, 63, 5),  # interval wraps, x before zero
        (60, 0, 5),  # zero itself
        (5, 60, 2),  # wraps: (5, 2) is 6..63, 0, 1
        (10, 11, 10),  # (a, a) is everything except a
        (10, 9, 10),
        (10, 0, 10),
    ],
)
def test_between_true(a: int, x: int, b: int) -> None:
    assert between(a, x, b)


@pytest.mark.parametrize(
    ("a", "x", "b"),
    [
        (2, 2, 5),  # open on the left
        (2, 5, 5),  # open on the right
        (2, 6, 5),  # outside
        (2, 1, 5),
        (60, 5, 5),
        (60, 60, 5),
        (60, 30, 5),  # the short side of a wrapping interval
        (5, 3, 2),  # (5, 2) wraps and skips 3..5
        (5, 2, 2),
        (10, 10, 10),  # (a, a) excludes a
        (3, 4, 4),  # (3, 4) holds no integer at all
        (3, 3, 4),
    ],
)
def test_between_false(a: int, x: int, b: int) -> None:
    assert not between(a, x, b)


# ------------------------------------------------------------- between_right (a, b]
@pytest.mark.parametrize(
    ("a", "x", "b"),
    [
        (2, 5, 5),  # closed on the right
        (2, 3, 5),
        (60, 5, 5),
        (60, 0, 5),
        (5, 2, 2),
        (10, 10, 10),  # (a, a] is the whole ring
        (10, 11, 10),
        (10, 0, 10),
    ],
)
def test_between_right_true(a: int, x: int, b: int) -> None:
    assert between_right(a, x, b)


@pytest.mark.parametrize(
    ("a", "x", "b"),
    [
        (2, 2, 5),  # still open on the left
        (2, 6, 5),
        (60, 60, 5),
        (60, 6, 5),
        (5, 5, 2),
        (5, 3, 2),
    ],
)
def test_between_right_false(a: int, x: int, b: int) -> None:
    assert not between_right(a, x, b)


# ------------------------------------------------------------------ finger starts
def test_finger_starts_of_node_8() -> None:
    assert [RING.finger_start(8, i) for i in range(6)] == [9, 10, 12, 16, 24, 40]


def test_finger_starts_wrap_past_zero() -> None:
    # 60+1, 60+2, 60+4=64→0, 60+8=68→4, 60+16=76→12, 60+32=92→28
    assert [RING.finger_start(60, i) for i in range(6)] == [61, 62, 0, 4, 12, 28]


def test_finger_start_of_last_id_on_tiny_ring() -> None:
    assert [Ring(2).finger_start(3, i) for i in range(2)] == [0, 1]


# --------------------------------------------------------------------- hex forms
@pytest.mark.parametrize("ident", [0, 1, 41, 63, 2**64, 2**159, 2**160 - 1])
def test_to_hex_is_always_40_lowercase_digits(ident: int) -> None:
    text = to_hex(ident)
    assert len(text) == HEX_DIGITS == 40
    assert text == text.lower()
    assert int(text, 16) == ident
    assert from_hex(text) == ident


def test_to_hex_pads_small_ids_with_zeros() -> None:
    assert to_hex(41) == "0" * 38 + "29"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "29",  # too short
        "0" * 39,
        "0" * 41,  # too long
        "g" + "0" * 39,  # not hex
        "0x" + "0" * 38,  # prefix is not allowed
        " " + "0" * 39,
        "-" + "0" * 38 + "1",  # int() would accept a sign and return -1
        "+" + "0" * 39,
        "0_" + "0" * 38,  # int() would accept an underscore
        "0" * 39 + "\n",  # int() would strip whitespace
        "\u0661" * 40,  # ARABIC-INDIC DIGIT ONE: int() accepts Unicode digits
        "A" + "0" * 39,  # uppercase
        "2C49BCEAE3B0D01C9B0FBC1E78CFFF0D175B9B29",
    ],
)
def test_from_hex_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        from_hex(text)


def test_from_hex_accepts_lowercase_digest() -> None:
    assert from_hex("2c49bceae3b0d01c9b0fbc1e78cfff0d175b9b29") == int(
        "2c49bceae3b0d01c9b0fbc1e78cfff0d175b9b29", 16
    )


# ------------------------------------------------------------------------- short
def test_short_uses_ring_width() -> None:
    assert RING.short(5) == "05"  # 6 bits → 2 hex digits
    assert RING.short(63) == "3f"
    assert Ring(5).short(31) == "1f"
    assert Ring(4).short(15) == "f"
    assert Ring(1).short(1) == "1"


def test_short_truncates_to_8_digits() -> None:
    assert Ring().short(2**159) == "80000000"
    assert Ring().short(0x2C49BCEAE3B0D01C9B0FBC1E78CFFF0D175B9B29) == "2c49bcea"
    assert Ring(32).short(0xDEADBEEF) == "deadbeef"
    assert Ring(32).short(1) == "00000001"
