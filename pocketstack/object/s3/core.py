"""What the S3 operations share: the caller and its policy check, bucket and key rules,
the mapping of S3 headers onto Swift object metadata, and the bucket-name registry.

Buckets are the containers of the caller's account `AUTH_<project_id>`, read and written
through `storage.Storage` (the same data the Swift API serves). User metadata
`x-amz-meta-<name>` is stored as Swift's `X-Object-Meta-<Name>`, so `swift stat` shows it;
S3 returns names lower-cased, as AWS does.

The registry (`<state_dir>/object/s3-buckets.db`, one SQLite table name -> account) gives
bucket names S3's global namespace for the buckets S3 creates: another project's CreateBucket
of a taken name is BucketAlreadyExists, and its requests to that bucket are AccessDenied
rather than NoSuchBucket. A row whose container is gone (deleted through Swift) no longer
counts. Containers created through the Swift API are not registered (per-project names).
"""
from __future__ import annotations

import mimetypes
import re
import sqlite3
import threading
from pathlib import Path

from pocketstack.common.runtime import current
from pocketstack.object import storage as st
from pocketstack.object.s3 import auth
from pocketstack.object.s3.xml import S3Error

MAX_OBJECT_SIZE = 5 * 1024 ** 3  # a single PUT, as AWS
MAX_KEY_LENGTH = 1024
MAX_USER_META = 2048
SEGMENTS_SUFFIX = "+segments"
# The multipart ETag ("<md5 of the parts' md5s>-<parts>") of a completed upload.
S3_ETAG_META = "X-Object-Sysmeta-S3api-Etag"
# Headers stored with an object and returned on GET/HEAD (as Swift keeps them).
EXTRA_HEADERS = ("content-disposition", "content-encoding", "content-language", "cache-control", "expires")

_STRICT_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_LENIENT_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def storage() -> st.Storage:
    from pocketstack.object.service import get_storage

    return get_storage()


def caller(req) -> auth.Caller:
    found = req.state.get("s3_caller")
    if found is None:
        found = req.state["s3_caller"] = auth.authenticate(req)
    return found


def authorize(req, write: bool) -> auth.Caller:
    """The signed caller, allowed to read (or write) its project's account by the object
    store's policy (`object_store:read` / `object_store:write`), else AccessDenied."""
    who = caller(req)
    rule = "object_store:write" if write else "object_store:read"
    if not current().enforcer.check(rule, {"project_id": who.project_id}, who.policy_creds()):
        raise S3Error("AccessDenied")
    return who


def setting(key: str, default: str) -> str:
    return current().config.get("s3", key, default) or default


# ---------------------------------------------------------------------------- names
def check_bucket_name(name: str, strict: bool = False) -> None:
    """Names S3 can address: DNS-style for new buckets (`strict`); existing Swift containers
    with upper case or underscores stay reachable. '+' never is (segments containers)."""
    ok = bool(_LENIENT_BUCKET.match(name))
    if strict:
        ok = bool(_STRICT_BUCKET.match(name)) and ".." not in name and ".-" not in name \
            and "-." not in name and not _IP.match(name)
    if not ok:
        raise S3Error("InvalidBucketName", BucketName=name)


def check_key(key: str) -> None:
    if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_LENGTH:
        raise S3Error("KeyTooLongError", Size=str(len(key.encode("utf-8", "surrogateescape"))),
                      MaxSizeAllowed=str(MAX_KEY_LENGTH))


def require_bucket(req, bucket: str, write: bool = False) -> tuple[auth.Caller, dict]:
    """Authorize, then the bucket's container info; NoSuchBucket, or AccessDenied when the
    name is another project's S3 bucket."""
    who = authorize(req, write)
    check_bucket_name(bucket)
    info = storage().container_info(who.account, bucket)
    if info is None:
        owner = registry().owner(bucket)
        if owner and owner != who.account and storage().container_info(owner, bucket) is not None:
            raise S3Error("AccessDenied")
        raise S3Error("NoSuchBucket", BucketName=bucket)
    return who, info


