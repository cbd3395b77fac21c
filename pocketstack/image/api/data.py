"""Image data: `PUT`/`GET /v2/images/{id}/file`, `PUT /stage`, `POST /import`.

Uploads are streamed (`stream=True` routes): the body is never held in memory, it goes
in 1 MiB pieces through the hashers into the store's temp file. Downloads stream from
the store in 1 MiB chunks and honour a single `Range`.
"""
from __future__ import annotations

import re

from starlette.responses import Response, StreamingResponse

from pocketstack.common.errors import BadRequest
from pocketstack.image import core
from pocketstack.image.api.common import api

DRAIN_LIMIT = 64 << 20  # after an early error, read at most this much more so the client sees it


def _declared_size(req) -> int | None:
    for header in ("x-openstack-image-size", "content-length"):
        raw = req.headers.get(header)
        if raw is not None and raw != "":
            if not raw.isdigit():
                raise BadRequest(f"Invalid {header} header: {raw!r}")
            return int(raw)
    return None


def _stream_call(req, fn):
    """Run an upload; on an error before the body was consumed (bad token, quota, a wrong
    status...), drain a bounded amount of it so that the client, which writes the whole
    body before it reads the response, gets our answer rather than a reset connection."""
    try:
        return fn()
    except Exception:
        stream = req.stream
        if stream is not None and not stream.done:
            try:
                stream.drain(DRAIN_LIMIT)
            except Exception:
                pass
        raise


@api.route("/v2/images/{image_id}/file", "PUT", stream=True)
def upload(req):
    _stream_call(req, lambda: core.upload(req.context, req.path_params["image_id"], req.stream,
                                          _declared_size(req), req.headers.get("x-image-meta-store") or None))
    return 204, None


@api.route("/v2/images/{image_id}/stage", "PUT", stream=True)
def stage(req):
    _stream_call(req, lambda: core.stage(req.context, req.path_params["image_id"], req.stream,
                                         _declared_size(req)))
    return 204, None


@api.route("/v2/images/{image_id}/import", "POST")
def import_image(req):
    core.import_image(req.context, req.path_params["image_id"], req.json, request_id=req.request_id)
    return 202, None


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def _parse_range(req) -> tuple[int | None, int | None] | None:
    raw = req.headers.get("range")
    if raw:
        m = _RANGE.match(raw)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return None  # a Range we do not understand (or several) is ignored: the whole data
        first = int(m.group(1)) if m.group(1) else None
        last = int(m.group(2)) if m.group(2) else None
        return first, last
    # Glance also honours a Content-Range on the request (its pre-Range API): bytes a-b/*
    raw = req.headers.get("content-range")
    if raw:
        m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", raw)
        if not m:
            raise BadRequest(f"Invalid Content-Range header: {raw}")
        return int(m.group(1)), int(m.group(2))
    return None


@api.route("/v2/images/{image_id}/file", "GET")
def download(req):
    ctx = req.context
    byte_range = _parse_range(req)
    dl = core.open_download(ctx, req.path_params["image_id"], byte_range)
    if dl is None:
        return Response(status_code=204)
    headers = {"Content-Length": str(dl.length)}
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {dl.start}-{dl.start + dl.length - 1}/{dl.size}"
    elif dl.image.get("checksum"):
        headers["Content-MD5"] = dl.image["checksum"]
    if req.method == "HEAD":
        dl.chunks.close()
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    remote = req.raw.client.host if req.raw.client else None

    def body():
        sent = 0
        try:
            for chunk in dl.chunks:
                sent += len(chunk)
                yield chunk
        finally:
            dl.chunks.close()
            core.sent(ctx, dl.image, sent, remote)

    return StreamingResponse(body(), status_code=status, headers=headers,
                             media_type="application/octet-stream")
