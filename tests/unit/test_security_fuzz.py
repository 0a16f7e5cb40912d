"""Hypothesis on everything that parses what a client sends: the file name validator,
Range headers, query and form parameters, the JSON body, the multipart upload decoder,
and peer addresses. Properties: nothing but the documented error type ever escapes,
and valid input round-trips. Kept to a few seconds (a fixed example budget)."""

from __future__ import annotations

import io
import json
import string
from urllib.parse import quote_from_bytes

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chord.names import MAX_NAME_BYTES, InvalidName, last_segment, validate_name
from clientlib.ranges import parse_content_range, range_header
from config.settings import ConfigError, format_address, split_address
from services.rest.download import content_disposition
from services.rest.errors import ApiError
from services.rest.metrics import PeerMetrics
from services.rest.params import name_param, parse_bool, parse_replicas, strict_query
from services.rest.ranges import BadRange, ByteRange, Unsatisfiable, parse_range
from services.rest.upload import MAX_FIELD_BYTES, MultipartUpload

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
APP = Flask("fuzz")
METRICS = PeerMetrics()

# Names built from the rules: segments of ordinary characters joined by '/'.
SEGMENT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"), blacklist_characters="/\\\x7f"
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip(". ") != "")
VALID_NAME = (
    st.lists(SEGMENT, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda n: len(n.encode()) <= MAX_NAME_BYTES)
)


# ---------------------------------------------------------------------- names


@FAST
@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
@example("a\ud800b")  # a lone surrogate, as JSON "\ud800" decodes
@example("../etc/passwd")
@example("x" * 256)
def test_the_name_validator_only_raises_invalid_name(name: object) -> None:
    try:
        accepted = validate_name(name)
    except InvalidName as exc:
        assert str(exc)
        return
    assert accepted is name  # never rewritten
    assert isinstance(accepted, str) and 0 < len(accepted.encode()) <= MAX_NAME_BYTES
    assert not accepted.startswith("/") and "\\" not in accepted
    assert all(seg not in ("", ".", "..") for seg in accepted.split("/"))
    assert content_disposition(accepted)  # what a download answers with never fails


@FAST
@given(VALID_NAME)
def test_valid_names_round_trip(name: str) -> None:
    assert validate_name(name) == name
    assert last_segment(name) == name.split("/")[-1]


# --------------------------------------------------------------------- ranges


@FAST
@given(st.one_of(st.none(), st.text(max_size=60)), st.integers(0, 10**12))
@example("bytes=0-", 0)
@example("bytes=-0", 10)
@example("bytes=5-4", 10)
@example("bytes=1-2,3-4", 10)
@example("BYTES = 1-2", 10)
def test_range_headers_give_a_range_in_the_file_or_a_documented_error(
    header: str | None, size: int
) -> None:
    try:
        span = parse_range(header, size)
    except (BadRange, Unsatisfiable) as exc:
        assert str(exc)
        return
    if header is None:
        assert span is None
        return
    assert span is not None and 0 <= span.start < span.end <= size


@FAST
@given(
    st.integers(1, 10**12).flatmap(
        lambda size: st.tuples(st.just(size), st.integers(0, size - 1), st.integers(0, size - 1))
    )
)
def test_valid_ranges_round_trip(case: tuple[int, int, int]) -> None:
    size, a, b = case
    start, last = min(a, b), max(a, b)
    span = parse_range(range_header(start, last + 1), size)
    assert span == ByteRange(start, last + 1)
    assert parse_content_range(span.content_range(size)) == (start, last + 1, size)
    assert parse_range(range_header(start), size) == ByteRange(start, size)


# ----------------------------------------------------------------- parameters


@FAST
@given(st.text(max_size=20))
def test_booleans_parse_or_answer_400(text: str) -> None:
    try:
        assert parse_bool(text, "overwrite") in (True, False)
    except ApiError as exc:
        assert exc.status == 400


@FAST
@given(st.text(max_size=20), st.integers(1, 64))
@example("٣", 8)  # a non-ASCII digit
@example("0003", 8)
def test_replicas_parse_or_answer_400(text: str, most: int) -> None:
    try:
        value = parse_replicas(text, most)
    except ApiError as exc:
        assert exc.status == 400
        return
    assert value is not None and most is not None
    assert 1 <= value <= most and text.strip().isascii()


@FAST
@given(st.integers(1, 64).flatmap(lambda most: st.tuples(st.just(most), st.integers(1, most))))
def test_valid_replicas_round_trip(case: tuple[int, int]) -> None:
    most, value = case
    assert parse_replicas(f" {value} ", most) == value


def _name_from(method: str, query: str | None, body: bytes, content_type: str) -> str:
    path = "/download_file" + (f"?name={query}" if query is not None else "")
    with APP.test_request_context(path, method=method, data=body, content_type=content_type):
        return name_param()


@FAST
@given(
    st.sampled_from(["GET", "POST"]),
    st.one_of(st.none(), st.text(max_size=40)),
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["filename", "name", "x"]), inner, max_size=3)
            ),
            max_leaves=6,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]),
)
@example("POST", None, b"\xff\xfe{", "application/json")
@example("POST", None, b'{"filename": "\\ud800"}', "application/json")
@example("POST", None, b'{"filename": "a", "name": "b"}', "application/json")
def test_the_name_parameter_parses_or_answers_a_4xx(
    method: str, query: str | None, body: bytes, content_type: str
) -> None:
    try:
        name = _name_from(method, query, body, content_type)
    except ApiError as exc:
        assert exc.status in (400, 413, 415) and exc.detail
        return
    assert validate_name(name) == name


