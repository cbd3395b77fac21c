"""FormPost: browser uploads straight into a container (Swift's formpost middleware).

A `POST` of `multipart/form-data` to `/v1/<account>/<container>[/<prefix>]` needs no token: the
form carries `redirect`, `max_file_size`, `max_file_count`, `expires` and a `signature`, an
HMAC (sha1/sha256/sha512, hex or `<algo>:<base64>`) keyed by one of the account's or
container's Temp-URL keys over `<path>\\n<redirect>\\n<max_file_size>\\n<max_file_count>\\n<expires>`.
Each file field becomes the object `<prefix><filename>`, written like any PUT (quotas,
versioning, expiry via `x_delete_at` / `x_delete_after` fields, `content-type` field or part
header). Answers as upstream: `201 Created` as text (or a 303 to `redirect?status=..&message=..`),
401 "FormPost: Form Expired" / "FormPost: Invalid Signature", 400 "FormPost: max_file_size
exceeded", "max file count exceeded", "no files to process".

The body is parsed as it streams (one piece in memory at a time), so uploads of any
`max_file_size` stay in constant memory.
"""
from __future__ import annotations

import hmac
import re
import time
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import Response

from pocketstack.object import capabilities, tempurl

MAX_VALUE_LENGTH = 4096
MAX_HEADER_BLOCK = 1 << 16

capabilities.register("formpost", {"allowed_digests": list(tempurl.ALLOWED_DIGESTS),
                                   "deprecated_digests": ["sha1"]})


class FormInvalid(Exception):
    pass


class FormUnauthorized(Exception):
    pass


class MimeInvalid(Exception):
    pass


def requested(req) -> bool:
    return req.method == "POST" and _boundary(req.headers.get("content-type", "")) is not None


def _boundary(content_type: str) -> str | None:
    value, params = _parse_params(content_type)
    if value.lower() != "multipart/form-data":
        return None
    return params.get("boundary") or None


_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("([^"]*)"|[^;]*)')


def _parse_params(value: str) -> tuple[str, dict]:
    main, _, rest = value.partition(";")
    params = {}
    for m in _PARAM.finditer(";" + rest):
        params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2).strip()
    return main.strip(), params


class _Multipart:
    """A streaming multipart/form-data reader over an iterator of byte chunks."""

    def __init__(self, chunks, boundary: str):
        self.chunks = iter(chunks)
        self.buf = b""
        self.delim = b"--" + boundary.encode()

    def _fill(self) -> bool:
        chunk = next(self.chunks, None)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def parts(self):
        while True:
            i = self.buf.find(self.delim)
            if i >= 0:
                self.buf = self.buf[i + len(self.delim):]
                break
            if len(self.buf) > MAX_HEADER_BLOCK or not self._fill():
                raise MimeInvalid()
        while True:
            while len(self.buf) < 2 and self._fill():
                pass
            if self.buf.startswith(b"--") or not self.buf:
                return
            while b"\r\n\r\n" not in self.buf:
                if len(self.buf) > MAX_HEADER_BLOCK or not self._fill():
                    raise FormInvalid("invalid form")
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            headers = {}
            for line in head.decode("utf-8", "replace").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            body = self._body()
            yield headers, body
            for _ in body:  # whatever the consumer left
                pass

    def _body(self):
        marker = b"\r\n" + self.delim
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                data, self.buf = self.buf[:i], self.buf[i + len(marker):]
                if data:
                    yield data
                return
            keep = len(marker) - 1
            if len(self.buf) > keep:
                data, self.buf = self.buf[:-keep], self.buf[-keep:]
                yield data
            if not self._fill():
                raise FormInvalid("invalid form")


class _SubRequest:
    """What `api.put_object` reads from a request, for one uploaded file."""

    def __init__(self, parent, headers: dict, body, account: str, container: str):
        self.raw = parent.raw
        self.method = "PUT"
        self.headers = Headers(headers)
        self.query = {}
        self.path_params = parent.path_params
        self.stream = body
        self.token = None
        # Authorized by the signature for this container only (as a TempURL would be).
        self.state = {"tempurl": {"expires": 0, "filename": None, "inline": False, "account": account,
                                  "container": container}}

    @property
    def context(self):
        from pocketstack.common.errors import Unauthorized

        raise Unauthorized()


def _capped(body, limit: int):
    seen = 0
    for chunk in body:
        seen += len(chunk)
        if seen > limit:
            raise EOFError("max_file_size exceeded")
        yield chunk


def handle(req, account: str, container: str, prefix: str) -> Response:
    try:
        return _translate(req, account, container, prefix)
    except MimeInvalid:
        return _text(400, "FormPost: invalid starting boundary")
    except (FormInvalid, EOFError) as err:
        return _text(400, f"FormPost: {err}")
    except FormUnauthorized as err:
        return _text(401, f"FormPost: {str(err).title()}")
    finally:
        if req.stream is not None and not req.stream.done:
            req.stream.drain(1 << 24)


