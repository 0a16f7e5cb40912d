"""A ``multipart/form-data`` body built around a file that is streamed, not loaded.

The frame is the bytes before the file's content (the text fields, then the file part's
headers) and the bytes after it; with the file's size that gives ``Content-Length`` before
a byte is sent, so the upload needs neither chunked encoding nor the file in memory.
Text fields come first: the peer can then stream the file's bytes to the holders as they
arrive (docs/rest-api.md, how the bytes travel).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

CRLF = b"\r\n"


def new_boundary() -> str:
    return f"chord-{secrets.token_hex(16)}"


def quote_param(value: str) -> str:
    """A header parameter value as browsers send it (WHATWG HTML): ``"``, CR and LF
    percent-encoded, the rest raw UTF-8."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


@dataclass(frozen=True)
class MultipartFrame:
    boundary: str
    head: bytes
    tail: bytes

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def content_length(self, file_size: int) -> int:
        return len(self.head) + file_size + len(self.tail)


def _part_header(boundary: str, disposition: str, content_type: str | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Disposition: form-data; {disposition}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return "\r\n".join(lines).encode() + CRLF + CRLF


def build_frame(
    fields: Sequence[tuple[str, str]],
    file_field: str,
    filename: str,
    boundary: str | None = None,
) -> MultipartFrame:
    """The frame around one file part, with ``fields`` (name, value) before it."""
    boundary = boundary or new_boundary()
    head = b""
    for name, value in fields:
        head += _part_header(boundary, f'name="{quote_param(name)}"')
        head += value.encode() + CRLF
    head += _part_header(
        boundary,
        f'name="{quote_param(file_field)}"; filename="{quote_param(filename)}"',
        "application/octet-stream",
    )
    tail = CRLF + f"--{boundary}--".encode() + CRLF
    return MultipartFrame(boundary, head, tail)
