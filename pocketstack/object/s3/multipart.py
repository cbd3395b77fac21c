"""Multipart uploads, kept as s3api keeps them: in the bucket's hidden segments container
`<bucket>+segments` of the same account (bucket names cannot contain '+', so it can never
be a bucket, and ListBuckets hides it; Swift clients see it, as upstream).

    <key>/<upload id>                 the upload: content type and user metadata of the
                                      final object, its timestamp is the Initiated time
    <key>/<upload id>/<part number>   one uploaded part

CompleteMultipartUpload checks the list (ascending numbers, existing parts with matching
ETags, every part but the last at least `[s3] min_part_size` bytes, 5 MiB by default), then
streams the parts, in order, into one ordinary object: Swift clients read it like any other
object (its Swift ETag is the MD5 of the whole), while S3 answers with the multipart ETag
`<md5 of the parts' binary md5s>-<count>`, kept in the object's metadata and shown by
listings (storage's `listing_etag`). The parts and the upload are then deleted. Why a copy
and not an SLO manifest: the object stays readable whatever large-object middleware the
Swift API has, and deleting it needs no segment bookkeeping; the price is one extra write
of the data at completion.
"""
from __future__ import annotations

import binascii
import hashlib
import re
import uuid

from starlette.responses import Response

from pocketstack.common import events
from pocketstack.object import storage as st
from pocketstack.object.s3 import auth, core
from pocketstack.object.s3.core import S3_ETAG_META, storage
from pocketstack.object.s3.xml import E, S3Error, child_text, children, iso8601, parse, xml_response

MAX_PARTS = 10000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def _segments(bucket: str) -> str:
    return bucket + core.SEGMENTS_SUFFIX


def _min_part_size() -> int:
    return int(core.setting("min_part_size", str(5 * 1024 * 1024)))


def _upload(req, who, bucket: str, key: str) -> tuple[str, dict]:
    """(upload id, the upload's stored metadata) or NoSuchUpload."""
    upload_id = req.query.get("uploadId", "")
    if not _UPLOAD_ID.match(upload_id):
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    try:
        meta, _ = storage().head_object(who.account, _segments(bucket), f"{key}/{upload_id}")
    except st.NotFoundError:
        raise S3Error("NoSuchUpload", UploadId=upload_id) from None
    return upload_id, meta


def _list_all(account: str, container: str, prefix: str) -> list[dict]:
    out, marker = [], ""
    while True:
        try:
            page = storage().list_objects(account, container, limit=10000, marker=marker, prefix=prefix)
        except st.NotFoundError:
            return out
        out.extend(page)
        if len(page) < 10000:
            return out
        marker = page[-1]["name"]


def _parts(account: str, bucket: str, key: str, upload_id: str) -> dict[int, dict]:
    prefix = f"{key}/{upload_id}/"
    found = {}
    for row in _list_all(account, _segments(bucket), prefix):
        number = row["name"][len(prefix):]
        if number.isdigit():
            found[int(number)] = row
    return found


def purge(account: str, container: str, prefix: str) -> None:
    """Delete every object of `container` under `prefix`."""
    for row in _list_all(account, container, prefix):
        try:
            storage().delete_object(account, container, row["name"])
        except st.NotFoundError:
            pass


def _initiator(who) -> list[E]:
    return [E("Initiator", E("ID", who.user_id), E("DisplayName", who.user_id)),
            E("Owner", E("ID", who.project_id), E("DisplayName", who.project_name or who.project_id))]


# ---------------------------------------------------------------------------- operations
def create_upload(req, bucket: str, key: str):
    who, _ = core.require_bucket(req, bucket, write=True)
    core.check_canned_acl(req)
    store = storage()
    segments = _segments(bucket)
    if store.container_info(who.account, segments) is None:
        store.create_container(who.account, segments, {})
    upload_id = uuid.uuid4().hex
    from pocketstack.object.s3.api import store_object

    store_object(who.account, segments, f"{key}/{upload_id}", iter(()),
                 {"content_type": core.content_type_for(req, key), "meta": core.metadata_from_headers(req)})
    return xml_response(E("InitiateMultipartUploadResult", E("Bucket", bucket), E("Key", key),
                          E("UploadId", upload_id)))


