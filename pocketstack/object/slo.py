"""Static Large Objects: `?multipart-manifest=put|get|delete` manifests.

PUT `?multipart-manifest=put` takes a JSON list of segments (`{"path": "/c/o", "etag",
"size_bytes", "range"}` or `{"data": <base64>}`), checks every object-backed segment exists
and matches (upstream's rules and error texts: 400 with the list of problems, 413 past
`max_manifest_segments` / `max_manifest_size`, 422 when the client's ETag is not the SLO's),
then stores the manifest as the object's body in upstream's stored form (`name`, `bytes`,
`hash`, `content_type`, `last_modified`, `range`, `sub_slo`) with `X-Static-Large-Object: True`
and the SLO's ETag and size in system metadata (`X-Object-Sysmeta-Slo-*`, never shown).

GET/HEAD answer for the concatenation (nested SLOs expanded, up to 10 levels; ranges and
conditionals on the whole; ETag = quoted MD5 of the segments' ETags, `etag:range;` for ranged
segments, MD5 of the bytes for data segments). `?multipart-manifest=get` returns the stored
manifest (`&format=raw`: in the PUT form). DELETE `?multipart-manifest=delete` removes the
segments (sub-manifests' too), then the manifest, answering like a bulk delete.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
from urllib.parse import quote

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from pocketstack.common import events
from pocketstack.common.errors import ApiError
from pocketstack.object import api as A
from pocketstack.object import bulk, capabilities, dlo, features
from pocketstack.object import storage as st

MAX_MANIFEST_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
YIELD_FREQUENCY = 10
MAX_RECURSION = 10
SLO_HEADER = "X-Static-Large-Object"
SYSMETA_ETAG = "X-Object-Sysmeta-Slo-Etag"
SYSMETA_SIZE = "X-Object-Sysmeta-Slo-Size"
SYSTEM_KEYS = (SLO_HEADER, SYSMETA_ETAG, SYSMETA_SIZE, dlo.MANIFEST_HEADER)

capabilities.register("slo", {
    "max_manifest_segments": MAX_MANIFEST_SEGMENTS, "max_manifest_size": MAX_MANIFEST_SIZE,
    "yield_frequency": YIELD_FREQUENCY, "min_segment_size": 1, "allow_async_delete": False,
    "max_get_time": dlo.MAX_GET_TIME,
})


def is_slo(meta: dict) -> bool:
    return str(meta.get("meta", {}).get(SLO_HEADER, "")).lower() in A.TRUE


# ---------------------------------------------------------------------------- hooks for api.py
def check_reserved(req) -> None:
    """Plain PUT/POST: `X-Static-Large-Object` is the server's to set; `X-Object-Manifest` must
    be well formed."""
    if "x-static-large-object" in req.headers:
        raise A.SwiftError(400, "X-Static-Large-Object is a reserved header. To create a static large "
                                "object add query param multipart-manifest=put.")
    dlo.validate_header(req)


def preserved(old: dict) -> dict:
    """What a POST (which replaces user metadata) keeps: the SLO flag and system metadata."""
    return {k: v for k, v in old.get("meta", {}).items()
            if k == SLO_HEADER or k.startswith("X-Object-Sysmeta-")}


def handle_get(req, account: str, meta: dict, path, headers: dict) -> Response | None:
    """GET/HEAD of an object that may be a large object; None for a plain one."""
    if is_slo(meta):
        if req.query.get("multipart-manifest") == "get":
            return _manifest_response(req, meta, path, headers)
        return _slo_response(req, account, meta, path, headers)
    return dlo.handle_get(req, account, meta, headers)


def copy_source(req, account: str, src: dict, path) -> tuple[object, dict, dict]:
    """(body, user metadata, system metadata) a COPY / X-Copy-From of `src` writes. A large
    object copies its content as one plain object; with `?multipart-manifest=get` the manifest
    itself is copied (and stays a manifest)."""
    store = A.storage()
    meta = dict(src.get("meta", {}))
    system = {k: meta.pop(k) for k in SYSTEM_KEYS if k in meta}
    if req.query.get("multipart-manifest") == "get" or not (is_slo(src) or dlo.manifest_of(src)):
        return store.iter_object(path, src), meta, system
    if is_slo(src):
        segments = _annotated(_load(path, src))
        stream = dlo.SegmentStream(req, account, _pieces(req, account, segments, 0, _total(segments), 1))
    else:
        stream = dlo.body_of(req, account, src)
    stream.prime()
    return stream, meta, {}


# ---------------------------------------------------------------------------- GET
def _load(path, meta: dict) -> list:
    raw = b"".join(A.storage().iter_object(path, meta))
    try:
        data = json.loads(raw)
    except ValueError:
        raise A.SwiftError(500) from None
    if not isinstance(data, list):
        raise A.SwiftError(500)
    return data


def _length(seg: dict) -> int:
    if "data" in seg:
        return len(base64.b64decode(seg["data"]))
    if seg.get("range"):
        lo, hi = (int(x) for x in seg["range"].split("-"))
        return hi - lo + 1
    return int(seg["bytes"])


def _annotated(segments: list) -> list[tuple[dict, int]]:
    return [(seg, _length(seg)) for seg in segments]


def _total(annotated) -> int:
    return sum(n for _, n in annotated)


def _split(name: str) -> tuple[str, str]:
    container, _, obj = name.lstrip("/").partition("/")
    return container, obj


def _pieces(req, account: str, annotated, start: int, end: int, depth: int):
    """Segment slices covering [start, end) of the large object, nested SLOs expanded lazily."""
    offset = 0
    for seg, length in annotated:
        if offset >= end:
            return
        lo, hi = max(start, offset), min(end, offset + length)
        if lo < hi:
            rel_lo, rel_hi = lo - offset, hi - offset
            if "data" in seg:
                yield dlo.Piece(data=base64.b64decode(seg["data"]), first=rel_lo, last=rel_hi)
            else:
                base = int(seg["range"].split("-")[0]) if seg.get("range") else 0
                container, obj = _split(seg["name"])
                if seg.get("sub_slo"):
                    if depth >= MAX_RECURSION:
                        raise dlo.SegmentError("max recursion depth exceeded")
                    dlo.check_read(req, account, container, obj)
                    try:
                        sub_meta, sub_path = A.storage().head_object(account, container, obj)
                    except st.NotFoundError:
                        raise dlo.SegmentError(f"sub-manifest {seg['name']} not found") from None
                    if not is_slo(sub_meta) or sub_meta.get("meta", {}).get(SYSMETA_ETAG) != seg["hash"]:
                        raise dlo.SegmentError(f"sub-manifest {seg['name']} changed")
                    yield from _pieces(req, account, _annotated(_load(sub_path, sub_meta)),
                                       base + rel_lo, base + rel_hi, depth + 1)
                else:
                    yield dlo.Piece(container=container, name=obj, first=base + rel_lo, last=base + rel_hi,
                                    etag=seg.get("hash"), size=int(seg["bytes"]))
        offset += length


def _slo_etag_and_size(meta: dict, annotated) -> tuple[str, int]:
    stored = meta.get("meta", {})
    if stored.get(SYSMETA_ETAG) and str(stored.get(SYSMETA_SIZE, "")).isdigit():
        return stored[SYSMETA_ETAG], int(stored[SYSMETA_SIZE])
    return _etag_of(seg for seg, _ in annotated), _total(annotated)


def _etag_of(segments) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    for seg in segments:
        if "data" in seg:
            part = hashlib.md5(base64.b64decode(seg["data"]), usedforsecurity=False).hexdigest()
        elif seg.get("range"):
            part = f"{seg['hash']}:{seg['range']};"
        else:
            part = seg["hash"]
        md5.update(part.encode())
    return md5.hexdigest()


def _slo_response(req, account, meta, path, headers) -> Response:
    annotated = _annotated(_load(path, meta))
    etag, total = _slo_etag_and_size(meta, annotated)
    headers["X-Manifest-Etag"] = meta["etag"]
    headers[SLO_HEADER] = "True"
    part = None
    if "part-number" in req.query:  # one segment of the manifest, as S3's GetObject?partNumber
        value = req.query["part-number"]
        if not value.isdigit() or int(value) < 1:
            raise A.SwiftError(400, "Part number must be an integer greater than 0")
        number = int(value)
        headers["X-Parts-Count"] = str(len(annotated))
        if number > len(annotated):
            raise A.SwiftError(416, "The requested part number is not satisfiable",
                               headers={"Content-Range": f"bytes */{total}", "X-Parts-Count": str(len(annotated)),
                                        "X-Trans-Id": headers["X-Trans-Id"]})
        start = sum(n for _, n in annotated[:number - 1])
        part = (start, start + annotated[number - 1][1])

    def stream(start: int, end: int) -> dlo.SegmentStream:
        return dlo.SegmentStream(req, account, _pieces(req, account, annotated, start, end, 1))

    return dlo.large_response(req, meta, headers, etag, total, stream, part=part)


def _manifest_response(req, meta, path, headers) -> Response:
    headers[SLO_HEADER] = "True"
    if req.query.get("format") == "raw":
        segments = _load(path, meta)
        for seg in segments:
            if "data" in seg:
                continue
            for drop in ("content_type", "last_modified", "sub_slo"):
                seg.pop(drop, None)
            seg["path"] = seg.pop("name", None)
            seg["size_bytes"] = seg.pop("bytes", None)
            seg["etag"] = seg.pop("hash", None)
        body = json.dumps(segments, sort_keys=True).encode()
        headers["Etag"] = hashlib.md5(body, usedforsecurity=False).hexdigest()
    else:
        body = b"".join(A.storage().iter_object(path, meta))
        headers["Content-Type"] = "application/json; charset=utf-8"
    try:
        A.check_conditions(req, {"etag": headers["Etag"], "timestamp": meta["timestamp"]}, headers)
    except A._NotModified as nm:
        hdrs = {k: v for k, v in nm.headers.items() if k in ("Etag", "Last-Modified", "X-Timestamp", "X-Trans-Id")}
        hdrs["Content-Length"] = "0"
        return Response(status_code=304, headers=hdrs)
    headers["Content-Length"] = str(len(body))
    return Response(b"" if req.method == "HEAD" else body, status_code=200, headers=headers)


# ---------------------------------------------------------------------------- PUT
def _parse(body: bytes, account: str, container: str, obj: str) -> list:
    """The manifest, syntax-checked (400 listing every bad index, as upstream)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise A.SwiftError(400, "Manifest must be valid JSON.\n") from None
    if not isinstance(data, list):
        raise A.SwiftError(400, "Manifest must be a list.\n")
    errors = []
    self_path = f"{container}/{obj}"
    for i, seg in enumerate(data):
        if not isinstance(seg, dict):
            errors.append(f"Index {i}: not a JSON object")
            continue
        kind = "path" if "path" in seg else "data" if "data" in seg else None
        if kind is None:
            errors.append(f"Index {i}: expected keys to include one of 'data' or 'path'")
            continue
        allowed = {"path", "range", "etag", "size_bytes"} if kind == "path" else {"data"}
        extra = sorted(k for k in seg if k not in allowed)
        if extra:
            errors.append(f"Index {i}: extraneous keys " + ", ".join(json.dumps(k) for k in extra))
            continue
        if kind == "data":
            raw = seg["data"]
            try:
                if not isinstance(raw, str):
                    raise ValueError
                decoded = base64.b64decode(raw.encode("ascii"), validate=True) if raw.strip() else b""
            except (ValueError, binascii.Error, UnicodeEncodeError):
                errors.append(f"Index {i}: data must be valid base64")
                continue
            if not decoded:
                errors.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
            seg["data"] = base64.b64encode(decoded).decode("ascii")
            continue
        if not isinstance(seg["path"], str):
            errors.append(f'Index {i}: "path" must be a string')
            continue
        if seg.get("etag") is not None and not isinstance(seg["etag"], str):
            errors.append(f'Index {i}: "etag" must be a string or null (if provided)')
            continue
        if "/" not in seg["path"].strip("/") or not bulk.valid_name(seg["path"]):
            errors.append(f"Index {i}: path does not refer to an object. Path must be of the form "
                          "/container/object.")
            continue
        size = seg.get("size_bytes")
        if size is not None:
            try:
                if isinstance(size, bool) or isinstance(size, float):
                    raise ValueError
                size = int(size)
            except (TypeError, ValueError):
                errors.append(f"Index {i}: invalid size_bytes")
                continue
            seg["size_bytes"] = size
            if size < 1 and i != len(data) - 1:
                errors.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
        if seg["path"].lstrip("/") == self_path:
            errors.append(f"Index {i}: manifest must not include itself as a segment")
            continue
        if seg.get("range"):
            rng = _parse_seg_range(seg["range"])
            if rng is None:
                errors.append(f"Index {i}: invalid range")
                continue
            if rng == "multi":
                errors.append(f"Index {i}: multiple ranges (only one allowed)")
                continue
            if size is not None and _resolve_range(rng, size) is None:
                errors.append(f"Index {i}: unsatisfiable range")
                continue
            seg["range"] = rng
        else:
            seg.pop("range", None)
    if data and all("data" in d for d in data if isinstance(d, dict)) and not errors:
        errors.append("Inline data segments require at least one object-backed segment.")
    if errors:
        raise A.SwiftError(400, "".join(e + "\n" for e in errors))
    return data


