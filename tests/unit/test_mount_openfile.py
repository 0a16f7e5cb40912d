"""A file written through the mount: when its spool is due for upload, lazy fetching of
the stored bytes, --no-clobber refusals; and waiting out a peer's 429."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from clientlib.download import Remote
from clientlib.mount import errors
from clientlib.mount.errors import FsError, patiently
from clientlib.mount.openfile import OpenFile
from clientlib.peer import HttpError

STORED = b"0123456789" * 3


class FakeReader:
    """A BlockReader over ``STORED`` that counts the bytes it served."""

    def __init__(self) -> None:
        self.served = 0
        self.closed = False

    def read(self, offset: int, size: int) -> bytes:
        data = STORED[offset : offset + size]
        self.served += len(data)
        return data

    def close(self) -> None:
        self.closed = True


def stored_file(owned: bool = True) -> tuple[OpenFile, list[FakeReader]]:
    readers: list[FakeReader] = []

    def opener(remote: Remote) -> Any:
        readers.append(FakeReader())
        return readers[-1]

    remote = Remote("a.txt", len(STORED), "ab" * 32, 1)
    return OpenFile("a.txt", None, remote, opener, owned=owned, modified=5.0), readers


def new_file() -> OpenFile:
    return OpenFile("n.txt", None, None, lambda remote: None, owned=True)  # type: ignore[arg-type, return-value]


def test_a_new_file_is_stored_at_release_but_not_at_a_close_before_any_write() -> None:
    created = new_file()
    assert not created.due_at_close()  # echo's first close: nothing written yet
    assert created.due_at_release() and created.due_at_fsync()  # touch: stored empty
    created.write(b"hello\n", 0)
    assert created.due_at_close()
    created.saved()
    assert not (created.due_at_close() or created.due_at_fsync() or created.due_at_release())
    created.close()


def test_a_failed_upload_is_retried_by_the_next_close_not_behind_the_programs_back() -> None:
    created = new_file()
    created.write(b"x", 0)
    created.failed = True  # what RingFs.save records when the upload fails
    assert created.due_at_close() and not created.due_at_release()
    created.write(b"y", 1)  # written again: the release may store it
    assert created.due_at_release()
    created.close()


def test_stored_bytes_are_fetched_only_when_needed() -> None:
    opened, readers = stored_file()
    assert opened.size == len(STORED) and not readers  # touch: no download
    assert not opened.due_at_release()
    opened.truncate(4)  # only the part kept is fetched
    assert readers[0].served == 4 and readers[0].closed
    assert opened.read(0, 100) == b"0123" and opened.due_at_close()
    opened.close()


def test_o_trunc_fetches_nothing_and_waits_for_data_before_storing() -> None:
    opened, readers = stored_file()
    opened.clear()
    assert opened.size == 0 and not readers
    assert not opened.due_at_close() and opened.due_at_release()
    assert opened.modified > 5.0
    opened.close()


def test_append_starts_from_the_stored_bytes_and_keeps_the_time_until_a_change() -> None:
    opened, _ = stored_file()
    assert opened.modified == 5.0
    assert opened.read(3, 4) == b"3456"  # unchanged: read from the ring
    opened.write(b"!", len(STORED))
    assert opened.read(0, 100) == STORED + b"!" and opened.modified > 5.0
    opened.close()


def test_no_clobber_refuses_every_change_to_a_stored_file() -> None:
    opened, readers = stored_file(owned=False)
    for change in (opened.clear, lambda: opened.write(b"x", 0), lambda: opened.truncate(0)):
        with pytest.raises(FsError) as raised:
            change()
        assert raised.value.errno == errno.EEXIST
    assert not readers and opened.read(0, 3) == b"012"
    opened.close()


def test_patiently_waits_out_429_and_gives_up_after_its_patience() -> None:
    answers = [HttpError(429, "too-many-requests", "retry in 1 s", "peer")] * 2
    waits: list[float] = []

    def call() -> str:
        if answers:
            raise answers.pop()
        return "stored"

    assert patiently(call, sleep=waits.append) == "stored" and waits == [1.0, 1.0]

    def always() -> str:
        raise HttpError(429, "too-many-requests", "retry in 1 s", "peer")

    waits.clear()
    with pytest.raises(HttpError):
        patiently(always, sleep=waits.append)
    assert sum(waits) == errors.THROTTLE_PATIENCE

    def refused() -> str:
        raise HttpError(507, "no-space", "full", "peer")

    with pytest.raises(HttpError):
        patiently(refused, sleep=waits.append)  # anything else is not waited for
