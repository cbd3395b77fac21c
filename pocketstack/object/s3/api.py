"""The S3 REST API, path-style: `/s3/` (service), `/s3/<bucket>`, `/s3/<bucket>/<key>`.

Routes only decide which operation a request is (method + sub-resource query parameters,
as S3 does) and turn storage results into S3's XML and headers. Authentication is
`auth.py`'s, the multipart operations `multipart.py`'s. Every route streams (`stream=True`):
object bodies go to the storage in pieces; small XML documents are read whole after their
signature is checked.
"""
from __future__ import annotations

import base64
import datetime
import email.utils
import math
from urllib.parse import quote, unquote

from starlette.responses import Response, StreamingResponse

from pocketstack.common import events
from pocketstack.common.web import Api
from pocketstack.object import storage as st
from pocketstack.object.s3 import auth, core, multipart
from pocketstack.object.s3.core import storage
from pocketstack.object.s3.xml import E, NotModified, S3Error, child_text, children, http_date, iso8601, \
    parse, render_error, xml_response

api = Api("s3", max_body=1 << 16, error_renderer=render_error)

MAX_KEYS = 1000


def _owner(who) -> E:
    return E("Owner", E("ID", who.project_id), E("DisplayName", who.project_name or who.project_id))


def _drain(req) -> None:
    """Let a client still sending its body read our error. Always, even after
    `Expect: 100-continue`: skipping it there made botocore's PUTs that fail early (412,
    NoSuchUpload) come back as bare 400s in our tests."""
    if req.stream is None or req.stream.done:
        return
    try:
        req.stream.drain(1 << 24)
    except Exception:  # noqa: BLE001 - the client is gone; nothing to answer
        pass


# ---------------------------------------------------------------------------- routes
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


@api.route("/", METHODS, stream=True)
def service_route(req):
    if req.method not in ("GET", "HEAD"):
        core.authorize(req, False)
        raise S3Error("MethodNotAllowed", Method=req.method, ResourceType="SERVICE")
    return list_buckets(req)


@api.route("/{bucket}", METHODS, stream=True)
def bucket_route(req):
    return bucket_endpoint(req, req.path_params["bucket"])


@api.route("/{bucket}/{key:path}", METHODS, stream=True)
def object_route(req):
    bucket, key = req.path_params["bucket"], req.path_params["key"]
    if key == "":
        return bucket_endpoint(req, bucket)
    try:
        return object_endpoint(req, bucket, key)
    except S3Error:
        _drain(req)
        raise


def _unsupported(req, names: tuple[str, ...]) -> None:
    for name in names:
        if name in req.query:
            raise S3Error("NotImplemented", f"The '{name}' sub-resource is not supported.")


BUCKET_UNSUPPORTED = ("policy", "cors", "lifecycle", "website", "logging", "notification", "replication",
                      "encryption", "tagging", "requestPayment", "accelerate", "analytics", "inventory",
                      "metrics", "object-lock", "ownershipControls", "publicAccessBlock", "intelligent-tiering",
                      "versions")


def bucket_endpoint(req, bucket: str):
    method, q = req.method, req.query
    if method in ("GET", "HEAD"):
        if "versioning" in q and method == "GET":
            core.require_bucket(req, bucket)
            return xml_response(E("VersioningConfiguration"))
        _unsupported(req, BUCKET_UNSUPPORTED)
        if "location" in q:
            return bucket_location(req, bucket)
        if "acl" in q:
            who, _ = core.require_bucket(req, bucket)
            return acl_response(who)
        if "uploads" in q:
            return multipart.list_uploads(req, bucket)
        if method == "HEAD":
            core.require_bucket(req, bucket)
            return Response(status_code=200, headers={"Content-Length": "0", "x-amz-bucket-region": _location()})
        if q.get("list-type") == "2":
            return list_objects(req, bucket, v2=True)
        if q.get("list-type") not in (None, "1"):
            raise S3Error("InvalidArgument", "Invalid list-type.", ArgumentName="list-type",
                          ArgumentValue=q.get("list-type"))
        return list_objects(req, bucket, v2=False)
    if method == "PUT":
        _unsupported(req, BUCKET_UNSUPPORTED + ("versioning",))
        if "acl" in q:
            who, _ = core.require_bucket(req, bucket, write=True)
            put_acl(req, who)
            return Response(status_code=200, headers={"Content-Length": "0"})
        return create_bucket(req, bucket)
    if method == "DELETE":
        _unsupported(req, BUCKET_UNSUPPORTED)
        return delete_bucket(req, bucket)
    # POST
    if "delete" in q:
        return delete_objects(req, bucket)
    core.authorize(req, True)
    raise S3Error("NotImplemented", "POST on a bucket is only supported for multi-object delete (?delete).")


