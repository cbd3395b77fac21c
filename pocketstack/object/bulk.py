"""Bulk operations: `?bulk-delete` and `?extract-archive=tar|tar.gz|tar.bz2`.

Both answer 200 with a body that tells what happened (upstream's shape, in the `Accept`ed
format: text/plain, application/json, application/xml or text/xml):

    {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 6,
     "Number Not Found": 0, "Errors": [["/cont/obj", "409 Conflict"], ...]}

Bulk delete (POST or DELETE on the account): the body lists URL-quoted `/container/object` or
`/container` names, one a line, at most `max_deletes_per_request`; objects go first, then the
(empty) containers. Extract archive (PUT on the account, a container or a pseudo-folder): the
body is a tar stream, read as it arrives (never held whole); each regular file becomes an
object, containers are created as needed. Member names are only ever object *names* (the
storage engine hashes them into paths), and names with `..` or `.` components, NUL, invalid
UTF-8 or over the length limits are reported as errors without writing anything.
"""
from __future__ import annotations

import json
import mimetypes
import tarfile
import zlib
from typing import Iterable
from urllib.parse import quote, unquote_to_bytes
from xml.sax.saxutils import escape

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from pocketstack.common import events
from pocketstack.common.errors import ApiError
from pocketstack.object import api as A
from pocketstack.object import capabilities, features
from pocketstack.object import storage as st

MAX_DELETES_PER_REQUEST = 10000
MAX_FAILED_DELETES = 1000
MAX_CONTAINERS_PER_EXTRACTION = 10000
MAX_FAILED_EXTRACTIONS = 1000
MAX_PATH_LENGTH = A.MAX_OBJECT_NAME + A.MAX_CONTAINER_NAME + 2
ACCEPTABLE = ("text/plain", "application/json", "application/xml", "text/xml")
ARCHIVES = {"tar": "", "tar.gz": "gz", "tgz": "gz", "tar.bz2": "bz2"}

capabilities.register("bulk_delete", {"max_deletes_per_request": MAX_DELETES_PER_REQUEST,
                                      "max_failed_deletes": MAX_FAILED_DELETES})
capabilities.register("bulk_upload", {"max_containers_per_extraction": MAX_CONTAINERS_PER_EXTRACTION,
                                      "max_failed_extractions": MAX_FAILED_EXTRACTIONS})

STATUS = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized",
          403: "403 Forbidden", 404: "404 Not Found", 406: "406 Not Acceptable", 409: "409 Conflict",
          411: "411 Length Required", 412: "412 Precondition Failed", 413: "413 Request Entity Too Large",
          499: "499 Client Disconnect", 500: "500 Internal Error", 502: "502 Bad Gateway",
          503: "503 Service Unavailable"}


class BulkError(Exception):
    def __init__(self, code: int, body: str = ""):
        super().__init__(body)
        self.code, self.body = code, body


# ---------------------------------------------------------------------------- response bodies
def best_format(req) -> str | None:
    """The best of ACCEPTABLE for the Accept header (text/plain without one); None: none fits."""
    accept = req.headers.get("accept")
    if not accept:
        return "text/plain"
    ranked = []
    for i, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if q > 0 and media:
            ranked.append((-q, i, media.lower()))
    for _, _, media in sorted(ranked):
        for fmt in ACCEPTABLE:
            if media in (fmt, "*/*", "*", fmt.split("/")[0] + "/*"):
                return fmt
    return None


def result_body(fmt: str | None, result: dict, errors: list, root: str) -> bytes:
    """Upstream's bulk response body: JSON, XML (`<delete>`/`<extract>`) or `Key: value` lines."""
    if fmt == "application/json":
        return json.dumps({**result, "Errors": errors}).encode("ascii")
    if fmt and fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(result):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(result[key]))}</{tag}>\n")
        out.append("<errors>\n")
        for name, status in errors:
            out.append(f"<object><name>{escape(name)}</name><status>{escape(status)}</status></object>\n")
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode()
    lines = [f"{key}: {result[key]}\n" for key in sorted(result)]
    lines.append("Errors:\n")
    lines.extend(f"{name}, {status}\n" for name, status in errors)
    return "".join(lines).encode()


