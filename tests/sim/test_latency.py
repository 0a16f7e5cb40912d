"""Message latency and reordering in the simulator (chord.sim.scheduler).

With a Latency, every message takes its own random delay on the virtual clock:
replies come back in another order than their requests went out, operations of
different peers interleave (a join's lookup runs while other joins wait for their
replies), and lookups are driven as state machines by message events, many at once.
The protocol's guarantees must hold all the same: lookups end at the true owner, and
concurrent joins leave Zave's invariants intact and the ring Ideal after maintenance.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import pytest

from chord.ids import MAX_BITS, Ring
from chord.invariants import ideal_violations, violations
from chord.lookup import LookupFailed, LookupResult, StepRequest
from chord.node import ChordNode, JoinFailed
from chord.node_ref import NodeRef
from chord.placement import successor_index
from chord.sim.network import LookupDone, SimNetwork
from chord.sim.rng import SimRandom
from chord.sim.scheduler import Latency, Scheduler, VirtualClock
from chord.transport import PeerUnreachable, StepAnswer
from tests.support.assumptions import crash_allowed

RING = Ring(MAX_BITS)
T = TypeVar("T")


def test_events_run_in_time_order_ties_in_scheduling_order() -> None:
    scheduler = Scheduler(VirtualClock())
    seen: list[tuple[str, float]] = []

    def note(name: str) -> None:
        seen.append((name, scheduler.clock.now()))

    scheduler.at(2.0, lambda: note("b"))
    scheduler.at(1.0, lambda: note("a"))
    scheduler.at(2.0, lambda: note("c"))
    scheduler.at(1.5, lambda: scheduler.after(0.25, lambda: note("scheduled by an event")))
    scheduler.run()
    assert seen == [("a", 1.0), ("scheduled by an event", 1.75), ("b", 2.0), ("c", 2.0)]


def test_a_wait_inside_an_event_runs_the_events_due_before_it() -> None:
    """A blocking operation waiting for its reply lets other operations run meanwhile;
    one that comes due during a nested wait runs late, never out of the queue's order."""
    scheduler = Scheduler(VirtualClock())
    seen: list[str] = []

    def slow_operation() -> None:
        seen.append("request sent")
        scheduler.run_until(scheduler.clock.now() + 1.0)
        seen.append(f"reply at {scheduler.clock.now()}")

    scheduler.at(0.0, slow_operation)
    scheduler.at(0.5, lambda: seen.append("other peer's event"))
    scheduler.at(2.0, lambda: seen.append("later event"))
    scheduler.run()
    assert seen == ["request sent", "other peer's event", "reply at 1.0", "later event"]


def test_an_event_that_always_reschedules_is_stopped() -> None:
    scheduler = Scheduler(VirtualClock())

    def forever() -> None:
        scheduler.after(1.0, forever)

    scheduler.after(0.0, forever)
    with pytest.raises(RuntimeError, match="events after 100"):
        scheduler.run(limit=100)


def test_latency_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Latency(SimRandom(1), low=0.2, high=0.1)
    with pytest.raises(ValueError):
        Latency(SimRandom(1), timeout=0)


def _ideal(size: int, seed: int, latency: tuple[float, float], r: int = 4) -> SimNetwork:
    rng = SimRandom(seed)
    low, high = latency
    net = SimNetwork(RING, successors=r, latency=Latency(rng.fork(1), low, high))
    net.build_ideal(net.random_addresses(size, rng.fork(0)))
    return net


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_lookups_with_reordered_replies_find_the_live_owner(seed: int) -> None:
    """Forty lookups in flight at once over random delays (round trips well within the
    timeout), on a ring where a quarter of the peers crashed: replies arrive in another
    order than their requests left, and every verified lookup still ends at the key's
    true live owner."""
    net = _ideal(60, seed, (0.01, 0.4))
    rng = SimRandom(seed).fork(2)
    for victim in rng.sample(net.members(), 15):
        net.crash(victim.me.address)
    live = net.members()
    ids = sorted(n.me.id for n in live)
    outcomes: list[tuple[int, LookupResult | LookupFailed]] = []
    sent_order: list[int] = []
    reply_order: list[int] = []
    _record_message_order(net, sent_order, reply_order)
    for _ in range(40):
        key = rng.getrandbits(MAX_BITS)
        net.start_lookup(
            rng.choice(live), key, _keep(outcomes, key), confirm_owner=True, forget_dead=False
        )
    assert len(net.scheduler) > 40  # every lookup has a request in flight
    net.scheduler.run()
    assert len(outcomes) == 40
    for key, outcome in outcomes:
        assert isinstance(outcome, LookupResult), outcome
        assert outcome.owner.id == ids[successor_index(ids, key)]
    assert reply_order != sorted(reply_order), "replies came back in the order sent"
    assert net.counters.timeouts > 0  # dead peers were met, and their deadlines passed


