"""The REST API's input checks on their own: file names, Range headers, bearer tokens,
the admin token file, and the incremental multipart reader."""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path

import pytest

from chord.lookup import LookupFailed
from chord.names import InvalidName, decode_name, validate_name
from config import ConfigError, Settings, load_settings, parse_args
from services.files import client as fc
from services.rest.auth import (
    CHALLENGE,
    Need,
    Tokens,
    authorize,
    bearer,
    load_or_create_admin_token,
)
from services.rest.disposition import filename_of
from services.rest.download import content_disposition
from services.rest.errors import ApiError, from_exception
from services.rest.metrics import PeerMetrics
from services.rest.ranges import BadRange, ByteRange, Unsatisfiable, parse_range
from services.rest.upload import PIECE, MultipartUpload

# ------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "файл.txt",
        "报告 2026.pdf",
        "docs/2026/plan.md",
        "a",
        "x" * 255,
        "é" * 127,
        ".hidden",
        "a..b",
    ],
)
def test_good_names_are_returned_unchanged(name: str) -> None:
    assert validate_name(name) is name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../x",
        "/etc/passwd",
        "..",
        ".",
        "a/../b",
        "a/./b",
        "a//b",
        "a/",
        "a\x00b",
        "tab\there",
        "new\nline",
        "del\x7f",
        "c1\x85",
        "back\\slash",
        "x" * 256,
        "é" * 128,
        "\ud800",
        5,
        None,
        ["a"],
        "evil\u202egnp.exe",
        "zero\u200bwidth",
        "\ufeffbom",
        "join\u200dme",
        "word\u2060joiner",
        "line\u2028sep",
        " ",
        "   ",
        "a/ /b",
        "...",
        "a/. ./b",
        "soft\u00adhyphen",
    ],
)
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidName):
        validate_name(name)


def test_content_disposition_has_utf8_and_ascii_fallback() -> None:
    header = content_disposition('docs/2026/报告 "1".pdf')
    assert header.startswith('attachment; filename="')
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%221%22.pdf" in header
    fallback = header.split('filename="')[1].split('"')[0]
    assert fallback.isascii() and fallback.endswith(".pdf") and "/" not in fallback


# ------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-3", 10, ByteRange(0, 4)),
        ("bytes=2-", 10, ByteRange(2, 10)),
        ("bytes=-3", 10, ByteRange(7, 10)),
        ("bytes=-30", 10, ByteRange(0, 10)),
        ("bytes=5-100", 10, ByteRange(5, 10)),
        ("bytes=9-9", 10, ByteRange(9, 10)),
        ("Bytes = 1 - 2", 10, ByteRange(1, 3)),
    ],
)
def test_ranges(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    ["bytes=5-2", "items=0-1", "bytes=0-1,3-4", "bytes=-", "bytes=a-b", "0-1", "bytes=+1-2"],
)
def test_malformed_ranges(header: str) -> None:
    with pytest.raises(BadRange):
        parse_range(header, 10)


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_content_range_text() -> None:
    assert ByteRange(7, 10).content_range(10) == "bytes 7-9/10"


# --------------------------------------------------------------------- auth

OPEN = Tokens(api=None, admin="admin-secret")
CLOSED = Tokens(api="api-secret", admin="admin-secret")


def status_of(tokens: Tokens, header: str | None, need: Need) -> int:
    try:
        authorize(tokens, header, need)
    except ApiError as exc:
        if exc.status == 401:
            assert exc.headers == CHALLENGE
        return exc.status
    return 200


