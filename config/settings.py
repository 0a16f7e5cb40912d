"""Peer settings: the `Settings` record, its validation, and the layered loader.

Precedence, highest first: command-line flags > CHORD_* environment variables >
YAML config file > defaults. Every problem is reported as a `ConfigError` whose
`str()` is one line naming the setting (and where its value came from).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

ENV_PREFIX = "CHORD_"
MACOS_FILES = ("refuse", "store")
CONFIG_ENV = "CHORD_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")
API_PORT_OFFSET = 10000


class ConfigError(ValueError):
    """A setting is invalid. `setting` is its name ('config' for the file itself)."""

    def __init__(self, setting: str, message: str, source: str | None = None) -> None:
        super().__init__(setting, message, source)
        self.setting = setting
        self.message = message
        self.source = source

    def __str__(self) -> str:
        where = f" (from {self.source})" if self.source else ""
        return f"invalid setting '{self.setting}'{where}: {self.message}"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"  # bind address for gRPC and REST
    port: int = 7000  # gRPC port; 0: any free port, reported in the log and port_file
    advertise_host: str | None = None  # what other peers are told; default: host
    api_port: int | None = None  # REST port; default: port + 10000 (0 if port is 0)
    port_file: str | None = None  # once bound, the ports are written here as JSON
    join: str | None = None  # seed "host:port"; None = create a new ring
    data_dir: str | None = None  # default: data/<advertise_host>_<port>
    menu: bool = True  # interactive console menu (only when stdin is a TTY)
    log_level: str = "info"  # debug|info|warning|error
    bits: int = 160  # m, identifier bits, 1..160
    successors: int = 8  # r, successor list length, >= 1
    stabilize_interval: float = 0.5  # seconds
    fix_fingers_interval: float = 0.5
    check_predecessor_interval: float = 1.0
    # While nothing changes, maintenance intervals double after each round up to this
    # many times their setting (1: fixed intervals); any change restores them at once.
    maintenance_backoff: float = 8.0
    rpc_timeout: float = 2.0  # deadline of every peer RPC
    join_timeout: float = 15.0  # give up joining after this long
    max_workers: int = 16  # gRPC server threads
    max_concurrent_rpcs: int = 64  # beyond this gRPC answers RESOURCE_EXHAUSTED
    replicas: int = 3  # k: copies of every file (owner + k-1 successors), <= successors
    write_quorum: int | None = None  # holders that must store an upload before it is acked; k
    quota_mib: int | None = None  # disk this peer may fill with files, MiB; None = unlimited
    repair_interval: float = 5.0  # seconds between anti-entropy / migration rounds
    merge_interval: float = 5.0  # seconds between checks for another ring to merge with
    one_hop: bool = True  # keep the whole membership and route to a key's owner directly
    webdav: bool = True  # serve the ring over WebDAV at http://HOST:API_PORT/dav/
    webdav_macos_files: str = "refuse"  # refuse|store macOS' ._* and .DS_Store over WebDAV
    # Secrets are left out of repr(), so logging a Settings never shows them.
    # api_token: bearer token uploads/deletes need; None = open.
    api_token: str | None = dataclasses.field(default=None, repr=False)
    # admin_token: for /shutdown; None = generated into <data_dir>/admin_token.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    max_upload_mib: int = 10240  # largest REST upload, MiB
    # ring_secret: shared by every peer of a ring, sent on every peer RPC; None = none.
    ring_secret: str | None = dataclasses.field(default=None, repr=False)
    ring_secret_file: str | None = None  # read the ring secret from this file instead
    tls_cert: str | None = None  # PEM certificate of this peer, signed by the ring CA
    tls_key: str | None = None  # its PEM private key
    tls_ca: str | None = None  # PEM certificate of the ring CA; all three or none
    insecure: bool = False  # allow a non-loopback bind without peer authentication
    max_transfers_per_client: int = 8  # concurrent REST uploads/downloads per client IP
    rate_limit_per_minute: int = 120  # mutating REST requests per client IP and minute
    # Hostile clients (issue 14): what a connection or a stream may cost the peer.
    transfer_workers: int = 48  # gRPC threads for file streams, apart from max_workers
    stream_idle_timeout: float = 30.0  # a gRPC stream moving no message this long is cut
    http_connections: int = 1024  # REST connections open at once, all clients together
    http_connections_per_ip: int = 64  # REST connections open at once from one client IP
    http_idle_timeout: float = 15.0  # a REST connection waiting for a request is closed
    http_header_timeout: float = 10.0  # a request head must arrive whole within this
    http_body_timeout: float = 20.0  # a request body must bring bytes at least this often
    http_send_timeout: float = 30.0  # a client that takes no response byte this long: cut
    http_workers: int = 8  # threads for small REST requests (everything but transfers)
    http_transfer_workers: int = 32  # threads for REST uploads and downloads
    fault_rules: str | None = None  # fault injection (devtools/fault_injection.py); None = off
    fault_rules_file: str | None = None  # rules re-read when the file changes; None = off

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def advertised_host(self) -> str:
        return self.advertise_host or self.host

    @property
    def address(self) -> str:
        """The gRPC address other peers are told, e.g. '127.0.0.1:7000' or '[::1]:7000'."""
        return format_address(self.advertised_host, self.port)

    @property
    def bind_address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def resolved_api_port(self) -> int:
        if self.api_port is not None:
            return self.api_port
        if self.port == 0:
            return 0  # any free port too
        port = self.port + API_PORT_OFFSET
        if port > 65535:
            raise ConfigError(
                "api_port",
                f"defaults to port + {API_PORT_OFFSET} = {port}, which is above 65535; "
                "set api_port explicitly",
            )
        return port

    @property
    def api_address(self) -> str:
        """The REST address other peers and clients are told."""
        return format_address(self.advertised_host, self.resolved_api_port)

    @property
    def api_bind(self) -> str:
        return format_address(self.host, self.resolved_api_port)

    @property
    def resolved_data_dir(self) -> str:
        if self.data_dir is not None:
            return self.data_dir
        # Keep the directory name portable: IPv6 colons etc. become '_'.
        safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", self.advertised_host)
        return str(Path("data") / f"{safe_host}_{self.port}")

    def join_host_port(self) -> tuple[str, int] | None:
        """The seed as (host, port) with IPv6 brackets removed; None when creating a ring."""
        if self.join is None:
            return None
        return split_address(self.join, "join")


# ---------------------------------------------------------------------------
# Addresses


def format_address(host: str, port: int | str) -> str:
    """'host:port', bracketing IPv6 literals: ('::1', 7000) -> '[::1]:7000'."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_BRACKETED = re.compile(r"\[([^\]]*)\]:([^:]*)")  # [v6]:port
