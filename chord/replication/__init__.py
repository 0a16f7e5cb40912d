"""The replication core: the rules that keep k copies of every file, pure and typed.

What it decides (and nothing else in the code base decides it):

* **versions** (``versions``): newest wins, an intact copy before a damaged one at the
  same version; which copy is behind (to be sent) and which is newer (to be pulled);
  which version a holder may still accept (versions only grow; the same version again
  only with the same bytes; never after its tombstone); the two roles of a copy.
* **writes** (``writes``): the version a write or delete stores, its number of copies,
  the write quorum, and the commit-or-abort decision from the holders' answers (one
  refusal aborts everywhere; fewer staged than the quorum aborts).
* **placement** (``placement``): a file's holders from a lookup's answer, and when that
  answer is too stale to drop a copy on.
* **repair** (``keeper``): per maintenance round, anti-entropy of the primary range
  with each successor that must hold part of it (digest, then list and reconcile file
  by file), migration of copies held outside it after joins and leaves (hand off to
  every holder, then drop), hand-off before a graceful leave, and health (copies of
  each primary file's newest version).

What the adapters do: move bytes and answer calls. ``FileTransport`` (stat, digest,
list a range, push, pull, drop older copies) and ``LocalStore`` (this peer's copies)
are protocols, as ``chord.transport.Transport`` is for the ring: services/files
implements them over the Files gRPC service and the storage engine (and streams the
two-phase write, deciding with ``writes.decide``); chord/sim/files implements them in
memory, so the simulator runs these same rules under joins, crashes and partitions.
The core imports no grpc, threads, clock, randomness or I/O, and keeps no lock: its
caller runs one round at a time.

Invariants it guarantees, given at most k - 1 of a file's holders failing before
repair has run, and writes acknowledged by the write quorum:

* an acknowledged version is never dropped from a peer before every holder of it
  has that version or a newer one (migration checks with stat, pushing first);
* a copy is only ever replaced by a newer version (pulls and pushes follow
  ``should_pull``/``should_send``; stores follow ``store_refusal``), so a tombstone,
  being newer, is never overwritten by the bytes it deleted: no resurrection;
* once failures stop, every file ends on exactly its k holders: missing or older
  copies are pushed, copies beyond a file's count are dropped, misplaced copies are
  handed off and dropped.

Not ordered by these rules: two writes of the same name accepted on both sides of a
network partition (version numbers, not vector clocks): the higher version wins when
the sides meet again, and at the same version both copies stay (the digests differ
until one is overwritten).
"""

from chord.replication.keeper import Event, Health, Keeper, Round
from chord.replication.placement import answer_predates, holders_found
from chord.replication.transport import FileTransport, LocalStore, TransferFailed
from chord.replication.versions import (
    Role,
    Version,
    current,
    delete_refusal,
    newest,
    should_pull,
    should_send,
    store_refusal,
)
from chord.replication.writes import (
    Decision,
    DeletePlan,
    Refusal,
    WritePlan,
    decide,
    plan_delete,
    plan_write,
    write_quorum,
)

__all__ = [
    "Decision",
    "DeletePlan",
    "Event",
    "FileTransport",
    "Health",
    "Keeper",
    "LocalStore",
    "Refusal",
    "Role",
    "Round",
    "TransferFailed",
    "Version",
    "WritePlan",
    "answer_predates",
    "current",
    "decide",
    "delete_refusal",
    "holders_found",
    "newest",
    "plan_delete",
    "plan_write",
    "should_pull",
    "should_send",
    "store_refusal",
    "write_quorum",
]
