"""Pure Chord protocol core.

Nothing in this package touches sockets, threads, clocks or randomness: peers are
reached through :class:`chord.transport.Transport` and time is read through
:class:`chord.transport.Clock`, so the same code runs over gRPC and inside the
deterministic simulator (``chord.sim``). It imports only chord/ itself and the standard
library's pure modules (hashlib, dataclasses, bisect, heapq, json...: the list is
tests/unit/test_import_rules.py's PURE_STDLIB).
"""
