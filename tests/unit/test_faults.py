"""Fault injection (devtools/fault_injection.py): parsing, rule matching, the seeded probability,
the rules file reloaded at runtime, and the interceptors on a real in-process gRPC
server (the standard health service)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from config.settings import ConfigError, Settings, validate
from devtools.fault_injection import FaultInjector, InjectedError, caller_address, injector_for
from devtools.fault_rules import FaultRuleError, parse_rules
from services.rpc.grpc_types import ServerInterceptor
from services.rpc.interceptors import short_method

ME = "127.0.0.1:7001"


def test_json_and_compact_forms_parse_to_the_same_rules() -> None:
    as_json = parse_rules(
        '[{"method": "Chord/Notify", "action": "delay", "ms": 200, "probability": 0.3},'
        ' {"method": "*", "action": "drop", "peer": "127.0.0.1:7003"}]'
    )
    compact = parse_rules("delay method=Chord/Notify ms=200 p=0.3; drop peer=127.0.0.1:7003")
    assert as_json == compact
    delay, drop = as_json.rules
    assert (delay.action, delay.ms, delay.probability, delay.peer) == ("delay", 200, 0.3, ("*",))
    assert (drop.action, drop.method, drop.peer, drop.direction) == (
        "drop",
        "*",
        ("127.0.0.1:7003",),
        "out",
    )


def test_object_form_carries_a_seed() -> None:
    parsed = parse_rules('{"seed": 7, "rules": [{"action": "fail", "code": "internal"}]}')
    assert parsed.seed == "7" and parsed.rules[0].code == grpc.StatusCode.INTERNAL


@pytest.mark.parametrize("text", [None, "", "  ", "off", "[]"])
def test_empty_means_off(text: str | None) -> None:
    assert parse_rules(text).rules == ()
    assert injector_for(ME, text, None) is None  # off: no interceptor at all


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[{", "JSON"),
        ('[{"action": "explode"}]', "action"),
        ('[{"action": "delay"}]', "ms > 0"),
        ('[{"action": "drop", "probability": 2}]', "probability"),
        ('[{"action": "drop", "p": "often"}]', "number"),
        ('[{"action": "fail", "code": "OK"}]', "code"),
        ('[{"action": "fail", "code": "NOPE"}]', "code"),
        ('[{"action": "drop", "direction": "sideways"}]', "direction"),
        ('[{"action": "drop", "peers": "x"}]', "unknown"),
        ('[{"action": "drop", "peer": []}]', "peer"),
        ("drop peer", "key=value"),
        ('"drop"', "action"),
        ("[1]", "object"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(FaultRuleError, match=words):
        parse_rules(text)


def test_settings_refuse_bad_rules_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="fault_rules"):
        validate(Settings(fault_rules='[{"action": "explode"}]'))
    assert validate(Settings(fault_rules="drop peer=127.0.0.1:*")).fault_rules is not None


def test_matching_by_method_peer_direction_and_own_address() -> None:
    rules = parse_rules(
        json.dumps(
            [
                {"action": "fail", "method": "Files/*", "code": "INTERNAL"},
                {"action": "drop", "peer": ["127.0.0.2:*", "127.0.0.3:9"], "at": "127.0.0.1:*"},
                {"action": "delay", "ms": 5, "method": "Chord/Ping", "direction": "in"},
            ]
        )
    )
    injector = FaultInjector(ME, rules)

    def action(method: str, peer: str, direction: str = "out") -> str | None:
        fault = injector.decide(method, peer, direction)
        return fault.action if fault else None

    assert action("Files/Store", "10.0.0.1:1") == "fail"
    assert action("Files/Store", "10.0.0.1:1", "in") is None  # out only
    assert action("Chord/Notify", "127.0.0.2:7000") == "drop"
    assert action("Chord/Notify", "127.0.0.3:9") == "drop"
    assert action("Chord/Notify", "127.0.0.3:90") is None
    assert action("Chord/Ping", "127.0.0.9:1") is None
    assert action("Chord/Ping", "127.0.0.9:1", "in") == "delay"
    # "at" selects the peer the rule applies in: not this one.
    elsewhere = FaultInjector("127.0.0.5:7000", rules)
    assert elsewhere.decide("Chord/Notify", "127.0.0.2:7000", "out") is None
    assert injector.injected == {"fail": 1, "drop": 2, "delay": 1}


def test_probability_uses_a_seeded_rng_per_process() -> None:
    rules = parse_rules('{"seed": 1, "rules": [{"action": "drop", "p": 0.3}]}')

    def draws(me: str) -> list[bool]:
        injector = FaultInjector(me, rules)
        return [injector.decide("Chord/Ping", "x:1", "out") is not None for _ in range(2000)]

    first = draws(ME)
    assert first == draws(ME)  # same seed and address: same choices
    assert first != draws("127.0.0.1:7002")  # another peer draws differently
    assert 0.25 < sum(first) / len(first) < 0.35


def test_rules_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    now = [0.0]
    injector = FaultInjector(ME, rules_file=path, clock=lambda: now[0])
    assert injector.decide("Chord/Ping", "a:1", "out") is None  # missing file: no rules

    path.write_text('[{"action": "drop", "peer": "a:1"}]')
    assert injector.decide("Chord/Ping", "a:1", "out") is None  # not re-checked yet
    now[0] += 1
    assert injector.decide("Chord/Ping", "a:1", "out") is not None

    path.write_text("[{broken")  # a bad edit keeps the rules before
    os.utime(path, ns=(1, 1))
    now[0] += 1
    assert injector.decide("Chord/Ping", "a:1", "out") is not None

    path.write_text("[]")
    os.utime(path, ns=(2, 2))
    now[0] += 1
    assert injector.decide("Chord/Ping", "a:1", "out") is None  # healed


def test_outgoing_delay_shortens_the_deadline_and_too_long_a_delay_expires_it() -> None:
    slept: list[float] = []
    rules = parse_rules("delay ms=300")
    injector = FaultInjector(ME, rules, sleep=slept.append)
    fault = injector.decide("Chord/Ping", "a:1", "out")
    assert fault is not None
    assert injector.apply_outgoing(fault, "Chord/Ping", "a:1", 1.0) == pytest.approx(0.7)
    with pytest.raises(InjectedError) as raised:
        injector.apply_outgoing(fault, "Chord/Ping", "a:1", 0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert slept == [0.3, 0.2]
    blackhole = FaultInjector(ME, parse_rules("blackhole"), sleep=slept.append)
    hole = blackhole.decide("Chord/Ping", "a:1", "out")
    assert hole is not None
    with pytest.raises(InjectedError):
        blackhole.apply_outgoing(hole, "Chord/Ping", "a:1", 0.5)
    assert slept[-1] == 0.5


def test_names() -> None:
    assert short_method("/chord.v1.Chord/Notify") == "Chord/Notify"
    assert short_method(b"/grpc.health.v1.Health/Check") == "Health/Check"
    assert caller_address("ipv4:127.0.0.1:5555") == "127.0.0.1:5555"
    assert caller_address("ipv6:[::1]:5555") == "[::1]:5555"


# ------------------------------------------------------------- real gRPC calls
@pytest.fixture
def health_server() -> Iterator[tuple[str, list[grpc.ServerInterceptor[Any, Any]]]]:
    """A health server on a free port; interceptors appended before it starts serve."""
    interceptors: list[grpc.ServerInterceptor[Any, Any]] = []

    class Late(ServerInterceptor):
        def intercept_service(self, continuation, details):  # type: ignore[no-untyped-def]
            for interceptor in interceptors:
                return interceptor.intercept_service(continuation, details)
            return continuation(details)

    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[Late()])
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", interceptors
    server.stop(0)


def check(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code()
    return grpc.StatusCode.OK


def test_client_interceptor_on_a_real_channel(
    health_server: tuple[str, list[grpc.ServerInterceptor[Any, Any]]],
) -> None:
    address, _ = health_server
    for rules, code in [
        ("drop method=Health/Check", grpc.StatusCode.UNAVAILABLE),
        ("fail code=PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED),
        ("drop method=Chord/*", grpc.StatusCode.OK),
        (f"drop peer={address}", grpc.StatusCode.UNAVAILABLE),
        ("delay ms=20", grpc.StatusCode.OK),
        ("delay ms=5000", grpc.StatusCode.DEADLINE_EXCEEDED),
    ]:
        injector = FaultInjector(ME, parse_rules(rules), sleep=lambda _: None)
        with grpc.insecure_channel(address) as raw:
            assert check(injector.wrap_channel(raw, address)) == code, rules


def test_server_interceptor_faults_incoming_calls(
    health_server: tuple[str, list[grpc.ServerInterceptor[Any, Any]]],
) -> None:
    address, interceptors = health_server
    injector = FaultInjector(ME, parse_rules("fail direction=in code=INTERNAL peer=127.0.0.1:*"))
    interceptors.append(injector.server_interceptor())
    with grpc.insecure_channel(address) as channel:
        assert check(channel) == grpc.StatusCode.INTERNAL
    interceptors[0] = FaultInjector(
        ME, parse_rules("fail direction=in peer=10.*")
    ).server_interceptor()
    with grpc.insecure_channel(address) as channel:
        assert check(channel) == grpc.StatusCode.OK
