"""Who signed an S3 request: AWS signature v4 (header or presigned query) and v2 (header or
query), checked against the project's EC2 credentials through identity's Python interface.

This module only rebuilds what the client signed (the canonical request and the string to
sign); the secret never leaves identity: `delegation.ec2_identify(string_to_sign=...)`
computes and compares the signature, and `delegation.s3_signing_key` hands out the day's
derived key needed for the per-chunk signatures of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
upload. The payload itself is checked while it streams (`body()`): a body whose SHA-256,
Content-MD5 or chunk signature does not match raises before the storage commits anything.

Clock skew: a header-signed request more than 15 minutes away from our clock is refused
(RequestTimeTooSkewed), which bounds how long a captured request can be replayed; presigned
URLs carry their own expiry instead.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import quote, unquote

from starlette.requests import ClientDisconnect

from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.object.s3.xml import S3Error

MAX_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 604800  # 7 days, as AWS
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# Sub-resources that are part of a v2 signature's canonical resource.
V2_SUBRESOURCES = {
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "restore", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
    "versions", "website", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "response-content-language", "response-content-type", "response-expires",
}


@dataclass
class Caller:
    """The authenticated caller and what its signature says about the body."""

    access: str
    user_id: str
    project_id: str
    project_name: str = ""
    roles: list[str] = field(default_factory=list)
    payload_hash: str | None = None  # hex SHA-256 the body must have (None: not signed)
    streaming: str | None = None  # an aws-chunked mode (STREAMING-...)
    signing_key: bytes | None = None  # for chunk signatures
    seed_signature: str = ""
    amz_date: str = ""
    scope: str = ""

    @property
    def account(self) -> str:
        return f"AUTH_{self.project_id}"

    def policy_creds(self) -> dict:
        return {"user_id": self.user_id, "project_id": self.project_id, "roles": self.roles,
                "is_admin": False, "system_scope": None, "domain_id": None}


# ---------------------------------------------------------------------------- entry point
def authenticate(req) -> Caller:
    """The caller of `req` (a `web.ApiRequest`); raises S3Error on anything wrong."""
    auth = req.headers.get("authorization")
    q = req.query
    if auth:
        if auth.startswith("AWS4-HMAC-SHA256"):
            return _v4_header(req, auth)
        if auth.startswith("AWS "):
            return _v2(req, auth[4:], query=False)
        raise S3Error("InvalidArgument", "Unsupported Authorization Type", ArgumentName="Authorization",
                      ArgumentValue=auth.split(" ", 1)[0])
    if "X-Amz-Algorithm" in q or "X-Amz-Credential" in q:
        return _v4_query(req)
    if "AWSAccessKeyId" in q or "Signature" in q:
        return _v2(req, None, query=True)
    raise S3Error("AccessDenied", "Anonymous access is not allowed: sign the request with EC2 credentials.")


# ---------------------------------------------------------------------------- v4
def _parse_amz_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def _parse_http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return _parse_amz_date(value)
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when


def _check_skew(when: dt.datetime) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    if abs(now - when) > MAX_SKEW:
        raise S3Error("RequestTimeTooSkewed", RequestTime=when.strftime("%Y%m%dT%H%M%SZ"),
                      ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"), MaxAllowedSkewMilliseconds="900000")


def _canonical_query(raw_query: str, drop: str | None = None) -> str:
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        key, value = unquote(key), unquote(value)
        if key == drop:
            continue
        pairs.append((quote(key, safe="-_.~"), quote(value, safe="-_.~")))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(req, signed: list[str]) -> str:
    lines = []
    for name in signed:
        values = req.raw.headers.getlist(name)
        value = ",".join(" ".join(v.strip().split()) for v in values)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def _uris(req) -> list[str]:
    """The canonical URI as the client sent it, and S3's canonical encoding of it when that
    differs (clients that encode more or fewer characters than AWS's rule)."""
    scope = req.raw.scope
    vhost = scope.get("s3_vhost")
    raw = (vhost or {}).get("raw_path") or scope.get("raw_path") or req.raw.url.path.encode()
    raw = raw.decode("latin-1").split("?", 1)[0]
    normal = quote(unquote(raw), safe="/~")
    out = [raw] if normal == raw else [raw, normal]
    root = scope.get("root_path", "")
    if raw == root + "/" and (vhost or not req.path_params):
        out.append(raw[:-1])  # the service root `/s3`, which the server hands us as `/s3/`
    return out


def _parse_credential(value: str, error: str) -> tuple[str, str, str, str, str]:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0] or parts[4] != "aws4_request" or not re.fullmatch(r"\d{8}", parts[1]):
        raise S3Error(error, "The credential is malformed: expected '<key>/<YYYYMMDD>/<region>/s3/aws4_request'.")
    if parts[3] != "s3":
        raise S3Error(error, f"The credential scope names service '{parts[3]}'; expected 's3'.")
    return parts[0], parts[1], parts[2], parts[3], "/".join(parts[1:])


