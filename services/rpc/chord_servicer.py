"""Thin gRPC servicer: convert messages, call the node's handler, map errors.

Handlers never make an outgoing call (see chord.node), so a server thread is
only ever busy for the microseconds a local table read takes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import grpc

from chord.lookup import MAX_EXCLUDE
from chord.node import ChordNode
from chord.node_ref import NodeRef
from chord.refusals import Refusal
from chord.transport import NotReady, Refused
from proto import chord_pb2 as pb
from proto import chord_pb2_grpc as pb_grpc
from services.common.log_limits import LogLimiter, caller_ip
from services.rpc.convert import BadReference, key_from_text, ref_from_pb, ref_to_pb, refs_to_pb
from services.rpc.refusals import abort_refused

T = TypeVar("T")
log = logging.getLogger("chord.rpc")
_logs = LogLimiter()  # refusals logged once per caller IP and minute
# Verifies a joiner's or notifier's advertised address before it is admitted; raises
# Refused or NotReady (services.rpc.admission.AddressCheck).
Admission = Callable[[NodeRef], None]


class ChordServicer(pb_grpc.ChordServicer):
    def __init__(self, node: ChordNode, admission: Admission | None = None) -> None:
        self.node = node
        self.ring = node.ring
        self.admission = admission

    def _caller(self, request: pb.StateRequest) -> NodeRef | None:
        """The member a GetState names as its asker; None if absent or not a valid
        reference (the state is answered either way: it is public to members)."""
        if not request.HasField("caller"):
            return None
        try:
            return ref_from_pb(self.ring, request.caller)
        except BadReference:
            return None

    def _guarded(self, context: grpc.ServicerContext, call: Callable[[], T]) -> T:
        """Run a handler; whatever the caller sent, answer with a status, never crash."""
        try:
            return call()
        except NotReady as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Refused as exc:
            if _logs.allow(caller_ip(context.peer())):  # a flood of bad joins: one line
                log.warning("refused: %s", exc.detail)
            # The exact reason travels beside the status code, which several share.
            abort_refused(context, exc.code, exc.detail)
        except BadReference as exc:  # a peer reference that does not check out
            abort_refused(context, Refusal.INVALID_IDENTITY, str(exc))
        except ValueError as exc:  # any other malformed field (a key, too many IDs)
            abort_refused(context, Refusal.INVALID_REQUEST, str(exc))
        raise AssertionError("unreachable: context.abort raises")

    def FindSuccessorStep(
        self, request: pb.StepRequest, context: grpc.ServicerContext
    ) -> pb.StepReply:
        def step() -> pb.StepReply:
            if len(request.exclude) > MAX_EXCLUDE:
                raise ValueError(
                    f"at most {MAX_EXCLUDE} excluded peers, got {len(request.exclude)}"
                )
            exclude = frozenset(key_from_text(ident) for ident in request.exclude)
            answer = self.node.handle_step(key_from_text(request.key), exclude)
            reply = pb.StepReply(
                done=answer.done,
                nodes=refs_to_pb(answer.nodes),
                owners=refs_to_pb(answer.owners),
                hints=refs_to_pb(answer.hints),
            )
            if answer.predecessor is not None:
                reply.predecessor.CopyFrom(ref_to_pb(answer.predecessor))
            return reply

        return self._guarded(context, step)

    def GetState(self, request: pb.StateRequest, context: grpc.ServicerContext) -> pb.StateReply:
        def state() -> pb.StateReply:
            peer = self.node.handle_state(self._caller(request))
            reply = pb.StateReply(
                node=ref_to_pb(peer.node),
                successors=refs_to_pb(peer.successors),
                joined=True,
                bits=self.ring.bits,
            )
            if peer.predecessor is not None:
                reply.predecessor.CopyFrom(ref_to_pb(peer.predecessor))
            return reply

        return self._guarded(context, state)

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.NodeList:
        def join() -> pb.NodeList:
            joiner = ref_from_pb(self.ring, request.joiner)
            admitted = self.node.handle_join(joiner, request.bits)  # cheap checks first
            if self.admission is not None:
                # Outside the node's guard; a health probe, never a Chord RPC back.
                self.admission(joiner)
            log.info("admitting %s", joiner.describe(self.ring))
            return pb.NodeList(nodes=refs_to_pb(admitted))

        return self._guarded(context, join)

    def Notify(self, request: pb.NotifyRequest, context: grpc.ServicerContext) -> pb.Empty:
        def notify() -> pb.Empty:
            node = ref_from_pb(self.ring, request.node)
            if self.admission is not None and node != self.node.me:
                self.admission(node)  # a notifier becomes predecessor: it must answer
            self.node.handle_notify(node)
            return pb.Empty()

        return self._guarded(context, notify)

    def Ping(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.NodeRef:
        return self._guarded(context, lambda: ref_to_pb(self.node.handle_ping()))

    def GetMembers(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.MemberList:
        def members() -> pb.MemberList:
            return pb.MemberList(
                members=[
                    pb.Member(node=ref_to_pb(peer), age=age)
                    for peer, age in self.node.handle_members()
                ]
            )

        return self._guarded(context, members)

    def Leave(self, request: pb.LeaveRequest, context: grpc.ServicerContext) -> pb.Empty:
        def leave() -> pb.Empty:
            leaving = ref_from_pb(self.ring, request.leaving)
            predecessor = (
                ref_from_pb(self.ring, request.predecessor)
                if request.HasField("predecessor")
                else None
            )
            successors = tuple(ref_from_pb(self.ring, s) for s in request.successors)
            self.node.handle_leave(leaving, predecessor, successors)
            log.info("%s is leaving the ring", leaving.describe(self.ring))
            return pb.Empty()

        return self._guarded(context, leave)
