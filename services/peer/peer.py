"""Wires one peer: gRPC server, maintenance loop and REST API around a ChordNode.

peer = Peer(settings)   # binds both ports (fails fast if either is taken)
peer.start()            # creates a ring or joins one (bounded by join_timeout)
...
peer.stop()             # graceful leave, then both servers stop

Threads, and who owns what: the owner of the Peer (run_node's main thread) builds,
starts and stops it (``_stopped``, ``_resources``); gRPC threads run the node's
handlers and the Files servicer; the REST server has its event loop and worker pools;
the maintenance thread runs the protocol steps and owns ``_last_neighbours`` (news
from other threads reaches it through ``maintenance.post``); each background step
owns its own state (the merge step: the merger, ``_next_merge_check``, ``_merge_gap``,
``_merge_changes``). The node guards its own state with a plain Lock (chord.node,
"Threads"); every other shared object has a lock of its own, named where its fields
are declared.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from chord.ids import Ring
from chord.membership import DEFAULT_TTL as MEMBERSHIP_TTL
from chord.merge import RingMerger
from chord.node import ChordNode, JoinFailed, NodeHooks, NodeState
from chord.node_ref import NodeRef
from chord.refusals import Refusal
from chord.transport import PeerUnreachable, Refused
from config.settings import API_PORT_OFFSET, ConfigError, Settings
from devtools.fault_injection import injector_for
from proto.files_pb2 import DESCRIPTOR as FILES_DESCRIPTOR
from proto.files_pb2_grpc import add_FilesServicer_to_server
from services.dav.options import DavOptions
from services.files.client import FileClient
from services.files.replication import Replicator
from services.files.servicer import FilesServicer
from services.files.small_read import LocalReads
from services.peer.maintenance import Intervals, MaintenanceLoop
from services.rest import ApiContext, PeerServices, create_app
from services.rest.auth import Tokens, load_or_create_admin_token
from services.rest.health import inline_health
from services.rest.limits import ClientLimits
from services.rest.metrics import PeerMetrics
from services.rest.spool import empty_dir
from services.rpc.admission import AddressCheck
from services.rpc.security import RingSecurity, SecurityError
from services.rpc.server import BindError, CallCounter, GrpcServer
from services.rpc.transport import ChannelPool, GrpcTransport
from services.storage import StorageEngine, StorageError
from services.web.api_server import ApiServer, HttpBindError
from services.web.limits import HttpLimits

log = logging.getLogger("chord.peer")
MIB = 1 << 20
CHANNEL_IDLE_SECONDS = 1200.0  # longer than any transfer (transfer_timeout is 600 s)
FILES_SERVICE = FILES_DESCRIPTOR.services_by_name["Files"].full_name
# gRPC calls that move file bytes: counted as active transfers while they run.
TRANSFER_RPCS = frozenset({"Files/Write", "Files/Store", "Files/Fetch"})


class StartupError(RuntimeError):
    """The peer cannot start: a port is taken, the seed is unreachable, or it was refused."""


def _is_tls_failure(reason: str) -> bool:
    """gRPC's words for a TLS handshake that failed (no or a foreign certificate, or
    TLS spoken to a plaintext port or the reverse): retrying will not fix it. Not
    "handshake" alone: a TCP connect that times out on a loaded machine reads "tcp
    handshaker shutdown", and that one is worth retrying (a 128-peer start failed so)."""
    text = reason.lower().replace("tcp handshaker", "")
    return any(word in text for word in ("ssl", "tls", "certificate", "handshake"))


def _is_http1(reason: str) -> bool:
    """gRPC's words for a peer address where an HTTP/1.x server (say, a REST port)
    answers: retrying that until the join deadline would only delay the real advice."""
    return "http1.x server" in reason or "Failed parsing HTTP/2" in reason


