"""The ring as a wsgidav resource tree: files are ring files, folders are name prefixes.

Every operation goes through FileClient, as the REST API's do: a GET streams verified
chunk ranges from the holders, a PUT streams the request body to the holders while it
arrives (wsgidav hands ``writelines`` the body's blocks; nothing is buffered whole), a
DELETE writes tombstones. COPY and MOVE of a file stream the source from its holders to
the destination's holders through this peer (never through the client); a MOVE deletes
the source only once the copy is acknowledged by its write quorum, so a crash between
the two leaves both names, never neither.
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider, _DAVResource

from chord.names import InvalidName, last_segment, validate_name
from chord.node_ref import NodeRef
from services.dav.listing import Entry, RingListing, TooManyFolders
from services.dav.stream import PIECE, RingReader, as_dav_error, pieces_of
from services.files.client import FileClient, FileInfo, NotFound

MACOS_METADATA = (".DS_Store",)  # plus every name starting with "._" (AppleDouble files)


def ring_name(path: str) -> str:
    """'/a/b.txt' or '/a/b/' -> 'a/b.txt', 'a/b'; '/' -> '' (wsgidav's paths are decoded)."""
    return path.strip("/")


def is_macos_metadata(name: str) -> bool:
    base = last_segment(name)
    return base in MACOS_METADATA or base.startswith("._")


class RingDav(DAVProvider):  # type: ignore[misc]  # wsgidav ships no types
    """Resolves paths below the share to RingFolder / RingFile resources."""

    def __init__(
        self,
        files: FileClient,
        listing: RingListing,
        *,
        max_upload_bytes: int,
        store_macos_metadata: bool = False,
    ) -> None:
        super().__init__()
        self.files, self.listing = files, listing
        self.max_upload_bytes = max_upload_bytes
        self.store_macos_metadata = store_macos_metadata

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        name = ring_name(path)
        if name == "":
            return RingFolder("/", environ, self)
        try:
            validate_name(name)
        except InvalidName:
            return None  # nothing can be stored there: PUT/MKCOL say why (check_new_name)
        if self.listing.file(name) is None and self.listing.is_folder(name):
            return self.folder(name, environ)
        if (
            environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and ring_name(environ.get("PATH_INFO", "")) == name
        ):
            # The file being read: a small one comes whole from its owner in one round
            # trip, as REST's /download_file does (None: take the general path).
            small = self.files.read_small(name)
            if small is not None:
                return self.file(name, environ, small[0], [], small[1])
        try:
            info, having, _ = self.files.stat(name)
        except NotFound:
            self.listing.deleted(name)
            return self.folder(name, environ) if self.listing.is_folder(name) else None
        except Exception as exc:
            raise as_dav_error(exc) from None
        return self.file(name, environ, info, having)

    def folder(self, name: str, environ: dict[str, Any]) -> RingFolder:
        return RingFolder(util.join_uri("/", name) + "/", environ, self)

    def file(
        self,
        name: str,
        environ: dict[str, Any],
        info: FileInfo | None,
        having: list[NodeRef] | None,
        data: bytes | None = None,
    ) -> RingFile:
        return RingFile(util.join_uri("/", name), environ, self, info, having, data)

    def check_new_name(self, name: str) -> None:
        """400 for a name the ring refuses, 403 for macOS metadata (unless stored)."""
        try:
            validate_name(name)
        except InvalidName as exc:
            raise DAVError(HTTP_BAD_REQUEST, str(exc)) from None
        if is_macos_metadata(name) and not self.store_macos_metadata:
            raise DAVError(
                HTTP_FORBIDDEN,
                f"{last_segment(name)!r} is macOS Finder metadata, which this ring does not store "
                "(setting webdav_macos_files: store)",
            )

    def resource_of(self, entry: Entry, environ: dict[str, Any]) -> _DAVResource:
        if entry.info is None:
            return self.folder(entry.path, environ)
        return self.file(entry.path, environ, entry.info, None)

    def store(self, name: str, blocks: Iterable[bytes], size: int | None = None) -> FileInfo:
        """Stream ``blocks`` to ``name``'s holders (a new version if it exists)."""
        self.check_new_name(name)
        try:
            result = self.files.put(
                name, pieces_of(blocks, self.max_upload_bytes), size=size, overwrite=True
            )
        except Exception as exc:  # a DAVError (413 from pieces_of) passes as it is
            raise as_dav_error(exc) from None
        self.listing.stored(result.info)
        return result.info

    def delete_file(self, name: str) -> None:
        try:
            self.files.delete(name)
        except NotFound:
            pass  # already gone: what DELETE wanted
        except Exception as exc:
            raise as_dav_error(exc) from None
        self.listing.deleted(name)


def _dead_properties_follow(resource: _DAVResource, dest_path: str, is_move: bool) -> None:
    """Dead properties (PROPPATCH) go along with a COPY or MOVE."""
    props = resource.provider.prop_manager
    if props is None:
        return
    path = dest_path if not resource.is_collection else dest_path.rstrip("/") + "/"
    dest = quote(resource.provider.share_path + path)
    if is_move:
        props.move_properties(
            resource.get_ref_url(), dest, with_children=False, environ=resource.environ
        )
    else:
        props.copy_properties(resource.get_ref_url(), dest, environ=resource.environ)


class RingFile(DAVNonCollection):  # type: ignore[misc]  # wsgidav ships no types
    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        dav: RingDav,
        info: FileInfo | None,
        having: list[NodeRef] | None,
        data: bytes | None = None,
    ) -> None:
        """``info`` None: a name being created by a PUT (nothing stored yet);
        ``having`` None: holders not known yet (a listing entry), stat when read;
        ``data``: the whole (small) file, already read and verified."""
        super().__init__(path, environ)
        self.dav, self.info, self.having, self.data = dav, info, having, data
        self.name = ring_name(path)

    def get_content_length(self) -> int | None:
        return self.info.size if self.info else 0

    def get_content_type(self) -> str:
        guessed, _ = mimetypes.guess_type(self.name, strict=False)
        return guessed or "application/octet-stream"

    def get_creation_date(self) -> float | None:
        return self.info.created if self.info else None

    def get_last_modified(self) -> float | None:
        return self.info.created if self.info else None

    def get_etag(self) -> str | None:
        return self.info.sha256 if self.info else None

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> RingReader | io.BytesIO:
        if self.info is None:
            raise DAVError(HTTP_NOT_FOUND)
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.having is None:
            try:
                self.info, self.having, _ = self.dav.files.stat(self.name)
            except Exception as exc:
                raise as_dav_error(exc) from None
        return RingReader(self.dav.files, self.info, self.having)

    def begin_write(self, *, content_type: str | None = None) -> _BodyWriter:
        return _BodyWriter(self)

    def delete(self) -> None:
        self.dav.delete_file(self.name)
        self.remove_all_properties(recursive=True)
        self.remove_all_locks(recursive=True)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        dest = ring_name(dest_path)
        size = self.info.size if self.info else None
        with self.get_content() as source:
            self.dav.store(dest, iter(lambda: source.read(PIECE), b""), size)
        _dead_properties_follow(self, dest_path, is_move)
        if is_move:  # only now: the copy is acknowledged by its write quorum
            self.dav.delete_file(self.name)
            self.remove_all_locks(recursive=True)

    def support_recursive_move(self, dest_path: str) -> bool:
        return False


