"""The Swift v1 API (under `/object`): info, accounts, containers, objects.

HTTP <-> storage only; placement, replicas and listings are `storage.Storage`'s. Headers and
error bodies are Swift's (swob's `<html><h1>Not Found</h1><p>...</p></html>` pages; plain-text
bodies for 400s that explain themselves).
"""
from __future__ import annotations

import datetime
import email.utils
import functools
import json
import logging
import math
import mimetypes
import time
import uuid
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape, quoteattr

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from pocketstack.common.errors import ApiError
from pocketstack.common.web import Api
from pocketstack.object import capabilities, ranges
from pocketstack.object import storage as st

MAX_FILE_SIZE = 5368709122
MAX_META_NAME = 128
MAX_META_VALUE = 256
MAX_META_COUNT = 90
MAX_META_OVERALL = 4096
MAX_OBJECT_NAME = 1024
MAX_CONTAINER_NAME = 256
LISTING_LIMIT = 10000
PUT_BATCH = 4 << 20

REASONS = {
    400: ("Bad Request", "The server could not comply with the request since it is either malformed or "
                         "otherwise incorrect."),
    401: ("Unauthorized", "This server could not verify that you are authorized to access the document you "
                          "requested."),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "The method is not allowed for this resource."),
    409: ("Conflict", "There was a conflict when trying to complete your request."),
    411: ("Length Required", "Length Required"),
    412: ("Precondition Failed", "A precondition for this request was not met."),
    413: ("Request Entity Too Large", "The body of your request was too large for this server."),
    416: ("Requested Range Not Satisfiable", "The Range requested is not available."),
    422: ("Unprocessable Entity", "Unable to process the contained instructions"),
    499: ("Client Disconnect", "The client was disconnected during request."),
    500: ("Internal Error", "The server has either erred or is incapable of performing the requested operation."),
    503: ("Service Unavailable", "The server is currently unavailable. Please try again at a later time."),
}


class SwiftError(ApiError):
    """An error with swob's default page (`explanation=None`) or a plain-text explanation."""

    def __init__(self, code: int, explanation: str | None = None, headers: dict | None = None):
        super().__init__(explanation or REASONS.get(code, ("Error", ""))[1], headers=headers)
        self.code = code
        self.explanation = explanation


def render_error(err: ApiError, request: Request | None) -> Response:
    headers = dict(err.headers)
    headers.update(features.cors.error_headers(request))  # CORS on errors too, as upstream
    explanation = getattr(err, "explanation", None)
    if explanation:
        return Response(explanation, status_code=err.code, headers=headers,
                        media_type="text/plain; charset=UTF-8")
    title, text = REASONS.get(err.code, (err.title, err.message))
    body = f"<html><h1>{title}</h1><p>{text}</p></html>"
    return Response(body, status_code=err.code, headers=headers, media_type="text/html; charset=UTF-8")


api = Api("object", max_body=1 << 16, error_renderer=render_error,
          www_authenticate="Keystone uri='{}'")


def storage() -> st.Storage:
    from pocketstack.object.service import get_storage

    return get_storage()


# ---------------------------------------------------------------------------- helpers
def trans_id() -> str:
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}"


def authorize(req, account: str, write: bool, container: str | None = None, obj: str | None = None,
              use_acl: bool = True) -> None:
    """keystoneauth's rules with container/account ACLs, TempURLs and anonymous access (acl.py)."""
    acl.authorize(req, account, container, obj, write, use_acl=use_acl)


def http_date(ts: str) -> str:
    return email.utils.formatdate(math.ceil(float(ts)), usegmt=True)


_ISO_SECONDS: dict[str, str] = {}


def iso(ts: str) -> str:
    """`1795736296.77937` -> `2026-11-26T23:38:16.779370` (listings: one call per row, so no
    datetime objects; the same text as datetime's `%f` for Swift's 5-decimal timestamps)."""
    secs, _, frac = ts.partition(".")
    head = _ISO_SECONDS.get(secs)
    if head is None:
        if not secs.isdigit():
            return datetime.datetime.fromtimestamp(float(ts), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        if len(_ISO_SECONDS) > 65536:
            _ISO_SECONDS.clear()
        head = _ISO_SECONDS[secs] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(secs)))
    return head + "." + (frac + "000000")[:6]


def title(name: str) -> str:
    return "-".join(p.capitalize() for p in name.split("-"))