def object_endpoint(req, bucket: str, key: str):
    method, q = req.method, req.query
    core.check_key(key)
    if method in ("GET", "HEAD"):
        _unsupported(req, ("tagging", "torrent", "retention", "legal-hold", "attributes"))
        if "acl" in q:
            who, _ = core.require_bucket(req, bucket)
            _head(who, bucket, key)
            return acl_response(who)
        if "uploadId" in q and method == "GET":
            return multipart.list_parts(req, bucket, key)
        return get_object(req, bucket, key)
    if method == "PUT":
        _unsupported(req, ("tagging", "retention", "legal-hold"))
        if "uploadId" in q or "partNumber" in q:
            return multipart.upload_part(req, bucket, key)
        if "acl" in q:
            who, _ = core.require_bucket(req, bucket, write=True)
            _head(who, bucket, key)
            put_acl(req, who)
            return Response(status_code=200, headers={"Content-Length": "0"})
        if req.headers.get("x-amz-copy-source"):
            return copy_object(req, bucket, key)
        return put_object(req, bucket, key)
    if method == "POST":
        if "uploads" in q:
            return multipart.create_upload(req, bucket, key)
        if "uploadId" in q:
            return multipart.complete_upload(req, bucket, key)
        core.authorize(req, True)
        raise S3Error("NotImplemented", "This POST on an object is not supported.")
    # DELETE
    if "uploadId" in q:
        return multipart.abort_upload(req, bucket, key)
    _unsupported(req, ("tagging",))
    who, _ = core.require_bucket(req, bucket, write=True)
    try:
        storage().delete_object(who.account, bucket, key)
    except st.NotFoundError:
        pass  # S3 answers 204 for a key that is not there
    return Response(status_code=204)


# ---------------------------------------------------------------------------- service / buckets
def _location() -> str:
    return core.setting("location", "us-east-1")


def list_buckets(req):
    who = core.authorize(req, False)
    buckets, marker = [], ""
    while True:
        page = storage().list_containers(who.account, limit=10000, marker=marker)
        for item in page:
            name = item["name"]
            if name.endswith(core.SEGMENTS_SUFFIX) or "+" in name:
                continue
            buckets.append(E("Bucket", E("Name", name), E("CreationDate", iso8601(item["last_modified"]))))
        if len(page) < 10000:
            break
        marker = page[-1]["name"]
    return xml_response(E("ListAllMyBucketsResult", _owner(who), E("Buckets", buckets)))


def bucket_location(req, bucket: str):
    core.require_bucket(req, bucket)
    location = _location()
    return xml_response(E("LocationConstraint", None if location == "us-east-1" else location))


def create_bucket(req, bucket: str):
    who = core.authorize(req, True)
    core.check_bucket_name(bucket, strict=True)
    core.check_canned_acl(req)
    data = auth.read_body(req, who)
    if data.strip():
        doc = parse(data, "CreateBucketConfiguration")
        constraint = child_text(doc, "LocationConstraint")
        if constraint and constraint != _location():
            raise S3Error("InvalidLocationConstraint", f"The specified location-constraint is not valid: "
                          f"this cloud's location is '{_location()}'.", LocationConstraint=constraint)
    store = storage()
    if store.container_info(who.account, bucket) is not None:
        raise S3Error("BucketAlreadyOwnedByYou", BucketName=bucket)
    if not core.registry().claim(bucket, who.account):
        raise S3Error("BucketAlreadyExists", BucketName=bucket)
    store.create_container(who.account, bucket, {})
    events.emit("object.s3.bucket_created", {"account": who.account, "bucket": bucket}, context=who)
    return Response(status_code=200, headers={"Location": f"/{bucket}", "Content-Length": "0"})


