"""Dynamic Large Objects: `X-Object-Manifest: <container>/<prefix>` manifests.

A DLO manifest is an ordinary (usually empty) object carrying `X-Object-Manifest`. A GET or
HEAD of it answers for the concatenation of every object of `<container>` whose name starts
with `<prefix>`, in listing order, as the listing says *now* (segments can be added later):
Content-Length is the sum of their sizes, the ETag the quoted MD5 of their concatenated
ETags, Range and the conditional headers apply to the whole. `?multipart-manifest=get`
returns the manifest object itself.

This module also holds what SLO (`slo.py`) shares: `Piece`/`SegmentStream` (streaming a list
of segment slices, one storage chunk at a time, checking each segment still is what the
manifest says) and `large_response` (headers, conditionals, ranges of a whole large object).
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator
from urllib.parse import unquote

from starlette.responses import Response, StreamingResponse

from pocketstack.common.errors import ApiError
from pocketstack.object import api as A
from pocketstack.object import capabilities
from pocketstack.object import storage as st

log = logging.getLogger("pocketstack.object.large")

MAX_GET_TIME = 86400  # seconds one GET of a large object may take (upstream's max_get_time)
MANIFEST_HEADER = "X-Object-Manifest"

capabilities.register("dlo", {"max_get_time": MAX_GET_TIME})


# ---------------------------------------------------------------------------- shared streaming
@dataclass
class Piece:
    """One slice of a large object: inline `data`, or bytes [first, last) of a segment object.
    `etag`/`size` (when known) are what the manifest expects the segment to still be."""

    data: bytes | None = None
    container: str = ""
    name: str = ""
    first: int = 0
    last: int | None = None
    etag: str | None = None
    size: int | None = None


class SegmentError(Exception):
    """A segment vanished or changed since the manifest was written."""


class SegmentStream:
    """Streams `pieces` of `account`; `prime()` opens the first segment so a broken large object
    is answered with 409 before any header is sent (upstream does the same). Later failures can
    only cut the body short: the client sees fewer bytes than Content-Length.

    Every segment is read with the caller's rights (as upstream's segment subrequests carry the
    user's token): a manifest never reveals an object its reader could not GET directly."""

    def __init__(self, req, account: str, pieces: Iterable[Piece], max_get_time: int = MAX_GET_TIME):
        self.req = req
        self.account = account
        self.pieces = iter(pieces)
        self.deadline = time.monotonic() + max_get_time
        self._first: tuple[Piece, tuple | None] | None = None
        self._allowed: set[str] = set()

    def _open(self, piece: Piece):
        if piece.data is not None:
            return None
        check_read(self.req, self.account, piece.container, piece.name, self._allowed)
        try:
            meta, path = A.storage().head_object(self.account, piece.container, piece.name)
        except st.NotFoundError:
            raise SegmentError(f"segment /{piece.container}/{piece.name} not found") from None
        if piece.etag is not None and meta["etag"] != piece.etag.strip('"'):
            raise SegmentError(f"segment /{piece.container}/{piece.name}: etag mismatch")
        if piece.size is not None and meta["size"] != piece.size:
            raise SegmentError(f"segment /{piece.container}/{piece.name}: size mismatch")
        last = meta["size"] if piece.last is None else piece.last
        if last > meta["size"]:
            raise SegmentError(f"segment /{piece.container}/{piece.name} is too short")
        return meta, path, last

    def prime(self) -> None:
        try:
            piece = next(self.pieces)
        except StopIteration:
            return
        except SegmentError:
            raise A.SwiftError(409) from None
        try:
            self._first = (piece, self._open(piece))
        except SegmentError:
            raise A.SwiftError(409) from None

    def _opened(self) -> Iterator[tuple[Piece, tuple | None]]:
        if self._first is not None:
            yield self._first
            self._first = None
        for piece in self.pieces:
            yield piece, self._open(piece)

    def __iter__(self) -> Iterator[bytes]:
        store = A.storage()
        try:
            for piece, opened in self._opened():
                if time.monotonic() > self.deadline:
                    raise SegmentError("max_get_time exceeded")
                if opened is None:
                    chunk = piece.data[piece.first:piece.last]
                    if chunk:
                        yield chunk
                    continue
                meta, path, last = opened
                if last > piece.first:
                    yield from store.iter_object(path, meta, piece.first, last)
        except SegmentError as exc:
            # Headers are gone already: all we can do is end the body early (as upstream).
            log.warning("large object GET ended early: %s", exc)
            raise


def check_read(req, account: str, container: str, obj: str | None, allowed: set | None = None) -> None:
    """SegmentError unless the caller may read `container` (or `obj` in it); `allowed` caches
    the containers already granted in this request."""
    if allowed is not None and container in allowed:
        return
    try:
        A.authorize(req, account, False, container, obj)
    except ApiError as err:
        raise SegmentError(f"segment container {container}: {err.code}") from None
    if allowed is not None:
        allowed.add(container)  # read grants are per container (an ACL or referrer on it)


