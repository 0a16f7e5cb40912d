"""Holding an upload's file part on the receiving peer until the form's fields are known.

Only needed when a field the upload depends on comes after the file part (services/rest/
store.py). The file lives in ``<data dir>/uploads/`` (the data dir is where the operator
gave the peer disk; the system's /tmp may be small or in memory), under a name nobody
else uses, and is removed when the upload ends whatever the outcome; ``empty_dir`` at
start-up removes what a crash left. Its size is bounded by the upload limit, which the
multipart reader enforces while the bytes arrive.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

PIECE = 1 << 20


def empty_dir(path: Path) -> None:
    """Create ``path`` if needed and remove every file left in it (by a crash)."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


class Spool:
    """A temporary file for one upload: ``write`` while receiving, then ``pieces`` to
    read it back from the start (as often as needed); removed on leaving the ``with``."""

    def __init__(self, directory: Path | None) -> None:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self.size = 0

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def pieces(self) -> Iterator[bytes]:
        self._file.flush()
        self._file.seek(0)
        while block := self._file.read(PIECE):
            yield block

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self.path.unlink(missing_ok=True)
