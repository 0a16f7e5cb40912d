"""Refusals on the wire: a :class:`~chord.refusals.Refusal` travels beside the gRPC
status, both ways.

The status code alone cannot say why: admission's "unreachable-address" and
"slow-address" share PERMISSION_DENIED, a forged identity and a malformed key share
INVALID_ARGUMENT. So the refusing side sets the exact code in the trailing metadata
key ``chord-refusal`` as well as the status code (which older peers and generic gRPC
clients understand), and the calling side reads the code back into
:class:`~chord.transport.Refused`. A reply without the key (an older peer, or a
refusal from outside the servicer) or with a code this version does not know (a newer
peer) falls back to what its status code has always meant here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from chord.refusals import Refusal

REFUSAL_METADATA = "chord-refusal"  # trailing metadata key: the refusal's exact code

# The status code each refusal is sent with: codes that generic clients read correctly.
STATUS_OF: dict[Refusal, grpc.StatusCode] = {
    Refusal.INVALID_IDENTITY: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.ID_COLLISION: grpc.StatusCode.ALREADY_EXISTS,
    Refusal.RING_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Refusal.UNREACHABLE_ADDRESS: grpc.StatusCode.PERMISSION_DENIED,
    Refusal.SLOW_ADDRESS: grpc.StatusCode.PERMISSION_DENIED,
    Refusal.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Refusal.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
}

# Status codes that mean "the peer said no" (every other one means "no useful answer":
# PeerUnreachable), and the refusal each stands for when no code came with it.
REFUSAL_OF_STATUS: dict[grpc.StatusCode, Refusal] = {
    grpc.StatusCode.INVALID_ARGUMENT: Refusal.INVALID_IDENTITY,
    grpc.StatusCode.ALREADY_EXISTS: Refusal.ID_COLLISION,
    grpc.StatusCode.FAILED_PRECONDITION: Refusal.RING_MISMATCH,
    grpc.StatusCode.PERMISSION_DENIED: Refusal.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: Refusal.UNAUTHENTICATED,
}


def refusal_metadata(refusal: Refusal) -> tuple[tuple[str, str]]:
    """The trailing metadata that carries ``refusal`` (set it before aborting)."""
    return ((REFUSAL_METADATA, refusal.value),)


def abort_refused(context: grpc.ServicerContext, refusal: Refusal, detail: str) -> None:
    """End the call as refused: the code in the trailing metadata, its status code and
    ``detail`` in the status. Raises, as ``context.abort`` does."""
    context.set_trailing_metadata(refusal_metadata(refusal))
    context.abort(STATUS_OF[refusal], detail)


def refusal_from(status: grpc.StatusCode, trailing: Iterable[Any] | None) -> Refusal | None:
    """The refusal a reply with ``status`` and ``trailing`` metadata carries: the code
    the peer sent if this version knows it, else the one its status code stands for;
    None if the status is no refusal (the peer did not answer usefully)."""
    fallback = REFUSAL_OF_STATUS.get(status)
    if fallback is None:
        return None
    for key, value in trailing or ():
        if key == REFUSAL_METADATA:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            try:
                return Refusal(text)
            except ValueError:
                break  # a code from a newer peer: its status code still says enough
    return fallback


def refusal_of_error(exc: grpc.RpcError) -> Refusal | None:
    """:func:`refusal_from` for a failed call (None if it is no refusal)."""
    if not isinstance(exc, grpc.Call):
        return None
    return refusal_from(exc.code(), exc.trailing_metadata())
