"""The FUSE operations: ring files as regular files, ``/`` in names as folders.

Paths arrive from FUSE as ``/a/b``; the ring name is ``a/b``. Every failure becomes an
errno: the API's statuses map as in :data:`ERRNO` (409 -> EEXIST, 404 -> ENOENT, 401/403
-> EACCES ...), anything else (a peer unreachable, a timeout) is EIO.

Writes go to a temporary file and are uploaded when the program closes the file (FUSE
``flush``, which is what makes ``close()`` return the upload's error) or calls
``fsync``. Without ``overwrite`` an existing file cannot be opened for writing (EEXIST),
and if another client stores the same name meanwhile, the upload's 409 makes ``close()``
fail with EEXIST: nothing is replaced unless the mount allows it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from clientlib.download import NotFound, Remote, find
from clientlib.mount.blocks import BlockCache, BlockReader, RingStream
from clientlib.mount.tree import Entry, Tree, parent
from clientlib.peer import ClientError, HttpError, PeerApi
from clientlib.ranges import MIB
from clientlib.upload import upload_stream

log = logging.getLogger("chord.mount")

ERRNO = {400: errno.EINVAL, 401: errno.EACCES, 403: errno.EACCES, 404: errno.ENOENT,
         409: errno.EEXIST, 413: errno.EFBIG, 507: errno.ENOSPC}  # fmt: skip
FILE_MODE, DIR_MODE = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755
T = TypeVar("T")


class FsError(OSError):
    """An errno for FUSE (mfusepy returns ``-errno`` for any OSError)."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail or os.strerror(code))


def errno_of(exc: ClientError) -> int:
    return ERRNO.get(exc.status, errno.EIO) if isinstance(exc, HttpError) else errno.EIO


@contextlib.contextmanager
def as_errno(what: str) -> Iterator[None]:
    """Turn the client library's errors into FsError, logging the one-line reason."""
    try:
        yield
    except ClientError as exc:
        log.warning("%s: %s", what, exc)
        raise FsError(errno_of(exc), str(exc)) from None


def ring_name(path: str) -> str:
    return path.strip("/")


class Writer:
    """A file being written: the bytes in a temporary file until they are uploaded."""

    def __init__(self, name: str, spool: str | None, dirty: bool) -> None:
        self.name, self.dirty = name, dirty
        self.failed = False  # an upload failed: close() reported it, release won't retry
        # Unbuffered: getattr's size (fstat) must count every byte written, or the kernel
        # appends (O_APPEND) at a stale offset.
        self.file = tempfile.TemporaryFile(dir=spool, buffering=0)  # noqa: SIM115 - see close()
        self.lock = threading.Lock()

    @property
    def size(self) -> int:
        return os.fstat(self.file.fileno()).st_size

    def close(self) -> None:
        self.file.close()


Handle = BlockReader | Writer


