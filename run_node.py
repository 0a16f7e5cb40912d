#!/usr/bin/env python3
"""Run one Chord peer, or a whole local ring.

    python run_node.py 127.0.0.1 7000                  # create a ring
    python run_node.py 127.0.0.1 8000 127.0.0.1 7000   # join it through 127.0.0.1:7000
    python run_node.py --local-ring 4                  # 4 peers on this machine (make run)

See ``python run_node.py --help`` for every flag and config/default.yaml for settings.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from config.cli import CliOptions, parse_args
from config.settings import ConfigError
from server import Peer, StartupError
from services.logs import setup_logging
from services.menu import Menu


class ShutdownRequested(Exception):
    """SIGTERM or SIGINT: leave the ring gracefully and exit 0."""


def _request_shutdown(signum: int, frame: FrameType | None) -> None:
    raise ShutdownRequested(signal.Signals(signum).name)


def fail(message: str, code: int = 1) -> int:
    print(f"run_node.py: error: {message}", file=sys.stderr)
    return code


def _menu(peer: Peer) -> None:
    try:
        Menu(peer.node).run()
    finally:
        peer.stop_requested.set()


def run_peer(options: CliOptions) -> int:
    settings = options.settings
    try:
        peer = Peer(settings)
    except (StartupError, ConfigError) as exc:
        return fail(str(exc), 2 if isinstance(exc, ConfigError) else 1)
    setup_logging(settings.log_level, peer.short_id)
    signal.signal(signal.SIGTERM, _request_shutdown)
    signal.signal(signal.SIGINT, _request_shutdown)
    try:
        peer.start()
        if settings.menu and sys.stdin.isatty():
            # The menu runs beside the wait so that POST /shutdown ends the peer even
            # while the menu waits for input; leaving from the menu sets the same event.
            threading.Thread(target=_menu, args=(peer,), name="menu", daemon=True).start()
        peer.stop_requested.wait()
    except StartupError as exc:
        return fail(str(exc))
    except ShutdownRequested:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the goodbye short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    peer.stop(graceful=True)
    return 0


def main(argv: list[str]) -> int:
    options = parse_args(argv, os.environ)
    if options.local_ring is not None:
        from services.local_ring import run_local_ring

        return run_local_ring(options.local_ring, options.settings)
    return run_peer(options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