def _join_failure(seed: str, exc: Refused | PeerUnreachable | JoinFailed) -> str | None:
    """The start-up error for a join attempt that retrying cannot fix, with the advice
    that fits; None when another attempt may succeed (a seed still starting, a ring
    still settling)."""
    if isinstance(exc, Refused):
        if exc.code is Refusal.SLOW_ADDRESS:
            return None  # our address answers slowly (a loaded machine): try again
        if exc.code is Refusal.UNAUTHENTICATED:
            return (
                f"the ring at {seed} requires a secret this peer does not have: "
                "start it with --ring-secret SECRET (or CHORD_RING_SECRET, or "
                f"--ring-secret-file FILE) set to the ring's secret ({exc.detail})"
            )
        return _refusal_message(exc)
    if isinstance(exc, PeerUnreachable) and _is_tls_failure(exc.reason):
        return (
            f"the TLS handshake with {seed} failed: every peer needs a "
            "certificate from the ring CA (--tls-cert/--tls-key/--tls-ca) that "
            f"names the address it advertises ({exc.reason})"
        )
    if isinstance(exc, PeerUnreachable) and _is_http1(exc.reason):
        return (
            f"{seed} is not a Chord peer: it answers HTTP/1.x, not gRPC. Is it a "
            "REST port? A peer's gRPC port is its REST port minus "
            f"{API_PORT_OFFSET} unless set otherwise."
        )
    return None


