"""Fault injection inside the peer: delay, drop or fail chosen gRPC calls.

The seam for the fault-injection harness (``python -m faults``): ``tc netem`` is not
available here, so latency, loss and partitions are injected where the peer makes and
serves its RPCs. Off unless configured (``fault_rules`` / ``fault_rules_file``); when
off, no interceptor is installed at all.

A rule set is JSON, either a list of rules or ``{"seed": S, "rules": [...]}``::

    [{"method": "Chord/Notify", "action": "delay", "ms": 200, "probability": 0.3},
     {"method": "*", "action": "drop", "peer": "127.0.0.1:7003"}]

or the same in a compact form, rules separated by ``;``, the action first::

    delay method=Chord/Notify ms=200 p=0.3; drop peer=127.0.0.1:7003

Rule fields (all optional except ``action``):

* ``action``: ``delay`` (wait ``ms``, then make the call; a delay past the call's
  deadline ends it DEADLINE_EXCEEDED), ``drop`` (fail at once with UNAVAILABLE, as a
  refused connection would), ``blackhole`` (wait out the call's deadline, then
  DEADLINE_EXCEEDED, as a lost packet would), ``fail`` (end with status ``code``).
* ``method``: glob on ``Service/Method`` (``Chord/Notify``, ``Files/*``); default ``*``.
* ``peer``: glob or list of globs on the remote address; default ``*``. Outgoing calls
  match the address dialled (``host:port``); incoming calls the caller's socket address.
* ``at``: glob or list of globs on this peer's own address: the rule applies only in the
  peers it names, so one shared rules file can describe a partition (side A drops to
  side B, side B to side A).
* ``direction``: ``out`` (calls this peer makes; default), ``in`` (calls it serves), ``both``.
* ``probability`` (or ``p``): chance a matching call is hit, 0..1; default 1. Draws come
  from one RNG per process seeded with the rule set's ``seed`` and the peer's address.
* ``ms``: delay (``delay``), or a cap on the wait (``blackhole``).
* ``code``: status name for ``fail`` (default UNAVAILABLE).

The first matching rule whose probability fires decides. ``fault_rules_file`` is re-read
whenever its modification time changes (checked at most every 0.1 s, on the call path),
so faults can be switched on and off without restarting the peer; its rules apply after
the static ``fault_rules``. A file that is missing means no rules from it; one that does
not parse is reported in the log and the previous rules stay.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from devtools.fault_rules import FaultRule, FaultRuleError, RuleSet, parse_rules
from services.rpc.grpc_types import (
    StreamStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    UnaryUnaryClientInterceptor,
)
from services.rpc.interceptors import HandlerInterceptor, rewrap, run_first, short_method

log = logging.getLogger("chord.faults")

RELOAD_EVERY = 0.1  # seconds between checks of the rules file's mtime
NO_DEADLINE_WAIT = 30.0  # how long a blackhole holds a call that has no deadline


def caller_address(context_peer: str) -> str:
    """gRPC's 'ipv4:127.0.0.1:5555' / 'ipv6:[::1]:5555' -> '127.0.0.1:5555' / '[::1]:5555'."""
    return context_peer.split(":", 1)[1] if ":" in context_peer else context_peer


