"""Fault-injection harness (issue 8): real peers, real faults, a checker that
classifies every acknowledged upload. ``python -m faults --help``."""