def _text(status: int, body: str, headers: dict | None = None) -> Response:
    from pocketstack.object.api import trans_id

    return Response(body, status_code=status, media_type="text/plain",
                    headers={"X-Trans-Id": trans_id(), **(headers or {})})


def _status_line(code: int) -> str:
    from pocketstack.object.api import REASONS

    reason = {201: "Created", 202: "Accepted"}.get(code) or REASONS.get(code, ("Error",))[0]
    return f"{code} {reason}"


def _translate(req, account: str, container: str, prefix: str) -> Response:
    keys = [key for key, _scope in tempurl._keys(account, container)]
    attributes: dict[str, str] = {}
    status, message, resp_body, file_count = None, "", b"", 0
    chunks = iter(req.stream) if req.stream is not None else iter(())
    for headers, body in _Multipart(chunks, _boundary(req.headers["content-type"])).parts():
        disposition, attrs = _parse_params(headers.get("content-disposition", ""))
        if disposition == "form-data" and attrs.get("filename"):
            file_count += 1
            try:
                max_count = int(attributes.get("max_file_count") or 0)
            except ValueError:
                raise FormInvalid("max_file_count not an integer") from None
            if file_count > max_count:
                status, message = 400, "max file count exceeded"
                break
            fields = dict(attributes)
            if "content-type" not in fields and "content-type" in headers:
                fields["content-type"] = headers["content-type"] or "application/octet-stream"
            if "content-encoding" not in fields and "content-encoding" in headers:
                fields["content-encoding"] = headers["content-encoding"]
            status, resp_body = _upload(req, account, container, prefix, attrs["filename"], fields, body, keys)
            if not 200 <= status < 300:
                break
        else:
            data = b""
            for chunk in body:
                if len(data) < MAX_VALUE_LENGTH:
                    data += chunk[:MAX_VALUE_LENGTH - len(data)]
            if "name" in attrs:
                attributes[attrs["name"].lower()] = data.decode("utf-8", "replace").rstrip("\r\n--")
    if status is None:
        status, message = 400, "no files to process"
    redirect = attributes.get("redirect")
    if not redirect:
        text = _status_line(status) + (f"\r\nFormPost: {message.title()}" if message else "")
        if not 200 <= status < 300 and resp_body:
            text = resp_body
        return _text(status, text)
    redirect += ("&" if "?" in redirect else "?") + f"status={quote(str(status))}&message={quote(message)}"
    body = f'<html><body><p><a href="{redirect}">Click to continue...</a></p></body></html>'
    return Response(body, status_code=303, media_type="text/html; charset=UTF-8", headers={"Location": redirect})


def _upload(req, account, container, prefix, filename, fields, body, keys) -> tuple[int, str]:
    from pocketstack.object import api

    if not keys:
        raise FormUnauthorized("invalid signature")
    try:
        max_size = int(fields.get("max_file_size") or 0)
    except ValueError:
        raise FormInvalid("max_file_size not an integer") from None
    try:
        if int(fields.get("expires") or 0) < time.time():
            raise FormUnauthorized("form expired")
    except ValueError:
        raise FormInvalid("expired not an integer") from None
    tail = "\n".join([fields.get("redirect") or "", fields.get("max_file_size") or "0",
                      fields.get("max_file_count") or "0", fields.get("expires") or "0"])
    path = req.raw.url.path
    mount = req.raw.scope.get("root_path", "")
    candidates = [path] + ([path[len(mount):]] if mount and path.startswith(mount) else [])
    try:
        algo, signature = tempurl.split_signature(fields.get("signature", ""))
    except ValueError:
        raise FormUnauthorized("invalid signature") from None
    if algo not in tempurl.ALLOWED_DIGESTS or not any(
            hmac.compare_digest(hmac.new(key.encode(), f"{p}\n{tail}".encode(), algo).hexdigest(), signature)
            for key in keys for p in candidates):
        raise FormUnauthorized("invalid signature")
    headers = {"transfer-encoding": "chunked"}
    for field, header in (("x_delete_at", "x-delete-at"), ("x_delete_after", "x-delete-after")):
        if field in fields:
            try:
                headers[header] = str(int(fields[field]))
            except ValueError:
                what = "Unix timestamp" if field == "x_delete_at" else "Number of seconds"
                raise FormInvalid(f"{field} not an integer: {what} required.") from None
    if "content-type" in fields:
        headers["content-type"] = fields["content-type"] or "application/octet-stream"
    if "content-encoding" in fields:
        headers["content-encoding"] = fields["content-encoding"]
    name = (prefix or "") + (filename or "filename")
    sub = _SubRequest(req, headers, _capped(body, max_size), account, container)
    try:
        api.check_object_name(name)
        response = api.put_object(sub, account, container, name)
    except api.SwiftError as err:
        return err.code, err.explanation or ""
    return response.status_code, ""