_PLAIN = re.compile(r"([^:\[\]]*):([^:]*)")  # host:port


def split_address(value: str, setting: str, source: str | None = None) -> tuple[str, int]:
    """Parse 'host:port' or '[v6]:port' into (host, port), checking both parts."""
    text = value.strip()
    match = _BRACKETED.fullmatch(text) or _PLAIN.fullmatch(text)
    if match is None:
        hint = " (bracket IPv6 addresses, e.g. [::1]:7000)" if text.count(":") > 1 else ""
        raise ConfigError(setting, f"must be HOST:PORT{hint}, got {value!r}", source)
    host, port_text = match.groups()
    _check_host(host, setting, source)
    if not re.fullmatch(r"[0-9]+", port_text) or not 1 <= int(port_text) <= 65535:
        raise ConfigError(
            setting, f"port must be an integer in 1..65535, got {port_text!r} in {value!r}", source
        )
    return host, int(port_text)


# A bearer token as it can travel in an Authorization header.
_TOKEN = re.compile(r"[\x21-\x7e]{8,512}")
# A ring secret as it can travel in gRPC metadata; short ones are guessable.
RING_SECRET = re.compile(r"[\x21-\x7e]{16,1024}")
RING_SECRET_RULE = "must be 16..1024 visible ASCII characters without spaces"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _check_host(host: str, setting: str, source: str | None) -> None:
    """A hostname (RFC 1123) or an IPv4/IPv6 literal."""
    if not host:
        raise ConfigError(setting, "must not be empty", source)
    if any(c.isspace() for c in host):
        raise ConfigError(setting, f"must not contain spaces, got {host!r}", source)
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    valid = len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)
    if not valid or all(label.isdigit() for label in labels):  # '256.1.1.1' is no hostname
        raise ConfigError(
            setting, f"must be a hostname or an IPv4/IPv6 address, got {host!r}", source
        )


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a port on this machine: 127.0.0.0/8, ::1,
    'localhost'. Names other than localhost count as reachable (they may resolve to
    anything)."""
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalize_host(host: str) -> str:
    """Lowercase; canonical IPv6 spelling; '[::1]' accepted for '::1'."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


