"""The FUSE operations: ring files as regular files, ``/`` in names as folders.

Paths arrive from FUSE as ``/a/b``; the ring name is ``a/b``. Every failure becomes an
errno with a log line saying why (:mod:`clientlib.mount.errors`).

Writing (see :mod:`clientlib.mount.openfile`): the bytes go to a local spool shared by
every descriptor of the name, and are uploaded

* when a descriptor is closed after writes (FUSE ``flush``: its error is what ``close()``
  returns), or on ``fsync``; a close with nothing written since the last upload sends
  nothing, so the shell's ``echo x > f`` (open, dup, close, write, close) stores ``x``;
* when the last descriptor is released, if a new or truncated file was never stored
  (``touch f``, ``: > f``): the empty file is stored then.

Writing over an existing file replaces it (the upload asks ``overwrite``, so the ring
keeps a new version) unless the mount runs with ``--no-clobber``: then opening an existing
file with O_TRUNC or O_APPEND, changing it, or renaming onto it is EEXIST, and a name
another client stores meanwhile makes ``close()`` fail with EEXIST: nothing is replaced.

A rename is a copy and a delete in a DHT: the target is uploaded (from the spool if the
source is open here, else streamed out of the ring) and the source deleted only after that
upload succeeded.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chord.names import parent_folder as parent
from clientlib.download import NotFound, Remote, find
from clientlib.mount.blocks import BLOCK, BlockCache, BlockReader, RingStream
from clientlib.mount.errors import FsError, as_errno, check_name, patiently, refuse
from clientlib.mount.openfile import OpenFile
from clientlib.mount.tree import Entry, Tree
from clientlib.peer import HttpError, PeerApi
from clientlib.ranges import MIB
from clientlib.upload import Source, upload_stream

FILE_MODE, DIR_MODE = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # renameat2(2) flags
T = TypeVar("T")


def ring_name(path: str | None) -> str:
    return (path or "").strip("/")


def rewound(open_file: OpenFile) -> Source:
    """The spool, to be read from its start (an upload, or its retry)."""
    open_file.file.seek(0)
    return open_file.file


def under(name: str, folder: str) -> bool:
    return name.startswith(folder + "/") if folder else True


@dataclass
class FileHandle:
    """A descriptor on a file open for writing here (or reading one that is)."""

    file: OpenFile
    writable: bool


Handle = BlockReader | FileHandle


class RingFs:
    """mfusepy operations (``raw_fi=True``: handles are set on the ``fuse_file_info``)."""

    use_ns = True  # times in nanoseconds (mfusepy's modern convention)

    def __init__(
        self,
        api: PeerApi,
        clobber: bool = True,
        cache_bytes: int = 256 * MIB,
        ttl: float = 2.0,
        spool: str | None = None,
    ) -> None:
        self.api, self.clobber, self.spool = api, clobber, spool
        self.tree = Tree(api, ttl)
        self.cache = BlockCache(cache_bytes)
        self.handles: dict[int, Handle] = {}
        self.files: dict[str, OpenFile] = {}  # names open for writing (or being released)
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

    def file_handle(self, fi: Any) -> FileHandle:
        handle = self.handle(fi)
        if not isinstance(handle, FileHandle) or not handle.writable:
            raise FsError(errno.EBADF)
        return handle

    def new_handle(self, fi: Any, handle: Handle) -> int:
        with self.guard:
            number = next(self.numbers)
            self.handles[number] = handle
        fi.fh = number
        return 0

    def registered(self, name: str) -> OpenFile | None:
        with self.guard:
            return self.files.get(name)

    def attrs(self, mode: int, size: int, stamp_ns: int) -> dict[str, Any]:
        return {
            "st_mode": mode,
            "st_nlink": 2 if stat.S_ISDIR(mode) else 1,
            "st_size": size,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_blocks": -(-size // 512),
            "st_blksize": MIB,
            "st_mtime": stamp_ns,
            "st_ctime": stamp_ns,
            "st_atime": stamp_ns,
        }

    def file_attrs(self, open_file: OpenFile) -> dict[str, Any]:
        return self.attrs(FILE_MODE, open_file.size, int(open_file.modified * 1e9))

    def listed(self, what: str, call: Callable[[], T]) -> T:
        with as_errno(what):
            return call()

    def is_file(self, name: str) -> bool:
        return self.registered(name) is not None or self.listed(
            f"stat {name}", lambda: self.tree.file(name) is not None
        )

    def is_dir(self, name: str) -> bool:
        return self.listed(f"stat {name}", lambda: self.tree.is_dir(name))

    def open_names(self, folder: str) -> list[str]:
        """Names open for writing here below ``folder`` (not yet in the listing, maybe)."""
        with self.guard:
            return [n for n in self.files if under(n, folder)]

    def reader(self, remote: Remote) -> BlockReader:
        return BlockReader(remote, self.api, self.cache)

    # ---------------------------------------------------------------------- lifecycle
    def init_with_config(self, conn: Any, config: Any) -> None:
        self.mounted = True
        if config is not None:
            # The kernel may keep a name's attributes this long; the ring listing is
            # cached for ``ttl`` anyway. No negative caching: a file stored through the
            # REST API shows up with the next listing.
            config.entry_timeout, config.attr_timeout, config.negative_timeout = 1.0, 1.0, 0.0
            # Unlinking an open file unlinks it (libfuse would otherwise rename it to
            # .fuse_hiddenNNN, which here is a copy through the ring, and delete it later).
            config.hard_remove = 1

    def destroy(self, path: str | None) -> None:
        for number in list(self.handles):
            with contextlib.suppress(Exception):
                self.release_number(number)
        self.cache.close()

    # ------------------------------------------------------------------ metadata
    def getattr(self, path: str | None, fi: Any = None) -> dict[str, Any]:
        handle = self.handles.get(fi.fh) if fi is not None else None
        if isinstance(handle, FileHandle):  # fstat, even of an unlinked open file
            return self.file_attrs(handle.file)
        name = ring_name(path)
        if not name:
            return self.attrs(DIR_MODE, 0, self.mounted_at)
        open_file = self.registered(name)
        if open_file is not None:
            return self.file_attrs(open_file)
        entry = self.listed(f"stat {name}", lambda: self.tree.file(name))
        if entry is not None:
            return self.attrs(FILE_MODE, entry.size, int(entry.created * 1e9))
        if self.is_dir(name):
            return self.attrs(DIR_MODE, 0, self.mounted_at)
        raise FsError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        name = ring_name(path)
        names = self.listed(f"ls {name or '/'}", lambda: self.tree.list_dir(name))
        if names is None:
            raise FsError(errno.ENOENT)
        # Files created here and not stored yet (e.g. an empty one before its release).
        fresh = {n.rsplit("/", 1)[-1] for n in self.open_names(name) if parent(n) == name}
        return [".", "..", *sorted(set(names) | fresh)]

    def statfs(self, path: str) -> dict[str, int]:
        # The ring's free space is not known here; report plenty so programs don't refuse.
        blocks = (1 << 50) // MIB  # 1 PiB
        return {
            "f_bsize": MIB,
            "f_frsize": MIB,
            "f_blocks": blocks,
            "f_bfree": blocks,
            "f_bavail": blocks,
            "f_namemax": 255,
        }

    def exists(self, path: str | None) -> int:
        """0 if ``path`` is a file or folder (or None: an open file), else ENOENT."""
        if path is not None:
            self.getattr(path)
        return 0

    # Ring files have no modes, owners or times of their own (the time shown is when the
    # version was stored): accepted and ignored, so cp -p, tar, rsync -a and git work.
    def chmod(self, path: str | None, mode: int) -> int:
        return self.exists(path)

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        return self.exists(path)

    def utimens(self, path: str | None, times: Any = None) -> int:
        return self.exists(path)

    # ------------------------------------------------------------------- folders
    def mkdir(self, path: str, mode: int) -> int:
        name = ring_name(path)
        check_name("mkdir", name)
        if self.is_file(name) or self.is_dir(name):
            raise FsError(errno.EEXIST)
        if not self.is_dir(parent(name)):
            raise FsError(errno.ENOENT)
        self.tree.mkdir(name)
        return 0

    def rmdir(self, path: str) -> int:
        name = ring_name(path)
        names = self.listed("rmdir", lambda: self.tree.list_dir(name))
        if names is None:
            raise FsError(errno.ENOTDIR if self.is_file(name) else errno.ENOENT)
        if names or self.open_names(name):
            raise FsError(errno.ENOTEMPTY)
        self.tree.rmdir(name)
        return 0

    # ------------------------------------------------------------------ opening
    def open(self, path: str, fi: Any) -> int:
        name = ring_name(path)
        if fi.flags & os.O_ACCMODE != os.O_RDONLY:
            return self.open_for_writing(name, fi)
        open_file = self.attach(name)
        if open_file is not None:  # being written here: read what was written
            return self.new_handle(fi, FileHandle(open_file, writable=False))
        with as_errno(f"open {name}"):
            try:
                remote = find(self.api, name)
            except NotFound:
                raise FsError(errno.ENOENT) from None
        # The kernel may keep its cached pages only if they are of this very version.
        fi.keep_cache = int(self.seen.get(name) == remote.sha256)
        self.seen[name] = remote.sha256
        return self.new_handle(fi, self.reader(remote))

    def create(self, path: str, mode: int, fi: Any) -> int:
        name = ring_name(path)
        check_name("create", name)
        if self.is_file(name):  # the kernel's view was stale: it exists after all
            if fi.flags & os.O_EXCL:
                raise FsError(errno.EEXIST)
            return self.open_for_writing(name, fi)
        fresh = OpenFile(name, self.spool, None, self.reader, owned=self.clobber)
        return self.opened(fi, self.adopt(fresh))

    def open_for_writing(self, name: str, fi: Any) -> int:
        open_file = self.attach(name) or self.opened_stored(name)
        return self.opened(fi, open_file)

    def attach(self, name: str) -> OpenFile | None:
        """The name's OpenFile counted as one more handle, or None if it is not open."""
        with self.guard:
            open_file = self.files.get(name)
            if open_file is not None:
                open_file.handles += 1
            return open_file

    def adopt(self, fresh: OpenFile) -> OpenFile:
        """Register ``fresh`` as its name's OpenFile and count one handle; if another
        thread opened the name meanwhile, that one is used and ``fresh`` dropped."""
        with self.guard:
            open_file = self.files.setdefault(fresh.name, fresh)
            open_file.handles += 1
        if open_file is not fresh:
            fresh.close()
        return open_file

    def opened(self, fi: Any, open_file: OpenFile) -> int:
        """Apply the open flags to a file counted as opened for writing, then hand it out."""
        number = self.new_handle(fi, FileHandle(open_file, writable=True))
        try:
            with open_file.lock:
                if fi.flags & os.O_TRUNC:
                    open_file.clear()
                elif fi.flags & os.O_APPEND:
                    open_file.check_modifiable()
        except FsError:
            self.release_number(fi.fh)
            raise
        return number

    # ------------------------------------------------------------- reading, writing
    def read(self, path: str | None, size: int, offset: int, fi: Any) -> bytes:
        handle = self.handle(fi)
        if isinstance(handle, FileHandle):
            with handle.file.lock, as_errno(f"read {handle.file.name}"):
                return handle.file.read(offset, size)
        with as_errno(f"read {handle.remote.name}"):
            return handle.read(offset, size)

    def write(self, path: str | None, data: bytes, offset: int, fi: Any) -> int:
        open_file = self.file_handle(fi).file
        with open_file.lock, as_errno(f"write {open_file.name}"):
            return open_file.write(data, offset)

    def truncate(self, path: str | None, length: int, fi: Any = None) -> int:
        handle = self.handles.get(fi.fh) if fi is not None else None
        if isinstance(handle, FileHandle) and handle.writable:  # ftruncate: saved at close
            with handle.file.lock, as_errno(f"truncate {handle.file.name}"):
                handle.file.truncate(length)
            return 0
        # truncate(2) by name: there is no close to report to, so it is stored now.
        name = ring_name(path)
        open_file = self.attach(name) or self.opened_stored(name)
        try:
            with open_file.lock, as_errno(f"truncate {name}"):
                open_file.truncate(length)
                self.save(open_file, "truncate")
        finally:
            self.detach(open_file)
        return 0

    def opened_stored(self, name: str) -> OpenFile:
        """A ring file opened for writing: its bytes are fetched when first needed."""
        with as_errno(f"open {name}"):
            try:
                remote = find(self.api, name)
            except NotFound:
                raise FsError(errno.ENOENT) from None
        known = self.tree.file(name)  # unchanged, it keeps the time stat showed for it
        fresh = OpenFile(
            name,
            self.spool,
            remote,
            self.reader,
            owned=self.clobber,
            modified=known.created if known is not None else None,
        )
        return self.adopt(fresh)

    # ------------------------------------------------------------- storing, closing
    def flush(self, path: str | None, fi: Any) -> int:
        handle = self.handle(fi)
        if isinstance(handle, FileHandle) and handle.writable:
            with handle.file.lock:
                if handle.file.due_at_close():
                    self.save(handle.file, "close")
        return 0

    def fsync(self, path: str | None, datasync: int, fi: Any) -> int:
        handle = self.handle(fi)
        if isinstance(handle, FileHandle):
            with handle.file.lock:
                if handle.file.due_at_fsync():
                    self.save(handle.file, "fsync")
        return 0

    def release(self, path: str | None, fi: Any) -> int:
        # Its result reaches no program (close() returned flush's): errors are logged.
        with contextlib.suppress(FsError):
            self.release_number(fi.fh)
        return 0

    def release_number(self, number: int) -> None:
        with self.guard:
            handle = self.handles.pop(number, None)
        if isinstance(handle, BlockReader):
            handle.close()
        elif isinstance(handle, FileHandle):
            self.detach(handle.file)

    def detach(self, open_file: OpenFile) -> None:
        """One handle fewer; the last one stores what was never stored (an empty new
        file, a truncation) and frees the spool."""
        with self.guard:
            open_file.handles -= 1
            last = open_file.handles == 0
        if not last:
            return
        # Under the file's lock to the end: a rename of the file just closed (rsync, sed
        # -i) may be uploading its spool, which must not be closed under it.
        with open_file.lock:
            try:
                if open_file.due_at_release():
                    self.save(open_file, "release")
            finally:
                with self.guard:
                    gone = open_file.handles == 0  # else reopened meanwhile: it stays
                    if gone and self.files.get(open_file.name) is open_file:
                        del self.files[open_file.name]
                if gone:
                    open_file.close()

    def save(self, open_file: OpenFile, what: str) -> None:
        """Upload the spool as the file's name (the caller holds its lock)."""
        with as_errno(f"{what} {open_file.name}: not stored"):
            open_file.load()
        try:
            entry = self.upload(
                lambda: rewound(open_file),
                open_file.size,
                open_file.name,
                open_file.owned,
                what,
                open_file.modified,
            )
        except FsError:
            open_file.failed = True
            raise
        open_file.saved()
        self.remember(open_file, entry)

    def upload(
        self,
        source: Callable[[], Source],
        size: int,
        name: str,
        overwrite: bool,
        what: str,
        modified: float,
    ) -> Entry:
        """Store ``size`` bytes read from ``source()`` (called again for a retry) as
        ``name``; the listing shows it at once, as modified at ``modified``."""
        with as_errno(f"{what} {name}: not stored"):
            stored = patiently(
                lambda: upload_stream(self.api, source(), size, name, overwrite=overwrite)
            )
        entry = Entry(
            name, int(stored["size"]), str(stored["sha256"]), stored.get("version"), modified
        )
        self.tree.stored(entry)
        return entry

    def remember(self, open_file: OpenFile, entry: Entry) -> None:
        """Put a small file just stored into the block cache: reading it back (git does)
        or renaming it (rsync, sed -i and editors write a temporary file and rename it)
        then needs no download."""
        if entry.size > self.cache.capacity // 8:
            return
        for index in range(-(-entry.size // BLOCK)):
            data = os.pread(open_file.file.fileno(), BLOCK, index * BLOCK)
            self.cache.put((entry.sha256, index), data)

    # ------------------------------------------------------------ removing, renaming
    def unlink(self, path: str) -> int:
        name = ring_name(path)
        open_file = self.forget(name)
        in_ring = True
        if open_file is not None:
            with open_file.lock:  # waits for an upload in progress, which then counts
                open_file.detached = True
                in_ring = open_file.in_ring
        if in_ring:
            self.delete(name, missing_ok=open_file is not None)
        self.tree.removed(name)
        return 0

    def forget(self, name: str) -> OpenFile | None:
        """Take ``name`` off the open files; its open descriptors keep working on bytes
        that will never be stored (an unlinked or replaced file, as on a local disk)."""
        with self.guard:
            open_file = self.files.pop(name, None)
        if open_file is not None:
            open_file.detached = True
        return open_file

    def delete(self, name: str, missing_ok: bool = False) -> None:
        with as_errno(f"rm {name}"):
            try:
                patiently(lambda: self.api.call("DELETE", "/delete_file", {"name": name}))
            except HttpError as exc:
                if not (missing_ok and exc.status == 404):
                    raise

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        source, target = ring_name(old), ring_name(new)
        check_name("mv", target)
        if flags & RENAME_EXCHANGE:
            raise refuse(errno.EINVAL, f"mv {source} {target}", "RENAME_EXCHANGE is not supported")
        noreplace = bool(flags & RENAME_NOREPLACE)
        if self.is_file(source):
            self.rename_file(source, target, noreplace)
        elif self.is_dir(source):
            self.rename_dir(source, target, noreplace)
        else:
            raise FsError(errno.ENOENT)
        return 0

    def rename_file(self, source: str, target: str, noreplace: bool) -> None:
        if self.is_dir(target):
            raise FsError(errno.EISDIR)
        if source == target:
            return
        replacing = self.is_file(target)
        if replacing and (noreplace or not self.clobber):
            why = "RENAME_NOREPLACE" if noreplace else "the mount was started with --no-clobber"
            raise refuse(errno.EEXIST, f"mv {source} {target}", f"{target} exists ({why})")
        open_file = self.registered(source)
        if open_file is not None:
            with open_file.lock:
                if not open_file.detached and self.registered(source) is open_file:
                    self.move_open(open_file, target)
                    return
        self.move_stored(source, target)

    def move_open(self, open_file: OpenFile, target: str) -> None:
        """Rename a file open (or just closed) here: upload its bytes as ``target`` from
        the spool, delete the source if the ring has it, and let its descriptors go on
        under the new name. The caller holds its lock."""
        source = open_file.name
        with as_errno(f"mv {source} {target}"):
            open_file.load()
        entry = self.upload(
            lambda: rewound(open_file),
            open_file.size,
            target,
            self.clobber,
            f"mv {source}",
            open_file.modified,
        )
        if open_file.in_ring:
            self.delete(source, missing_ok=True)
        self.tree.removed(source)
        with self.guard:
            self.files.pop(source, None)
            replaced = self.files.get(target)
            self.files[target] = open_file
            open_file.name = target
        if replaced is not None:
            replaced.detached = True
        open_file.saved()
        self.remember(open_file, entry)

    def move_stored(self, source: str, target: str) -> None:
        """Copy ``source`` to ``target`` ring to ring (streamed, never held whole), then
        delete ``source``: a rename is a copy and a delete in a DHT."""
        with as_errno(f"mv {source} {target}"):
            try:
                remote: Remote = find(self.api, source)
            except NotFound:
                raise FsError(errno.ENOENT) from None
        known = self.tree.file(source)  # a renamed file keeps its time
        modified = known.created if known is not None else time.time()
        reader = self.reader(remote)
        try:
            self.upload(
                lambda: RingStream(reader),
                remote.size,
                target,
                self.clobber,
                f"mv {source}",
                modified,
            )
        finally:
            reader.close()
        self.forget(target)  # a descriptor still open on the old target writes nowhere now
        self.delete(source)
        self.tree.removed(source)

    def rename_dir(self, source: str, target: str, noreplace: bool) -> None:
        if self.is_file(target):
            raise FsError(errno.ENOTDIR)
        if self.is_dir(target):
            if noreplace:
                raise FsError(errno.EEXIST)
            if self.listed("mv", lambda: self.tree.list_dir(target)) or self.open_names(target):
                raise FsError(errno.ENOTEMPTY)
        stored = self.listed(f"mv {source}", lambda: self.tree.under(source))
        names = sorted({e.name for e in stored} | set(self.open_names(source)))
        for name in names:
            self.rename_file(name, target + name[len(source) :], noreplace=False)
        self.tree.rename_dir(source, target)