def metadata_updates(req, kind: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """`X-<kind>-Meta-*` (and `extra` headers) to set; `X-Remove-<kind>-Meta-*` to remove (empty value)."""
    prefix, remove = f"x-{kind}-meta-", f"x-remove-{kind}-meta-"
    out: dict[str, str] = {}
    size = count = 0
    for name, value in req.headers.items():
        lname = name.lower()
        if lname.startswith(prefix):
            key = lname[len(prefix):]
        elif lname.startswith(remove):
            key, value = lname[len(remove):], ""
        elif lname in extra:
            out[title(lname)] = value
            continue
        elif lname.startswith(f"x-remove-{kind}-") and lname[len(f"x-remove-{kind}-"):] in \
                [x[len(f"x-{kind}-"):] for x in extra]:
            out[title("x-" + lname[len("x-remove-"):])] = ""
            continue
        else:
            continue
        if not key:
            raise SwiftError(400, "Metadata name cannot be empty")
        if len(key.encode()) > MAX_META_NAME:
            raise SwiftError(400, f"Metadata name too long: {prefix}{key}")
        if len(value.encode()) > MAX_META_VALUE:
            raise SwiftError(400, f"Metadata value longer than {MAX_META_VALUE}: {prefix}{key}")
        count += 1
        size += len(key.encode()) + len(value.encode())
        out[title(prefix + key)] = value
    if count > MAX_META_COUNT:
        raise SwiftError(400, f"Too many metadata items; max {MAX_META_COUNT}")
    if size > MAX_META_OVERALL:
        raise SwiftError(400, f"Total metadata too large; max {MAX_META_OVERALL}")
    return out


def check_container_name(container: str) -> None:
    if len(container.encode()) > MAX_CONTAINER_NAME:
        raise SwiftError(400, f"Container name length of {len(container.encode())} longer than "
                              f"{MAX_CONTAINER_NAME}")


def check_object_name(obj: str) -> None:
    if len(obj.encode()) > MAX_OBJECT_NAME:
        raise SwiftError(400, f"Object name length of {len(obj.encode())} longer than {MAX_OBJECT_NAME}")


TRUE = {"true", "1", "yes", "on", "t", "y"}


def listing_options(req) -> dict:
    q = req.query
    limit = q.get("limit")
    if limit is not None:
        if not limit.isdigit():
            raise SwiftError(412, "Value of limit must be a positive integer")
        limit = int(limit)
        if limit > LISTING_LIMIT:
            raise SwiftError(412, f"Maximum limit is {LISTING_LIMIT}")
    else:
        limit = LISTING_LIMIT
    delimiter = q.get("delimiter", "")
    if len(delimiter) > 1:
        raise SwiftError(412, "Bad delimiter")
    return {"limit": limit, "marker": q.get("marker", ""), "end_marker": q.get("end_marker", ""),
            "prefix": q.get("prefix", ""), "delimiter": delimiter,
            "reverse": q.get("reverse", "").lower() in TRUE}


def listing_format(req) -> str:
    fmt = req.query.get("format", "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    accept = req.headers.get("accept", "")
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "application/xml; charset=utf-8",
                 "plain": "text/plain; charset=utf-8"}


def listing_response(req, items: list[dict], fmt: str, root: str, name: str, headers: dict) -> Response:
    headers["Content-Type"] = CONTENT_TYPES[fmt]
    if fmt == "json":
        body = json.dumps(items, ensure_ascii=False).encode()
    elif fmt == "xml":
        parts = ['<?xml version="1.0" encoding="UTF-8"?>', f"<{root} name={quoteattr(name)}>"]
        for item in items:
            if "subdir" in item:
                parts.append(f"<subdir name={quoteattr(item['subdir'])}><name>{escape(item['subdir'])}</name></subdir>")
                continue
            child = "container" if root == "account" else "object"
            fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in item.items())
            parts.append(f"<{child}>{fields}</{child}>")
        parts.append(f"</{root}>")
        body = "\n".join(parts[:2]) + "".join(parts[2:])
        body = body.encode()
    else:
        if not items:
            return Response(status_code=204, headers=headers)
        body = "".join((i.get("subdir") or i["name"]) + "\n" for i in items).encode()
    return Response(body, status_code=200, headers=headers)


def base_headers() -> dict:
    return {"X-Trans-Id": trans_id(), "Accept-Ranges": "bytes"}