# ---------------------------------------------------------------------------
# Validation

# Integer settings with an allowed range (None: unbounded above).
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "port": (0, 65535),
    "api_port": (0, 65535),
    "bits": (1, 160),
    "successors": (1, 64),
    "max_workers": (2, None),
    "max_concurrent_rpcs": (2, None),
    "replicas": (1, 16),
    "write_quorum": (1, 16),
    "quota_mib": (1, None),
    "max_upload_mib": (1, None),
    "max_transfers_per_client": (1, None),
    "rate_limit_per_minute": (1, None),
    "transfer_workers": (2, None),
    "http_connections": (8, None),
    "http_connections_per_ip": (1, None),
    "http_workers": (1, None),
    "http_transfer_workers": (1, None),
}


def _int_description(name: str) -> str:
    low, high = _INT_RANGES.get(name, (None, None))
    if low is None:
        return "an integer"
    return f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"


# Raises ConfigError for a setting: (name, message), the value's source filled in.
Fail = Callable[[str, str], typing.NoReturn]


def validate(settings: Settings, sources: Mapping[str, str] | None = None) -> Settings:
    """Check every setting; return a normalized copy (host spelling, lowercase log level).

    `sources` maps setting names to where their value came from, for error messages.
    One validator per concern, in a fixed order: when several settings are wrong, the
    first concern's error is the one reported.
    """
    src = dict(sources or {})

    def fail(name: str, message: str) -> typing.NoReturn:
        raise ConfigError(name, message, src.get(name))

    _check_int_ranges(settings, fail)
    host, advertise = _checked_hosts(settings, src, fail)
    _check_webdav(settings, fail)
    level = _checked_log_level(settings, fail)
    _check_timeouts(settings, fail)
    _check_replication(settings, fail)
    _check_capacity(settings, fail)
    _check_tokens(settings, fail)
    _check_faults(settings, fail)
    _check_security(settings, host, fail)
    normalized = dataclasses.replace(settings, host=host, advertise_host=advertise, log_level=level)
    _check_api_port(normalized, fail)
    return dataclasses.replace(normalized, join=_checked_join(normalized, src, fail))


def _check_int_ranges(settings: Settings, fail: Fail) -> None:
    for name, (low, high) in _INT_RANGES.items():
        value = getattr(settings, name)
        if value is not None and not (low <= value and (high is None or value <= high)):
            fail(name, f"must be {_int_description(name)}, got {value!r}")


def _checked_hosts(
    settings: Settings, src: Mapping[str, str], fail: Fail
) -> tuple[str, str | None]:
    """The bind host and the advertised host, normalized; the advertised one must be
    an address other peers can reach."""
    _check_host(settings.host, "host", src.get("host"))
    host = _normalize_host(settings.host)
    advertise = settings.advertise_host
    if advertise is not None:
        _check_host(advertise, "advertise_host", src.get("advertise_host"))
        advertise = _normalize_host(advertise)
        if _is_unspecified(advertise):
            fail("advertise_host", f"{advertise} is not an address other peers can reach")
    elif _is_unspecified(host):
        fail(
            "advertise_host",
            f"the bind host {host} is not an address other peers can reach; "
            "pass --advertise-host <reachable IP or name>",
        )
    return host, advertise


