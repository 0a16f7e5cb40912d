"""One bmuller/kademlia node in a process of its own (the baseline of bench.smallops).

    python -m bench.kad_node PORT [BOOTSTRAP_PORT]

Listens on 127.0.0.1:PORT, bootstraps through 127.0.0.1:BOOTSTRAP_PORT if given,
prints "ready" once it has, and serves until killed.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from kademlia.network import Server  # type: ignore[import-untyped]


async def serve(port: int, bootstrap: int | None) -> None:
    server = Server()
    await server.listen(port, interface="127.0.0.1")
    if bootstrap is not None:
        await server.bootstrap([("127.0.0.1", bootstrap)])
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    logging.disable(logging.CRITICAL)  # kademlia logs every RPC at INFO
    port = int(sys.argv[1])
    bootstrap = int(sys.argv[2]) if len(sys.argv) > 2 else None
    asyncio.run(serve(port, bootstrap))


if __name__ == "__main__":
    main()
