"""The metadata of one stored file version, and validation of caller-supplied fields."""

from __future__ import annotations

from dataclasses import dataclass

from chord.ids import MAX_BITS, to_hex
from chord.replication.versions import Role as Role

CHUNK_SIZE = 1 << 20  # logical chunk for hashing / ranged, parallel transfer
MAX_NAME_BYTES = 255
PRIMARY = Role.PRIMARY
REPLICA = Role.REPLICA
ROLES = frozenset(Role)
KEY_LIMIT = 1 << MAX_BITS


@dataclass(frozen=True)
class FileRecord:
    """One version of one file as held by this peer (``deleted``: a tombstone)."""

    name: str  # user-visible; metadata only, never turned into a filesystem path
    key: int  # ring key, computed by the caller (SHA-1 of the name)
    version: int
    size: int
    sha256: str  # hex of the whole content; "" for a tombstone (it has no content)
    chunk_size: int
    chunk_hashes: tuple[str, ...]
    role: Role  # stored as its value ("primary", "replica")
    created: float  # when this version was first stored here
    updated: float  # last metadata change here (role, damage, repair)
    deleted: bool
    damaged: bool
    # Copies the ring keeps of this version (its holders: the owner and the next
    # replicas - 1 peers), chosen by the writer. 0: not recorded (stored before per-file
    # counts existed), which means the ring's default.
    replicas: int = 0

    @property
    def key_hex(self) -> str:
        return to_hex(self.key)

    def chunk_span(self, index: int) -> tuple[int, int]:
        """``(offset, length)`` of chunk ``index`` inside the content."""
        start = index * self.chunk_size
        return start, min(self.chunk_size, self.size - start)


def check_name(name: str) -> str:
    # Names travel over gRPC/REST and land in sqlite; bound them and keep NUL out so they can
    # never be confused with C strings, and reject lone surrogates that cannot be UTF-8.
    if not isinstance(name, str) or not name:
        raise ValueError("file name must be a non-empty string")
    if "\x00" in name:
        raise ValueError("file name must not contain NUL")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("file name is not valid Unicode") from exc
    if len(encoded) > MAX_NAME_BYTES:
        raise ValueError(f"file name is {len(encoded)} UTF-8 bytes, limit {MAX_NAME_BYTES}")
    return name


def check_key(key: int) -> int:
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < KEY_LIMIT:
        raise ValueError(f"ring key must be an int in [0, 2**{MAX_BITS})")
    return key


def check_version(version: int) -> int:
    # sqlite integers are signed 64-bit.
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 1 << 63:
        raise ValueError("version must be an int in [1, 2**63)")
    return version


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(r.value for r in Role)}, got {role!r}")
    return Role(role)


MAX_REPLICAS = 1 << 16  # far above any successor list; only bounds what a caller can send


def check_replicas(replicas: int) -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ValueError("replicas must be an int")
    if not 0 <= replicas < MAX_REPLICAS:
        raise ValueError(f"replicas must be in [0, {MAX_REPLICAS}) (0: the ring's default)")
    return replicas


def check_sha256(text: str) -> str:
    if len(text) != 64 or not set(text) <= set("0123456789abcdef"):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return text
