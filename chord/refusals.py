"""Why a peer said no: one code per reason, the same on both ends of the wire.

A refusal is final for the request that met it (retrying the same request will not
help), except ``SLOW_ADDRESS``, which says the joiner's address answered too slowly
and is worth another try. The real transport carries the code beside the gRPC status
(services.rpc.refusals); the simulator passes the exception itself.
"""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    """A refusal's machine-readable reason (its value is what travels on the wire)."""

    # The node's own checks (chord.node).
    INVALID_IDENTITY = "invalid-identity"  # the ID is not SHA-1 of the advertised address
    ID_COLLISION = "id-collision"  # another peer already has this ID
    RING_MISMATCH = "ring-mismatch"  # the ring uses another number of identifier bits
    # Admission (services.rpc.admission): the advertised address must answer.
    UNREACHABLE_ADDRESS = "unreachable-address"  # nothing listens there: final
    SLOW_ADDRESS = "slow-address"  # no answer in time: worth a retry
    # Security (services.rpc.security) and malformed calls.
    UNAUTHENTICATED = "unauthenticated"  # no ring secret, or the wrong one
    PERMISSION_DENIED = "permission-denied"  # an older peer's admission refusal, no code
    INVALID_REQUEST = "invalid-request"  # a malformed request (a bad key, too many IDs)