class _BodyWriter:
    """What wsgidav's PUT writes the request body to: ``writelines`` gets the body's
    blocks as they arrive and streams them to the holders in the request's thread."""

    def __init__(self, target: RingFile) -> None:
        self.target = target

    def writelines(self, blocks: Iterable[bytes]) -> None:
        self.target.info = self.target.dav.store(self.target.name, blocks)
        self.target.having, self.target.data = None, None

    def write(self, data: bytes) -> None:
        self.writelines([data])

    def close(self) -> None:
        pass


class RingFolder(DAVCollection):  # type: ignore[misc]  # wsgidav ships no types
    def __init__(self, path: str, environ: dict[str, Any], dav: RingDav) -> None:
        super().__init__(path, environ)
        self.dav = dav
        self.name = ring_name(path)

    def _children(self) -> list[Entry]:
        try:
            return self.dav.listing.children(self.name)
        except Exception as exc:
            raise as_dav_error(exc) from None

    def get_member_names(self) -> list[str]:
        return [last_segment(entry.path) for entry in self._children()]

    def get_member_list(self) -> list[_DAVResource]:
        return [self.dav.resource_of(entry, self.environ) for entry in self._children()]

    def get_member(self, name: str) -> _DAVResource | None:
        return self.dav.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def _child(self, name: str) -> str:
        return f"{self.name}/{name}" if self.name else name

    def create_empty_resource(self, name: str) -> RingFile:
        child = self._child(name)
        self.dav.check_new_name(child)
        if self.environ.get("REQUEST_METHOD") == "PUT":
            return self.dav.file(child, self.environ, None, None)  # the PUT writes it
        info = self.dav.store(child, [])  # LOCK of an unmapped URL makes an empty file
        return self.dav.file(child, self.environ, info, None)

    def create_collection(self, name: str) -> None:
        child = self._child(name)
        self.dav.check_new_name(child)
        try:
            self.dav.listing.make_folder(child)
        except TooManyFolders as exc:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, str(exc)) from None

    def delete(self) -> None:
        """The members are gone already (wsgidav deletes them first, bottom-up)."""
        self.dav.listing.forget_folder(self.name)
        self.remove_all_properties(recursive=True)
        self.remove_all_locks(recursive=True)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        dest = ring_name(dest_path)
        self.dav.check_new_name(dest)
        self.dav.listing.make_folder(dest)
        _dead_properties_follow(self, dest_path, is_move)

    def support_recursive_move(self, dest_path: str) -> bool:
        return False

    def get_creation_date(self) -> float | None:
        return None

    def get_last_modified(self) -> float | None:
        return None