def _parse_seg_range(value) -> tuple | str | None:
    """(first, last) with either side None (`-N` / `M-`), "multi", or None when malformed."""
    if not isinstance(value, str):
        return None
    specs = value.split(",")
    if len(specs) > 1:
        return "multi" if all(_parse_seg_range(s.strip()) not in (None, "multi") for s in specs) else None
    first, sep, last = value.strip().partition("-")
    if not sep or (not first and not last):
        return None
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    lo = int(first) if first else None
    hi = int(last) if last else None
    if lo is not None and hi is not None and hi < lo:
        return None
    return lo, hi


def _resolve_range(rng: tuple, size: int) -> tuple[int, int] | None:
    """[start, end) of `rng` within an object of `size` bytes, None when unsatisfiable."""
    lo, hi = rng
    if lo is None:
        if hi == 0 or size == 0:
            return None
        return max(0, size - hi), size
    if lo >= size:
        return None
    end = size if hi is None else min(hi + 1, size)
    return lo, end


def _head_segment(req, account: str, path: str) -> tuple[dict | None, str]:
    """What a HEAD of a segment says (with the caller's rights): size, etag (a sub-SLO's large
    values), or an error status."""
    container, obj = _split(path)
    if len(container.encode()) > A.MAX_CONTAINER_NAME or len(obj.encode()) > A.MAX_OBJECT_NAME:
        return None, "400 Bad Request"
    try:
        A.authorize(req, account, False, container, obj)
    except ApiError as err:
        return None, bulk.STATUS.get(err.code, str(err.code))
    store = A.storage()
    try:
        meta, seg_path = store.head_object(account, container, obj)
    except st.NotFoundError:
        return None, "404 Not Found"
    if is_slo(meta):
        etag, size = _slo_etag_and_size(meta, _annotated(_load(seg_path, meta)))
        return {"size": size, "etag": etag, "content_type": meta["content_type"], "timestamp": meta["timestamp"],
                "sub_slo": True}, ""
    return {"size": meta["size"], "etag": meta["etag"], "content_type": meta["content_type"],
            "timestamp": meta["timestamp"]}, ""