def _v4_header(req, auth: str) -> Caller:
    fields = {}
    for item in auth[len("AWS4-HMAC-SHA256"):].split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if not all(fields.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed: it needs "
                      "Credential, SignedHeaders and Signature.")
    access, datestamp, region, service, scope = _parse_credential(fields["Credential"],
                                                                  "AuthorizationHeaderMalformed")
    amz_date = req.headers.get("x-amz-date")
    when = _parse_amz_date(amz_date) if amz_date else _parse_http_date(req.headers.get("date"))
    if when is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    if not amz_date:
        amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    if amz_date[:8] != datestamp:
        raise S3Error("AuthorizationHeaderMalformed", f"Invalid credential date \"{datestamp}\": it does not "
                      "match the request date.")
    _check_skew(when)
    payload = req.headers.get("x-amz-content-sha256")
    if not payload:
        raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    if payload not in (UNSIGNED, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER) \
            and not _HEX64.match(payload):
        raise S3Error("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
                      ArgumentName="x-amz-content-sha256", ArgumentValue=payload)
    signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip()]
    query = _canonical_query(req.raw.scope.get("query_string", b"").decode("latin-1"))
    headers = _canonical_headers(req, signed)
    caller = _verify_v4(req, access, fields["Signature"], amz_date, scope, query, headers, ";".join(signed),
                        payload, streaming=payload.startswith("STREAMING-"),
                        key_scope=(datestamp, region, service))
    return caller


def _v4_query(req) -> Caller:
    q = req.query
    if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
    missing = [k for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                           "X-Amz-Signature") if not q.get(k)]
    if missing:
        raise S3Error("AuthorizationQueryParametersError",
                      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                      "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    access, datestamp, region, service, scope = _parse_credential(q["X-Amz-Credential"],
                                                                  "AuthorizationQueryParametersError")
    amz_date = q["X-Amz-Date"]
    when = _parse_amz_date(amz_date)
    if when is None or amz_date[:8] != datestamp:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 Long Format "
                      "\"yyyyMMdd'T'HHmmss'Z'\" and match the credential date.")
    expires = q["X-Amz-Expires"]
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_PRESIGN_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be a number of seconds between "
                      f"1 and {MAX_PRESIGN_EXPIRES}.")
    now = dt.datetime.now(dt.timezone.utc)
    if now > when + dt.timedelta(seconds=int(expires)):
        raise S3Error("AccessDenied", "Request has expired", Expires=(when + dt.timedelta(
            seconds=int(expires))).strftime("%Y-%m-%dT%H:%M:%SZ"), ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if when - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    payload = q.get("X-Amz-Content-Sha256") or UNSIGNED
    signed = [h.strip().lower() for h in q["X-Amz-SignedHeaders"].split(";") if h.strip()]
    query = _canonical_query(req.raw.scope.get("query_string", b"").decode("latin-1"), drop="X-Amz-Signature")
    headers = _canonical_headers(req, signed)
    return _verify_v4(req, access, q["X-Amz-Signature"], amz_date, scope, query, headers, ";".join(signed),
                      payload, streaming=False, key_scope=None)


def _verify_v4(req, access, signature, amz_date, scope, query, headers, signed, payload, *, streaming,
               key_scope) -> Caller:
    last: S3Error | None = None
    for uri in _uris(req):
        canonical = "\n".join((req.method, uri, query, headers, signed, payload))
        to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()))
        try:
            caller = _identify(access, signature, to_sign, key_scope if streaming else None)
        except S3Error as err:
            if err.s3_code != "SignatureDoesNotMatch":
                raise
            last = err
            continue
        caller.payload_hash = payload if _HEX64.match(payload) else None
        caller.streaming = payload if streaming else None
        caller.seed_signature, caller.amz_date, caller.scope = signature, amz_date, scope
        return caller
    raise last  # type: ignore[misc]