def _check_webdav(settings: Settings, fail: Fail) -> None:
    if settings.webdav_macos_files not in MACOS_FILES:
        fail(
            "webdav_macos_files",
            f"must be one of {'|'.join(MACOS_FILES)}, got {settings.webdav_macos_files!r}",
        )


def _checked_log_level(settings: Settings, fail: Fail) -> str:
    level = settings.log_level.strip().lower()
    if level not in LOG_LEVELS:
        fail("log_level", f"must be one of {'|'.join(LOG_LEVELS)}, got {settings.log_level!r}")
    return level


def _check_timeouts(settings: Settings, fail: Fail) -> None:
    """Every float setting is a duration in seconds; the backoff a factor."""
    for field in dataclasses.fields(Settings):
        if _field_type(field.name) is float:
            value = getattr(settings, field.name)
            if not (math.isfinite(value) and value > 0):
                fail(field.name, f"must be a finite number of seconds > 0, got {value!r}")
    if settings.maintenance_backoff < 1:
        fail(
            "maintenance_backoff",
            f"must be >= 1 (1: fixed intervals), got {settings.maintenance_backoff!r}",
        )


def _check_replication(settings: Settings, fail: Fail) -> None:
    if settings.replicas > settings.successors:
        fail(
            "replicas",
            f"must be <= successors ({settings.successors}): a file's holders are its owner "
            f"and the owner's successor list, got {settings.replicas}",
        )
    if settings.write_quorum is not None and settings.write_quorum > settings.replicas:
        fail(
            "write_quorum",
            f"must be <= replicas ({settings.replicas}), got {settings.write_quorum}",
        )


def _check_capacity(settings: Settings, fail: Fail) -> None:
    if settings.max_concurrent_rpcs < settings.max_workers:
        fail(
            "max_concurrent_rpcs",
            f"must be >= max_workers ({settings.max_workers}), got {settings.max_concurrent_rpcs}",
        )


def _check_tokens(settings: Settings, fail: Fail) -> None:
    for name in ("api_token", "admin_token"):
        token = getattr(settings, name)
        if token is not None and not _TOKEN.fullmatch(token):
            fail(name, "must be 8..512 visible ASCII characters without spaces")
    if settings.api_token is not None and settings.api_token == settings.admin_token:
        fail("admin_token", "must differ from api_token (the API token cannot shut a peer down)")


def _check_faults(settings: Settings, fail: Fail) -> None:
    if settings.fault_rules is not None:
        from devtools.fault_rules import FaultRuleError, parse_rules

        try:
            parse_rules(settings.fault_rules)
        except FaultRuleError as err:
            fail("fault_rules", str(err))


def _check_security(settings: Settings, host: str, fail: Fail) -> None:
    """The ring secret and mutual TLS, each well-formed, and protected mode: a peer
    bound to a non-loopback ``host`` authenticates its peers unless told --insecure."""
    if settings.ring_secret is not None:
        if settings.ring_secret_file is not None:
            fail("ring_secret_file", "give either ring_secret or ring_secret_file, not both")
        if not RING_SECRET.fullmatch(settings.ring_secret):
            fail("ring_secret", RING_SECRET_RULE)  # never echo the value
    tls = {name: getattr(settings, name) for name in ("tls_cert", "tls_key", "tls_ca")}
    if any(v is not None for v in tls.values()) and any(v is None for v in tls.values()):
        missing = ", ".join(name for name, v in tls.items() if v is None)
        fail(
            next(name for name, v in tls.items() if v is None),
            f"mutual TLS needs tls_cert, tls_key and tls_ca together; missing {missing}",
        )
    if is_loopback(host) or settings.insecure:
        return
    authenticated = (
        settings.ring_secret is not None
        or settings.ring_secret_file is not None
        or settings.tls_cert is not None
    )
    if not authenticated:
        # Protected mode, as in Redis: reachable from the network and unauthenticated
        # means anyone who can reach the port can join the ring or call any peer RPC.
        fail(
            "ring_secret",
            f"this peer binds {host}, which is not a loopback address, and has no "
            "ring secret: anyone who reaches the port could join the ring. Set "
            "--ring-secret (or CHORD_RING_SECRET, or ring_secret_file) on every peer, "
            "or mutual TLS (tls_cert/tls_key/tls_ca); or pass --insecure to run an "
            "open ring anyway",
        )