class RingFs:
    """mfusepy operations (``raw_fi=True``: handles are set on the ``fuse_file_info``)."""

    use_ns = True  # times in nanoseconds (mfusepy's modern convention)

    def __init__(
        self, api: PeerApi, overwrite: bool = False, cache_bytes: int = 256 * MIB,
        ttl: float = 2.0, spool: str | None = None,
    ) -> None:  # fmt: skip
        self.api, self.overwrite, self.spool = api, overwrite, spool
        self.tree = Tree(api, ttl)
        self.cache = BlockCache(cache_bytes)
        self.handles: dict[int, Handle] = {}
        self.numbers = itertools.count(1)
        self.guard = threading.Lock()  # not `lock`: mfusepy would take it for FUSE's lock op
        self.seen: dict[str, str] = {}  # name -> sha256 of the version last opened
        self.uid, self.gid = os.getuid(), os.getgid()
        self.mounted_at = time.time_ns()
        self.mounted = False  # set once the kernel has called init

    # ---------------------------------------------------------------------- helpers
    def handle(self, fi: Any) -> Handle:
        found = self.handles.get(fi.fh) if fi is not None else None
        if found is None:
            raise FsError(errno.EBADF)
        return found

    def new_handle(self, fi: Any, handle: Handle) -> int:
        with self.guard:
            number = next(self.numbers)
            self.handles[number] = handle
        fi.fh = number
        return 0

    def writer_for(self, name: str) -> Writer | None:
        with self.guard:
            return next((h for h in self.handles.values()
                         if isinstance(h, Writer) and h.name == name), None)  # fmt: skip

    def attrs(self, mode: int, size: int, stamp_ns: int) -> dict[str, Any]:
        return {
            "st_mode": mode, "st_nlink": 2 if stat.S_ISDIR(mode) else 1, "st_size": size,
            "st_uid": self.uid, "st_gid": self.gid, "st_blocks": -(-size // 512),
            "st_blksize": MIB, "st_mtime": stamp_ns, "st_ctime": stamp_ns, "st_atime": stamp_ns,
        }  # fmt: skip

    def listed(self, what: str, call: Callable[[], T]) -> T:
        with as_errno(what):
            return call()

    # ---------------------------------------------------------------------- lifecycle
    def init_with_config(self, conn: Any, config: Any) -> None:
        self.mounted = True
        if config is not None:
            # The kernel may keep a name's attributes this long; the ring listing is
            # cached for ``ttl`` anyway. No negative caching: a file stored through the
            # REST API shows up with the next listing.
            config.entry_timeout, config.attr_timeout, config.negative_timeout = 1.0, 1.0, 0.0

    def destroy(self, path: str) -> None:
        for handle in list(self.handles.values()):
            with contextlib.suppress(Exception):
                self.release_handle(handle)
        self.cache.close()

    # ------------------------------------------------------------------ metadata
    def getattr(self, path: str, fi: Any = None) -> dict[str, Any]:
        name = ring_name(path)
        if not name:
            return self.attrs(DIR_MODE, 0, self.mounted_at)
        writer = self.writer_for(name)
        if writer is not None:
            return self.attrs(FILE_MODE, writer.size, time.time_ns())
        entry = self.listed(f"stat {name}", lambda: self.tree.file(name))
        if entry is not None:
            return self.attrs(FILE_MODE, entry.size, int(entry.created * 1e9))
        if self.listed(f"stat {name}", lambda: self.tree.is_dir(name)):
            return self.attrs(DIR_MODE, 0, self.mounted_at)
        raise FsError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        name = ring_name(path)
        names = self.listed(f"ls {name or '/'}", lambda: self.tree.list_dir(name))
        if names is None:
            raise FsError(errno.ENOENT)
        return [".", "..", *names]

    def statfs(self, path: str) -> dict[str, int]:
        # The ring's free space is not known here; report plenty so programs don't refuse.
        blocks = (1 << 50) // MIB  # 1 PiB
        return {"f_bsize": MIB, "f_frsize": MIB, "f_blocks": blocks, "f_bfree": blocks,
                "f_bavail": blocks, "f_namemax": 255}  # fmt: skip

    def chmod(self, path: str, mode: int) -> int:
        return 0  # accepted and ignored: ring files have no modes (cp -p must not fail)

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0

    def utimens(self, path: str, times: Any = None) -> int:
        return 0  # times come from the ring (when the file was stored)

    # ------------------------------------------------------------------- folders
    def mkdir(self, path: str, mode: int) -> int:
        name = ring_name(path)
        if self.listed("mkdir", lambda: self.tree.file(name) or self.tree.is_dir(name)):
            raise FsError(errno.EEXIST)
        if not self.tree.is_dir(parent(name)):
            raise FsError(errno.ENOENT)
        self.tree.mkdir(name)
        return 0

    def rmdir(self, path: str) -> int:
        name = ring_name(path)
        names = self.listed("rmdir", lambda: self.tree.list_dir(name))
        if names is None:
            raise FsError(errno.ENOTDIR if self.tree.file(name) else errno.ENOENT)
        if names:
            raise FsError(errno.ENOTEMPTY)
        self.tree.rmdir(name)
        return 0

    # ------------------------------------------------------------------ reading
    def open(self, path: str, fi: Any) -> int:
        name = ring_name(path)
        if fi.flags & os.O_ACCMODE != os.O_RDONLY:
            return self.open_for_writing(name, fi)
        with as_errno(f"open {name}"):
            try:
                remote = find(self.api, name)
            except NotFound:
                raise FsError(errno.ENOENT) from None
        # The kernel may keep its cached pages only if they are of this very version.
        fi.keep_cache = int(self.seen.get(name) == remote.sha256)
        self.seen[name] = remote.sha256
        return self.new_handle(fi, BlockReader(remote, self.api, self.cache))

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        handle = self.handle(fi)
        if isinstance(handle, Writer):
            with handle.lock:
                return os.pread(handle.file.fileno(), size, offset)
        with as_errno(f"read {handle.remote.name}"):
            return handle.read(offset, size)

    # ------------------------------------------------------------------ writing
    def create(self, path: str, mode: int, fi: Any) -> int:
        name = ring_name(path)
        if not self.overwrite and self.listed("create", lambda: self.tree.file(name)):
            raise FsError(errno.EEXIST)
        return self.new_handle(fi, Writer(name, self.spool, dirty=True))

    def open_for_writing(self, name: str, fi: Any) -> int:
        entry = self.listed(f"open {name}", lambda: self.tree.file(name))
        if entry is None:
            raise FsError(errno.ENOENT)
        if not self.overwrite:
            raise FsError(errno.EEXIST, f"{name} exists and the mount does not overwrite")
        truncated = bool(fi.flags & os.O_TRUNC)
        writer = Writer(name, self.spool, dirty=truncated)
        if not truncated:  # appending or changing in place: start from the current bytes
            self.copy_into(name, writer)
        return self.new_handle(fi, writer)

    def copy_into(self, name: str, writer: Writer) -> None:
        with as_errno(f"open {name}"):
            reader = BlockReader(find(self.api, name), self.api, self.cache)
            try:
                stream = RingStream(reader)
                while data := stream.read(MIB):
                    os.write(writer.file.fileno(), data)
            finally:
                reader.close()

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        writer = self.handle(fi)
        if not isinstance(writer, Writer):
            raise FsError(errno.EBADF)
        with writer.lock:
            written = os.pwrite(writer.file.fileno(), data, offset)
            writer.dirty = True
        return written

    def truncate(self, path: str, length: int, fi: Any = None) -> int:
        handle = self.handles.get(fi.fh) if fi is not None else self.writer_for(ring_name(path))
        if not isinstance(handle, Writer):
            # Changing a stored file's size in place is not supported (open it for
            # writing instead, with O_TRUNC as `>` does).
            raise FsError(errno.EOPNOTSUPP)
        with handle.lock:
            handle.file.truncate(length)
            handle.dirty = True
        return 0

    def flush(self, path: str, fi: Any) -> int:
        handle = self.handle(fi)
        if isinstance(handle, Writer):
            self.upload(handle)
        return 0

    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        return self.flush(path, fi)

    def release(self, path: str, fi: Any) -> int:
        with self.guard:
            handle = self.handles.pop(fi.fh, None)
        # An error is logged; release's result reaches no program (close() got flush's).
        if handle is not None:
            with contextlib.suppress(FsError):
                self.release_handle(handle)
        return 0

    def release_handle(self, handle: Handle) -> None:
        try:
            if isinstance(handle, Writer) and not handle.failed:
                self.upload(handle)  # written through mmap after close, or never flushed
        finally:
            handle.close()

    def upload(self, writer: Writer) -> None:
        with writer.lock:
            if not writer.dirty:
                return
            writer.file.seek(0)
            writer.failed = True
            with as_errno(f"upload {writer.name}"):
                stored = upload_stream(self.api, writer.file, writer.size, writer.name,
                                       overwrite=self.overwrite)  # fmt: skip
            writer.dirty = writer.failed = False
        self.tree.stored(Entry(writer.name, int(stored["size"]), str(stored["sha256"]),
                               stored.get("version"), time.time()))  # fmt: skip

    # ------------------------------------------------------------ removing, renaming
    def unlink(self, path: str) -> int:
        name = ring_name(path)
        with as_errno(f"rm {name}"):
            self.api.call("DELETE", "/delete_file", {"name": name})
        self.tree.removed(name)
        return 0

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        source, target = ring_name(old), ring_name(new)
        if self.listed("mv", lambda: self.tree.file(source)) is not None:
            self.move_file(source, target)
            return 0
        if not self.tree.is_dir(source):
            raise FsError(errno.ENOENT)
        if self.tree.file(target) is not None:
            raise FsError(errno.ENOTDIR)
        for entry in self.tree.under(source):
            self.move_file(entry.name, target + entry.name[len(source) :])
        self.tree.rename_dir(source, target)
        return 0

    def move_file(self, source: str, target: str) -> None:
        """Copy ``source`` to ``target`` ring to ring (streamed, never held whole), then
        delete ``source``: a rename is a copy and a delete in a DHT."""
        if self.tree.is_dir(target):
            raise FsError(errno.EISDIR)
        if not self.overwrite and self.tree.file(target) is not None:
            raise FsError(errno.EEXIST)
        with as_errno(f"mv {source} {target}"):
            remote: Remote = find(self.api, source)
            reader = BlockReader(remote, self.api, self.cache)
            try:
                stored = upload_stream(self.api, RingStream(reader), remote.size, target,
                                       overwrite=self.overwrite)  # fmt: skip
            finally:
                reader.close()
            self.tree.stored(Entry(target, remote.size, remote.sha256, stored.get("version"),
                                   time.time()))  # fmt: skip
            self.api.call("DELETE", "/delete_file", {"name": source})
            self.tree.removed(source)
