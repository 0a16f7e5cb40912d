"""Bearer tokens: an optional API token for writes, an admin token for /shutdown.

Reads never need a token. When an API token is configured, uploads and deletes need it
(or the admin token); /shutdown always needs the admin token, which a peer generates
into its data directory when none is configured, so a fresh peer is never open to a
remote shutdown.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from services.rest.errors import ApiError

ADMIN_TOKEN_FILE = "admin_token"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chord"'}


class Need(Enum):
    WRITE = "write"  # upload, delete
    ADMIN = "admin"  # shutdown


@dataclass(frozen=True)
class Tokens:
    api: str | None  # None: writes are open
    admin: str


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _same(given: str, expected: str | None) -> bool:
    # compare_digest on bytes: it refuses non-ASCII str, and a header may hold anything.
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def authorize(tokens: Tokens, header: str | None, need: Need) -> None:
    """Raise 401 (missing or unknown token) or 403 (valid but not enough); else return."""
    if need is Need.WRITE and tokens.api is None:
        return
    given = bearer(header)
    if given is None:
        raise ApiError(401, "this request needs 'Authorization: Bearer <token>'", headers=CHALLENGE)
    if _same(given, tokens.admin):
        return
    if _same(given, tokens.api):
        if need is Need.WRITE:
            return
        raise ApiError(403, "the API token cannot do this; it needs the admin token")
    raise ApiError(401, "the token is not valid for this peer", headers=CHALLENGE)


def load_or_create_admin_token(data_dir: Path) -> tuple[str, Path]:
    """The admin token kept in ``<data_dir>/admin_token`` (created with mode 0600 on
    first use, reused across restarts so scripts keep working) and that file's path."""
    path = data_dir / ADMIN_TOKEN_FILE
    try:
        # O_EXCL: never overwrite a token a concurrent start (or the user) just wrote.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)  # a secret readable by others is no secret
            return token, path
        path.unlink()  # empty (a crash between create and write): make a new one
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, path