@pytest.mark.parametrize(
    ("tokens", "header", "need", "status"),
    [
        (OPEN, None, Need.WRITE, 200),
        (OPEN, "Bearer whatever", Need.WRITE, 200),
        (CLOSED, None, Need.WRITE, 401),
        (CLOSED, "Bearer wrong", Need.WRITE, 401),
        (CLOSED, "Basic api-secret", Need.WRITE, 401),
        (CLOSED, "Bearer api-secret", Need.WRITE, 200),
        (CLOSED, "bearer  api-secret ", Need.WRITE, 200),
        (CLOSED, "Bearer admin-secret", Need.WRITE, 200),
        (OPEN, None, Need.ADMIN, 401),
        (OPEN, "Bearer wrong", Need.ADMIN, 401),
        (CLOSED, "Bearer api-secret", Need.ADMIN, 403),
        (CLOSED, "Bearer admin-secret", Need.ADMIN, 200),
        (CLOSED, "Bearer пароль", Need.ADMIN, 401),
    ],
)
def test_authorize(tokens: Tokens, header: str | None, need: Need, status: int) -> None:
    assert status_of(tokens, header, need) == status


def test_bearer_parsing() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("Bearer") is None
    assert bearer("") is None
    assert bearer(None) is None


def test_admin_token_file_is_private_and_reused(tmp_path: Path) -> None:
    token, path = load_or_create_admin_token(tmp_path)
    assert path == tmp_path / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    path.chmod(0o644)
    again, _ = load_or_create_admin_token(tmp_path)
    assert again == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("")  # a crash between create and write
    fresh, _ = load_or_create_admin_token(tmp_path)
    assert fresh and fresh != token


# ---------------------------------------------------------------- multipart

BOUNDARY = "XyZ123"


def body(*parts: tuple[str, bytes, str | None], end: bool = True) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


def reader(data: bytes, limit: int = 1 << 30) -> MultipartUpload:
    return MultipartUpload(io.BytesIO(data), BOUNDARY, limit, PeerMetrics())


def read_all(upload: MultipartUpload) -> tuple[dict[str, str], str, bytes, dict[str, str]]:
    """head, filename, the file's bytes, and every field once the form is read."""
    head = upload.head()
    filename = upload.filename()
    content = b"".join(upload.body())
    return head, filename, content, upload.tail()


def test_fields_then_file_in_pieces() -> None:
    content = bytes(range(256)) * (3 * PIECE // 256 + 7)
    upload = reader(body(("name", "報告.txt".encode(), None), ("file", content, "x.bin")))
    assert upload.head() == {"name": "報告.txt"} and upload.filename() == "x.bin"
    pieces = list(upload.body())
    assert b"".join(pieces) == content
    assert all(len(p) == PIECE for p in pieces[:-1])
    assert upload.tail() == {"name": "報告.txt"} and upload.finished


def test_fields_after_the_file_are_read_by_tail() -> None:
    data = body(
        ("replicas", b"2", None),
        ("file", b"abc", "x.bin"),
        ("name", b"docs/x.bin", None),
        ("overwrite", b"yes", None),
    )
    head, filename, content, every = read_all(reader(data))
    assert head == {"replicas": "2"} and filename == "x.bin" and content == b"abc"
    assert every == {"replicas": "2", "name": "docs/x.bin", "overwrite": "yes"}


@pytest.mark.parametrize(
    "data",
    [
        body(("file", b"abc", "x"), ("file", b"def", "y")),
        body(("file", b"abc", "x"), end=False),
        body(("name", b"a", None), ("file", b"abc", "x"), ("name", b"b", None)),
        body(("file", b"abc", "x"), ("colour", b"red", None)),
        body(("file", b"abc", "x"), ("name", b"\xc0\xae", None)),
        body(("colour", b"red", None), ("file", b"abc", "x")),
        body(("name", b"a", None), ("name", b"b", None), ("file", b"abc", "x")),
        body(("upload", b"abc", "x")),
        body(("name", b"a", None)),
        body(("file", b"abc", None)),  # the file part sent as a text field
        b"no multipart at all" * 10000,
        body(("name", b"\xff", None), ("file", b"abc", "x")),
    ],
)
def test_bad_bodies_raise_400(data: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        read_all(reader(data))
    assert caught.value.status == 400


def test_too_many_file_bytes_is_413() -> None:
    upload = reader(body(("file", b"x" * 101, "f")), limit=100)
    upload.head()
    with pytest.raises(ApiError) as caught:
        list(upload.body())
    assert caught.value.status == 413


def disposition_of(filename_params: str) -> str:
    return f'form-data; name="file"; {filename_params}'


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ('filename="plain.txt"', "plain.txt"),
        ("filename=token.txt", "token.txt"),
        ('filename="报告 2026.pdf"', "报告 2026.pdf"),
        ('filename="100%.txt"', "100%.txt"),  # only %22 is an escape to browsers
        ("filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"),
        ("filename*=utf-8'en'a%20b.txt", "a b.txt"),
        ("filename=\"fallback.txt\"; filename*=UTF-8''real.txt", "real.txt"),
        ("filename*=UTF-8''a%22b.txt", 'a"b.txt'),  # unambiguous there
    ],
)
def test_filenames_are_read_strictly(params: str, name: str) -> None:
    assert filename_of(disposition_of(params)) == name


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ('filename="..\\..\\win.ini"', "'\\'"),
        ('filename="a\\b.txt"', "'\\'"),
        ('filename="a\\"b.txt"', "'\\'"),
        ('filename="a%22b.txt"', "'\"'"),
        ("filename*=UTF-8''%C0%AE", "0xC0"),
        ("filename*=ISO-8859-1''caf%E9.txt", "must be UTF-8"),
        ("filename*=nonsense", "filename*"),
        ("filename*0=a; filename*1=b", "continuations"),
        ('filename="evil\u202egnp.exe"', "U+202E"),
        ('filename="  "', "dots and spaces"),
        ('filename=""', "empty"),
        ('filename="a"; filename="b"', "twice"),
        ('filename="open', "unterminated"),
        ("", "no filename"),
    ],
)
def test_ambiguous_or_bad_filenames_are_refused(params: str, says: str) -> None:
    with pytest.raises(ApiError, match=re.escape(says)) as caught:
        filename_of(disposition_of(params))
    assert caught.value.status == 400


