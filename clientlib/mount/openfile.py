"""A ring file being written through the mount: its bytes in a local spool file.

One :class:`OpenFile` per name is shared by every descriptor that has the name open (as
one inode is, on a local disk), so a program reading a file that another descriptor is
writing sees the written bytes (``sed -i``, editors and git read what they just wrote).

The bytes of a file that already existed are fetched lazily, on the first read or change:
``touch`` or an ``open`` that only reads costs no download, and ``O_TRUNC`` never fetches
what it throws away. The flags say when the spool must be uploaded (by the caller,
:mod:`clientlib.mount.fs`):

* ``unsaved``: the spool differs from what the ring holds under the name (a new file
  counts, even empty: ``touch`` must store it);
* ``written``: a write or truncate came since the last upload. A close (FUSE flush) uploads
  only then, because the shell's ``echo x > f`` opens with O_CREAT|O_TRUNC and closes a
  first descriptor before the data arrives: storing that empty file would lose the data;
* ``failed``: the last upload failed and the program was told; the final release does not
  retry behind its back.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from collections.abc import Callable

from clientlib.download import Remote
from clientlib.mount.blocks import BLOCK, BlockReader
from clientlib.mount.errors import FsError, refuse

Opener = Callable[[Remote], BlockReader]


class OpenFile:
    """The spool and state of one name open for writing (callers hold ``lock``)."""

    def __init__(
        self,
        name: str,
        spool: str | None,
        base: Remote | None,
        opener: Opener,
        *,
        owned: bool,
        modified: float | None = None,
    ) -> None:
        self.name = name
        # What stat shows as mtime: the stored version's time until the bytes change, then
        # the time of the last change (and the stored entry keeps it). It must not move
        # otherwise: vim refuses to save a file whose mtime changed since it was read.
        self.modified = time.time() if modified is None else modified
        self.base = base  # the stored version whose bytes are not in the spool yet
        self.opener = opener
        self.reader: BlockReader | None = None
        self.in_ring = base is not None  # the ring holds some version under ``name``
        # May this file replace what the ring holds? Always on a clobbering mount; under
        # --no-clobber only a file this mount created (and then stored) itself.
        self.owned = owned
        self.unsaved = base is None  # a new file: stored at the latest when released
        self.written = self.failed = False
        self.detached = False  # unlinked or renamed over: never uploaded again
        self.handles = 0  # FUSE handles on it (counted by the caller)
        # Unbuffered: the size (fstat) must count every byte written, or the kernel
        # appends (O_APPEND) at a stale offset.
        self.file = tempfile.TemporaryFile(dir=spool, buffering=0)  # noqa: SIM115 - close()
        self.lock = threading.RLock()

    @property
    def size(self) -> int:
        base = self.base
        return base.size if base is not None else os.fstat(self.file.fileno()).st_size

    # --------------------------------------------------------------------- reading
    def read(self, offset: int, size: int) -> bytes:
        if self.base is not None:  # unchanged so far: read the stored version
            return self.stored_reader().read(offset, size)
        return os.pread(self.file.fileno(), size, offset)

    def stored_reader(self) -> BlockReader:
        assert self.base is not None
        if self.reader is None:
            self.reader = self.opener(self.base)
        return self.reader

    def load(self, limit: int | None = None) -> None:
        """Fetch the stored bytes (only the first ``limit`` when the rest is cut anyway)
        into the spool; afterwards the spool is the file."""
        if self.base is None:
            return
        reader, end = self.stored_reader(), self.base.size
        end = end if limit is None else min(limit, end)
        offset = 0
        while offset < end:
            data = reader.read(offset, min(BLOCK, end - offset))
            if not data:
                raise FsError(errno.EIO, f"{self.name}: the stored version ended early")
            os.pwrite(self.file.fileno(), data, offset)
            offset += len(data)
        self.base = None  # only now: until here ``size`` must stay the stored size
        self.drop_reader()

    # --------------------------------------------------------------------- changing
    def check_modifiable(self) -> None:
        if self.in_ring and not self.owned:
            raise refuse(
                errno.EEXIST,
                f"write {self.name}",
                "the file exists and the mount was started with --no-clobber",
            )

    def write(self, data: bytes, offset: int) -> int:
        self.check_modifiable()
        self.load()
        written = os.pwrite(self.file.fileno(), data, offset)
        self.changed()
        return written

    def truncate(self, length: int) -> None:
        self.check_modifiable()
        self.load(limit=length)
        os.ftruncate(self.file.fileno(), length)
        self.changed()

    def clear(self) -> None:
        """``O_TRUNC`` at open: empty, but not ``written``: a close before any write
        must not store the empty file (only the final release does, as for ``: > f``)."""
        self.check_modifiable()
        self.base = None
        self.drop_reader()
        os.ftruncate(self.file.fileno(), 0)
        self.unsaved = True
        self.modified = time.time()

    def changed(self) -> None:
        self.unsaved = self.written = True
        self.failed = False
        self.modified = time.time()

    def saved(self) -> None:
        """The spool was uploaded as ``name``: the ring holds it, and it is ours."""
        self.unsaved = self.written = self.failed = False
        self.in_ring = self.owned = True

    # ------------------------------------------------------------------ upload cues
    def due_at_close(self) -> bool:
        return not self.detached and self.unsaved and (self.written or self.failed)

    def due_at_fsync(self) -> bool:
        return not self.detached and self.unsaved

    def due_at_release(self) -> bool:
        return not self.detached and self.unsaved and not self.failed

    # ----------------------------------------------------------------------- ending
    def drop_reader(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def close(self) -> None:
        self.drop_reader()
        self.file.close()