def delete_bucket(req, bucket: str):
    who, info = core.require_bucket(req, bucket, write=True)
    store = storage()
    segments = bucket + core.SEGMENTS_SUFFIX
    try:
        store.delete_container(who.account, bucket)
    except st.NotEmptyError:
        raise S3Error("BucketNotEmpty", BucketName=bucket) from None
    except st.NotFoundError:
        raise S3Error("NoSuchBucket", BucketName=bucket) from None
    core.registry().release(bucket, who.account)
    events.emit("object.s3.bucket_deleted", {"account": who.account, "bucket": bucket}, context=who)
    # Uploads never completed die with their bucket, as on AWS.
    if store.container_info(who.account, segments) is not None:
        multipart.purge(who.account, segments, "")
        try:
            store.delete_container(who.account, segments)
        except st.StorageError:
            pass
    return Response(status_code=204)


# ---------------------------------------------------------------------------- ACLs
def acl_response(who) -> Response:
    grant = E("Grant", E("Grantee", E("ID", who.project_id), E("DisplayName", who.project_name or who.project_id),
                         xmlns__xsi="http://www.w3.org/2001/XMLSchema-instance", xsi__type="CanonicalUser"),
              E("Permission", "FULL_CONTROL"))
    return xml_response(E("AccessControlPolicy", _owner(who), E("AccessControlList", grant)))


def put_acl(req, who) -> None:
    """Only the owner's FULL_CONTROL (canned `private`) can be set: anything wider is refused."""
    core.check_canned_acl(req)
    data = auth.read_body(req, who)
    if not data.strip():
        return
    doc = parse(data, "AccessControlPolicy", "MalformedACLError")
    for acl in children(doc, "AccessControlList"):
        for grant in children(acl, "Grant"):
            grantees = children(grant, "Grantee")
            gid = child_text(grantees[0], "ID") if grantees else None
            if gid != who.project_id or child_text(grant, "Permission") != "FULL_CONTROL":
                raise S3Error("NotImplemented", "Only the owner's FULL_CONTROL grant is supported: objects and "
                              "buckets are private to their project.")


# ---------------------------------------------------------------------------- listings
def _int_param(req, name: str, default: int, maximum: int) -> int:
    value = req.query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range",
                      ArgumentName=name, ArgumentValue=value)
    return min(int(value), maximum)


def list_objects(req, bucket: str, v2: bool):
    who, _ = core.require_bucket(req, bucket)
    q = req.query
    encoding = q.get("encoding-type")
    if encoding is not None and encoding != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request",
                      ArgumentName="encoding-type", ArgumentValue=encoding)
    enc = (lambda s: quote(s, safe="/")) if encoding else (lambda s: s)
    max_keys = _int_param(req, "max-keys", MAX_KEYS, MAX_KEYS)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    if v2:
        token = q.get("continuation-token")
        if token is not None:
            try:
                marker = base64.urlsafe_b64decode(token.encode() + b"==").decode()
            except (ValueError, UnicodeDecodeError):
                raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                              ArgumentName="continuation-token") from None
        else:
            marker = q.get("start-after", "")
    else:
        marker = q.get("marker", "")
    items = []
    if max_keys > 0:
        items = storage().list_objects(who.account, bucket, limit=max_keys + 1, marker=marker, prefix=prefix,
                                       delimiter=delimiter)
    truncated = len(items) > max_keys
    items = items[:max_keys]
    contents, prefixes = [], []
    for item in items:
        if "subdir" in item:
            prefixes.append(E("CommonPrefixes", E("Prefix", enc(item["subdir"]))))
            continue
        owner = _owner(who) if (not v2 or q.get("fetch-owner") == "true") else None
        contents.append(E("Contents", E("Key", enc(item["name"])), E("LastModified", iso8601(item["last_modified"])),
                          E("ETag", f'"{item["hash"]}"'), E("Size", item["bytes"]), owner,
                          E("StorageClass", "STANDARD")))
    last = (items[-1].get("subdir") or items[-1]["name"]) if items else ""
    common = [E("Name", bucket), E("Prefix", enc(prefix))]
    if v2:
        next_token = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=") if truncated else None
        body = E("ListBucketResult", *common,
                 E("ContinuationToken", q["continuation-token"]) if "continuation-token" in q else None,
                 E("StartAfter", enc(q["start-after"])) if "start-after" in q else None,
                 E("KeyCount", len(items)), E("MaxKeys", max_keys),
                 E("Delimiter", enc(delimiter)) if delimiter else None,
                 E("EncodingType", encoding) if encoding else None,
                 E("IsTruncated", truncated), E("NextContinuationToken", next_token) if next_token else None,
                 contents, prefixes)
    else:
        body = E("ListBucketResult", *common, E("Marker", enc(marker)),
                 E("NextMarker", enc(last)) if truncated else None, E("MaxKeys", max_keys),
                 E("Delimiter", enc(delimiter)) if delimiter else None,
                 E("EncodingType", encoding) if encoding else None,
                 E("IsTruncated", truncated), contents, prefixes)
    return xml_response(body)


