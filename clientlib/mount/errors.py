"""How the mount's failures reach programs: one errno each, and one log line saying why.

The REST API's statuses map as in :data:`ERRNO` (400 -> EINVAL, 401/403 -> EACCES, 404 ->
ENOENT, 409 -> EEXIST, 413 -> EFBIG, 507 -> ENOSPC); anything else (a peer unreachable, a
timeout, a 503) is EIO. mfusepy returns ``-errno`` for any OSError an operation raises.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator

from chord.names import name_problem
from clientlib.peer import ClientError, HttpError

log = logging.getLogger("chord.mount")

ERRNO = {400: errno.EINVAL, 401: errno.EACCES, 403: errno.EACCES, 404: errno.ENOENT,
         409: errno.EEXIST, 413: errno.EFBIG, 507: errno.ENOSPC}  # fmt: skip


class FsError(OSError):
    """An errno for FUSE."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail or os.strerror(code))


def errno_of(exc: ClientError) -> int:
    return ERRNO.get(exc.status, errno.EIO) if isinstance(exc, HttpError) else errno.EIO


def refuse(code: int, what: str, why: str) -> FsError:
    """Log why ``what`` failed (the program only sees the errno) and build its error."""
    log.warning("%s: %s (%s)", what, why, errno.errorcode.get(code, code))
    return FsError(code, why)


@contextlib.contextmanager
def as_errno(what: str) -> Iterator[None]:
    """Turn the client library's errors into FsError, logging the one-line reason."""
    try:
        yield
    except ClientError as exc:
        raise refuse(errno_of(exc), what, str(exc)) from None


def check_name(what: str, name: str) -> None:
    """EINVAL for a name the ring would refuse (the one validator, chord.names): better
    at create/mkdir/rename than as a failed upload when the program closes the file."""
    problem = name_problem(name)
    if problem is not None:
        raise refuse(errno.EINVAL, f"{what} {name!r}", problem)