def _part_number(req) -> int:
    value = req.query.get("partNumber", "")
    if not value.isdigit() or not 1 <= int(value) <= MAX_PARTS:
        raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
                      ArgumentName="partNumber", ArgumentValue=value)
    return int(value)


def upload_part(req, bucket: str, key: str):
    from pocketstack.object.s3.api import copy_source, store_object

    who, _ = core.require_bucket(req, bucket, write=True)
    number = _part_number(req)
    upload_id, _ = _upload(req, who, bucket, key)
    name = f"{key}/{upload_id}/{number}"
    if req.headers.get("x-amz-copy-source"):
        _, _, src, path = copy_source(req, who)
        start, end = 0, src["size"]
        rng = req.headers.get("x-amz-copy-source-range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", rng.strip())
            if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) >= src["size"]:
                raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                              "bytes=first-last where first and last are the zero-based offsets of the first and "
                              "last bytes to copy", ArgumentName="x-amz-copy-source-range", ArgumentValue=rng)
            start, end = int(m.group(1)), int(m.group(2)) + 1
        result = store_object(who.account, _segments(bucket), name, storage().iter_object(path, src, start, end),
                              {"content_type": "application/octet-stream", "meta": {}})
        return xml_response(E("CopyPartResult", E("LastModified", iso8601(result["timestamp"])),
                              E("ETag", f'"{result["etag"]}"')))
    length = auth.decoded_length(req, who)
    if length is not None and length > core.MAX_OBJECT_SIZE:
        raise S3Error("EntityTooLarge", MaxSizeAllowed=str(core.MAX_OBJECT_SIZE))
    result = store_object(who.account, _segments(bucket), name, auth.body(req, who, core.MAX_OBJECT_SIZE),
                          {"content_type": "application/octet-stream", "meta": {}})
    return Response(status_code=200, headers={"ETag": f'"{result["etag"]}"', "Content-Length": "0"})


def complete_upload(req, bucket: str, key: str):
    from pocketstack.object.s3.api import store_object

    who, _ = core.require_bucket(req, bucket, write=True)
    upload_id, upload = _upload(req, who, bucket, key)
    doc = parse(auth.read_body(req, who), "CompleteMultipartUpload")
    wanted: list[tuple[int, str]] = []
    for part in children(doc, "Part"):
        number, etag = child_text(part, "PartNumber"), child_text(part, "ETag")
        if number is None or not number.strip().isdigit() or etag is None:
            raise S3Error("MalformedXML")
        wanted.append((int(number.strip()), etag.strip().strip('"').lower()))
    if not wanted or len(wanted) > MAX_PARTS:
        raise S3Error("MalformedXML")
    if any(b[0] <= a[0] for a, b in zip(wanted, wanted[1:])):
        raise S3Error("InvalidPartOrder", UploadId=upload_id)
    have = _parts(who.account, bucket, key, upload_id)
    minimum = _min_part_size()
    for i, (number, etag) in enumerate(wanted):
        row = have.get(number)
        if row is None or row["hash"] != etag:
            raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=str(number), ETag=etag)
        if i < len(wanted) - 1 and row["bytes"] < minimum:
            raise S3Error("EntityTooSmall", ProposedSize=str(row["bytes"]), MinSizeAllowed=str(minimum),
                          PartNumber=str(number), ETag=etag)
    digest = hashlib.md5(b"".join(binascii.unhexlify(e) for _, e in wanted), usedforsecurity=False)
    s3_etag = f"{digest.hexdigest()}-{len(wanted)}"
    store = storage()
    segments = _segments(bucket)

    def data():
        for number, _ in wanted:
            try:
                meta, path = store.head_object(who.account, segments, f"{key}/{upload_id}/{number}")
            except st.NotFoundError:
                raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=str(number)) from None
            yield from store.iter_object(path, meta)

    meta = {k: v for k, v in (upload.get("meta") or {}).items() if k != S3_ETAG_META}
    meta[S3_ETAG_META] = s3_etag
    store_object(who.account, bucket, key, data(), {"content_type": upload["content_type"], "meta": meta,
                                                    "listing_etag": s3_etag})
    purge(who.account, segments, f"{key}/{upload_id}/")
    try:
        store.delete_object(who.account, segments, f"{key}/{upload_id}")
    except st.NotFoundError:
        pass
    events.emit("object.s3.multipart_completed", {"account": who.account, "bucket": bucket, "key": key,
                                                  "upload_id": upload_id, "parts": len(wanted), "etag": s3_etag},
                context=who)
    location = f"{req.base_url}/{bucket}/{key}"
    return xml_response(E("CompleteMultipartUploadResult", E("Location", location), E("Bucket", bucket),
                          E("Key", key), E("ETag", f'"{s3_etag}"')))


