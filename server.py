"""One peer as a library: ``Peer(settings)``, ``.start()``, ``.stop()``.

The wiring itself lives in services/peer/peer.py; this module keeps the top-level name
that run_node.py, the tests and users' own scripts import.
"""

from services.peer.peer import Peer, StartupError

__all__ = ["Peer", "StartupError"]