# ---------------------------------------------------------------------------- objects
def _head(who, bucket: str, key: str):
    try:
        return storage().head_object(who.account, bucket, key)
    except st.NotFoundError:
        raise S3Error("NoSuchKey", Key=key) from None


def _parse_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _etags(value: str) -> list[str]:
    return [v.strip().strip('"') for v in value.split(",") if v.strip()]


def check_conditions(headers, meta: dict, prefix: str = "if-", copy: bool = False) -> None:
    """RFC 7232 as S3 applies it: If-Match wins over If-Unmodified-Since, If-None-Match over
    If-Modified-Since. A failed copy-source condition is always a 412."""
    etag = core.etag_of(meta)
    modified = math.ceil(float(meta["timestamp"]))
    if_match = headers.get(prefix + "match")
    if if_match is not None:
        tags = _etags(if_match)
        if "*" not in tags and etag not in tags:
            raise S3Error("PreconditionFailed", Condition=prefix.title().rstrip("-") + "-Match")
    else:
        since = _parse_date(headers.get(prefix + "unmodified-since"))
        if since is not None and modified > since:
            raise S3Error("PreconditionFailed", Condition=prefix.title().rstrip("-") + "-Unmodified-Since")
    not_modified = False
    if_none = headers.get(prefix + "none-match")
    if if_none is not None:
        tags = _etags(if_none)
        not_modified = "*" in tags or etag in tags
    else:
        since = _parse_date(headers.get(prefix + "modified-since"))
        not_modified = since is not None and modified <= since
    if not_modified:
        if copy:
            raise S3Error("PreconditionFailed", Condition=prefix.title().rstrip("-") + "-None-Match")
        raise NotModified({"ETag": f'"{etag}"', "Last-Modified": http_date(meta["timestamp"])})


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single byte range; None to send the whole object.
    Raises InvalidRange when it cannot be satisfied."""
    value = value.replace(" ", "")
    if not value.startswith("bytes=") or "," in value:
        return None
    first, sep, last = value[6:].partition("-")
    if not sep or (not first and not last):
        return None
    try:
        if not first:
            n = int(last)
            if n == 0 or size == 0:
                raise S3Error("InvalidRange", ActualObjectSize=str(size), RangeRequested=value)
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if last and end <= start:
        return None
    if start >= size:
        raise S3Error("InvalidRange", ActualObjectSize=str(size), RangeRequested=value,
                      headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size)


RESPONSE_OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
                      "response-expires": "Expires", "response-cache-control": "Cache-Control",
                      "response-content-disposition": "Content-Disposition",
                      "response-content-encoding": "Content-Encoding"}


def get_object(req, bucket: str, key: str):
    who, _ = core.require_bucket(req, bucket)
    if "partNumber" in req.query:
        raise S3Error("NotImplemented", "GET/HEAD with partNumber is not supported.")
    store = storage()
    meta, path = _head(who, bucket, key)
    try:
        check_conditions(req.headers, meta)
    except NotModified as nm:
        return Response(status_code=304, headers=nm.headers)
    headers = core.object_headers(meta)
    for param, header in RESPONSE_OVERRIDES.items():
        if param in req.query:
            headers[header] = req.query[param]
    size = meta["size"]
    start, end, status = 0, size, 200
    rng = req.headers.get("range")
    if rng:
        parsed = parse_range(rng, size)
        if parsed:
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if req.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(store.iter_object(path, meta, start, end), status_code=status, headers=headers)


def put_object(req, bucket: str, key: str):
    who, _ = core.require_bucket(req, bucket, write=True)
    core.check_canned_acl(req)
    store = storage()
    if_none = req.headers.get("if-none-match")
    if if_none is not None:
        if if_none.strip() != "*":
            raise S3Error("NotImplemented", "If-None-Match on PUT only supports '*'.", Header="If-None-Match")
        try:
            store.head_object(who.account, bucket, key)
            raise S3Error("PreconditionFailed", Condition="If-None-Match")
        except st.NotFoundError:
            pass
    metadata = {"content_type": core.content_type_for(req, key), "meta": core.metadata_from_headers(req)}
    data = auth.body(req, who, core.MAX_OBJECT_SIZE)
    length = auth.decoded_length(req, who)
    if length is not None and length > core.MAX_OBJECT_SIZE:
        raise S3Error("EntityTooLarge", MaxSizeAllowed=str(core.MAX_OBJECT_SIZE))
    result = store_object(who.account, bucket, key, data, metadata)
    return Response(status_code=200, headers={"ETag": f'"{result["etag"]}"', "Content-Length": "0"})


def store_object(account: str, container: str, name: str, data, metadata: dict) -> dict:
    try:
        return storage().put_object(account, container, name, data, metadata)
    except st.NotFoundError:
        raise S3Error("NoSuchBucket", BucketName=container) from None
    except st.StorageError:
        raise S3Error("ServiceUnavailable", "Not enough storage devices could store the object.") from None


def copy_source(req, who) -> tuple[str, str, dict, object]:
    """(bucket, key, metadata, data path) of `x-amz-copy-source`, conditions checked."""
    value = unquote(req.headers["x-amz-copy-source"])
    value, _, version = value.partition("?versionId=")
    if version and version != "null":
        raise S3Error("NotImplemented", "Object versions are not supported.")
    sbucket, _, skey = value.lstrip("/").partition("/")
    if not sbucket or not skey:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: "
                      "sourcebucket/sourcekey", ArgumentName="x-amz-copy-source", ArgumentValue=value)
    core.check_key(skey)
    core.require_bucket(req, sbucket)
    meta, path = _head(who, sbucket, skey)
    check_conditions(req.headers, meta, prefix="x-amz-copy-source-if-", copy=True)
    return sbucket, skey, meta, path


def copy_object(req, bucket: str, key: str):
    who, _ = core.require_bucket(req, bucket, write=True)
    core.check_canned_acl(req)
    sbucket, skey, src, path = copy_source(req, who)
    directive = req.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.", ArgumentName="x-amz-metadata-directive",
                      ArgumentValue=directive)
    if (sbucket, skey) == (bucket, key) and directive == "COPY":
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to "
                      "itself without changing the object's metadata, storage class, website redirect location "
                      "or encryption attributes.")
    if directive == "COPY":
        metadata = {"content_type": src["content_type"], "meta": core.stored_metadata(src)}
    else:
        metadata = {"content_type": core.content_type_for(req, key), "meta": core.metadata_from_headers(req)}
    result = store_object(who.account, bucket, key, storage().iter_object(path, src), metadata)
    return xml_response(E("CopyObjectResult", E("LastModified", iso8601(result["timestamp"])),
                          E("ETag", f'"{result["etag"]}"')))


def delete_objects(req, bucket: str):
    who, _ = core.require_bucket(req, bucket, write=True)
    doc = parse(auth.read_body(req, who), "Delete")
    quiet = (child_text(doc, "Quiet") or "").strip().lower() == "true"
    objects = children(doc, "Object")
    if not objects or len(objects) > 1000:
        raise S3Error("MalformedXML")
    keys = []
    for obj in objects:
        key = child_text(obj, "Key")
        if not key:
            raise S3Error("MalformedXML")
        keys.append(key)
    store = storage()
    results = []
    for key in keys:
        if len(key.encode()) > core.MAX_KEY_LENGTH:
            results.append(E("Error", E("Key", key), E("Code", "KeyTooLongError"),
                             E("Message", "Your key is too long")))
            continue
        try:
            store.delete_object(who.account, bucket, key)
        except st.NotFoundError:
            pass
        except st.StorageError:
            results.append(E("Error", E("Key", key), E("Code", "InternalError"),
                             E("Message", "We encountered an internal error. Please try again.")))
            continue
        if not quiet:
            results.append(E("Deleted", E("Key", key)))
    return xml_response(E("DeleteResult", results))