# ---------------------------------------------------------------------------- v2
def _v2(req, header_value: str | None, query: bool) -> Caller:
    q = req.query
    if query:
        access, signature, expires = q.get("AWSAccessKeyId"), q.get("Signature"), q.get("Expires")
        if not access or not signature or not expires:
            raise S3Error("AccessDenied", "Query-string authentication requires the Signature, Expires and "
                          "AWSAccessKeyId parameters")
        if not expires.isdigit():
            raise S3Error("AccessDenied", "Invalid date (should be seconds since epoch): " + expires)
        if int(expires) < dt.datetime.now(dt.timezone.utc).timestamp():
            raise S3Error("AccessDenied", "Request has expired")
        date_line = expires
    else:
        access, sep, signature = header_value.strip().rpartition(":")
        if not sep or not access or not signature:
            raise S3Error("AccessDenied", "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature")
        stamp = req.headers.get("x-amz-date") or req.headers.get("date")
        when = _parse_http_date(stamp)
        if when is None:
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        _check_skew(when)
        date_line = "" if req.headers.get("x-amz-date") else req.headers.get("date", "")
    amz = {}
    for name, value in req.raw.headers.items():
        lname = name.lower()
        if lname.startswith("x-amz-"):
            amz.setdefault(lname, []).append(" ".join(value.strip().split()))
    amz_lines = "".join(f"{k}:{','.join(v)}\n" for k, v in sorted(amz.items()))
    subs = []
    for piece in req.raw.scope.get("query_string", b"").decode("latin-1").split("&"):
        key, sep, value = piece.partition("=")
        key = unquote(key)
        if key in V2_SUBRESOURCES:
            subs.append((key, unquote(value) if sep else None))
    subs.sort()
    query = "?" + "&".join(k if v is None else f"{k}={v}" for k, v in subs) if subs else ""
    last: S3Error | None = None
    for path in _v2_paths(req):
        to_sign = "\n".join((req.method, req.headers.get("content-md5", ""), req.headers.get("content-type", ""),
                             date_line, amz_lines + path + query))
        try:
            return _identify(access, signature, to_sign, None)
        except S3Error as err:
            if err.s3_code != "SignatureDoesNotMatch":
                raise
            last = err
    raise last  # type: ignore[misc]


def _v2_paths(req) -> list[str]:
    """Canonical resources a v2 signer may have used: the path below our `/s3` mount (what
    botocore signs: `/<bucket>/<key>`, `/<bucket>/` for a bucket), then the full path."""
    scope = req.raw.scope
    raw = (scope.get("raw_path") or req.raw.url.path.encode()).decode("latin-1").split("?", 1)[0]
    root = scope.get("root_path", "")
    rel = (raw[len(root):] if root and raw.startswith(root) else raw) or "/"
    out = [rel]
    if "bucket" in req.path_params and not req.path_params.get("key") and not rel.endswith("/"):
        out.append(rel + "/")
    extras = [raw, quote(unquote(rel), safe="/~")]
    if not req.path_params and raw.endswith("/"):
        extras.append(raw[:-1])  # the service root `/s3`, which the server hands us as `/s3/`
    for extra in extras:
        if extra not in out:
            out.append(extra)
    return out


