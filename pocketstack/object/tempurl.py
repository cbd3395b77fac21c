"""TempURL: time-limited, signed object URLs that need no token (Swift's tempurl middleware).

A URL carries `temp_url_sig` and `temp_url_expires` (epoch seconds, or ISO 8601
`YYYY-MM-DDThh:mm:ssZ`); the signature is an HMAC over `METHOD\\nEXPIRES\\nPATH` (or
`prefix:/v1/<account>/<container>/<prefix>` with `temp_url_prefix`) keyed by one of the
account's (`X-Account-Meta-Temp-URL-Key(-2)`) or container's (`X-Container-Meta-Temp-URL-Key(-2)`)
keys. The digest is told by its length in hex (sha1/sha256/sha512) or named:
`sha512:<base64>`; `temp_url_ip_range` limits the client addresses (and is signed).
Anything wrong (no keys, bad or expired signature, wrong method, another path) is a 401
"Temp URL invalid". An account-key signature grants the account, a container-key one only
its container. A HEAD is allowed by a GET, PUT or POST signature too.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import ipaddress
import time
from urllib.parse import quote

from pocketstack.object import capabilities

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
ALLOWED_DIGESTS = ("sha1", "sha256", "sha512")
INCOMING_REMOVE = ("x-timestamp", "x-open-expired")
OUTGOING_REMOVE = ("x-object-meta-",)
OUTGOING_ALLOW = ("x-object-meta-public-",)
# Upstream refuses these on a write through a TempURL: they could point the new object at data
# the URL does not grant.
DISALLOWED_ON_WRITE = ("x-object-manifest", "x-symlink-target", "x-symlink-target-account")

capabilities.register("tempurl", {
    "methods": list(METHODS),
    "incoming_remove_headers": list(INCOMING_REMOVE), "incoming_allow_headers": [],
    "outgoing_remove_headers": ["x-object-meta-*"], "outgoing_allow_headers": ["x-object-meta-public-*"],
    "allowed_digests": list(ALLOWED_DIGESTS), "deprecated_digests": ["sha1"],
})


def requested(req) -> bool:
    return "temp_url_sig" in req.query or "temp_url_expires" in req.query


def _invalid():
    from pocketstack.object.api import SwiftError

    return SwiftError(401, "401 Unauthorized: Temp URL invalid\n")


def parse_expires(value: str | None) -> int:
    """Epoch seconds, or ISO 8601 UTC; 0 when unparsable or already past (upstream's rule)."""
    if value is None:
        return 0
    try:
        expires = int(value)
    except ValueError:
        try:
            expires = calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return 0
    return expires if expires >= time.time() else 0


def split_signature(sig: str) -> tuple[str, str]:
    """(algorithm, hex digest) of `<hex>` or `<algorithm>:<base64 or base64url>`; ValueError if bad."""
    if ":" in sig:
        algo, value = sig.split(":", 1)
        if ("-" in value or "_" in value) and not ("+" in value or "/" in value):
            value = value.replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("bad base64") from None
        return algo.lower(), raw.hex()
    binascii.unhexlify(sig)
    algo = {40: "sha1", 64: "sha256", 128: "sha512"}.get(len(sig))
    if not algo:
        raise ValueError("Bad digest length")
    return algo, sig.lower()


def signature(method: str, expires: int | str, path: str, key: str, digest: str = "sha256",
              ip_range: str | None = None) -> str:
    message = f"{method}\n{expires}\n{path}".encode()
    if ip_range:
        message = f"ip={ip_range}\n".encode() + message
    return hmac.new(key.encode(), message, digest).hexdigest()


def _keys(account: str, container: str | None) -> list[tuple[str, str]]:
    from pocketstack.object.api import storage

    store = storage()
    out = []
    info = store.account_info(account)
    for name, value in ((info or {}).get("metadata") or {}).items():
        if name.lower() in ("x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2") and value:
            out.append((value, "account"))
    if container:
        cinfo = store.container_info(account, container)
        for name, value in ((cinfo or {}).get("metadata") or {}).items():
            if name.lower() in ("x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2") and value:
                out.append((value, "container"))
    return out


def authorize(req, account: str, container: str | None, obj: str | None):
    """Check the signature; returns a non-owner `acl.Access` or raises 401."""
    from pocketstack.object.acl import Access
    from pocketstack.object.api import SwiftError

    sig, raw_expires = req.query.get("temp_url_sig"), req.query.get("temp_url_expires")
    prefix = req.query.get("temp_url_prefix")
    expires = parse_expires(raw_expires)
    if not sig or not expires or req.method not in METHODS or not container or not obj:
        raise _invalid()
    try:
        algo, sig = split_signature(sig)
    except ValueError:
        raise _invalid() from None
    if algo not in ALLOWED_DIGESTS:
        raise _invalid()
    if prefix is None:
        tail, kind = f"/v1/{account}/{container}/{obj}", ""
    elif obj.startswith(prefix):
        tail, kind = f"/v1/{account}/{container}/{prefix}", "prefix:"
    else:
        raise _invalid()
    # Signed as upstream (`/v1/...`), or over the path as the client sees it under our mount
    # (`/object/v1/...`, what Tempest and a full storage URL given to `swift tempurl` sign).
    mount = req.raw.scope.get("root_path", "")
    paths = [kind + tail] + ([kind + mount + tail] if mount else [])
    ip_range = req.query.get("temp_url_ip_range")
    if ip_range:
        client = req.raw.client.host if req.raw.client else None
        try:
            if client is None or ipaddress.ip_address(client) not in ipaddress.ip_network(ip_range, strict=False):
                raise _invalid()
        except ValueError:
            raise _invalid() from None
    keys = _keys(account, container)
    if not keys:
        raise _invalid()
    methods = ("HEAD", "GET", "POST", "PUT") if req.method == "HEAD" else (req.method,)
    scope = next((scope for m in methods for key, scope in keys for path in paths
                  if hmac.compare_digest(sig, signature(m, expires, path, key, algo, ip_range))), None)
    if scope is None:
        raise _invalid()
    if req.method not in ("GET", "HEAD"):
        for name in DISALLOWED_ON_WRITE:
            if name in req.headers:
                title = "-".join(p.capitalize() for p in name.split("-"))
                raise SwiftError(400, f"The header {title!r} is not allowed in this tempurl")
    req.state["tempurl"] = {"expires": expires, "filename": req.query.get("filename"),
                            "inline": "inline" in req.query, "account": account,
                            "container": container if scope == "container" else None}
    return Access(owner=False, via="tempurl")


def allows(req, account: str, container: str | None) -> bool:
    """Whether an already checked signature also covers another path of the same request
    (a symlink's target): the same account, and the same container for a container key."""
    info = req.state.get("tempurl")
    if not info or info["account"] != account:
        return False
    return info["container"] is None or info["container"] == container


def ignored_request_header(req, name: str) -> bool:
    """Headers a TempURL request may not set (its timestamps)."""
    return "tempurl" in req.state and name.lower() in INCOMING_REMOVE


def response_headers(req, obj: str, headers: dict) -> dict:
    """For a successful GET/HEAD through a TempURL: drop private metadata, add
    `Content-Disposition` (query `filename` / `inline`, or the object's own, or the name) and `Expires`."""
    info = req.state.get("tempurl")
    if not info:
        return headers
    for key in list(headers):
        lkey = key.lower()
        if lkey.startswith(OUTGOING_REMOVE) and not lkey.startswith(OUTGOING_ALLOW):
            del headers[key]
    if req.method not in ("GET", "HEAD"):
        return headers
    filename, existing = info["filename"], None
    for key in list(headers):
        if key.lower() == "content-disposition":
            existing = headers.pop(key)
    if info["inline"]:
        value = _disposition("inline", filename) if filename else "inline"
    elif filename:
        value = _disposition("attachment", filename)
    elif existing:
        value = existing
    else:
        value = _disposition("attachment", obj.rstrip("/").rsplit("/", 1)[-1])
    headers["Content-Disposition"] = value.replace("\n", "%0A")
    import email.utils

    try:
        headers["Expires"] = email.utils.formatdate(info["expires"], usegmt=True)
    except (OverflowError, ValueError, OSError):
        pass  # an expiry past what dates can say: no Expires header
    return headers


def _disposition(kind: str, filename: str) -> str:
    return f"{kind}; filename=\"{quote(filename, safe=' /')}\"; filename*=UTF-8''{quote(filename)}"