def _refusal_message(exc: Refused) -> str:
    """The start-up error for a refusal: its code (the exact reason, as the refusing
    peer named it) and its detail."""
    return f"the ring refused this peer ({exc.code}): {exc.detail}"


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class Peer:
    def __init__(self, settings: Settings) -> None:
        """Build every part and bind both ports, in small steps. Each step that takes a
        resource (channels, the storage directory, a port) registers its release on
        one ExitStack: if any later step fails, every resource taken so far is
        released (in reverse order) before StartupError leaves here; on success the
        stack is kept, and stop() closes it."""
        self.settings = settings
        self.ring = Ring(settings.bits)
        self.me = NodeRef.for_address(self.ring, settings.address, settings.api_address)
        self._stopped = False  # the owner's thread (see the module doc)
        with ExitStack() as resources:
            self._connect(resources)
            self._build_node()
            uploads, admin_token = self._prepare_data_dir()
            self._open_storage(resources)
            self._bind_grpc(resources)
            self._bind_rest(resources, uploads, admin_token)
            self._resources = resources.pop_all()  # ours now: released by stop()

    def _connect(self, resources: ExitStack) -> None:
        """Security, fault injection (testing only) and the channels to other peers."""
        settings = self.settings
        try:
            self.security = RingSecurity.from_settings(settings)
        except (SecurityError, ConfigError) as exc:
            raise StartupError(str(exc)) from None
        # None unless configured, and then no interceptor.
        self.faults = injector_for(
            settings.address, settings.fault_rules, settings.fault_rules_file
        )
        pool = ChannelPool(
            self.security, self.faults.wrap_channel if self.faults is not None else None
        )
        self.transport = GrpcTransport(self.ring, timeout=settings.rpc_timeout, pool=pool)
        resources.callback(self.transport.close)

    def _build_node(self) -> None:
        """The Chord node, its maintenance loop and the ring merger (no resources: the
        maintenance threads start in start())."""
        settings = self.settings
        self.node = ChordNode(
            self.me,
            self.ring,
            self.transport,
            MonotonicClock(),
            successors=settings.successors,
            # Not re-entrant: no path takes it twice (chord.node, "Threads").
            guard=threading.Lock(),
            hooks=NodeHooks(on_neighbours_changed=self._neighbours_changed),
            one_hop=settings.one_hop,
            # Several hundred gossip rounds without news of a peer before it is dropped.
            membership_ttl=max(MEMBERSHIP_TTL, 240 * settings.stabilize_interval),
        )
        self.maintenance = MaintenanceLoop(
            self.node,
            Intervals(
                stabilize=settings.stabilize_interval,
                fix_fingers=settings.fix_fingers_interval,
                check_predecessor=settings.check_predecessor_interval,
                backoff=settings.maintenance_backoff,
            ),
            after_round=self._forget_unused_channels,
            # Each on its own thread, so none ever holds up stabilize: probing peers lost
            # in a partition waits out their timeouts, and a repair may stream a big file
            # to a peer that stops answering (bounded only by transfer_timeout). Pull
            # gossip for the one-hop table (a no-op when it is off) backs off while the
            # tables it pulls bring nothing new.
            background_steps=[
                ("merge", min(settings.stabilize_interval, settings.merge_interval), self._merge),
                ("replicate", settings.repair_interval, self._replicate),
                ("members", settings.stabilize_interval, self.node.exchange_members),
            ],
        )
        # Handlers that find work for maintenance (a joiner, a challenger) speed it up.
        self.node.hooks.on_change = self.maintenance.speed_up
        self.merger = RingMerger(self.node)
        # Owned by the merge step's thread (maintenance-merge).
        self._next_merge_check = time.monotonic() + settings.merge_interval
        self._merge_gap = settings.merge_interval  # grows while checks find nothing
        self._merge_changes = -1  # node.changes when the gap was last reset
        # Owned by the maintenance thread (news arrives through maintenance.post).
        self._last_neighbours: tuple[NodeRef | None, NodeRef] | None = None

    def _prepare_data_dir(self) -> tuple[Path, str]:
        """The data directory, the admin token kept in it (unless one is configured)
        and an empty upload spool; returns the spool and the admin token."""
        data_dir = Path(self.settings.resolved_data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create data directory {data_dir}: {exc}") from None
        self.admin_token_path: Path | None = None
        admin_token = self.settings.admin_token
        if admin_token is None:
            try:
                admin_token, self.admin_token_path = load_or_create_admin_token(data_dir)
            except OSError as exc:
                raise StartupError(f"cannot keep the admin token in the data dir: {exc}") from None
        # Uploads whose fields follow the file part wait here; a crash may have left some.
        uploads = data_dir / "uploads"
        try:
            empty_dir(uploads)
        except OSError as exc:
            raise StartupError(f"cannot prepare the upload spool {uploads}: {exc}") from None
        return uploads, admin_token

    def _open_storage(self, resources: ExitStack) -> None:
        """The storage engine (it locks its directory) and the file layers above it."""
        settings = self.settings
        self.stop_requested = threading.Event()  # set by POST /shutdown; run_node waits on it
        self.metrics = PeerMetrics()
        quota = settings.quota_mib * MIB if settings.quota_mib is not None else None
        try:
            self.storage = StorageEngine(Path(settings.resolved_data_dir) / "files", quota)
        except (OSError, StorageError) as exc:
            raise StartupError(f"cannot open file storage: {exc}") from None
        resources.callback(self.storage.close)
        self.files = FileClient(
            self.ring,
            self.metrics.counted(lambda key: self.node.lookup(key, confirm_owner=True)),
            self.transport.pool,
            replicas=settings.replicas,
            write_quorum=settings.write_quorum,
            rpc_timeout=settings.rpc_timeout,
            local=LocalReads(self.node, self.storage),
        )
        self.replicator = Replicator(self.node, self.storage, self.files, settings.replicas)
        self.node.hooks.before_leave = self.replicator.hand_off

    def _bind_grpc(self, resources: ExitStack) -> None:
        """The gRPC server (Chord and Files), bound to its port; not yet started."""
        settings = self.settings
        files_service = FilesServicer(
            self.storage,
            self.ring,
            self.replicator.health_rows,
            settings.replicas,
            owns=self.node.owns,
        )
        try:
            self.grpc = GrpcServer(
                self.node,
                settings.bind_address,
                settings.max_workers,
                settings.max_concurrent_rpcs,
                services=[
                    (
                        FILES_SERVICE,
                        lambda server: add_FilesServicer_to_server(files_service, server),
                    )
                ],
                interceptors=[
                    CallCounter(self.metrics.rpc_done, self.metrics.transfer, TRANSFER_RPCS),
                    *([self.faults.server_interceptor()] if self.faults is not None else []),
                ],
                security=self.security,
                # Well inside the joiner's own deadline for its Join call.
                admission=AddressCheck(
                    self.me, self.transport.pool, timeout=settings.rpc_timeout * 0.4
                ),
                transfer_workers=settings.transfer_workers,
                stream_idle_timeout=settings.stream_idle_timeout,
            )
        except BindError as exc:
            raise StartupError(str(exc)) from None
        resources.callback(self.grpc.stop, grace=0.5)

    def _bind_rest(self, resources: ExitStack, uploads: Path, admin_token: str) -> None:
        """The REST API (and WebDAV, if on), bound to its port; not yet started."""
        settings = self.settings
        services = PeerServices(
            files=self.files,
            storage=self.storage,
            replicator=self.replicator,
            transport=self.transport,
            tokens=Tokens(api=settings.api_token, admin=admin_token),
            request_shutdown=self.stop_requested.set,
            replicas=settings.replicas,
            successors=settings.successors,
            max_upload_bytes=settings.max_upload_mib * MIB,
            limits=ClientLimits(
                max_transfers=settings.max_transfers_per_client,
                per_minute=settings.rate_limit_per_minute,
                max_total=settings.http_transfer_workers,
            ),
            spool_dir=uploads,
            webdav=DavOptions(
                properties=Path(settings.resolved_data_dir) / "dav-properties",
                store_macos_metadata=settings.webdav_macos_files == "store",
            )
            if settings.webdav
            else None,
        )
        context = ApiContext(
            self.node,
            self.metrics.counted(self.node.lookup),
            metrics=self.metrics,
            peer=services,
        )
        try:
            self.api = ApiServer(
                create_app(context),
                settings.host,
                settings.resolved_api_port,
                limits=HttpLimits(
                    connections=settings.http_connections,
                    per_ip=settings.http_connections_per_ip,
                    idle_timeout=settings.http_idle_timeout,
                    header_timeout=settings.http_header_timeout,
                    body_timeout=settings.http_body_timeout,
                    send_timeout=settings.http_send_timeout,
                    workers=settings.http_workers,
                    transfer_workers=settings.http_transfer_workers,
                    max_body=(settings.max_upload_mib + 1) * MIB,  # + multipart framing
                ),
                inline=inline_health(self.node),
            )
        except HttpBindError as exc:
            raise StartupError(str(exc)) from None
        resources.callback(self.api.stop)

    @property
    def short_id(self) -> str:
        return self.ring.short(self.me.id)

    def start(self) -> None:
        self.grpc.start()
        self.api.start()
        try:
            if self.settings.join is None:
                self.node.create()
                log.info("created a new ring as %s (m=%d)", self.me.address, self.ring.bits)
            else:
                self._join(self.settings.join)
        except StartupError:
            self.stop(graceful=False)
            raise
        self.grpc.set_serving(True)
        self.maintenance.start()
        log.info(
            "gRPC on %s, REST on http://%s", self.settings.bind_address, self.settings.api_bind
        )
        if self.admin_token_path is not None:
            log.info("admin token for POST /shutdown is in %s", self.admin_token_path)

    def _join(self, seed: str) -> None:
        """Retry until the join deadline: a seed that is still starting, or a ring that
        is still settling, deserves a few more tries; a refusal does not."""
        deadline = time.monotonic() + self.settings.join_timeout
        delay = 0.1
        while True:
            try:
                self._check_ring_bits(seed)
                self.node.join(seed)
                log.info(
                    "joined the ring through %s; successor %s",
                    seed,
                    self.node.successor.describe(self.ring),
                )
                return
            except (Refused, PeerUnreachable, JoinFailed) as exc:
                final = _join_failure(seed, exc)
                if final is not None:
                    raise StartupError(final) from None
                if time.monotonic() + delay > deadline:
                    if isinstance(exc, Refused):
                        raise StartupError(_refusal_message(exc)) from None
                    hint = ""
                    if "Socket closed" in str(exc) and not self.settings.tls_enabled:
                        hint = " (a peer that closes the connection at once may require TLS)"
                    raise StartupError(
                        f"could not join the ring through {seed} within "
                        f"{self.settings.join_timeout:g}s: {exc}{hint}"
                    ) from None
                log.debug("join attempt failed (%s); retrying", exc)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _check_ring_bits(self, seed: str) -> None:
        """Refuse a ring with another m up front. Its references do not check out here
        (an ID is SHA-1 mod 2^m), so joining would otherwise retry on "malformed reply"
        until the deadline without saying why."""
        bits = self.transport.ring_bits(NodeRef.for_address(self.ring, seed))
        if bits and bits != self.ring.bits:
            raise StartupError(
                f"the ring at {seed} uses m={bits} identifier bits but this peer has "
                f"m={self.ring.bits}; start it with --bits {bits}"
            )

    def stop(self, graceful: bool = True) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.maintenance.stop()
        if graceful:
            self.node.leave()
            log.info("left the ring")
        # Both servers, then storage, then the channels (the reverse of construction).
        self._resources.close()

    def _neighbours_changed(self, state: NodeState) -> None:
        """The node's hook, called from any thread (gRPC handlers, maintenance steps):
        the news goes to the maintenance thread, the only one to touch _last_neighbours."""
        self.maintenance.post(lambda: self._note_neighbours(state))

    def _note_neighbours(self, state: NodeState) -> None:
        """On the maintenance thread: log a change of neighbours, and stabilize at once
        rather than at the next tick."""
        neighbours = (state.predecessor, state.successor)
        if neighbours == self._last_neighbours or not state.joined:
            return
        self._last_neighbours = neighbours
        pred = state.predecessor.describe(self.ring) if state.predecessor else "unknown"
        log.info(
            "neighbours: predecessor %s, successor %s", pred, state.successor.describe(self.ring)
        )
        self.maintenance.kick()

    def _replicate(self) -> bool:
        return self.node.joined and self.replicator.run_once()

    def _merge(self) -> bool:
        """Remember the current view often (local and cheap), so that peers seen only
        shortly before a partition are known after it; look across (lookups from
        remembered peers) every merge_interval. One thread does both: the memory is not
        shared between threads. Returns whether it merged (or was refused): the step
        backs off otherwise, and a change of view wakes it."""
        self.merger.observe()
        now = time.monotonic()
        changes = self.node.changes
        if changes != self._merge_changes:  # the view moved: check at full speed again
            self._merge_changes, self._merge_gap = changes, self.settings.merge_interval
            self._next_merge_check = min(self._next_merge_check, now + self._merge_gap)
        if now < self._next_merge_check:
            return False
        report = self.merger.step()
        # Nothing found: the next check comes later, up to maintenance_backoff times the
        # interval (each check costs a few lookups); a healed partition is then noticed
        # within merge_interval x maintenance_backoff, or at once if anything moved.
        if not (report.merged or report.refused is not None):
            ceiling = self.settings.merge_interval * self.settings.maintenance_backoff
            self._merge_gap = min(self._merge_gap * 2, ceiling)
        self._next_merge_check = now + self._merge_gap
        log.debug(
            "merge check asked %s (remembering %d peers)",
            ", ".join(p.address for p in report.asked) or "nobody",
            len(self.merger.memory),
        )
        if report.merged and report.outside is not None and report.merged_through is not None:
            log.log(
                logging.INFO if report.from_successor else logging.WARNING,
                "%s: the ring of %s did not route to this peer; joined it through %s",
                "re-linked" if report.from_successor else "merging rings",
                report.outside.describe(self.ring),
                report.merged_through.describe(self.ring),
            )
        elif report.refused is not None and report.outside is not None:
            log.warning(
                "the ring of %s refused a merge: %s",
                report.outside.describe(self.ring),
                report.refused,
            )
        return report.merged or report.refused is not None

    def _forget_unused_channels(self) -> None:
        state = self.node.state()
        known = {n.address for n in (*state.successors, *state.fingers) if n is not None}
        if state.predecessor is not None:
            known.add(state.predecessor.address)
        if len(self.transport.pool) > 2 * len(known) + 16:
            self.transport.pool.retain(known, idle=CHANNEL_IDLE_SECONDS)
