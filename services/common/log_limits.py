"""At most one log line per caller and minute: hostile or broken clients must not be
able to fill the log. A caller is an IP address, never IP and port: a client opening
200 connections is one caller, not 200."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CALLERS = 4096  # callers remembered at once; the oldest are forgotten first


def caller_ip(peer: str) -> str:
    """The IP of a gRPC peer string ('ipv4:10.0.0.1:5000', 'ipv6:[::1]:5000') or of an
    HTTP remote address; anything else (a unix socket) as given."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].removeprefix("[").removesuffix("]").removeprefix("%5B")
    return peer


class LogLimiter:
    """``allow(caller)`` is true at most once per ``every`` seconds for each caller."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last: OrderedDict[str, float] = OrderedDict()

    def allow(self, caller: str) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(caller)
            if last is not None and now - last < self.every:
                return False
            self._last[caller] = now
            self._last.move_to_end(caller)
            while len(self._last) > MAX_CALLERS:
                self._last.popitem(last=False)
        return True
