"""Admission: a peer is taken into the ring only once its advertised address answers.

Who may be adopted, and where it is checked:

* its ID must be SHA-1 of its advertised address: every NodeRef received is checked in
  services.rpc.convert.ref_from_pb (INVALID_ARGUMENT otherwise), and again by the node;
* it must know the ring secret / hold a ring-CA certificate (services.rpc.security);
* its advertised address must answer, checked here, before the Join reply is given and
  before a Notify can make it anyone's predecessor. (A successor is adopted by
  stabilize only after it answered GetState, and a leaver's named predecessor only
  after check_predecessor pinged it: those paths were already verified.)

Design. The architecture rule is that no handler makes a blocking RPC that can come back
to the same peer (two peers serving each other's calls could exhaust each other's
threads, or deadlock on a lock). The check is therefore not a Chord RPC: it is one
``grpc.health.v1.Health/Check`` to the advertised address, a service whose handler
reads a table and makes no call of its own, so the probe can never come back here nor
wait on a lock. It runs in the servicer outside the node's guard, with a short deadline
(well inside the caller's), never to this peer's own address, at most ``parallel`` at
a time (a flood of joins with dead addresses cannot take every server thread: the
surplus is answered UNAVAILABLE at once), and a success is remembered for ``ttl``
seconds so stabilize's Notify every half second costs nothing. The joining peer has
started its gRPC server before it asks to join, so a genuine joiner always answers
(NOT_SERVING while it joins is an answer).

Slow is not dead. A joiner on a loaded machine (dozens of peers starting at once) may
take longer than one probe's deadline to answer. The probe therefore tells "nothing
listens there" (connection refused: refused at once) from "no answer yet" (a deadline,
a connection not yet made: tried again, with backoff, up to ``attempts`` times); a
success is remembered even when the joiner's own call has given up meanwhile, so its
next Join is admitted at once. The refusal says which it was (``unreachable-address``
or ``slow-address``, in the status' trailing metadata): the joiner gives up on the first
and retries the second while its join deadline allows (server.Peer._join). A forged or
dead address is still refused: it never answers.

The alternative, admitting provisionally and letting the maintenance loop verify
later, would keep handlers free of any wait, but a joiner with a dead address would get
a successor list and think itself a member, and would only learn of the problem from
silence; here it gets a one-line refusal naming its advertised address.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chord.node_ref import NodeRef
from chord.refusals import Refusal
from chord.transport import NotReady, Refused
from config.settings import ConfigError, split_address
from services.rpc.transport import CHANNEL_OPTIONS, ChannelPool

PROBE_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
MAX_REMEMBERED = 4096


class AddressCheck:
    """Callable admission check: returns if ``node``'s address answers, else raises
    :class:`Refused` (``unreachable-address`` / ``invalid-identity``) or
    :class:`NotReady` (too many checks running: retry)."""

    def __init__(
        self,
        me: NodeRef,
        pool: ChannelPool,
        timeout: float,
        parallel: int = 4,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        attempts: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.me = me
        self.pool = pool
        self.timeout = timeout
        self.ttl = ttl
        self.attempts = attempts
        self.backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(parallel)  # probes running at once
        self._lock = threading.Lock()
        self._verified: OrderedDict[str, float] = OrderedDict()  # _lock; address -> expiry

    def __call__(self, node: NodeRef) -> None:
        address = node.address
        if address == self.me.address:
            return  # never probe ourselves: we are evidently answering
        try:
            split_address(address, "address")
        except ConfigError as exc:
            raise Refused(
                Refusal.INVALID_IDENTITY, f"a peer address must be HOST:PORT: {exc.message}"
            ) from None
        if self.verified(address):
            return
        if not self._slots.acquire(blocking=False):
            raise NotReady("busy verifying other peers' addresses; retry")
        try:
            problem, listening = self._probe(address)
        finally:
            self._slots.release()
        if problem is not None:
            raise Refused(
                # Something may listen but did not answer in time: worth a retry.
                Refusal.SLOW_ADDRESS if listening else Refusal.UNREACHABLE_ADDRESS,
                f"the advertised address {address} did not answer {self.me.address} "
                f"({problem}); every peer must be reachable at the address it advertises "
                "(check --advertise-host, the port and firewalls)",
            )
        with self._lock:
            self._verified[address] = self._clock() + self.ttl
            self._verified.move_to_end(address)
            while len(self._verified) > MAX_REMEMBERED:
                self._verified.popitem(last=False)

    def verified(self, address: str) -> bool:
        with self._lock:
            expiry = self._verified.get(address)
            return expiry is not None and expiry > self._clock()

    def _probe(self, address: str) -> tuple[str | None, bool]:
        """(None if a gRPC health service answers at ``address``, else why not; whether
        something may listen there). A refused connection ends it at once; a slow answer
        is asked again (see the module doc)."""
        problem, listening = None, True
        for attempt in range(self.attempts):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            problem, listening = self._probe_once(address)
            if problem is None or not listening:
                return problem, listening
        return f"{problem} after {self.attempts} tries", listening

    def _probe_once(self, address: str) -> tuple[str | None, bool]:
        """(why it did not answer or None, whether something may be listening there).

        On a fresh channel with its own subchannel pool, not the pool's: a peer
        restarting on the same address would otherwise meet the reconnect backoff left
        from its previous life (gRPC shares subchannels between channels to one target)
        and look dead. The ring secret and mutual TLS apply as on every channel."""
        channel = self.pool.security.channel(address, PROBE_OPTIONS)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            detail = exc.details() if isinstance(exc, grpc.Call) else ""
            refused = code == grpc.StatusCode.UNAVAILABLE and "refused" in (detail or "").lower()
            return ("connection refused" if refused else code.name), not refused
        finally:
            channel.close()
        return None, True