def put_manifest(req, account: str, container: str, obj: str) -> Response:
    try:
        return _put_manifest(req, account, container, obj)
    except ApiError as err:
        # Let a client still sending its manifest read our answer (as a plain PUT does).
        if err.code not in (413, 499) and req.stream is not None and not req.stream.done:
            req.stream.drain(MAX_MANIFEST_SIZE)
        raise


def _put_manifest(req, account: str, container: str, obj: str) -> Response:
    if req.headers.get("x-copy-from"):
        raise A.SwiftError(405, "Multipart Manifest PUTs cannot be COPY requests")
    length = req.headers.get("content-length")
    if length is None and "chunked" not in req.headers.get("transfer-encoding", "").lower():
        raise A.SwiftError(411)
    if length is not None and length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
        raise A.SwiftError(413, f"Manifest File > {MAX_MANIFEST_SIZE} bytes")
    body = _read_limited(req, MAX_MANIFEST_SIZE)
    store = A.storage()
    if store.container_info(account, container) is None:
        raise A.SwiftError(404)
    if_none_match = req.headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise A.SwiftError(400, "If-None-Match only supports *")
        try:
            store.head_object(account, container, obj)
            raise A.SwiftError(412)
        except st.NotFoundError:
            pass
    data = _parse(body, account, container, obj)
    object_backed = [seg for seg in data if "path" in seg]
    if len(object_backed) > MAX_MANIFEST_SEGMENTS:
        raise A.SwiftError(413, f"Number of object-backed segments must be <= {MAX_MANIFEST_SEGMENTS}")
    out_type = bulk.best_format(req)
    problems: list[list[str]] = []
    heads: dict[str, tuple] = {}
    stored: list[dict] = []
    total = 0
    for i, seg in enumerate(data):
        if "data" in seg:
            stored.append({"data": seg["data"]})
            total += len(base64.b64decode(seg["data"]))
            continue
        name = seg["path"]
        if name not in heads:
            heads[name] = _head_segment(req, account, name)
        head, status = heads[name]
        if head is None:
            problems.append([quote(name), status])
            continue
        length = head["size"]
        rng = seg.get("range")
        entry = {"name": "/" + name.lstrip("/"), "bytes": head["size"], "hash": head["etag"],
                 "content_type": head["content_type"], "last_modified": A.iso(head["timestamp"])}
        if rng:
            resolved = _resolve_range(rng, head["size"])
            if resolved is None:
                problems.append([quote(name), "Unsatisfiable Range"])
            elif resolved != (0, head["size"]):
                entry["range"] = f"{resolved[0]}-{resolved[1] - 1}"
                length = resolved[1] - resolved[0]
        if length < 1 and i != len(data) - 1:
            problems.append([quote(name), "Too small; each segment must be at least 1 byte."])
        if seg.get("size_bytes") is not None and seg["size_bytes"] != head["size"]:
            problems.append([quote(name), "Size Mismatch"])
        if seg.get("etag") is not None and seg["etag"].strip('"') != head["etag"]:
            problems.append([quote(name), "Etag Mismatch"])
        if head.get("sub_slo"):
            entry["sub_slo"] = True
        stored.append(entry)
        total += max(length, 0)
    # `heartbeat=on`: upstream answers 202 at once and the outcome in the body (we check the
    # segments before answering, locally and fast, so the body follows right away).
    heartbeat = req.query.get("heartbeat", "").lower() in A.TRUE

    def beat(code: int, extra: dict | None = None) -> Response:
        title, text = A.REASONS.get(code, ("", ""))
        result = {"Response Status": bulk.STATUS.get(code, str(code)),
                  "Response Body": "" if code < 300 else f"{title}\n{text}", **(extra or {})}
        body = b" \r\n\r\n" + bulk.result_body(out_type, result, problems, "upload")
        return Response(body, status_code=202, headers={"X-Trans-Id": A.trans_id()},
                        media_type=out_type or "text/plain")

    if problems:
        if heartbeat:
            return beat(400)
        return Response(bulk.result_body(out_type, {}, problems, "upload"), status_code=400,
                        headers={"X-Trans-Id": A.trans_id()}, media_type=out_type or "text/plain")
    slo_etag = _etag_of(stored)
    client_etag = req.headers.get("etag")
    if client_etag and client_etag.strip('"') != slo_etag:
        if heartbeat:
            return beat(422)
        raise A.SwiftError(422)
    manifest = json.dumps(stored).encode()
    content_type = req.headers.get("content-type")
    if not content_type or req.headers.get("x-detect-content-type", "").lower() in A.TRUE:
        content_type = mimetypes.guess_type(obj)[0] or "application/octet-stream"
    user = {k: v for k, v in A.metadata_updates(req, "object", A.OBJECT_EXTRA).items()
            if v and k != dlo.MANIFEST_HEADER}
    user.update({SLO_HEADER: "True", SYSMETA_ETAG: slo_etag, SYSMETA_SIZE: str(total)})
    metadata = {"content_type": content_type, "meta": user}
    # as any PUT: X-Delete-At/After, quotas (on the manifest's own bytes, as upstream), versioning
    left = features.object_put(req, account, container, obj, len(manifest), metadata)
    try:
        result = store.put_object(account, container, obj, features.quotas.limit(iter([manifest]), left), metadata)
    except st.NotFoundError:
        raise A.SwiftError(404) from None
    except st.StorageError:
        raise A.SwiftError(503) from None
    features.object_written(account, container, obj, result)
    events.emit("object.manifest.created", {"account": account, "container": container, "object": obj,
                                            "segments": len(stored), "size": total}, context=req.optional_context)
    headers = A.base_headers()
    headers.update({"Etag": f'"{slo_etag}"', "Last-Modified": A.http_date(result["timestamp"])})
    if heartbeat:
        return beat(201, {"Etag": headers["Etag"], "Last Modified": headers["Last-Modified"]})
    return A.empty(201, headers)


