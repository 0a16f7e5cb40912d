"""How peers authenticate each other: a ring secret in gRPC metadata, optional mutual TLS.

* Ring secret: every outgoing peer call carries ``x-chord-ring-secret`` (a client
  interceptor on each ChannelPool channel); the server compares it in constant time
  (``hmac.compare_digest``) before any Chord or Files handler runs, and answers
  UNAUTHENTICATED otherwise. Only ``grpc.health.v1`` stays open, for load balancer and
  Kubernetes probes: it reveals nothing but SERVING / NOT_SERVING. Reflection is *not*
  open: it is a debugging aid for operators who have the secret (grpcurl -H ...), and
  there is no reason to describe the peer's surface to anyone who does not.
* Mutual TLS: with tls_cert/tls_key/tls_ca the server requires a client certificate
  signed by the ring CA, and channels present this peer's certificate and check the
  server's against the same CA. The certificate must name the *advertised* address
  (subjectAltName IP or DNS), since that is the name other peers dial.

The secret is never logged and never echoed: error details name the metadata key only.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from chord.refusals import Refusal
from config.settings import RING_SECRET, RING_SECRET_RULE, ConfigError, Settings
from services.common.log_limits import LogLimiter, caller_ip
from services.rpc.grpc_types import (
    ServerInterceptor,
    StreamStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    UnaryUnaryClientInterceptor,
)
from services.rpc.interceptors import rewrap, run_first
from services.rpc.refusals import abort_refused

log = logging.getLogger("chord.security")

SECRET_METADATA_KEY = "x-chord-ring-secret"
# Services a caller may use without the ring secret (probes only).
OPEN_SERVICES = ("/grpc.health.v1.Health/",)

# gRPC message size, both directions, on the server and on every channel. File bytes
# travel in 1 MiB pieces; the largest other messages are a FileMeta (one 64-hex-char
# SHA-256 per MiB: ~0.7 MiB for a 10 GiB file) and the Health listing of a peer's
# primary files. 4 MiB (gRPC's default receive limit, now explicit and also applied to
# sends) covers files up to ~60 GiB and refuses anything bigger before it is buffered.
MAX_MESSAGE_BYTES = 4 << 20
MESSAGE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class SecurityError(RuntimeError):
    """The security settings cannot be used (unreadable file, bad secret)."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SecurityError(f"cannot read the {what} {path!r}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class TlsFiles:
    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    ca: bytes = field(repr=False)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


@dataclass(frozen=True)
class RingSecurity:
    """What this peer sends and demands. The default (no secret, no TLS) is an open ring."""

    secret: str | None = field(default=None, repr=False)
    tls: TlsFiles | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RingSecurity:
        secret = settings.ring_secret
        if settings.ring_secret_file is not None:
            lines = _read(settings.ring_secret_file, "ring secret file").decode(
                "utf-8", errors="replace"
            )
            secret = lines.strip()
            if not RING_SECRET.fullmatch(secret):
                raise ConfigError(
                    "ring_secret_file",
                    f"the secret in {settings.ring_secret_file!r} {RING_SECRET_RULE}",
                )
        tls = None
        if settings.tls_cert and settings.tls_key and settings.tls_ca:
            tls = TlsFiles(
                cert=_read(settings.tls_cert, "TLS certificate"),
                key=_read(settings.tls_key, "TLS key"),
                ca=_read(settings.tls_ca, "TLS CA certificate"),
            )
        return cls(secret=secret, tls=tls)

    # ------------------------------------------------------------ client side
    def channel(self, address: str, options: list[tuple[str, int]]) -> grpc.Channel:
        """A channel to ``address`` that authenticates this peer as configured."""
        options = [*options, *MESSAGE_OPTIONS]
        if self.tls is not None:
            channel = grpc.secure_channel(address, self.tls.channel_credentials(), options=options)
        else:
            channel = grpc.insecure_channel(address, options=options)
        if self.secret is None:
            return channel
        return grpc.intercept_channel(channel, SecretSender(self.secret))

    # ------------------------------------------------------------ server side
    def add_port(self, server: grpc.Server, bind_address: str) -> int:
        if self.tls is not None:
            return server.add_secure_port(bind_address, self.tls.server_credentials())
        return server.add_insecure_port(bind_address)

    def interceptors(self) -> list[grpc.ServerInterceptor[Any, Any]]:
        return [SecretChecker(self.secret)] if self.secret is not None else []


class _CallDetails(grpc.ClientCallDetails):
    def __init__(
        self, base: grpc.ClientCallDetails, metadata: list[tuple[str, str | bytes]]
    ) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = tuple(metadata)
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class SecretSender(
    UnaryUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    StreamStreamClientInterceptor,
):
    """Adds the ring secret to the metadata of every call on the channel."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "SecretSender(<ring secret>)"

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != SECRET_METADATA_KEY]
        metadata.append((SECRET_METADATA_KEY, self._secret))
        return _CallDetails(details, metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


MISSING = (
    f"this peer requires the ring secret (gRPC metadata '{SECRET_METADATA_KEY}'); "
    "the call carried none"
)
WRONG = f"the ring secret in '{SECRET_METADATA_KEY}' is not this ring's"
_LOG_EVERY = 60.0  # seconds between warnings about one caller


class SecretChecker(ServerInterceptor):
    """Answers UNAUTHENTICATED, before any handler runs, to a call to anything but the
    open services that lacks the ring secret. Constant-time comparison on bytes."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._logs = LogLimiter(_LOG_EVERY)  # per caller IP: no log flood

    def __repr__(self) -> str:
        return "SecretChecker(<ring secret>)"

    def problem(self, metadata: Any) -> str | None:
        """None if the metadata carries the secret, else what is wrong (no value echoed)."""
        given = None
        for key, value in metadata or ():
            if key == SECRET_METADATA_KEY:
                given = value
        if given is None:
            return MISSING
        raw = given if isinstance(given, bytes) else str(given).encode("utf-8", "replace")
        return None if hmac.compare_digest(raw, self._secret) else WRONG

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if details.method.startswith(OPEN_SERVICES):
            return continuation(details)
        problem = self.problem(details.invocation_metadata)
        handler = continuation(details)
        if problem is None or handler is None:
            return handler
        return _refusing(handler, details.method, problem, self._warn)

    def _warn(self, caller: str, method: str, problem: str) -> None:
        if self._logs.allow(caller_ip(caller)):  # the IP: a new port is not a new caller
            log.warning("refused %s from %s: %s", method, caller, problem)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    problem: str,
    warn: Callable[[str, str, str], None],
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` aborting UNAUTHENTICATED before its behaviour could run."""

    def refuse(context: grpc.ServicerContext) -> None:
        warn(context.peer(), method, problem)
        abort_refused(context, Refusal.UNAUTHENTICATED, problem)

    return rewrap(handler, run_first(refuse))