def slice_pieces(segments: Iterable[tuple[Piece, int]], start: int, end: int) -> Iterator[Piece]:
    """The parts of `segments` ((piece, length) in order) that fall in [start, end) of the whole."""
    offset = 0
    for piece, length in segments:
        if offset >= end:
            return
        lo, hi = max(start, offset), min(end, offset + length)
        if lo < hi:
            base = piece.first
            yield Piece(piece.data, piece.container, piece.name, base + lo - offset, base + hi - offset,
                        piece.etag, piece.size)
        offset += length


def large_response(req, meta: dict, headers: dict, etag: str, total: int,
                   make_stream: Callable[[int, int], SegmentStream], part: tuple[int, int] | None = None) -> Response:
    """GET/HEAD of a whole large object: quoted ETag, total Content-Length, the conditional
    headers against the large object's ETag, one Range across segment boundaries (or `part`,
    the [start, end) of one SLO part, answered 206 to HEAD too)."""
    headers["Etag"] = f'"{etag}"'
    try:
        A.check_conditions(req, {"etag": etag, "timestamp": meta["timestamp"]}, headers)
    except A._NotModified as nm:
        hdrs = {k: v for k, v in nm.headers.items() if k in ("Etag", "Last-Modified", "X-Timestamp", "X-Trans-Id")}
        hdrs["Content-Length"] = "0"
        return Response(status_code=304, headers=hdrs)
    if part is not None:
        start, end = part
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        headers["Content-Length"] = str(end - start)
        if req.method == "HEAD":
            return Response(status_code=206, headers=headers)
        stream = make_stream(start, end)
        stream.prime()
        return StreamingResponse(iter(stream), status_code=206, headers=headers)
    # Whole, one range or several (multipart/byteranges): one segment stream per range. The
    # first is opened (and checked: 409) before the status goes out; a later one that breaks
    # cuts the body short, as upstream.
    opened: dict[tuple[int, int], SegmentStream] = {}

    def read(start, stop):
        stream = opened.pop((start, stop), None)
        if stream is None:
            stream = make_stream(start, stop)
            stream.prime()
        return iter(stream)
    status, spans, body = A.range_answer(req, headers, total, etag, meta["timestamp"], read)
    if req.method == "HEAD":
        return Response(status_code=status, headers=headers)
    first = opened[spans[0]] = make_stream(*spans[0])
    first.prime()
    return StreamingResponse(body(), status_code=status, headers=headers)


# ---------------------------------------------------------------------------- DLO
def validate_header(req) -> None:
    """`X-Object-Manifest` must be `<container>/<prefix>` (400 otherwise, upstream's text)."""
    value = req.headers.get("x-object-manifest")
    if value is None:
        return
    container, sep, prefix = value.partition("/")
    if not sep or not container or not prefix or "?" in value or "&" in value or prefix.startswith("/"):
        raise A.SwiftError(400, "X-Object-Manifest must be in the format container/prefix")


def manifest_of(meta: dict) -> tuple[str, str] | None:
    value = meta.get("meta", {}).get(MANIFEST_HEADER)
    if not value:
        return None
    container, _, prefix = unquote(value).partition("/")
    return container, prefix


def segments(account: str, container: str, prefix: str) -> list[dict]:
    """Every listing row of `container` under `prefix`, in order (pages of 10000)."""
    store = A.storage()
    if store.container_info(account, container) is None:
        raise A.SwiftError(404)
    out: list[dict] = []
    marker = ""
    while True:
        page = store.list_objects(account, container, prefix=prefix, marker=marker, limit=A.LISTING_LIMIT)
        out.extend(page)
        if len(page) < A.LISTING_LIMIT:
            return out
        marker = page[-1]["name"]


def dlo_etag(rows: list[dict]) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    for row in rows:
        md5.update(row["hash"].strip('"').encode())
    return md5.hexdigest()


def handle_get(req, account: str, meta: dict, headers: dict) -> Response | None:
    """GET/HEAD of a DLO manifest (None when `meta` is not one or the manifest itself is asked)."""
    manifest = manifest_of(meta)
    if manifest is None or req.query.get("multipart-manifest") == "get":
        return None
    container, prefix = manifest
    A.authorize(req, account, False, container)  # the listing is the caller's to read (403 otherwise)
    rows = segments(account, container, prefix)
    total = sum(r["bytes"] for r in rows)
    listed = [(Piece(container=container, name=r["name"], etag=r["hash"], size=r["bytes"]), r["bytes"])
              for r in rows]
    return large_response(req, meta, headers, dlo_etag(rows), total,
                          lambda start, end: SegmentStream(req, account, slice_pieces(listed, start, end)))


def body_of(req, account: str, meta: dict) -> Iterable[bytes]:
    """The concatenated segments (a copy of a DLO copies its content)."""
    container, prefix = manifest_of(meta)
    A.authorize(req, account, False, container)
    rows = segments(account, container, prefix)
    listed = [(Piece(container=container, name=r["name"], etag=r["hash"], size=r["bytes"]), r["bytes"])
              for r in rows]
    stream = SegmentStream(req, account, (p for p, _ in listed))
    stream.prime()
    return stream
