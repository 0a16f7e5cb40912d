"""POST /upload_file: route a multipart upload to the holders, its fields in any order.

An upload's options are ``name``, ``replicas`` and ``overwrite``, from the query string
or from form fields before or after the ``file`` part. Where they are decides how the
file's bytes travel:

* **stream**: the name is known before the file part (query string and/or leading
  fields). The bytes go straight to the holders as they arrive; no copy is made. When
  an option may still follow the file part (it was not given before it), FileClient.put
  is told to settle the options only once the bytes are in (``settle``): the version is
  staged as an overwrite would be, the count travels in the trailer, and a trailing
  ``overwrite``/``replicas`` is applied at the decision. Nothing is spooled (issue 15:
  the spool copy cost as much as one holder's write, on the same disk).
* **spool**: the name is not known before the file part (it follows it, or the file
  part's filename is the name). The file part goes to a spool file, the rest of the form
  is read, then put runs from the spool.

A spool file is removed on every path (try/finally), see services/rest/spool.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Response, jsonify, request

from chord.ids import to_hex
from services.files.client import PutResult
from services.rest.context import ApiContext, PeerServices
from services.rest.errors import ApiError, bad_request
from services.rest.params import checked_name, parse_bool, parse_replicas
from services.rest.shapes import ref_json
from services.rest.spool import Spool
from services.rest.upload import FIELDS, FRAMING_BYTES, MultipartUpload


@dataclass(frozen=True)
class Options:
    """What FileClient.put is called with (None replicas: the peer's default k)."""

    name: str | None
    replicas: int | None
    overwrite: bool


def store_upload(ctx: ApiContext, peer: PeerServices) -> Response:
    """Check everything that can be checked before a byte is sent to a holder, then
    stream or spool the file part (see the module's docstring)."""
    form = _open_form(ctx, peer)
    query = {key: request.args[key] for key in FIELDS if key in request.args}
    known = _merge(query, form.head())
    early = _options(known, peer)  # invalid values are refused before any byte moves
    with ctx.metrics.transfer():
        if early.name is None:
            result = _spooled(form, query, peer)
        else:
            result = _streamed_put(form, query, peer, early, final=known.keys() >= set(FIELDS))
    return _created(result)


def _open_form(ctx: ApiContext, peer: PeerServices) -> MultipartUpload:
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "an upload is multipart/form-data with the file in the field 'file'")
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise bad_request("the multipart Content-Type has no boundary")
    limit = peer.max_upload_bytes
    if (request.content_length or 0) > limit + FRAMING_BYTES:
        raise ApiError(413, f"the upload is larger than this peer's limit of {limit} bytes")
    if not ctx.node.joined:
        raise ApiError(503, "this peer is joining or leaving the ring", "not-ready")
    return MultipartUpload(request.stream, boundary, limit, ctx.metrics)


def _merge(query: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """The options given so far; one given both in the query and in the form → 400."""
    both = sorted(fields.keys() & query.keys())
    if both:
        raise bad_request(f"{both[0]!r} is given both as a form field and in the query")
    return {**query, **fields}


def _options(raw: dict[str, str], peer: PeerServices, name: str | None = None) -> Options:
    """Parse and check the options (``name``: the filename, when no name was given)."""
    given = raw.get("name", name)
    replicas = None
    if "replicas" in raw:
        replicas = parse_replicas(raw["replicas"], peer.successors)
    overwrite = "overwrite" in raw and parse_bool(raw["overwrite"], "overwrite")
    return Options(None if given is None else checked_name(given), replicas, overwrite)


def _final(form: MultipartUpload, query: dict[str, str], peer: PeerServices) -> Options:
    """The options once the whole form has been read."""
    raw = _merge(query, form.tail())
    return _options(raw, peer, None if "name" in raw else form.filename())


def _put(
    peer: PeerServices, options: Options, pieces: Iterator[bytes], size: int | None = None
) -> PutResult:
    """``size``, when known (a spooled file), lets a full holder refuse before any byte
    travels."""
    assert options.name is not None
    return peer.files.put(
        options.name, pieces, size=size, replicas=options.replicas, overwrite=options.overwrite
    )


def _streamed_put(
    form: MultipartUpload, query: dict[str, str], peer: PeerServices, early: Options, final: bool
) -> PutResult:
    """Stream the file part to the holders. After the last piece the rest of the form is
    read before the piece iterator ends, so a bad trailing field aborts the write instead
    of letting it commit; unless every option was known before the bytes (``final``), the
    options read there are what put settles the write with."""
    settled: list[Options] = []

    def pieces() -> Iterator[bytes]:
        yield from form.body()
        settled.append(_final(form, query, peer))

    def settle() -> tuple[int | None, bool]:
        return settled[0].replicas, settled[0].overwrite

    assert early.name is not None
    return peer.files.put(
        early.name,
        pieces(),
        replicas=early.replicas,
        overwrite=early.overwrite,
        settle=None if final else settle,
    )


def _spooled(form: MultipartUpload, query: dict[str, str], peer: PeerServices) -> PutResult:
    with Spool(peer.spool_dir) as spool:
        for piece in form.body():
            spool.write(piece)
        return _put(peer, _final(form, query, peer), spool.pieces(), spool.size)


def _created(result: PutResult) -> Response:
    info = result.info
    body: dict[str, Any] = {
        "name": info.name,
        "key": to_hex(info.key),
        "size": info.size,
        "sha256": info.sha256,
        "version": info.version,
        "holders": [ref_json(h) for h in result.holders],
        "hops": result.hops,
    }
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"/download_file?name={quote(info.name, safe='')}"
    return response