def _check_api_port(settings: Settings, fail: Fail) -> None:
    try:
        api_port = settings.resolved_api_port
    except ConfigError as err:
        fail("api_port", err.message)
    if api_port == settings.port != 0:
        fail("api_port", f"must differ from the gRPC port {settings.port}")


def _checked_join(settings: Settings, src: Mapping[str, str], fail: Fail) -> str | None:
    """The seed address, normalized; never this peer's own address."""
    join = settings.join
    if join is None:
        return None
    join_host, join_port = split_address(join, "join", src.get("join"))
    join = format_address(_normalize_host(join_host), join_port)
    if join == settings.address:
        fail("join", f"{join} is this peer's own address; a peer cannot join itself")
    return join


# ---------------------------------------------------------------------------
# Coercion of raw values (strings from env/flags, YAML scalars) to field types

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _field_type(name: str) -> type:
    """The field's type with Optional removed: int, float, bool or str."""
    hint = typing.get_type_hints(Settings)[name]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.cast(type, hint)


def _is_optional(name: str) -> bool:
    hint = typing.get_type_hints(Settings)[name]
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def coerce(name: str, raw: object, source: str | None = None) -> object:
    """Convert a raw value for setting `name` to the field's type, or raise ConfigError."""
    kind = _field_type(name)
    if raw is None or (isinstance(raw, str) and raw.strip() == "" and _is_optional(name)):
        if _is_optional(name):
            return None
        raise ConfigError(name, "must have a value", source)
    if isinstance(raw, (list, dict)):
        raise ConfigError(name, f"must be a single value, got {raw!r}", source)
    text = raw.strip() if isinstance(raw, str) else None
    convert = _CONVERTERS.get(kind, _to_str)
    return convert(name, raw, text, source)


def _to_bool(name: str, raw: object, text: str | None, source: str | None) -> object:
    if isinstance(raw, bool):
        return raw
    word = text.lower() if text is not None else str(raw)
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(name, f"must be true/false (or yes/no, on/off, 1/0), got {raw!r}", source)


def _to_int(name: str, raw: object, text: str | None, source: str | None) -> object:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if text is not None and re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    raise ConfigError(name, f"must be {_int_description(name)}, got {raw!r}", source)


def _to_float(name: str, raw: object, text: str | None, source: str | None) -> object:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if text is not None:
        try:
            return float(text)
        except ValueError:
            pass
    raise ConfigError(name, f"must be a number, got {raw!r}", source)


def _to_str(name: str, raw: object, text: str | None, source: str | None) -> object:
    # YAML may hand us numbers (e.g. `data_dir: 123`); a bool is surely a mistake.
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ConfigError(name, f"must be a string, got {raw!r}", source)
    return text if text is not None else str(raw)


_CONVERTERS: dict[type, Callable[[str, object, str | None, str | None], object]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
}


# ---------------------------------------------------------------------------
# Loading

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))
# Keys of the ancestor project's YAML files.
_ANCESTOR_KEYS = ("ip", "ip_seed", "port_seed")


def _read_file(path: str) -> dict[str, tuple[object, str]]:
    """Read a YAML config file into {setting: (raw value, source)}."""
    values = _setting_values(_load_yaml(path), path)
    _translate_ancestor_keys(values, path)
    return {name: (value, path) for name, value in values.items()}