def _respond(fmt: str | None, result: dict, errors: list, root: str) -> Response:
    body = result_body(fmt, result, errors, root)
    if fmt and fmt.endswith("/xml"):
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
    return Response(body, status_code=200, headers=A.base_headers(),
                    media_type=f"{fmt or 'text/plain'}; charset=utf-8")


# ---------------------------------------------------------------------------- delete
def valid_name(name: str) -> bool:
    """UTF-8 without NUL (upstream's check_utf8): anything else is no object's name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in name


def delete_response(req, account: str, items: Iterable[dict], fmt: str | None) -> Response:
    """Delete `items` ({"name": "/c[/o]", "error": (code, text)?}): objects first, then containers."""
    result = {"Response Status": STATUS[200], "Response Body": "", "Number Deleted": 0, "Number Not Found": 0}
    errors: list[list[str]] = []
    failed_type = 400
    store = A.storage()
    try:
        if fmt is None:
            raise BulkError(406)
        items = list(items)
        containers = []
        for phase in ("objects", "containers"):
            for item in (items if phase == "objects" else containers):
                name = item["name"]
                stripped = name.strip("/")
                if not stripped:
                    continue
                if phase == "objects" and "/" not in stripped:
                    containers.append(item)
                    continue
                if "error" in item:
                    code, text = item["error"]
                    if code == 404:
                        result["Number Not Found"] += 1
                    else:
                        errors.append([quote(name), text])
                    continue
                container, _, obj = name.lstrip("/").partition("/")
                if not valid_name(name):
                    errors.append([quote(name, errors="surrogateescape"), STATUS[412]])
                    continue
                if len(container.encode()) > A.MAX_CONTAINER_NAME or len(obj.encode()) > A.MAX_OBJECT_NAME:
                    errors.append([quote(name), STATUS[400]])
                    continue
                try:
                    # each name with the caller's own rights (an ACL may grant one container)
                    A.authorize(req, account, True, container, obj or None, use_acl=bool(obj))
                    if obj:
                        if not features.object_delete(req, account, container, obj):  # versioning
                            store.delete_object(account, container, obj)
                    else:
                        store.delete_container(account, container)
                    result["Number Deleted"] += 1
                except ApiError as err:
                    if err.code == 404:
                        result["Number Not Found"] += 1
                    else:
                        errors.append([quote(name), STATUS.get(err.code, str(err.code))])
                except st.NotFoundError:
                    result["Number Not Found"] += 1
                except st.NotEmptyError:
                    errors.append([quote(name), STATUS[409]])
                except st.StorageError:
                    failed_type = 502
                    errors.append([quote(name), STATUS[503]])
                if len(errors) >= MAX_FAILED_DELETES:
                    raise BulkError(400, "Max delete failures exceeded")
        if errors:
            result["Response Status"] = STATUS[failed_type]
        elif not (result["Number Deleted"] or result["Number Not Found"]):
            result["Response Status"] = STATUS[400]
            result["Response Body"] = "Invalid bulk delete."
    except BulkError as err:
        result["Response Status"] = STATUS.get(err.code, str(err.code))
        result["Response Body"] = err.body
    except A.SwiftError as err:
        result["Response Status"] = STATUS.get(err.code, str(err.code))
        result["Response Body"] = err.explanation or ""
    events.emit("object.bulk.deleted", {"account": account, "deleted": result["Number Deleted"],
                                        "not_found": result["Number Not Found"], "errors": len(errors)},
                context=req.optional_context)
    return _respond(fmt, result, errors, "delete")


def _names_from_body(req) -> list[dict]:
    """The request body's names, one a line, URL-unquoted; read in pieces, never whole."""
    length = req.headers.get("content-length")
    if length is None and "chunked" not in req.headers.get("transfer-encoding", "").lower():
        raise BulkError(411)
    names: list[dict] = []
    line = b""
    for chunk in (req.stream if req.stream is not None else [req.body]):
        line += chunk
        while b"\n" in line:
            raw, line = line.split(b"\n", 1)
            _add_name(names, raw)
        if len(line) > MAX_PATH_LENGTH * 2:
            raise BulkError(400, "Invalid File Name")
    _add_name(names, line)
    return names


