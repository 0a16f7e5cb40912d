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
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from chord.names import name_problem
from clientlib.peer import ClientError, HttpError

log = logging.getLogger("chord.mount")
T = TypeVar("T")

# A peer answers 429 when this client is over its rate of uploads and deletes
# (rate_limit_per_minute, 120 by default: git or rsync of a tree needs more) or has
# max_transfers_per_client transfers running; its Retry-After is then about a second.
THROTTLE_PAUSE = 1.0
THROTTLE_PATIENCE = 60.0  # then the operation fails (EIO) rather than block for ever
_throttled: list[bool] = []

ERRNO = {
    400: errno.EINVAL,
    401: errno.EACCES,
    403: errno.EACCES,
    404: errno.ENOENT,
    409: errno.EEXIST,
    413: errno.EFBIG,
    507: errno.ENOSPC,
}


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


def patiently(call: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, waiting out 429 answers (at most THROTTLE_PATIENCE seconds): a program
    writing many files through the mount is slowed down to the peer's rate, not failed."""
    waited = 0.0
    while True:
        try:
            return call()
        except HttpError as exc:
            if exc.status != 429 or waited >= THROTTLE_PATIENCE:
                raise
        if not waited and not _throttled:
            _throttled.append(True)  # said once: every write may wait from now on
            log.warning("the peer rate-limits this client (429): writes wait their turn")
        sleep(THROTTLE_PAUSE)
        waited += THROTTLE_PAUSE


def check_name(what: str, name: str) -> None:
    """EINVAL for a name the ring would refuse (the one validator, chord.names): better
    at create/mkdir/rename than as a failed upload when the program closes the file."""
    problem = name_problem(name)
    if problem is not None:
        raise refuse(errno.EINVAL, f"{what} {name!r}", problem)
