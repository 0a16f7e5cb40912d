"""SIGINT and SIGTERM go to the main thread, and only to it.

The kernel hands a process-wide signal to any thread that does not block it. Python
runs its handler in the main thread anyway, but only once that thread next runs
bytecode: if the signal landed on a gRPC or HTTP thread while the main thread sat in
``input()`` at the menu, Ctrl-C did nothing until Enter (CI caught the menu test
waiting 20 s for "Cancelled."), and a SIGTERM could wait the same way.

So a peer's threads are started with both signals blocked (threads inherit the mask
of the thread that starts them), and the main thread alone unblocks them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

PEER_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def held(signals: frozenset[signal.Signals] = PEER_SIGNALS) -> Iterator[None]:
    """Blocks ``signals`` in this thread meanwhile (and in every thread started
    meanwhile, for good); one that arrives is delivered when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_without_signals(thread: threading.Thread) -> None:
    """Starts ``thread`` so that it never takes SIGINT or SIGTERM away from the main
    thread."""
    with held():
        thread.start()


def signal_main_thread(signum: signal.Signals) -> None:
    """Sends ``signum`` to the main thread itself (``os.kill`` would let the kernel pick
    any thread not blocking it)."""
    ident = threading.main_thread().ident
    if ident is not None:
        signal.pthread_kill(ident, signum)
