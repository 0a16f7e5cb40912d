"""The digest two holders compare before listing a range: equal exactly when they hold
the same versions of the same files (damage included, so a corrupted copy makes them
differ and anti-entropy repairs it; role left out, since a primary and its replicas
holding the same versions must agree)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from chord.ids import to_hex
from chord.replication.versions import Version

DOMAIN = b"chord-storage-digest/1\n"


def range_digest(versions: Iterable[Version]) -> str:
    """Independent of the order given: entries sorted by (key, name bytes), each
    length-prefixed so that no name can forge a boundary."""
    h = hashlib.sha256(DOMAIN)
    for v in sorted(versions, key=lambda v: (v.key, v.name.encode())):
        name = v.name.encode()
        fields = (
            f"{to_hex(v.key)} {v.version} {v.sha256 or '-'} {int(v.deleted)} {int(v.damaged)}"
            f" {len(name)}:"
        )
        h.update(fields.encode() + name + b"\n")
    return h.hexdigest()