def empty(status: int, headers: dict, content_type: str = "text/html; charset=UTF-8") -> Response:
    headers.setdefault("Content-Type", content_type)
    headers["Content-Length"] = "0"
    return Response(status_code=status, headers=headers)


# ---------------------------------------------------------------------------- info
capabilities.register("swift", {
    "version": "2.34.0", "max_file_size": MAX_FILE_SIZE, "max_meta_name_length": MAX_META_NAME,
    "max_meta_value_length": MAX_META_VALUE, "max_meta_count": MAX_META_COUNT,
    "max_meta_overall_size": MAX_META_OVERALL, "max_header_size": 8192, "extra_header_count": 0,
    "max_object_name_length": MAX_OBJECT_NAME, "max_container_name_length": MAX_CONTAINER_NAME,
    "max_account_name_length": 256, "container_listing_limit": LISTING_LIMIT,
    "account_listing_limit": LISTING_LIMIT, "strict_cors_mode": True, "allow_account_management": False,
    "account_autocreate": True, "valid_api_versions": ["v1", "v1.0"],
    "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": True}],
})


def storage_errors(handler):
    """Storage failures a handler did not map itself get Swift's answers: too few replicas
    written or readable (no quorum) is a 503, never a 500."""
    @functools.wraps(handler)
    def wrapped(req):
        try:
            return handler(req)
        except st.NotFoundError:
            raise SwiftError(404) from None
        except st.NotEmptyError:
            raise SwiftError(409) from None
        except st.EtagMismatch:
            raise SwiftError(422) from None
        except st.StorageError:
            logging.getLogger(__name__).warning("object storage unavailable: %s %s", req.method,
                                                 req.raw.url.path, exc_info=True)
            raise SwiftError(503) from None
    return wrapped


@api.route("/auth/v1.0", "GET")
@api.route("/auth/v1", "GET")
def tempauth_token(req):
    return features.tempauth.get_token(req)


@api.route("/crossdomain.xml", "GET")
def crossdomain(req):
    return features.cors.crossdomain(req)


@api.route("/healthcheck", ["GET", "HEAD"])
def healthcheck(req):
    """Swift's healthcheck middleware: `OK` without authentication."""
    return Response(b"" if req.method == "HEAD" else b"OK", headers={"X-Trans-Id": trans_id()},
                    media_type="text/plain")


@api.route("/info", ["GET", "HEAD"])
def info(req):
    """The capabilities document: `swift` plus one key per feature (`capabilities.register`)."""
    return Response(json.dumps(capabilities.document()), headers={"X-Trans-Id": trans_id()},
                    media_type="application/json; charset=utf-8")


# ---------------------------------------------------------------------------- accounts
def account_headers(account: str) -> dict:
    info = storage().account_info(account)
    now = st.timestamp()
    info = info or {"created_at": now, "put_timestamp": now, "metadata": {}, "container_count": 0,
                    "object_count": 0, "bytes_used": 0}
    headers = base_headers()
    headers.update({"X-Account-Container-Count": str(info["container_count"]),
                    "X-Account-Object-Count": str(info["object_count"]),
                    "X-Account-Bytes-Used": str(info["bytes_used"]),
                    "X-Timestamp": info["created_at"], "X-Put-Timestamp": info["put_timestamp"],
                    "X-Account-Storage-Policy-Policy-0-Container-Count": str(info["container_count"]),
                    "X-Account-Storage-Policy-Policy-0-Object-Count": str(info["object_count"]),
                    "X-Account-Storage-Policy-Policy-0-Bytes-Used": str(info["bytes_used"])})
    headers.update(info["metadata"])
    return headers