# ------------------------------------------------------------ errors, settings


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (fc.NotFound("x"), 404, "not-found"),
        (fc.Conflict("x"), 409, "conflict"),
        (fc.NoSpace("x"), 507, "no-space"),
        (fc.Unavailable("x"), 503, "unavailable"),
        (fc.ChecksumMismatch("x"), 422, "checksum-mismatch"),
        (LookupFailed("x"), 503, "lookup-failed"),
    ],
)
def test_file_and_ring_errors_map_to_the_contract(exc: Exception, status: int, code: str) -> None:
    error = from_exception(exc)
    assert error is not None and (error.status, error.code) == (status, code)


def test_a_bug_is_not_mapped() -> None:
    assert from_exception(KeyError("x")) is None


def test_token_settings_from_flags_env_and_validation() -> None:
    argv = ["--api-token", "api-token-1", "--max-upload-mib", "5"]
    settings = parse_args(argv, {"CHORD_ADMIN_TOKEN": "admin-token-1"}).settings
    assert (settings.api_token, settings.admin_token) == ("api-token-1", "admin-token-1")
    assert settings.max_upload_mib == 5 and Settings().max_upload_mib == 10240
    for bad in (
        {"api_token": "short"},
        {"admin_token": "has space in"},
        {"max_upload_mib": "0"},
        {"api_token": "same-token", "admin_token": "same-token"},
    ):
        with pytest.raises(ConfigError):
            load_settings(bad, None, {})


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("evil\u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("a\u200bb", "U+200B ZERO WIDTH SPACE"),
        ("\ufeffx", "U+FEFF"),
        ("a/  /b", "only of dots and spaces"),
        ("a\\b", "'\\'"),
    ],
)
def test_refusals_name_the_character_and_the_reason(name: str, says: str) -> None:
    with pytest.raises(InvalidName, match=re.escape(says)):
        validate_name(name)


def test_invalid_utf8_bytes_are_refused_not_replaced() -> None:
    with pytest.raises(InvalidName, match="0xC0"):
        decode_name(b"\xc0\xae")
    assert decode_name("файл".encode()) == "файл"
