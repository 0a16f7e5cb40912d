"""Peer settings: defaults < YAML file < CHORD_* environment < command-line flags.

Imports nothing of services/: only PyYAML and devtools.fault_rules (to validate a
fault rule set)."""

from config.cli import CliOptions, build_parser, parse_args
from config.settings import (
    ConfigError,
    Settings,
    format_address,
    load_settings,
    split_address,
    validate,
)

__all__ = [
    "CliOptions",
    "ConfigError",
    "Settings",
    "build_parser",
    "format_address",
    "load_settings",
    "parse_args",
    "split_address",
    "validate",
]