def _read_limited(req, limit: int) -> bytes:
    parts, size = [], 0
    if req.stream is None:
        return req.body
    try:
        for chunk in req.stream:
            size += len(chunk)
            if size > limit:
                raise A.SwiftError(413, f"Manifest File > {limit} bytes")
            parts.append(chunk)
    except ClientDisconnect:
        raise A.SwiftError(499) from None
    return b"".join(parts)


# ---------------------------------------------------------------------------- DELETE
def delete_manifest(req, account: str, container: str, obj: str) -> Response:
    """Delete every segment (depth first through sub-manifests), then the manifest."""
    out_type = bulk.best_format(req)
    store = A.storage()

    def names():
        pending = [{"name": f"/{container}/{obj}", "sub_slo": True}]
        while pending:
            if len(pending) > MAX_MANIFEST_SEGMENTS * 10:
                raise A.SwiftError(400, "Too many buffered slo segments to delete.")
            seg = pending.pop(0)
            if "data" in seg:
                continue
            if seg.get("sub_slo"):
                c, o = _split(seg["name"])
                try:
                    meta, path = store.head_object(account, c, o)
                    if not is_slo(meta):
                        seg["error"] = (400, "Not an SLO manifest")
                    else:
                        pending.extend(_load(path, meta))
                except st.NotFoundError:
                    seg["error"] = (404, "SLO manifest not found")
                seg["sub_slo"] = False
                pending.append(seg)
                continue
            yield seg

    return bulk.delete_response(req, account, names(), out_type)