class InjectedError(grpc.RpcError, grpc.Call):
    """The failure an injected fault ends an outgoing call with: a grpc.Call like a real
    failed call, so code that reads ``code()`` and ``details()`` handles it unchanged."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class FaultInjector:
    """Decides, call by call, whether a fault applies; holds the rules (static plus the
    rules file's) and the seeded RNG."""

    def __init__(
        self,
        me: str,
        rules: RuleSet | None = None,
        rules_file: str | Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self.static = rules or RuleSet()
        self.rules_file = Path(rules_file) if rules_file is not None else None
        self._file_rules = RuleSet()
        self._file_stamp: int | None = None
        self._next_check = 0.0
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(f"{self.static.seed}|{me}")
        self.injected: dict[str, int] = {}
        self._reload()

    # ------------------------------------------------------------------ rules
    def rules(self) -> tuple[FaultRule, ...]:
        if self.rules_file is not None and self._clock() >= self._next_check:
            self._reload()
        return self.static.rules + self._file_rules.rules

    def _reload(self) -> None:
        if self.rules_file is None:
            return
        with self._lock:
            self._next_check = self._clock() + RELOAD_EVERY
            try:
                stamp: int | None = self.rules_file.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp == self._file_stamp:
                return
            self._file_stamp = stamp
            try:
                text = self.rules_file.read_text(encoding="utf-8") if stamp is not None else ""
                loaded = parse_rules(text)
            except (OSError, FaultRuleError) as exc:
                log.warning(
                    "fault rules file %s ignored (keeping the rules before): %s",
                    self.rules_file,
                    exc,
                )
                return
            if loaded.seed is not None and loaded.seed != self.static.seed:
                self._rng = random.Random(f"{loaded.seed}|{self.me}")
            self._file_rules = loaded
            here = [r for r in loaded.rules if any(fnmatch.fnmatchcase(self.me, a) for a in r.at)]
            log.info(
                "fault rules from %s: %d rule(s), %d apply here (%s)",
                self.rules_file,
                len(loaded.rules),
                len(here),
                ", ".join(f"{r.action} {r.method}" for r in here) or "none",
            )

    def decide(self, method: str, peer: str, direction: str) -> FaultRule | None:
        """The rule that hits this call, if any (what to do to it)."""
        for rule in self.rules():
            if not rule.matches(method, peer, direction, self.me):
                continue
            if rule.probability < 1.0:
                with self._lock:
                    hit = self._rng.random() < rule.probability
                if not hit:
                    continue
            with self._lock:
                self.injected[rule.action] = self.injected.get(rule.action, 0) + 1
            return rule
        return None

    # ---------------------------------------------------------------- outgoing
    def apply_outgoing(
        self, rule: FaultRule, method: str, peer: str, timeout: float | None
    ) -> float | None:
        """Carry out ``rule`` on an outgoing call: sleep and/or raise InjectedError.
        Returns the deadline left for the real call (delay only)."""
        what = f"injected fault: {rule.action} {method} to {peer}"
        if rule.action == "drop":
            raise InjectedError(grpc.StatusCode.UNAVAILABLE, what)
        if rule.action == "fail":
            raise InjectedError(rule.code, what)
        if rule.action == "blackhole":
            wait = timeout if timeout is not None else NO_DEADLINE_WAIT
            if rule.ms:
                wait = min(wait, rule.ms / 1000)
            self._sleep(wait)
            raise InjectedError(grpc.StatusCode.DEADLINE_EXCEEDED, what)
        delay = rule.ms / 1000
        if timeout is not None and delay >= timeout:
            self._sleep(timeout)
            raise InjectedError(grpc.StatusCode.DEADLINE_EXCEEDED, what)
        self._sleep(delay)
        return None if timeout is None else timeout - delay

    def wrap_channel(self, channel: grpc.Channel, address: str) -> grpc.Channel:
        """``channel`` (to ``address``) with outgoing faults applied."""
        return grpc.intercept_channel(channel, _ClientInterceptor(self, address))

    def server_interceptor(self) -> grpc.ServerInterceptor[Any, Any]:
        return _ServerInterceptor(self)


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def _with_timeout(details: grpc.ClientCallDetails, timeout: float | None) -> Any:
    return _Details(
        details.method,
        timeout,
        details.metadata,
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class _ClientInterceptor(
    UnaryUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    StreamStreamClientInterceptor,
):
    def __init__(self, injector: FaultInjector, address: str) -> None:
        self.injector = injector
        self.address = address

    def _intercept(self, continuation: Any, details: grpc.ClientCallDetails, request: Any) -> Any:
        method = short_method(details.method)
        rule = self.injector.decide(method, self.address, "out")
        if rule is not None:
            left = self.injector.apply_outgoing(rule, method, self.address, details.timeout)
            details = _with_timeout(details, left)
        return continuation(details, request)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._intercept(continuation, details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._intercept(continuation, details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._intercept(continuation, details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._intercept(continuation, details, requests)


class _ServerInterceptor(HandlerInterceptor):
    """Incoming faults: the handler is wrapped so the fault is decided per call, with
    the caller's address from the call's context."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        injector = self.injector

        def before(context: grpc.ServicerContext) -> None:
            rule = injector.decide(method, caller_address(context.peer()), "in")
            if rule is None:
                return
            what = f"injected fault: {rule.action} {method} from {context.peer()}"
            if rule.action == "delay":
                injector._sleep(rule.ms / 1000)
                return
            if rule.action == "blackhole":
                left = context.time_remaining()
                wait = left if left is not None else NO_DEADLINE_WAIT
                injector._sleep(min(wait, rule.ms / 1000) if rule.ms else wait)
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, what)
            code = grpc.StatusCode.UNAVAILABLE if rule.action == "drop" else rule.code
            context.abort(code, what)

        return rewrap(handler, run_first(before))


def injector_for(me: str, rules: str | None, rules_file: str | None) -> FaultInjector | None:
    """The peer's injector, or None when fault injection is off (no interceptor at all)."""
    parsed = parse_rules(rules)
    if not parsed.rules and not rules_file:
        return None
    injector = FaultInjector(me, parsed, rules_file)
    log.warning(
        "FAULT INJECTION ON: %d static rule(s)%s",
        len(parsed.rules),
        f", rules file {rules_file}" if rules_file else "",
    )
    return injector
