"""Fault rules: the JSON or compact text of ``fault_rules`` parsed into a RuleSet.

Only parsing and matching live here, so config/ can validate a rule set without loading
the interceptors that apply it (devtools/fault_injection.py); the syntax is described there.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any

import grpc

ACTIONS = ("delay", "drop", "blackhole", "fail")
DIRECTIONS = ("out", "in", "both")


class FaultRuleError(ValueError):
    """A rule set that does not parse; the message says which rule and why."""


@dataclass(frozen=True)
class FaultRule:
    action: str
    method: str = "*"
    peer: tuple[str, ...] = ("*",)
    at: tuple[str, ...] = ("*",)
    direction: str = "out"
    probability: float = 1.0
    ms: float = 0.0
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE

    def matches(self, method: str, peer: str, direction: str, me: str) -> bool:
        """Whether this rule selects a call (probability aside)."""
        return (
            self.direction in (direction, "both")
            and fnmatch.fnmatchcase(method, self.method)
            and any(fnmatch.fnmatchcase(peer, pattern) for pattern in self.peer)
            and any(fnmatch.fnmatchcase(me, pattern) for pattern in self.at)
        )


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[FaultRule, ...] = ()
    seed: str | None = None


_KEYS = {"action", "method", "peer", "at", "direction", "probability", "p", "ms", "code"}


def _patterns(value: object, key: str, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise FaultRuleError(f"{where}: {key} must be a non-empty string or list of strings")
    return tuple(str(item) for item in items)


def _number(value: object, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FaultRuleError(f"{where}: {key} must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise FaultRuleError(f"{where}: {key} must be a number, got {value!r}") from None


def rule_from_dict(raw: object, where: str = "rule") -> FaultRule:
    if not isinstance(raw, dict):
        raise FaultRuleError(f"{where}: must be an object, got {raw!r}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise FaultRuleError(f"{where}: unknown field(s) {sorted(unknown)}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise FaultRuleError(f"{where}: action must be one of {'|'.join(ACTIONS)}, got {action!r}")
    direction = raw.get("direction", "out")
    if direction not in DIRECTIONS:
        raise FaultRuleError(f"{where}: direction must be one of {'|'.join(DIRECTIONS)}")
    probability = _number(raw.get("probability", raw.get("p", 1.0)), "probability", where)
    if not 0.0 <= probability <= 1.0:
        raise FaultRuleError(f"{where}: probability must be in 0..1, got {probability}")
    ms = _number(raw.get("ms", 0), "ms", where)
    if ms < 0:
        raise FaultRuleError(f"{where}: ms must be >= 0, got {ms}")
    if action == "delay" and ms == 0:
        raise FaultRuleError(f"{where}: a delay needs ms > 0")
    code_name = str(raw.get("code", "UNAVAILABLE")).upper()
    code = grpc.StatusCode.__members__.get(code_name)
    if code is None or code == grpc.StatusCode.OK:
        raise FaultRuleError(f"{where}: code must be a gRPC status name other than OK")
    method = raw.get("method", "*")
    if not isinstance(method, str) or not method:
        raise FaultRuleError(f"{where}: method must be a non-empty string")
    return FaultRule(
        action=str(action),
        method=method,
        peer=_patterns(raw.get("peer", "*"), "peer", where),
        at=_patterns(raw.get("at", "*"), "at", where),
        direction=str(direction),
        probability=probability,
        ms=ms,
        code=code,
    )


def _compact(text: str) -> list[dict[str, object]]:
    """``drop peer=a,b method=X; delay ms=5`` -> rule dicts (lists split on commas)."""
    rules: list[dict[str, object]] = []
    for index, part in enumerate(p.strip() for p in text.split(";")):
        if not part:
            continue
        action, *pairs = part.split()
        rule: dict[str, object] = {"action": action}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise FaultRuleError(f"rule {index + 1}: expected key=value, got {pair!r}")
            rule[key] = value.split(",") if key in ("peer", "at") else value
        rules.append(rule)
    return rules


def parse_rules(text: str | None) -> RuleSet:
    """A rule set from JSON or the compact form; empty text (or 'off') means no rules."""
    if text is None or text.strip().lower() in ("", "off", "none", "[]"):
        return RuleSet()
    stripped = text.strip()
    seed: object = None
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise FaultRuleError(f"not valid JSON: {exc}") from None
        if isinstance(data, dict):
            seed = data.get("seed")
            data = data.get("rules", [])
        if not isinstance(data, list):
            raise FaultRuleError("expected a list of rules or {'seed': S, 'rules': [...]}")
        raw_rules: list[Any] = data
    else:
        raw_rules = list(_compact(stripped))
    rules = tuple(rule_from_dict(raw, f"rule {i + 1}") for i, raw in enumerate(raw_rules))
    return RuleSet(rules, None if seed is None else str(seed))
