"""What the REST handlers work with: the node, and (in a full peer) its file services."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chord.lookup import LookupResult
from chord.node import ChordNode
from services.dav.options import DavOptions
from services.files.client import FileClient
from services.files.replication import Replicator
from services.rest.auth import Tokens
from services.rest.limits import ClientLimits
from services.rest.metrics import PeerMetrics
from services.rpc.transport import GrpcTransport
from services.storage import StorageEngine

MIB = 1 << 20


@dataclass(frozen=True)
class PeerServices:
    """A full peer's parts beyond the ring: files, storage, replication, auth, shutdown.
    The ring routes work without them (the unit tests' simulated nodes have none)."""

    files: FileClient
    storage: StorageEngine
    replicator: Replicator
    transport: GrpcTransport
    tokens: Tokens
    request_shutdown: Callable[[], None]  # the peer leaves and the process exits
    replicas: int  # k
    successors: int  # r: the most copies an upload can ask for
    max_upload_bytes: int = 10240 * MIB
    limits: ClientLimits = field(default_factory=ClientLimits)  # per client IP
    # Uploads whose fields follow the file part are held here (None: the system's temp
    # dir); server.py uses <data dir>/uploads and empties it at start.
    spool_dir: Path | None = None
    webdav: DavOptions | None = None  # the /dav/ share; None: not served


@dataclass(frozen=True)
class ApiContext:
    node: ChordNode
    lookup: Callable[[int], LookupResult]  # counted in the metrics when they exist
    metrics: PeerMetrics = field(default_factory=PeerMetrics)
    peer: PeerServices | None = None
    started: float = field(default_factory=time.monotonic)
