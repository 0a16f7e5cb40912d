"""Local storage engine of a peer: file versions it holds as primary or replica.

Bytes live in content-addressed blobs (``blobs/<sha[:2]>/<sha256>``), metadata in sqlite
(``index.sqlite3``). Local only: the gRPC file service, replication, migration and repair
call into :class:`StorageEngine`. See engine.py for the locking and crash-safety design.
Imports the standard library (sqlite3 among it) and chord's ``ids``, ``names`` and the
replication core's rules (``chord.replication``: which versions a holder accepts, digests) only.
"""

from .engine import StorageEngine
from .errors import CorruptData, IntegrityError, QuotaExceeded, StaleVersion, StorageError
from .record import CHUNK_SIZE, MAX_NAME_BYTES, PRIMARY, REPLICA, FileRecord
from .writer import BlobWriter

__all__ = [
    "CHUNK_SIZE",
    "MAX_NAME_BYTES",
    "PRIMARY",
    "REPLICA",
    "BlobWriter",
    "CorruptData",
    "FileRecord",
    "IntegrityError",
    "QuotaExceeded",
    "StaleVersion",
    "StorageEngine",
    "StorageError",
]