def check_canned_acl(req) -> None:
    """Only private objects and buckets exist here: other canned ACLs are refused, not ignored."""
    acl = req.headers.get("x-amz-acl")
    if acl is not None and acl not in ("private", "bucket-owner-full-control", "bucket-owner-read"):
        raise S3Error("NotImplemented", f"The canned ACL '{acl}' is not supported: objects and buckets are "
                      "private to their project.", Header="x-amz-acl")
    for name in req.headers:
        if name.lower().startswith("x-amz-grant-"):
            raise S3Error("NotImplemented", "x-amz-grant-* headers are not supported.", Header=name)


# ---------------------------------------------------------------------------- metadata
def title(name: str) -> str:
    return "-".join(p.capitalize() for p in name.split("-"))


def metadata_from_headers(req) -> dict[str, str]:
    """`x-amz-meta-*` (as X-Object-Meta-*) and the stored standard headers of a request."""
    out: dict[str, str] = {}
    size = 0
    for name, value in req.headers.items():
        lname = name.lower()
        if lname.startswith("x-amz-meta-"):
            key = lname[len("x-amz-meta-"):]
            if not key:
                raise S3Error("InvalidArgument", "A metadata name cannot be empty.", ArgumentName=name)
            size += len(key.encode()) + len(value.encode())
            out[title("x-object-meta-" + key)] = value
        elif lname in EXTRA_HEADERS:
            if lname == "content-encoding":
                value = ",".join(v for v in (x.strip() for x in value.split(",")) if v and v != "aws-chunked")
                if not value:
                    continue
            out[title(lname)] = value
    if size > MAX_USER_META:
        raise S3Error("MetadataTooLarge", Size=str(size), MaxSizeAllowed=str(MAX_USER_META))
    return out


def content_type_for(req, key: str) -> str:
    value = req.headers.get("content-type")
    if value:
        return value
    return mimetypes.guess_type(key)[0] or "binary/octet-stream"


def etag_of(meta: dict) -> str:
    """The object's S3 ETag (unquoted): the multipart one of a completed upload, else the MD5."""
    return (meta.get("meta") or {}).get(S3_ETAG_META) or meta["etag"]


def object_headers(meta: dict) -> dict[str, str]:
    from pocketstack.object.s3.xml import http_date

    headers = {"ETag": f'"{etag_of(meta)}"', "Last-Modified": http_date(meta["timestamp"]),
               "Content-Type": meta.get("content_type") or "binary/octet-stream", "Accept-Ranges": "bytes"}
    for key, value in (meta.get("meta") or {}).items():
        lkey = key.lower()
        if lkey.startswith("x-object-meta-"):
            headers["x-amz-meta-" + lkey[len("x-object-meta-"):]] = value
        elif lkey in EXTRA_HEADERS:
            headers[key] = value
    return headers


def stored_metadata(meta: dict) -> dict[str, str]:
    """The user metadata and stored headers of an object, to carry over in a copy."""
    return {k: v for k, v in (meta.get("meta") or {}).items()
            if k.lower().startswith("x-object-meta-") or k.lower() in EXTRA_HEADERS}


# ---------------------------------------------------------------------------- registry
class Registry:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bucket (name TEXT PRIMARY KEY, account TEXT NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def owner(self, name: str) -> str | None:
        conn = self._conn()
        try:
            row = conn.execute("SELECT account FROM bucket WHERE name = ?", (name,)).fetchone()
        finally:
            conn.close()
        return row[0] if row else None

    def claim(self, name: str, account: str) -> bool:
        """Take `name` for `account` unless another account holds it with a live container."""
        conn = self._conn()
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT account FROM bucket WHERE name = ?", (name,)).fetchone()
                if row and row[0] != account and storage().container_info(row[0], name) is not None:
                    return False
                conn.execute("INSERT OR REPLACE INTO bucket (name, account) VALUES (?, ?)", (name, account))
            return True
        finally:
            conn.close()

    def release(self, name: str, account: str) -> None:
        conn = self._conn()
        try:
            with conn:
                conn.execute("DELETE FROM bucket WHERE name = ? AND account = ?", (name, account))
        finally:
            conn.close()


_registry: Registry | None = None
_registry_lock = threading.Lock()


def registry() -> Registry:
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry(storage().root / "s3-buckets.db")
        return _registry