@api.route("/v1/{account}", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"], stream=True)
@api.route("/v1/{account}/", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"], stream=True)
@storage_errors
def account_endpoint(req):
    account = req.path_params["account"]
    method = req.method
    if method == "OPTIONS":
        return features.options(req, account)
    if ("bulk-delete" in req.query and method in ("POST", "DELETE")) or \
            (method == "PUT" and "extract-archive" in req.query):
        req.context  # noqa: B018  (401 without a valid token; each name is then authorized on its own)
        if method == "PUT":
            return bulk.extract_archive(req, account, "", req.query["extract-archive"])
        return bulk.bulk_delete(req, account)
    if method in ("PUT", "DELETE"):
        authorize(req, account, True)
        raise SwiftError(405)
    authorize(req, account, method == "POST")
    if method == "POST":
        storage().update_account_metadata(account, features.account_post(req, account, metadata_updates(
            req, "account", ("x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2"))))
        return empty(204, features.account_headers(req, account_headers(account)))
    features.account_read(req, account)
    headers = features.account_headers(req, account_headers(account))
    if method == "HEAD":
        return empty(204, headers, "text/plain; charset=utf-8")
    fmt = listing_format(req)
    items = storage().list_containers(account, **listing_options(req))
    for item in items:
        if "last_modified" in item:
            item["last_modified"] = iso(item["last_modified"])
    return listing_response(req, items, fmt, "account", account, headers)


# ---------------------------------------------------------------------------- containers
# ACLs: validated, stored, enforced and shown to owners only (acl.py).
CONTAINER_EXTRA = ("x-container-read", "x-container-write")


def container_headers(account: str, container: str) -> dict:
    info = storage().container_info(account, container)
    if info is None:
        raise SwiftError(404)
    headers = base_headers()
    headers.update({"X-Container-Object-Count": str(info["object_count"]),
                    "X-Container-Bytes-Used": str(info["bytes_used"]),
                    "X-Timestamp": info["created_at"], "X-Put-Timestamp": info["put_timestamp"],
                    "Last-Modified": http_date(info["put_timestamp"]), "X-Storage-Policy": "Policy-0"})
    headers.update(info["metadata"])
    return headers


def container_endpoint(req, account: str, container: str):
    method = req.method
    write = method in ("PUT", "POST", "DELETE")
    if method == "OPTIONS":
        return features.options(req, account, container)
    web = features.static_web(req, account, container) or features.form_post(req, account, container)
    if web is not None:  # staticweb sites (anonymous GET/HEAD), FormPost uploads (signed POST)
        return web
    authorize(req, account, write, container, use_acl=not write)
    check_container_name(container)
    store = storage()
    if method == "PUT" and "extract-archive" in req.query:
        return bulk.extract_archive(req, account, container, req.query["extract-archive"])
    if method == "PUT":
        created = store.create_container(account, container, features.container_write(
            req, account, container, metadata_updates(req, "container", CONTAINER_EXTRA)))
        return empty(201 if created else 202, base_headers())
    if method == "POST":
        try:
            store.update_container_metadata(account, container, features.container_write(
                req, account, container, metadata_updates(req, "container", CONTAINER_EXTRA)))
        except st.NotFoundError:
            raise SwiftError(404) from None
        return empty(204, base_headers())
    if method == "DELETE":
        try:
            store.delete_container(account, container)
        except st.NotFoundError:
            raise SwiftError(404) from None
        except st.NotEmptyError:
            raise SwiftError(409) from None
        return empty(204, base_headers())
    if method not in ("GET", "HEAD"):
        raise SwiftError(405)
    features.container_read(req, account, container)
    headers = features.container_headers(req, account, container, container_headers(account, container))
    if method == "HEAD":
        return empty(204, headers, "text/plain; charset=utf-8")
    fmt = listing_format(req)
    items = store.list_objects(account, container, **listing_options(req))
    features.container_listing(req, account, items, fmt)  # symlink_path
    for item in items:
        if "last_modified" in item:
            item["last_modified"] = iso(item["last_modified"])
    return listing_response(req, items, fmt, "container", container, headers)


@api.route("/v1/{account}/{container}", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"], stream=True)
@storage_errors
def container_route(req):
    return container_endpoint(req, req.path_params["account"], req.path_params["container"])


# ---------------------------------------------------------------------------- objects
OBJECT_EXTRA = ("content-disposition", "content-encoding", "x-object-manifest")


def object_meta(req) -> dict[str, str]:
    """The user metadata an object PUT/POST sets: `X-Object-Meta-*` (kept with an empty value, as
    Swift stores it), `Content-Disposition`, `Content-Encoding`."""
    return {k: v for k, v in metadata_updates(req, "object", OBJECT_EXTRA).items()
            if v or (k.startswith("X-Object-Meta-") and req.headers.get(k) is not None)}


def object_headers(meta: dict) -> dict:
    headers = base_headers()
    headers.update({"Content-Type": meta["content_type"], "Etag": meta["etag"],
                    "Last-Modified": http_date(meta["timestamp"]), "X-Timestamp": meta["timestamp"]})
    headers.update({k: v for k, v in meta.get("meta", {}).items() if not k.startswith("X-Object-Sysmeta-")})
    return headers


def _etags(value: str) -> list[str]:
    return [v.strip().strip('"') for v in value.split(",") if v.strip()]


def _parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def check_conditions(req, meta: dict, headers: dict) -> None:
    etag = meta["etag"]
    last_modified = math.ceil(float(meta["timestamp"]))
    if_match = req.headers.get("if-match")
    if if_match is not None and "*" not in _etags(if_match) and etag not in _etags(if_match):
        raise SwiftError(412, headers={k: v for k, v in headers.items() if k in ("Etag", "Last-Modified", "X-Trans-Id")})
    if_none_match = req.headers.get("if-none-match")
    not_modified = False
    if if_none_match is not None:
        tags = _etags(if_none_match)
        not_modified = "*" in tags or etag in tags
    else:
        since = req.headers.get("if-modified-since")
        when = _parse_http_date(since) if since else None
        if when is not None and last_modified <= when:
            not_modified = True
    if not_modified:
        raise _NotModified(headers)
    unmodified = req.headers.get("if-unmodified-since")
    when = _parse_http_date(unmodified) if unmodified else None
    if when is not None and last_modified > when:
        raise SwiftError(412)


class _NotModified(Exception):
    def __init__(self, headers):
        self.headers = headers


def range_answer(req, headers: dict, size: int, etag: str, timestamp: str,
                 read) -> tuple[int, list[tuple[int, int]], object]:
    """Status, the [start, stop) spans read and a body factory of a GET/HEAD after `Range`
    (ranges.py): 200 + the whole, 206 + one range, 206 + multipart/byteranges, or a 416 error.
    `read(start, stop)` yields the bytes; `headers` gets Content-Length (and Content-Range, or
    the multipart Content-Type)."""
    selected = ranges.select(req, size, etag, timestamp)
    if selected == []:
        raise SwiftError(416, headers={"Content-Range": f"bytes */{size}", "X-Trans-Id": headers["X-Trans-Id"]})
    if not selected:
        headers["Content-Length"] = str(size)
        return 200, [(0, size)], (lambda: read(0, size))
    if len(selected) == 1:
        start, stop = selected[0]
        headers["Content-Range"] = ranges.content_range(start, stop, size)
        headers["Content-Length"] = str(stop - start)
        return 206, selected, (lambda: read(start, stop))
    content_type, length, body = ranges.multipart(selected, headers.get("Content-Type") or "application/octet-stream",
                                                  size, read)
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(length)
    return 206, selected, (lambda: body)


def object_endpoint(req, account: str, container: str, obj: str):
    method = req.method
    if method == "OPTIONS":
        return features.options(req, account, container, obj)
    form = features.form_post(req, account, container, obj)
    if form is not None:
        return form
    if method in ("GET", "HEAD"):
        web = features.static_web(req, account, container, obj)
        if web is not None:
            return web
        authorize(req, account, False, container, obj)
        return get_object(req, account, container, obj)
    if method not in ("PUT", "POST", "DELETE", "COPY"):
        raise SwiftError(405)
    authorize(req, account, True, container, obj)
    check_container_name(container)
    check_object_name(obj)
    store = storage()
    if method == "PUT" and "extract-archive" in req.query:
        return bulk.extract_archive(req, account, f"{container}/{obj}", req.query["extract-archive"])
    if method == "PUT" and req.query.get("multipart-manifest") == "put":
        return slo.put_manifest(req, account, container, obj)
    if method in ("PUT", "POST", "COPY"):
        slo.check_reserved(req)  # X-Static-Large-Object is reserved; X-Object-Manifest well formed
    if method == "PUT":
        try:
            return put_object(req, account, container, obj)
        except SwiftError as err:
            # Let a client still sending its body read our answer (as the image service does).
            if err.code not in (413, 499) and req.stream is not None and not req.stream.done:
                req.stream.drain(1 << 24)
            raise
    if method == "COPY":
        dest = req.headers.get("destination")
        if not dest:
            raise SwiftError(412, "You must specify a Destination header")
        dest_account = req.headers.get("destination-account", account)
        d_container, d_obj = _split_copy_path(dest, "Destination")
        authorize(req, dest_account, True, d_container, d_obj)
        return copy_object(req, account, container, obj, dest_account, d_container, d_obj)
    if method == "POST":
        if store.container_info(account, container) is None:
            raise SwiftError(404)
        try:
            old, _ = store.head_object(account, container, obj)
        except st.NotFoundError:
            raise SwiftError(404) from None
        updates = {"meta": object_meta(req)}
        updates["meta"].update(slo.preserved(old))
        features.object_post(req, account, container, obj, old, updates)
        if req.headers.get("content-type"):
            updates["content_type"] = req.headers["content-type"]
        store.post_object(account, container, obj, updates)
        features.object_posted(req, account, container, obj, old, updates)
        title_, text = "Accepted", "The request is accepted for processing."
        return Response(f"<html><h1>{title_}</h1><p>{text}</p></html>", status_code=202, headers=base_headers(),
                        media_type="text/html; charset=UTF-8")
    # DELETE
    if req.query.get("multipart-manifest") == "delete":
        return slo.delete_manifest(req, account, container, obj)
    if features.object_delete(req, account, container, obj):  # versioning restored a version
        return empty(204, base_headers())
    try:
        store.delete_object(account, container, obj)
    except st.NotFoundError:
        raise SwiftError(404) from None
    return empty(204, base_headers())


def get_object(req, account, container, obj):
    store = storage()
    # A whole-object GET checks the replica's MD5 first, so a corrupt one is skipped (storage.py).
    whole = req.method == "GET" and not req.headers.get("range")
    try:
        meta, path = features.object_read(req, account, container, obj,  # expiry, symlinks
                                          verify_max=st.GET_VERIFY_MAX if whole else st.VERIFY_MAX)
    except st.NotFoundError:
        raise SwiftError(404) from None
    headers = features.object_headers(req, account, container, obj, meta, object_headers(meta))
    large = slo.handle_get(req, account, meta, path, headers)  # SLO / DLO manifests
    if large is not None:
        return large
    try:
        check_conditions(req, meta, headers)
    except _NotModified as nm:
        hdrs = {k: v for k, v in nm.headers.items() if k in ("Etag", "Last-Modified", "X-Timestamp", "X-Trans-Id")}
        hdrs["Content-Length"] = "0"
        return Response(status_code=304, headers=hdrs)
    status, _, body = range_answer(req, headers, meta["size"], meta["etag"], meta["timestamp"],
                                   lambda start, stop: store.iter_object(path, meta, start, stop))
    if req.method == "HEAD":
        return Response(status_code=status, headers=headers)
    # The stored Content-Type goes out as stored (no media_type: Starlette would add a charset).
    return StreamingResponse(body(), status_code=status, headers=headers)


def _split_copy_path(value: str, what: str) -> tuple[str, str]:
    value = unquote(value).lstrip("/")
    container, _, obj = value.partition("/")
    if not container or not obj:
        raise SwiftError(412, f"{what} header must be of the form <container name>/<object name>")
    check_container_name(container)
    check_object_name(obj)
    return container, obj


def _request_body(req):
    """The body's network chunks as they came (no joining copy; the engine hashes and writes
    pieces of any size), 4 MiB per hop from the event loop to this thread."""
    if not req.stream:
        return iter(())
    chunks = getattr(req.stream, "chunks", None)  # FormPost / bulk sub-requests hand in plain iterators
    return chunks(PUT_BATCH) if chunks is not None else iter(req.stream)


def put_object(req, account, container, obj):
    store = storage()
    copy_from = req.headers.get("x-copy-from")
    if copy_from:
        s_container, s_obj = _split_copy_path(copy_from, "X-Copy-From")
        s_account = req.headers.get("x-copy-from-account", account)
        return copy_object(req, s_account, s_container, s_obj, account, container, obj, via_put=True)
    length = req.headers.get("content-length")
    chunked = "chunked" in req.headers.get("transfer-encoding", "").lower()
    if length is None and not chunked:
        raise SwiftError(411)
    if length is not None:
        if not length.isdigit():
            raise SwiftError(400, "Invalid Content-Length")
        length = int(length)
        if length > MAX_FILE_SIZE:
            raise SwiftError(413)
    if store.container_info(account, container) is None:
        raise SwiftError(404)
    if_none_match = req.headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise SwiftError(400, "If-None-Match only supports *")
        try:
            store.head_object(account, container, obj)
            raise SwiftError(412)
        except st.NotFoundError:
            pass
    content_type = req.headers.get("content-type")
    if not content_type or req.headers.get("x-detect-content-type", "").lower() in TRUE:
        content_type = mimetypes.guess_type(obj)[0] or "application/octet-stream"
    metadata = {"content_type": content_type,
                "meta": object_meta(req)}
    left = features.object_put(req, account, container, obj, length, metadata)  # symlink, expiry, quotas, versions
    body = features.quotas.limit(_limited(_request_body(req), MAX_FILE_SIZE), left)
    try:
        meta = store.put_object(account, container, obj, body, metadata, expected_etag=req.headers.get("etag"),
                                expected_length=length)
    except st.EtagMismatch:
        raise SwiftError(422) from None
    except ClientDisconnect:
        raise SwiftError(499) from None
    except st.NotFoundError:
        raise SwiftError(404) from None
    except st.StorageError as exc:
        if "shorter" in str(exc):
            raise SwiftError(499) from None
        raise SwiftError(503) from None
    features.object_written(account, container, obj, meta)
    headers = base_headers()
    headers.update({"Etag": meta["etag"], "Last-Modified": http_date(meta["timestamp"])})
    return empty(201, headers)


def _limited(chunks, limit):
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise SwiftError(413)
        yield chunk


def copy_object(req, s_account, s_container, s_obj, d_account, d_container, d_obj, via_put=False):
    store = storage()
    authorize(req, s_account, False, s_container, s_obj)
    try:
        src, path = store.head_object(s_account, s_container, s_obj)
    except st.NotFoundError:
        raise SwiftError(404) from None
    check_conditions_safe(req, src)
    if store.container_info(d_account, d_container) is None:
        raise SwiftError(404)
    fresh = req.headers.get("x-fresh-metadata", "").lower() in TRUE
    body, user_meta, system_meta = slo.copy_source(req, s_account, src, path)  # large objects: content
    meta = {} if fresh else user_meta
    updates = metadata_updates(req, "object", OBJECT_EXTRA)
    meta.update(updates)
    meta.update(system_meta)
    removed = {k for k, v in updates.items() if v == "" and req.headers.get(k) is None}
    meta = {k: v for k, v in meta.items() if k not in removed and (v or k.startswith("X-Object-Meta-"))}
    features.object_copy(req, s_account, s_container, s_obj, d_account, d_container, d_obj, src, meta)
    content_type = req.headers.get("content-type") if (via_put or req.headers.get("content-type")) else None
    if via_put and req.headers.get("content-type") in (None, "", "application/octet-stream") and not fresh:
        content_type = None
    metadata = {"content_type": content_type or src["content_type"], "meta": meta}
    try:
        result = store.put_object(d_account, d_container, d_obj, body, dict(metadata))
    except st.SourceCorrupt:  # that source replica is quarantined now: once more, from the next one
        src, path = store.head_object(s_account, s_container, s_obj)
        body, _, _ = slo.copy_source(req, s_account, src, path)
        result = store.put_object(d_account, d_container, d_obj, body, dict(metadata))
    features.object_written(d_account, d_container, d_obj, result)
    headers = base_headers()
    headers.update({"Etag": result["etag"], "Last-Modified": http_date(result["timestamp"]),
                    "X-Copied-From": quote(f"{s_container}/{s_obj}"),
                    "X-Copied-From-Last-Modified": http_date(src["timestamp"])})
    headers.update({k: v for k, v in meta.items() if k.startswith("X-Object-Meta-")})  # as Swift's copy answers
    if s_account != d_account:
        headers["X-Copied-From-Account"] = quote(s_account)
    return empty(201, headers)


def check_conditions_safe(req, meta):
    """Conditional headers of a copy apply to the source; any failure is a 412."""
    try:
        check_conditions(req, meta, {})
    except _NotModified:
        raise SwiftError(412) from None


@api.route("/v1/{account}/{container}/{obj:path}", ["GET", "HEAD", "POST", "PUT", "DELETE", "COPY", "OPTIONS"],
           stream=True)
@storage_errors
def object_route(req):
    account, container, obj = (req.path_params[k] for k in ("account", "container", "obj"))
    if obj == "":
        return container_endpoint(req, account, container)
    return object_endpoint(req, account, container, obj)


from pocketstack.object import bulk, dlo, slo  # noqa: E402,F401  (large objects, bulk; register in /info)
from pocketstack.object import acl, features  # noqa: E402  (access control, middleware features)