def _keep(outcomes: list[tuple[int, LookupResult | LookupFailed]], key: int) -> LookupDone:
    def done(outcome: LookupResult | LookupFailed) -> None:
        outcomes.append((key, outcome))

    return done


def _record_message_order(net: SimNetwork, sent: list[int], replied: list[int]) -> None:
    """Number each request as it is sent, and note the number of each reply as it
    arrives (on the network's send, wrapped)."""
    original = net.send

    def send(
        origin: str,
        peer: NodeRef,
        handle: Callable[[ChordNode], T],
        on_reply: Callable[[T], None],
        on_timeout: Callable[[str], None],
    ) -> None:
        number = len(sent)
        sent.append(number)

        def reply(answer: T) -> None:
            replied.append(number)
            on_reply(answer)

        original(origin, peer, handle, reply, on_timeout)

    net.send = send  # type: ignore[method-assign]


def test_a_reply_later_than_the_timeout_is_no_answer_and_the_lookup_goes_on() -> None:
    """Round trips of up to 1.6 s against a 1 s deadline: some replies lose the race and
    are ignored, their peers taken for dead for the rest of that lookup (as a real
    caller's deadline does). Each lookup still ends, with an owner or LookupFailed,
    and the late replies change nothing after the fact."""
    net = _ideal(40, 7, (0.05, 0.8))
    rng = SimRandom(7).fork(2)
    ids = sorted(n.me.id for n in net.members())
    outcomes: list[tuple[int, LookupResult | LookupFailed]] = []
    late: list[bool] = []
    for _ in range(30):
        key = rng.getrandbits(MAX_BITS)
        machine = net.start_lookup(
            rng.choice(net.members()), key, _keep(outcomes, key), forget_dead=False
        )
        machine.on_reply = _noting_late(machine.on_reply, late)  # type: ignore[method-assign,assignment]
    net.scheduler.run()
    assert len(outcomes) == 30
    assert any(late), "no reply came after its deadline"
    right = sum(
        isinstance(o, LookupResult) and o.owner.id == ids[successor_index(ids, k)]
        for k, o in outcomes
    )
    assert right >= 25  # a live peer taken for dead may mislead a few; most are right


def _noting_late(
    on_reply: Callable[[StepRequest, StepAnswer], bool], late: list[bool]
) -> Callable[[StepRequest, StepAnswer], bool]:
    def noted(request: StepRequest, answer: StepAnswer) -> bool:
        used = on_reply(request, answer)
        late.append(not used)  # not used: it came after its deadline
        return used

    return noted


def _maintain_forever(net: SimNetwork, node: ChordNode, rng: SimRandom, until: float) -> None:
    """Schedule ``node``'s maintenance (stabilize, check_predecessor, a finger) every
    0.5-1.5 s until ``until``, each run an operation of its own."""

    def round_() -> None:
        if not node.joined:
            return
        node.stabilize()
        node.check_predecessor()
        node.fix_next_finger()

    def again() -> None:
        net.start(node, round_)
        if net.clock.now() < until:
            net.scheduler.after(rng.uniform(0.5, 1.5), again)

    net.scheduler.after(rng.uniform(0.0, 1.0), again)


