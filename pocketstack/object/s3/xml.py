"""S3's XML: response documents, error bodies, and the few request documents we parse.

Every S3 error is an `S3Error` (an `ApiError`, so the shared `Api` plumbing renders it
through `render_error`): `<Error><Code>..</Code><Message>..</Message><Resource>..</Resource>
<RequestId>..</RequestId></Error>` with the status AWS documents for that code. Errors
raised by the shared plumbing itself (unknown method, unhandled exception) are mapped to
the S3 code of their status, so a client never sees a JSON or HTML body here.

Request bodies are parsed with the standard library's expat-based parser after refusing
any DOCTYPE (so no entity expansion can happen); anything unparsable is MalformedXML.
"""
from __future__ import annotations

import datetime
import email.utils
import math
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from pocketstack.common.errors import ApiError

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_TYPE = "application/xml"

# code -> (status, default message): the statuses of AWS's error code table.
ERRORS = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "The query parameters that provide authentication are invalid."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available. The bucket namespace is shared by "
                                 "all users of the system. Please select a different name and try again."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket succeeded and you already "
                                     "own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the Content-Length HTTP "
                            "header."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidPart": (400, "One or more of the specified parts could not be found. The part may not have been "
                         "uploaded, or the specified entity tag may not match the part's entity tag."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. The parts list must be specified "
                              "in order by part number."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedACLError": (400, "The XML you provided was not well-formed or did not validate against our "
                               "published schema"),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against our published "
                          "schema"),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingSecurityHeader": (400, "Your request was missing a required header"),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be invalid, or the upload may "
                          "have been aborted or completed."),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented."),
    "PreconditionFailed": (412, "At least one of the preconditions you specified did not hold."),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current time is too large."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the signature you "
                                   "provided. Check your key and signing method."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match what was "
                                       "computed."),
}

# The S3 code for errors the shared plumbing raises by status only.
_BY_STATUS = {400: "InvalidRequest", 401: "AccessDenied", 403: "AccessDenied", 404: "NoSuchKey",
              405: "MethodNotAllowed", 411: "MissingContentLength", 412: "PreconditionFailed",
              413: "EntityTooLarge", 416: "InvalidRange", 501: "NotImplemented", 503: "ServiceUnavailable"}


class S3Error(ApiError):
    """An S3 error: its code names the status and default message; `fields` are extra
    elements of the error document (BucketName, Key, UploadId, ...)."""

    def __init__(self, s3_code: str, message: str | None = None, *, headers: dict | None = None, **fields):
        status, default = ERRORS[s3_code]
        super().__init__(message or default, headers=headers)
        self.code = status
        self.s3_code = s3_code
        self.fields = {k: v for k, v in fields.items() if v is not None}


class NotModified(Exception):
    """A conditional GET/HEAD whose answer is 304 (no body, a few headers)."""

    def __init__(self, headers: dict):
        self.headers = headers


def render_error(err: ApiError, request: Request | None) -> Response:
    code = getattr(err, "s3_code", None) or _BY_STATUS.get(err.code, "InternalError")
    status = err.code if getattr(err, "s3_code", None) else ERRORS[code][0]
    message = err.message if getattr(err, "s3_code", None) else ERRORS[code][1]
    headers = dict(err.headers)
    if request is not None and request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=XML_TYPE)
    resource = request.url.path if request is not None else ""
    request_id = (request.scope.get("state", {}).get("request_id") if request is not None else None) or ""
    parts = [f"<Code>{code}</Code>", f"<Message>{escape(message)}</Message>"]
    for key, value in getattr(err, "fields", {}).items():
        parts.append(f"<{key}>{escape(str(value))}</{key}>")
    parts.append(f"<Resource>{escape(resource)}</Resource><RequestId>{escape(request_id)}</RequestId>")
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    return Response(body.encode(), status_code=status, headers=headers, media_type=XML_TYPE)


# ---------------------------------------------------------------------------- building
class E:
    """A tiny XML element builder: `E("Bucket", E("Name", "b"))`; None children are skipped."""

    __slots__ = ("tag", "children", "attrs")

    def __init__(self, tag: str, *children, **attrs):
        self.tag, self.children, self.attrs = tag, children, attrs

    def render(self, out: list[str]) -> None:
        attrs = "".join(f' {k.replace("__", ":")}="{escape(str(v))}"' for k, v in self.attrs.items())
        out.append(f"<{self.tag}{attrs}>")
        for child in self.children:
            if child is None:
                continue
            if isinstance(child, E):
                child.render(out)
            elif isinstance(child, (list, tuple)):
                for c in child:
                    if c is not None:
                        c.render(out)
            elif isinstance(child, bool):
                out.append("true" if child else "false")
            else:
                out.append(escape(str(child)))
        out.append(f"</{self.tag}>")


def document(root: E) -> bytes:
    root.attrs.setdefault("xmlns", NS)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    root.render(out)
    return "".join(out).encode()


def xml_response(root: E, status: int = 200, headers: dict | None = None) -> Response:
    return Response(document(root), status_code=status, headers=headers, media_type=XML_TYPE)


def iso8601(ts: str | float) -> str:
    """Listing dates: `2026-11-26T12:00:00.000Z`."""
    when = datetime.datetime.fromtimestamp(float(ts), datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def http_date(ts: str | float) -> str:
    return email.utils.formatdate(math.ceil(float(ts)), usegmt=True)


# ---------------------------------------------------------------------------- parsing
def parse(body: bytes, root: str, error: str = "MalformedXML") -> ET.Element:
    """The request document, which must have root element `root` (any namespace)."""
    if not body or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise S3Error(error)
    try:
        elem = ET.fromstring(body)
    except (ET.ParseError, ValueError, RecursionError):
        raise S3Error(error) from None
    if local(elem.tag) != root:
        raise S3Error(error)
    return elem


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if local(c.tag) == name]


def child_text(elem: ET.Element, name: str) -> str | None:
    found = children(elem, name)
    if not found:
        return None
    return found[0].text or ""