def abort_upload(req, bucket: str, key: str):
    who, _ = core.require_bucket(req, bucket, write=True)
    upload_id, _ = _upload(req, who, bucket, key)
    segments = _segments(bucket)
    purge(who.account, segments, f"{key}/{upload_id}/")
    try:
        storage().delete_object(who.account, segments, f"{key}/{upload_id}")
    except st.NotFoundError:
        pass
    return Response(status_code=204)


def _int(req, name: str, default: int, maximum: int) -> int:
    value = req.query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range",
                      ArgumentName=name, ArgumentValue=value)
    return min(int(value), maximum)


def list_parts(req, bucket: str, key: str):
    who, _ = core.require_bucket(req, bucket)
    upload_id, _ = _upload(req, who, bucket, key)
    max_parts = _int(req, "max-parts", 1000, 1000)
    marker = _int(req, "part-number-marker", 0, MAX_PARTS)
    numbers = sorted(n for n in _parts(who.account, bucket, key, upload_id) if n > marker)
    have = _parts(who.account, bucket, key, upload_id)
    page = numbers[:max_parts]
    truncated = len(numbers) > max_parts
    parts = [E("Part", E("PartNumber", n), E("LastModified", iso8601(have[n]["last_modified"])),
               E("ETag", f'"{have[n]["hash"]}"'), E("Size", have[n]["bytes"])) for n in page if n in have]
    return xml_response(E("ListPartsResult", E("Bucket", bucket), E("Key", key), E("UploadId", upload_id),
                          *_initiator(who), E("StorageClass", "STANDARD"), E("PartNumberMarker", marker),
                          E("NextPartNumberMarker", page[-1] if page else marker), E("MaxParts", max_parts),
                          E("IsTruncated", truncated), parts))


def list_uploads(req, bucket: str):
    who, _ = core.require_bucket(req, bucket)
    q = req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_uploads = _int(req, "max-uploads", 1000, 1000)
    uploads = []
    for row in _list_all(who.account, _segments(bucket), prefix):
        key, sep, upload_id = row["name"].rpartition("/")
        if sep and _UPLOAD_ID.match(upload_id):
            uploads.append((key, row["last_modified"], upload_id))
    uploads.sort()
    if key_marker:
        uploads = [u for u in uploads if u[0] > key_marker or (u[0] == key_marker and id_marker
                                                                 and u[2] > id_marker)]
    entries, prefixes, seen = [], [], set()
    for key, initiated, upload_id in uploads:
        if len(entries) + len(prefixes) >= max_uploads:
            break
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[:cut + len(delimiter)]
                if common not in seen:
                    seen.add(common)
                    prefixes.append(E("CommonPrefixes", E("Prefix", common)))
                continue
        entries.append((key, initiated, upload_id))
    truncated = len(entries) + len(prefixes) < len(uploads) and bool(entries or prefixes) and \
        len(entries) + len(prefixes) >= max_uploads
    body = [E("Upload", E("Key", k), E("UploadId", u), *_initiator(who), E("StorageClass", "STANDARD"),
              E("Initiated", iso8601(t))) for k, t, u in entries]
    return xml_response(E("ListMultipartUploadsResult", E("Bucket", bucket), E("KeyMarker", key_marker),
                          E("UploadIdMarker", id_marker),
                          E("NextKeyMarker", entries[-1][0] if truncated and entries else None),
                          E("NextUploadIdMarker", entries[-1][2] if truncated and entries else None),
                          E("Prefix", prefix), E("Delimiter", delimiter) if delimiter else None,
                          E("MaxUploads", max_uploads), E("IsTruncated", truncated), body, prefixes))
