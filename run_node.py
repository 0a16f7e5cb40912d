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

from chord.ids import to_hex
from config.cli import CliOptions, parse_args
from config.settings import ConfigError
from services.common.logs import setup_logging
from services.common.signals import held, signal_main_thread
from services.menu import Menu
from services.peer.peer import Peer, StartupError
from services.peer.ports import PortClaims, with_claimed_ports, write_port_file


class ShutdownRequested(BaseException):
    """SIGTERM or SIGINT: leave the ring gracefully and exit 0. A BaseException (like
    KeyboardInterrupt) so that the menu's catch-all for failed actions lets it through."""


def _request_shutdown(signum: int, frame: FrameType | None) -> None:
    raise ShutdownRequested(signal.Signals(signum).name)


def fail(message: str, code: int = 1) -> int:
    print(f"run_node.py: error: {message}", file=sys.stderr)
    return code


def _terminate_when_stop_requested(peer: Peer) -> None:
    """POST /shutdown sets ``stop_requested`` while the menu may sit in input(): a
    SIGTERM to this process interrupts that read exactly as ``kill`` would."""
    peer.stop_requested.wait()
    signal_main_thread(signal.SIGTERM)


def run_peer(options: CliOptions) -> int:
    # Every thread the peer starts is started with SIGINT/SIGTERM blocked, so that the
    # main thread takes them even while it waits in input() (services/common/signals.py).
    try:
        with held():
            with PortClaims() as claims:  # held until the servers listen (port 0)
                settings = with_claimed_ports(options.settings, claims)
                peer = Peer(settings)
            write_port_file(settings, to_hex(peer.me.id))
    except OSError as exc:
        return fail(f"cannot choose a port or write the port file: {exc}")
    except (StartupError, ConfigError) as exc:
        return fail(str(exc), 2 if isinstance(exc, ConfigError) else 1)
    setup_logging(settings.log_level, peer.short_id)
    signal.signal(signal.SIGTERM, _request_shutdown)
    signal.signal(signal.SIGINT, _request_shutdown)
    menu = settings.menu and sys.stdin.isatty()
    try:
        with held():  # a signal meanwhile is raised as the block ends
            peer.start()
            if menu:
                # At the menu Ctrl-C means "cancel what I am typing or transferring": it
                # raises KeyboardInterrupt, which the menu catches to show itself again.
                # Leaving is the menu's last option or Ctrl-D; SIGTERM still shuts down.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                threading.Thread(
                    target=_terminate_when_stop_requested, args=(peer,), name="stop", daemon=True
                ).start()
        if menu:
            Menu(peer).run()
        else:
            peer.stop_requested.wait()
    except StartupError as exc:
        return fail(str(exc))
    except (ShutdownRequested, KeyboardInterrupt):  # KeyboardInterrupt: Ctrl-C as the menu ends
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the goodbye short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    peer.stop(graceful=True)
    return 0


def main(argv: list[str]) -> int:
    options = parse_args(argv, os.environ)
    if options.local_ring is not None:
        from devtools.local_ring import run_local_ring

        return run_local_ring(options.local_ring, options.settings)
    return run_peer(options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