def _add_name(names: list, raw: bytes) -> None:
    raw = raw.strip()
    if not raw:
        return
    if len(raw) > MAX_PATH_LENGTH * 2:
        raise BulkError(400, "Invalid File Name")
    name = unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
    names.append({"name": name})
    if len(names) > MAX_DELETES_PER_REQUEST:
        raise BulkError(413, f"Maximum Bulk Deletes: {MAX_DELETES_PER_REQUEST} per request")


def bulk_delete(req, account: str) -> Response:
    fmt = best_format(req)
    try:
        if fmt is None:
            raise BulkError(406)
        incoming = req.headers.get("content-type")
        if incoming and not incoming.startswith("text/plain"):
            raise BulkError(406)
        names = _names_from_body(req)
    except ClientDisconnect:
        raise A.SwiftError(499) from None
    except BulkError as err:
        if req.stream is not None and not req.stream.done:
            req.stream.drain(1 << 24)
        result = {"Response Status": STATUS.get(err.code, str(err.code)), "Response Body": err.body,
                  "Number Deleted": 0, "Number Not Found": 0}
        return _respond(fmt, result, [], "delete")
    return delete_response(req, account, names, fmt)


# ---------------------------------------------------------------------------- extract
class _StreamFile:
    """A read()-able view of the request body for tarfile's streaming mode (slices only what
    each read asks for, so a 1 MiB piece read 10 KiB at a time is not copied over and over)."""

    def __init__(self, req):
        self.it = iter(req.stream) if req.stream is not None else iter([req.body])
        self.buf = b""
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n != 0:
            if self.pos >= len(self.buf):
                try:
                    self.buf, self.pos = next(self.it), 0
                except StopIteration:
                    break
                continue
            take = len(self.buf) - self.pos if n < 0 else min(n, len(self.buf) - self.pos)
            parts.append(self.buf[self.pos:self.pos + take])
            self.pos += take
            if n > 0:
                n -= take
        return b"".join(parts)


def _member_chunks(fh, size: int):
    left = size
    while left > 0:
        data = fh.read(min(st.CHUNK, left))
        if not data:
            raise tarfile.ReadError("unexpected end of data")
        left -= len(data)
        yield data


