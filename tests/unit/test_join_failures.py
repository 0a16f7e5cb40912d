"""Which join failures end a start at once (retrying cannot help) and which are retried
within the join deadline."""

from __future__ import annotations

import pytest

from chord.node_ref import NodeRef
from chord.transport import PeerUnreachable
from services.peer.peer import _join_failure

SEED = "127.0.0.1:7000"
PEER = NodeRef(1, SEED)


@pytest.mark.parametrize(
    "reason",
    [
        # a connect that timed out on a loaded machine (128 peers starting on 2 cores)
        "UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: "
        "ipv4:127.0.0.1:39275: tcp handshaker shutdown",
        "UNAVAILABLE: failed to connect to all addresses; last error: UNAVAILABLE: "
        "ipv4:127.0.0.1:39275: Connection refused",
        "DEADLINE_EXCEEDED: Deadline Exceeded",
    ],
)
def test_transient_failures_are_retried(reason: str) -> None:
    assert _join_failure(SEED, PeerUnreachable(PEER, reason)) is None


@pytest.mark.parametrize(
    "reason",
    [
        "UNAVAILABLE: Ssl handshake failed: SSL_ERROR_SSL: error:1000007d:SSL "
        "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED",
        "UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: "
        "ipv4:127.0.0.1:7000: Handshake read failed",
    ],
)
def test_tls_failures_end_the_start_with_advice(reason: str) -> None:
    message = _join_failure(SEED, PeerUnreachable(PEER, reason))
    assert message is not None and "TLS handshake" in message