# ---------------------------------------------------------------------------- identity
def _identify(access: str, signature: str, string_to_sign: str, key_scope) -> Caller:
    from pocketstack.identity import core, delegation

    try:
        with current().db.session() as sess:
            who = delegation.ec2_identify(sess, access, signature, string_to_sign=string_to_sign)
            roles = [r.name for r in core.roles_by_ids(sess, who.role_ids)]
            project_name = core.get_project(sess, who.project_id).name
            key = delegation.s3_signing_key(sess, access, *key_scope) if key_scope else None
    except ApiError as err:
        text = err.message.lower()
        if "access key not found" in text or "not supplied" in text:
            raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access) from None
        if "invalid ec2 signature" in text or "invalid s3 signature" in text:
            raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=access) from None
        raise S3Error("AccessDenied", "Access Denied: the credential's user, project or delegation is not "
                      "valid.") from None
    return Caller(access=access, user_id=who.user_id, project_id=who.project_id, project_name=project_name,
                  roles=roles, signing_key=key)


# ---------------------------------------------------------------------------- bodies
class _Buffered:
    """Reads exact sizes and lines from the request stream."""

    def __init__(self, stream):
        self.stream = stream
        self.buf = bytearray()
        self.pos = 0

    def _fill(self) -> bool:
        data = self.stream.read() if self.stream is not None else b""
        if not data:
            return False
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data
        return True

    def line(self, limit: int = 4096) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n", self.pos)
            if idx >= 0:
                out = bytes(self.buf[self.pos:idx])
                self.pos = idx + 2
                return out
            if len(self.buf) - self.pos > limit or not self._fill():
                raise S3Error("IncompleteBody", "The aws-chunked body is malformed.")

    def exact(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            if not self._fill():
                raise S3Error("IncompleteBody")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out


def _aws_chunks(req, caller: Caller, trailers: dict) -> Iterator[bytes]:
    """Decode an aws-chunked body, checking each chunk's signature when it is signed;
    trailing headers (x-amz-checksum-*) are put in `trailers`."""
    reader = _Buffered(req.stream)
    previous = caller.seed_signature
    signed = caller.streaming in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
    while True:
        header = reader.line().decode("latin-1")
        size_text, _, ext = header.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise S3Error("IncompleteBody", "The aws-chunked body is malformed.") from None
        if size < 0 or size > (16 << 20):
            raise S3Error("InvalidArgument", "An aws-chunked chunk is larger than 16 MiB.")
        data = reader.exact(size)
        if signed:
            sig = ext.strip()
            if not sig.startswith("chunk-signature="):
                raise S3Error("SignatureDoesNotMatch", "A chunk of the streaming upload is not signed.")
            to_sign = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", caller.amz_date, caller.scope, previous,
                                 EMPTY_SHA256, hashlib.sha256(data).hexdigest()))
            expected = hmac.new(caller.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, sig[len("chunk-signature="):]):
                raise S3Error("SignatureDoesNotMatch", "A chunk signature of the streaming upload does not match.")
            previous = expected
        if size == 0:
            # The final chunk; then optional trailers (x-amz-checksum-*), then an empty line.
            if caller.streaming in (STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED_TRAILER):
                while True:
                    line = reader.line().decode("latin-1")
                    if not line:
                        break
                    name, _, value = line.partition(":")
                    trailers[name.strip().lower()] = value.strip()
            else:
                try:
                    reader.line()
                except S3Error:
                    pass
            return
        if reader.exact(2) != b"\r\n":
            raise S3Error("IncompleteBody", "The aws-chunked body is malformed.")
        yield data