@FAST
@given(VALID_NAME, st.sampled_from(["filename", "name"]))
def test_a_valid_name_in_a_json_body_round_trips(name: str, key: str) -> None:
    body = json.dumps({key: name}).encode()
    assert _name_from("POST", None, body, "application/json") == name


def test_an_oversized_json_body_is_413() -> None:
    body = json.dumps({"filename": "a", "pad": "x" * (64 << 10)}).encode()
    with pytest.raises(ApiError) as caught:
        _name_from("POST", None, body, "application/json")
    assert caught.value.status == 413


# ------------------------------------------------------------------ multipart

BOUNDARY = "fuzz-boundary-7d3e"


def _decode(body: bytes, limit: int = 1 << 20) -> tuple[dict[str, str], str, bytes]:
    upload = MultipartUpload(io.BytesIO(body), BOUNDARY, limit, METRICS)
    upload.head()
    filename = upload.filename()
    content = b"".join(upload.body())
    return upload.tail(), filename, content


def _part(headers: str, content: bytes) -> bytes:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"


def _form(fields: dict[str, str], filename: str, content: bytes, before: int = 3) -> bytes:
    """The form with the first ``before`` fields ahead of the file part, the rest after."""
    texts = [
        _part(f'Content-Disposition: form-data; name="{key}"', value.encode())
        for key, value in fields.items()
    ]
    file_part = _part(
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream",
        content,
    )
    body = b"".join(texts[:before]) + file_part + b"".join(texts[before:])
    return body + f"--{BOUNDARY}--\r\n".encode()


@FAST
@given(st.binary(max_size=600))
@example(b"")
@example(f"--{BOUNDARY}\r\n".encode())
@example(_form({}, "a.txt", b"x")[:-10])  # cut short
@example(
    _form({"name": "a"}, "a.txt", b"x")
    + _part('Content-Disposition: form-data; name="replicas"', b"2")
)
def test_any_upload_body_decodes_or_answers_a_4xx(body: bytes) -> None:
    try:
        _decode(body)
    except ApiError as exc:
        assert exc.status in (400, 413) and exc.detail


@FAST
@given(
    st.lists(st.binary(max_size=80), max_size=5),
    st.binary(max_size=40).map(lambda junk: f"--{BOUNDARY}".encode() + junk),
)
def test_framed_garbage_decodes_or_answers_a_4xx(pieces: list[bytes], tail: bytes) -> None:
    body = b"".join(_part('Content-Disposition: form-data; name="file"', p) for p in pieces)
    try:
        _decode(body + tail)
    except ApiError as exc:
        assert exc.status in (400, 413)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["name", "replicas", "overwrite"]),
        st.text(alphabet=string.ascii_letters + string.digits + " ._-", max_size=30),
        max_size=3,
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=30).filter(
        lambda filename: filename.strip(".") != ""  # '.', '..': refused names
    ),
    st.binary(max_size=3000),
    st.integers(0, 3),
)
def test_valid_uploads_round_trip_in_any_order(
    fields: dict[str, str], filename: str, content: bytes, before: int
) -> None:
    assert _decode(_form(fields, filename, content, before)) == (fields, filename, content)


@FAST
@given(st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=4))
@example([(b"name", b"\xc0\xae")])
@example([(b"", b""), (b"\x00", b""), (b"", b"")])  # repeated keys are grouped
@example([(b"\xff", b"x")])
def test_a_query_string_is_strict_utf8_or_answers_400(pairs: list[tuple[bytes, bytes]]) -> None:
    query = "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)
    with APP.test_request_context("/download_file?" + query):
        try:
            strict_query()
        except ApiError as exc:
            assert exc.status == 400 and "UTF-8" in exc.detail
            assert any(not _is_utf8(part) for pair in pairs for part in pair)
            return
        assert all(_is_utf8(part) for pair in pairs for part in pair)
        decoded = [(k.decode(), v.decode()) for k, v in pairs]
        # A MultiDict groups repeated keys (in order of first appearance), so
        # the pairs are compared as a multiset, not in query order.
        assert sorted(request.args.items(multi=True)) == sorted(decoded)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_too_big_uploads_and_fields_are_refused() -> None:
    with pytest.raises(ApiError) as caught:
        _decode(_form({}, "a", b"x" * 101), limit=100)
    assert caught.value.status == 413
    with pytest.raises(ApiError) as caught:
        _decode(_form({"name": "n" * (MAX_FIELD_BYTES + 1)}, "a", b""))
    assert caught.value.status == 400


# ------------------------------------------------------------- peer addresses


@FAST
@given(st.text(max_size=60))
@example("unix:/tmp/sock")
@example("[::1]:7000")
@example("host:99999")
def test_peer_addresses_parse_or_raise_config_error(text: str) -> None:
    try:
        host, port = split_address(text, "address")
    except ConfigError as exc:
        assert exc.setting == "address"
        return
    assert 1 <= port <= 65535 and host
    assert split_address(format_address(host, port), "address") == (host, port)
