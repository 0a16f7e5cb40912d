"""Reading a multipart/form-data upload incrementally, straight into FileClient.put.

waitress has already spooled the body to a temporary file (or memory, if small) before
the app runs; this reads that spool once, through werkzeug's sans-IO multipart decoder,
so no second copy is made (``request.files`` would spool the file part again). Text
fields must come before the ``file`` part; the file's bytes go out in 1 MiB pieces as
they are decoded. Anything wrong after the file part has started (a field after it, a
second file, a broken body, too many bytes) raises inside the piece iterator, which
makes FileClient.put end every holder's stream without a trailer: nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    Preamble,
    State,
)

from services.rest.errors import ApiError, bad_request
from services.rest.metrics import PeerMetrics

READ_SIZE = 256 << 10  # bytes read from the spool per decoder step
PIECE = 1 << 20  # bytes per piece handed to FileClient.put (its gRPC message size)
MAX_FIELD_BYTES = 4096  # a text field is a name or a small option
MAX_HEADER_BYTES = 64 << 10  # preamble / part headers: never buffer a body hunting for them
MAX_PARTS = 16
FIELDS = ("name", "replicas", "overwrite")
FRAMING_BYTES = 64 << 10  # allowed in Content-Length beyond the file size (fields, framing)


class MultipartUpload:
    """One upload body: ``head()`` reads the fields up to the file part, then ``body()``
    yields the file's bytes and finally checks that nothing but the end follows."""

    def __init__(self, stream: IO[bytes], boundary: str, limit: int, metrics: PeerMetrics) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_PARTS)
        self._events = self._read_events()
        self._limit = limit
        self._metrics = metrics

    def _read_events(self) -> Iterator[Event]:
        decoder = self._decoder
        while True:
            try:
                event = decoder.next_event()
            except ValueError as exc:
                raise bad_request(f"malformed multipart body: {exc}") from None
            except RequestEntityTooLarge:
                raise bad_request(f"an upload has at most {MAX_PARTS} parts") from None
            if event is not NEED_DATA:
                yield event
                if isinstance(event, Epilogue):
                    return
                continue
            if (
                decoder.state in (State.PREAMBLE, State.PART)
                and len(decoder.buffer) > MAX_HEADER_BYTES
            ):
                raise bad_request("malformed multipart body: no part boundary or headers found")
            chunk = self._stream.read(READ_SIZE)
            decoder.receive_data(chunk or None)  # None: the body ended

    def head(self) -> tuple[dict[str, str], str]:
        """The text fields before the file part, and the file part's filename."""
        fields: dict[str, str] = {}
        current: str | None = None
        value = bytearray()
        for event in self._events:
            if isinstance(event, Preamble):
                continue
            if isinstance(event, Field):
                if event.name not in FIELDS:
                    raise bad_request(
                        f"unknown form field {event.name!r}; expected {', '.join(FIELDS)}, file"
                    )
                if event.name in fields:
                    raise bad_request(f"form field {event.name!r} is given twice")
                current, value = event.name, bytearray()
            elif isinstance(event, Data) and current is not None:
                value += event.data
                if len(value) > MAX_FIELD_BYTES:
                    raise bad_request(f"form field {current!r} is longer than {MAX_FIELD_BYTES}")
                if not event.more_data:
                    fields[current] = _text(current, bytes(value))
                    current = None
            elif isinstance(event, File):
                if event.name != "file":
                    raise bad_request(f"the file part must be named 'file', not {event.name!r}")
                return fields, event.filename
            elif isinstance(event, Epilogue):
                break
        raise bad_request("the upload has no 'file' part")

    def body(self) -> Iterator[bytes]:
        """The file part's bytes in PIECE-sized pieces; raises ApiError (aborting the
        put) on too many bytes or on anything but the end of the body after them."""
        pending = bytearray()
        total = 0
        for event in self._events:
            if not isinstance(event, Data):
                raise bad_request("malformed multipart body inside the file part")
            total += len(event.data)
            if total > self._limit:
                raise ApiError(413, f"the file is larger than this peer's upload limit "
                                    f"of {self._limit} bytes; nothing was stored")  # fmt: skip
            self._metrics.bytes_in.inc(len(event.data))
            pending += event.data
            while len(pending) >= PIECE:
                yield bytes(pending[:PIECE])
                del pending[:PIECE]
            if not event.more_data:
                break
        if pending:
            yield bytes(pending)
        for event in self._events:
            if isinstance(event, Field):
                raise bad_request(
                    f"form field {event.name!r} comes after the file part; text fields "
                    "must come first. Nothing was stored"
                )
            if isinstance(event, File):
                raise bad_request("only one file per upload; nothing was stored")


def _text(field: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"form field {field!r} is not UTF-8") from None