def _load_yaml(path: str) -> dict[object, object]:
    """The file's top-level mapping ({} for an empty file), or ConfigError saying why not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config", f"file {path!r} does not exist") from None
    except OSError as err:
        raise ConfigError("config", f"cannot read {path!r}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        # Keep it to one line: the mark says where the YAML went wrong.
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError("config", f"{path!r} is not valid YAML{where}: {problem}") from None
    if data is None:  # empty file / only comments
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path!r} must be a mapping of setting names to values")
    return data


def _setting_values(data: dict[object, object], source: str) -> dict[str, object]:
    """Keys normalised (dashes to underscores), each a known setting or an ancestor key."""
    values: dict[str, object] = {}
    for key, value in data.items():
        name = str(key).strip().replace("-", "_")
        if name not in FIELD_NAMES and name not in _ANCESTOR_KEYS:
            close = difflib.get_close_matches(name, FIELD_NAMES + _ANCESTOR_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(str(key), f"no such setting{hint}", source)
        if name in values:
            raise ConfigError(name, "given twice (as dash and underscore spellings)", source)
        values[name] = value
    return values


def _translate_ancestor_keys(values: dict[str, object], source: str) -> None:
    """Ancestor keys: `ip` is the bind and advertised host; ip_seed + port_seed name the seed."""
    if "ip" in values:
        if "host" in values:
            raise ConfigError("ip", "give either 'ip' or 'host', not both", source)
        values["host"] = values.pop("ip")
    if "ip_seed" not in values and "port_seed" not in values:
        return
    if "ip_seed" not in values or "port_seed" not in values:
        missing = "port_seed" if "ip_seed" in values else "ip_seed"
        raise ConfigError(missing, "ip_seed and port_seed must be given together", source)
    if "join" in values:
        raise ConfigError("join", "give either 'join' or ip_seed/port_seed, not both", source)
    seed_host, seed_port = values.pop("ip_seed"), values.pop("port_seed")
    if seed_host is None or seed_port is None:
        raise ConfigError("ip_seed", "ip_seed and port_seed must have values", source)
    values["join"] = format_address(str(seed_host), str(seed_port))


NODE_MODE_ENV = "NODE_MODE"
NODE_MODES = ("master", "slave")


def check_node_mode(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The ancestor's container switch NODE_MODE=master|slave, checked against ``join``.

    master: this peer creates the ring, so no seed may be set; slave: it joins one, so
    the seed (CHORD_JOIN / --join / ip_seed+port_seed) must be set. Unset or empty: no
    check. The setting itself stays ``join``; NODE_MODE only states the intent.
    """
    mode = environ.get(NODE_MODE_ENV, "").strip().lower()
    if not mode:
        return settings
    if mode not in NODE_MODES:
        raise ConfigError(
            "node_mode",
            f"must be master or slave, got {environ[NODE_MODE_ENV]!r}",
            NODE_MODE_ENV,
        )
    if mode == "master" and settings.join is not None:
        raise ConfigError(
            "join",
            f"NODE_MODE=master creates a new ring, but a seed is set ({settings.join}); "
            "unset CHORD_JOIN or use NODE_MODE=slave",
        )
    if mode == "slave" and settings.join is None:
        raise ConfigError(
            "join",
            "NODE_MODE=slave joins a ring and needs its seed: set CHORD_JOIN=<seed host>:<port>",
        )
    return settings


def load_settings(
    cli_overrides: Mapping[str, object],
    config_file: str | None,
    environ: Mapping[str, str],
) -> Settings:
    """Merge flags > environment > file > defaults, coerce, validate.

    `cli_overrides` maps setting names to values (strings or typed); a None value means
    "not given". `config_file` falls back to $CHORD_CONFIG.
    """
    raw: dict[str, tuple[object, str]] = {}  # setting -> (raw value, source)
    path = config_file or environ.get(CONFIG_ENV) or None
    if path is not None:
        raw.update(_read_file(path))
    for name in FIELD_NAMES:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            raw[name] = (environ[env_name], env_name)
    for name, value in cli_overrides.items():
        if name not in FIELD_NAMES:
            raise ConfigError(name, "no such setting")
        if value is not None:
            raw[name] = (value, "--" + name.replace("_", "-"))

    values = {name: coerce(name, value, source) for name, (value, source) in raw.items()}
    sources = {name: source for name, (_, source) in raw.items()}
    return validate(Settings(**values), sources)  # type: ignore[arg-type]