@pytest.mark.parametrize(("seed", "crashes"), [(1, 0), (2, 0), (3, 0), (1, 6), (2, 6), (3, 6)])
def test_concurrent_joins_with_random_latency_keep_the_invariants(seed: int, crashes: int) -> None:
    """Twenty peers join a ring of eight within a few seconds, every message delayed at
    random (a join's lookup and admission interleave with the others' and with
    maintenance), while every member keeps stabilizing and, in some runs, peers crash
    meanwhile (each crash only if Zave's operating assumption allows it then). Zave's
    invariants hold at every check, and once it all stops the ring becomes Ideal."""
    rng = SimRandom(seed)
    r = 3
    net = SimNetwork(RING, successors=r, latency=Latency(rng.fork(1), 0.01, 0.3))
    first, *others = (net.add(a) for a in net.random_addresses(8, rng.fork(0)))
    first.create()
    for node in others:
        node.join(first.me.address)
        for _ in range(3):
            net.run_maintenance_round()
    until = net.clock.now() + 60.0
    for node in net.members():
        _maintain_forever(net, node, rng.fork(node.me.id % 1000), until)
    joined: list[ChordNode] = []

    def join(node: ChordNode) -> None:
        seed_node = rng.choice([m for m in net.members() if m is not node])
        try:
            node.join(seed_node.me.address)
        except (JoinFailed, PeerUnreachable):
            return  # a real peer retries later; the test counts the ones that made it
        joined.append(node)
        _maintain_forever(net, node, rng.fork(node.me.id % 1000 + 1), until)

    crashed: list[ChordNode] = []

    def crash() -> None:
        members = net.members()
        victim = rng.choice(members)
        if crash_allowed(members, victim, r):
            net.crash(victim.me.address)
            crashed.append(victim)

    for address in net.random_addresses(20, rng.fork(2)):
        node = net.add(address)
        net.start(node, partial(join, node), rng.uniform(0, 5))
    for _ in range(crashes):
        net.scheduler.after(rng.uniform(0, 20), crash)

    checks = 0
    while net.scheduler.next_due() is not None:
        net.scheduler.run_until(net.clock.now() + 0.5)
        problems = violations([n.state() for n in net.members()])
        assert not problems, (net.clock.now(), problems[:3])
        checks += 1
    assert len(joined) >= 15, len(joined)
    assert len(crashed) >= crashes // 2, len(crashed)
    assert checks > 50
    members = net.members()
    for _ in range(2 * len(members)):  # quiet rounds, no latency left in flight
        net.run_maintenance_round()
    assert not ideal_violations([n.state() for n in members], r)


def _fixed_delay_ring(size: int, delay: float) -> SimNetwork:
    net = SimNetwork(RING, successors=3, latency=Latency(SimRandom(5), delay, delay))
    net.build_ideal(net.random_addresses(size, SimRandom(6)))
    return net


def test_a_peer_runs_one_operation_at_a_time() -> None:
    """A second operation of the same peer that comes due while the first waits for a
    reply starts when the first ends; another peer's runs inside that wait."""
    net = _fixed_delay_ring(5, 0.1)
    a, b = net.members()[:2]
    seen: list[tuple[str, float]] = []

    def operation(name: str, node: ChordNode) -> Callable[[], None]:
        def run() -> None:
            seen.append((f"{name} starts", net.clock.now()))
            node.stabilize()  # at least one round trip: 0.2 s
            seen.append((f"{name} ends", net.clock.now()))

        return run

    net.start(a, operation("a1", a))
    net.start(a, operation("a2", a), delay=0.05)
    net.start(b, operation("b", b), delay=0.05)
    net.scheduler.run()
    names = [name for name, _ in seen]
    assert names.index("a2 starts") > names.index("a1 ends")
    assert names.index("a1 starts") < names.index("b starts") < names.index("a1 ends")


def test_a_peer_that_crashes_while_waiting_sends_nothing_more() -> None:
    """An operation pings two peers in turn: the peer crashes before the first reply
    (a round trip of 0.2 s), so the second ping is never sent."""
    net = _fixed_delay_ring(5, 0.1)
    node, first, second = net.members()[:3]

    def two_pings() -> None:
        node.transport.ping(first.me)
        node.transport.ping(second.me)

    net.start(node, two_pings)
    net.scheduler.at(0.15, lambda: net.crash(node.me.address))
    net.scheduler.run()
    assert net.counters.messages == 1  # the first ping, delivered at 0.1 s
    assert net.clock.now() == pytest.approx(0.2)