def _raw_chunks(req) -> Iterator[bytes]:
    if req.stream is None:
        if req.body:
            yield req.body
        return
    yield from req.stream


def content_md5(req) -> bytes | None:
    value = req.headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest")
    return digest


def decoded_length(req, caller: Caller) -> int | None:
    """The length of the object data: x-amz-decoded-content-length for aws-chunked bodies,
    else Content-Length (None when the client sends neither, chunked transfer-encoding)."""
    name = "x-amz-decoded-content-length" if caller.streaming else "content-length"
    value = req.headers.get(name)
    if value is None:
        if caller.streaming or "chunked" not in req.headers.get("transfer-encoding", "").lower():
            raise S3Error("MissingContentLength")
        return None
    if not value.isdigit():
        raise S3Error("InvalidArgument", f"Invalid {name}.", ArgumentName=name, ArgumentValue=value)
    return int(value)


class _Crc32:
    def __init__(self):
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


# x-amz-checksum-<algorithm> headers (flexible checksums, botocore's default) we verify.
CHECKSUMS = {"crc32": _Crc32, "sha1": hashlib.sha1, "sha256": hashlib.sha256}


def _checksum(req):
    """(algorithm, expected base64 digest or None when it comes in a trailer, hasher) of an
    x-amz-checksum-* header or announced trailer we can verify, or None."""
    trailer = req.headers.get("x-amz-trailer", "").strip().lower()
    for name, make in CHECKSUMS.items():
        value = req.headers.get(f"x-amz-checksum-{name}")
        if value is not None:
            return name, value, make()
        if trailer == f"x-amz-checksum-{name}":
            return name, None, make()
    return None


def _check_digest(name: str, expected: str | None, actual: bytes) -> None:
    try:
        want = base64.b64decode((expected or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        want = None
    if not want:
        raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{name} header is invalid.")
    if want != actual:
        raise S3Error("BadDigest", f"The {name.upper()} you specified did not match the calculated checksum.")


def body(req, caller: Caller, limit: int) -> Iterator[bytes]:
    """The request body's bytes, decoded and checked as they stream: the last step (after
    the last byte) raises when the SHA-256, the Content-MD5, an x-amz-checksum-* header or
    the length does not hold, so a storage write consuming this iterator never commits a
    bad body."""
    want_md5 = content_md5(req)
    checksum = _checksum(req)
    length = decoded_length(req, caller) if req.method == "PUT" else None
    sha = hashlib.sha256() if caller.payload_hash else None
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 is not None else None
    trailers: dict[str, str] = {}
    source = _aws_chunks(req, caller, trailers) if caller.streaming else _raw_chunks(req)
    seen = 0
    try:
        for chunk in source:
            seen += len(chunk)
            if seen > limit:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
            if length is not None and seen > length:
                raise S3Error("IncompleteBody", "The body is longer than its declared length.")
            if sha is not None:
                sha.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            if checksum is not None:
                checksum[2].update(chunk)
            yield chunk
    except ClientDisconnect:
        raise S3Error("IncompleteBody", "The client disconnected before the body was complete.") from None
    if length is not None and seen != length:
        raise S3Error("IncompleteBody")
    if sha is not None and sha.hexdigest() != caller.payload_hash:
        raise S3Error("XAmzContentSHA256Mismatch", ClientComputedContentSHA256=caller.payload_hash,
                      S3ComputedContentSHA256=sha.hexdigest())
    if md5 is not None and md5.digest() != want_md5:
        raise S3Error("BadDigest", ExpectedDigest=base64.b64encode(want_md5).decode())
    if checksum is not None:
        name, expected, hasher = checksum
        _check_digest(name, expected if expected is not None else trailers.get(f"x-amz-checksum-{name}"),
                      hasher.digest())


def read_body(req, caller: Caller, limit: int = 2 << 20) -> bytes:
    """A small body (XML documents), whole and checked."""
    return b"".join(body(req, caller, limit))
