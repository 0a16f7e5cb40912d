"""Reading a multipart/form-data upload incrementally, in the order it arrives.

The HTTP server (services/web) streams the body to the app as it arrives; this reads it
once, through werkzeug's sans-IO multipart decoder (``request.files`` would spool the
file part). The form is read in three steps,
so the caller can decide what to do with the file's bytes once it knows which fields
came before them (services/rest/store.py):

* ``head()``: the text fields before the ``file`` part;
* ``body()``: the file's bytes in 1 MiB pieces as they are decoded (413 past the limit);
* ``tail()``: the text fields after the file part, up to the end of the form.

Every error raises ApiError (400 or 413). Raised inside ``body()`` or during a ``tail()``
called from the piece iterator FileClient.put consumes, it makes put end every holder's
stream without a trailer: nothing is stored.
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

from services.rest.disposition import filename_of
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
    """One upload body, read once, front to back: ``head()``, ``body()``, ``tail()``.
    ``fields`` holds every text field read so far, so a field is refused the second time
    it appears wherever it is."""

    def __init__(self, stream: IO[bytes], boundary: str, limit: int, metrics: PeerMetrics) -> None:
        self._stream = stream
        self._decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_PARTS)
        self._events = self._read_events()
        self._limit = limit
        self._metrics = metrics
        self._file: File | None = None
        self.fields: dict[str, str] = {}
        self.received = 0  # the file part's bytes so far
        self.finished = False  # the whole form has been read

    def _read_events(self) -> Iterator[Event]:
        decoder = self._decoder
        while True:
            try:
                event = decoder.next_event()
            except UnicodeDecodeError as exc:  # werkzeug decodes part headers as UTF-8
                raise bad_request(
                    f"a part's headers are not valid UTF-8 (byte 0x{exc.object[exc.start]:02X})"
                ) from None
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

    def _read_fields(self) -> File | None:
        """Text fields into ``fields`` until a file part (returned) or the end (None)."""
        current: str | None = None
        value = bytearray()
        for event in self._events:
            if isinstance(event, Field):
                current, value = _field_name(event.name, self.fields), bytearray()
            elif isinstance(event, Data) and current is not None:
                value += event.data
                if len(value) > MAX_FIELD_BYTES:
                    raise bad_request(f"form field {current!r} is longer than {MAX_FIELD_BYTES}")
                if not event.more_data:
                    self.fields[current] = _text(current, bytes(value))
                    current = None
            elif isinstance(event, File):
                return event
            elif isinstance(event, Epilogue):
                break
            elif not isinstance(event, Preamble):
                raise bad_request("malformed multipart body")
        self.finished = True
        return None

    def head(self) -> dict[str, str]:
        """The text fields before the file part (400 if the form has no file part)."""
        part = self._read_fields()
        if part is None:
            raise bad_request("the upload has no 'file' part")
        if part.name != "file":
            raise bad_request(f"the file part must be named 'file', not {part.name!r}")
        self._file = part
        return dict(self.fields)

    def filename(self) -> str:
        """The file part's filename as a valid file name, or 400 saying why not."""
        if self._file is None:
            raise RuntimeError("filename() before head()")
        return filename_of(self._file.headers.get("Content-Disposition", ""))

    def body(self) -> Iterator[bytes]:
        """The file part's bytes in PIECE-sized pieces; stops at the end of the part."""
        pending = bytearray()
        for event in self._events:
            if not isinstance(event, Data):
                raise bad_request("malformed multipart body inside the file part")
            self.received += len(event.data)
            if self.received > self._limit:
                raise ApiError(
                    413,
                    f"the file is larger than this peer's upload limit "
                    f"of {self._limit} bytes; nothing was stored",
                )
            self._metrics.bytes_in.inc(len(event.data))
            pending += event.data
            while len(pending) >= PIECE:
                yield bytes(pending[:PIECE])
                del pending[:PIECE]
            if not event.more_data:
                break
        if pending:
            yield bytes(pending)

    def tail(self) -> dict[str, str]:
        """Read the text fields after the file part, to the end of the form; returns all
        the fields of the form. A second file part is refused."""
        if not self.finished and self._read_fields() is not None:
            raise bad_request("only one file per upload; nothing was stored")
        return dict(self.fields)


def _field_name(name: str, seen: dict[str, str]) -> str:
    if name == "file":
        raise bad_request("the part 'file' has no filename; send it as a file")
    if name not in FIELDS:
        raise bad_request(f"unknown form field {name!r}; expected {', '.join(FIELDS)}, file")
    if name in seen:
        raise bad_request(f"form field {name!r} is given twice")
    return name


def _text(field: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{raw[exc.start]:02X} at {exc.start}"
        prefix = "invalid file name: " if field == "name" else ""
        raise bad_request(f"{prefix}form field {field!r} is not valid UTF-8 ({where})") from None
