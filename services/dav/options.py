"""A peer's WebDAV settings, as the REST app's context carries them, and where the
share is (the HTTP server sends every request below it to the transfer pool)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREFIX = "/dav"  # the share's path on the REST port
ASSETS = "/:dir_browser/"  # the folder pages' stylesheet, script and icons (wsgidav's)


def is_dav_path(path: str) -> bool:
    return path == PREFIX or path.startswith((PREFIX + "/", ASSETS))


@dataclass(frozen=True)
class DavOptions:
    properties: Path | None  # the shelve of dead properties; None: kept in memory
    store_macos_metadata: bool = False  # ._* and .DS_Store: stored, or refused with 403
    listing_ttl: float = 2.0  # seconds a ring listing is reused for PROPFIND
