"""The client's pure helpers: range splitting, Range headers, multipart framing, addresses."""

from __future__ import annotations

import email.parser
import email.policy
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clientlib.multipart import build_frame, quote_param
from clientlib.peer import Address, parse_address
from clientlib.ranges import (
    KIB,
    MIB,
    chunk_size,
    parse_content_range,
    range_header,
    split_range,
)


@given(
    start=st.integers(0, 10**12),
    length=st.integers(0, 20_000),
    chunk=st.integers(1, 5_000),
)
def test_split_range_covers_the_range_in_order(start: int, length: int, chunk: int) -> None:
    pieces = split_range(start, start + length, chunk)
    assert sum(b - a for a, b in pieces) == length
    assert all(0 < b - a <= chunk for a, b in pieces)
    assert all(b == a2 for (_, b), (a2, _) in itertools.pairwise(pieces))
    if pieces:
        assert pieces[0][0] == start and pieces[-1][1] == start + length
        assert all(b - a == chunk for a, b in pieces[:-1])


def test_split_range_examples() -> None:
    assert split_range(0, 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert split_range(5, 5, 4) == []
    with pytest.raises(ValueError):
        split_range(0, 10, 0)


def test_chunk_size_is_bounded_and_gives_each_worker_several_pieces() -> None:
    assert chunk_size(0, 3) == 256 * KIB
    assert chunk_size(10 * KIB, 3) == 256 * KIB
    assert chunk_size(12 * MIB, 3) == MIB
    assert chunk_size(10**12, 3) == 4 * MIB
    assert chunk_size(12 * MIB, 0) == 3 * MIB  # workers < 1 counts as one


def test_range_headers_are_inclusive() -> None:
    assert range_header(0, 10) == "bytes=0-9"
    assert range_header(1024) == "bytes=1024-"
    assert parse_content_range("bytes 0-9/100") == (0, 10, 100)
    assert parse_content_range("bytes 5-5/*") == (5, 6, None)
    for bad in ["", "bytes */100", "bytes 9-0/100", "items 0-9/100", "bytes 0-9"]:
        with pytest.raises(ValueError):
            parse_content_range(bad)


def assemble(fields: list[tuple[str, str]], filename: str, content: bytes) -> tuple[bytes, str]:
    frame = build_frame(fields, "file", filename, boundary="b0undary")
    body = frame.head + content + frame.tail
    assert frame.content_length(len(content)) == len(body)
    return body, frame.content_type


@pytest.mark.parametrize("size", [0, 1, 4096, 100_003])
def test_multipart_length_is_exact_and_the_body_parses(size: int) -> None:
    content = bytes(i % 251 for i in range(size))
    fields = [("name", "报告 2026.pdf"), ("replicas", "2"), ("overwrite", "true")]
    body, content_type = assemble(fields, 'odd "name"\r\n.bin', content)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "name",
        "replicas",
        "overwrite",
        "file",
    ]
    assert [p.get_payload(decode=True) for p in parts[:3]] == [
        "报告 2026.pdf".encode(),
        b"2",
        b"true",
    ]
    assert parts[3].get_payload(decode=True) == content
    assert parts[3].get_filename() == "odd %22name%22%0D%0A.bin"


def test_text_fields_come_before_the_file_part() -> None:
    frame = build_frame([("name", "x")], "file", "f.bin")
    assert frame.head.index(b'name="name"') < frame.head.index(b'name="file"')
    assert frame.tail.endswith(b"--\r\n") and b"file" not in frame.tail


def test_quote_param() -> None:
    assert quote_param('a"b\r\nc') == "a%22b%0D%0Ac"
    assert quote_param("файл.txt") == "файл.txt"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:17000", Address("127.0.0.1", 17000)),
        ("http://localhost:8080/", Address("localhost", 8080)),
        ("[::1]:17000", Address("::1", 17000)),
    ],
)
def test_parse_address(text: str, address: Address) -> None:
    assert parse_address(text) == address


def test_address_prints_v6_in_brackets() -> None:
    assert str(Address("::1", 5)) == "[::1]:5"


@pytest.mark.parametrize("text", ["nonsense", "host:", "host:99999", "https://h:1", "h:1/x"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)