def _check_member_name(path: str) -> int | None:
    """An error status for a bad object path from an archive, None when fine."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return 412
    if "\x00" in path:
        return 412
    container, _, obj = path.partition("/")
    if not obj or any(part in ("..", ".") for part in path.split("/")):
        return 400
    if len(container.encode()) > A.MAX_CONTAINER_NAME or len(obj.encode()) > A.MAX_OBJECT_NAME:
        return 400
    return None


def extract_archive(req, account: str, base: str, kind: str) -> Response:
    compress = ARCHIVES.get(kind.lower().strip("."))
    if compress is None:
        raise A.SwiftError(400, "Unsupported archive format")
    fmt = best_format(req)
    result = {"Response Status": STATUS[201], "Response Body": "", "Number Files Created": 0}
    errors: list[list[str]] = []
    store = A.storage()
    failed_type = 400
    try:
        if fmt is None:
            raise BulkError(406)
        if req.headers.get("content-length") is None and \
                "chunked" not in req.headers.get("transfer-encoding", "").lower():
            raise BulkError(411)
        base = base.rstrip("/")
        if base and _check_member_name(base + "/x") is not None:
            raise BulkError(400, "Invalid upload path")
        known: set[str] = set()
        created = 0
        user_meta = {k: v for k, v in A.metadata_updates(req, "object").items()  # X-Object-Meta-* only
                     if v and k.startswith("X-Object-Meta-")}
        req_type = req.headers.get("content-type")
        detect = req.headers.get("x-detect-content-type", "").lower() in A.TRUE
        tar = tarfile.open(mode="r|" + compress, fileobj=_StreamFile(req))
        while len(errors) < MAX_FAILED_EXTRACTIONS:
            info = tar.next()
            if info is None:
                break
            if not info.isfile():
                continue
            path = info.name
            if path.startswith("./"):
                path = path[2:]
            path = path.lstrip("/")
            if base:
                path = base + "/" + path
            if "/" not in path:
                continue  # a file at the top of an account-level archive has no container
            shown = quote(path[:MAX_PATH_LENGTH], errors="surrogateescape")
            bad = _check_member_name(path)
            if bad is not None:
                errors.append([shown, STATUS[bad]])
                continue
            if info.size > A.MAX_FILE_SIZE:
                errors.append([shown, STATUS[413]])
                continue
            container, _, obj = path.partition("/")
            try:
                if container not in known:
                    if store.container_info(account, container) is None:
                        A.authorize(req, account, True, container, use_acl=False)  # owners create containers
                        store.create_container(account, container, {})
                        created += 1
                        if created > MAX_CONTAINERS_PER_EXTRACTION:
                            raise BulkError(400, f"More than {MAX_CONTAINERS_PER_EXTRACTION} containers to "
                                                 "create from tar.")
                    known.add(container)
                A.authorize(req, account, True, container, obj)
            except ApiError as err:
                errors.append([shown, STATUS.get(err.code, str(err.code))])
                continue  # a streamed tar skips the unread member's data on next()
            meta = dict(user_meta)
            content_type = None if detect else req_type
            for key, value in info.pax_headers.items():
                for prefix in ("SCHILY.xattr.user.", "LIBARCHIVE.xattr.user."):
                    if key == prefix + "mime_type":
                        content_type = value
                    elif key.startswith(prefix + "meta."):
                        meta[A.title("x-object-meta-" + key[len(prefix + "meta."):])] = value
            if not content_type or content_type.startswith("application/x-www-form-urlencoded"):
                content_type = mimetypes.guess_type(obj)[0] or "application/octet-stream"
            fh = tar.extractfile(info)
            metadata = {"content_type": content_type, "meta": meta}
            try:
                # as a PUT would: expiry headers, quotas, the previous version archived
                left = features.object_put(req, account, container, obj, info.size, metadata)
                written = store.put_object(account, container, obj,
                                           features.quotas.limit(_member_chunks(fh, info.size), left),
                                           metadata, expected_length=info.size)
                features.object_written(account, container, obj, written)
                result["Number Files Created"] += 1
            except ApiError as err:
                errors.append([shown, STATUS.get(err.code, str(err.code))])
            except st.NotFoundError:
                errors.append([shown, STATUS[404]])
            except st.StorageError:
                failed_type = 502
                errors.append([shown, STATUS[503]])
        if errors:
            result["Response Status"] = STATUS[failed_type]
        elif not result["Number Files Created"]:
            result["Response Status"] = STATUS[400]
            result["Response Body"] = "Invalid Tar File: No Valid Files"
    except BulkError as err:
        result["Response Status"] = STATUS.get(err.code, str(err.code))
        result["Response Body"] = err.body
    except ClientDisconnect:
        raise A.SwiftError(499) from None
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:  # bz2 data errors are OSErrors
        result["Response Status"] = STATUS[400]
        result["Response Body"] = f"Invalid Tar File: {exc}"
    if req.stream is not None and not req.stream.done:
        req.stream.drain(1 << 30)  # the rest of a bad or partly used archive
    events.emit("object.archive.extracted", {"account": account, "path": base,
                                             "created": result["Number Files Created"], "errors": len(errors)},
                context=req.optional_context)
    return _respond(fmt, result, errors, "extract")
