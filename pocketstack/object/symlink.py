"""Symlinks (Swift's symlink middleware): zero-byte objects that point at another object.

PUT with `X-Symlink-Target: <container>/<object>` (and optionally `X-Symlink-Target-Account`)
makes a symlink; the body must be empty (400), the target well formed (412) and not the link
itself (400). With `X-Symlink-Target-Etag` it is a *static* link: the target must exist now
(409 "X-Symlink-Target does not exist") with that ETag (409), and a later GET fails with 409
if the target changed. The link details are system metadata (`X-Object-Sysmeta-Symlink-*`),
kept across POSTs and shown as `X-Symlink-Target*` only to `?symlink=get` / `HEAD ?symlink=get`.

GET/HEAD follow links (each hop authorized as a read of its target, so a link never grants
more than its target's ACL) up to `symloop_max` (2) hops: one more is 409 "Too many levels of
symbolic links". The answer is the target's, plus `Content-Location` naming it. A POST to a
symlink is applied to the link and answered 307 with `Location` = the target, as upstream.
"""
from __future__ import annotations

from urllib.parse import quote, unquote

from pocketstack.object import capabilities

SYMLOOP_MAX = 2
TARGET = "X-Object-Sysmeta-Symlink-Target"
TARGET_ACCOUNT = "X-Object-Sysmeta-Symlink-Target-Account"
TARGET_ETAG = "X-Object-Sysmeta-Symlink-Target-Etag"
TARGET_BYTES = "X-Object-Sysmeta-Symlink-Target-Bytes"
SYSMETA = (TARGET, TARGET_ACCOUNT, TARGET_ETAG, TARGET_BYTES)

capabilities.register("symlink", {"symloop_max": SYMLOOP_MAX, "static_links": True})


def _error(code, text=None, headers=None):
    from pocketstack.object.api import SwiftError

    return SwiftError(code, text, headers=headers)


def _storage():
    from pocketstack.object.api import storage

    return storage()


def requested(req) -> bool:
    return "x-symlink-target" in req.headers


def prepare_put(req, account: str, container: str, obj: str, length: int | None) -> tuple[dict, str | None]:
    """Validate a symlink PUT; returns (sysmeta to store, content type or None)."""
    from pocketstack.object import acl
    from pocketstack.object import storage as st

    if length:
        raise _error(400, "Symlink requests require a zero byte body")
    form = "X-Symlink-Target header must be of the form <container name>/<object name>"
    raw = unquote(req.headers["x-symlink-target"])
    t_container, _, t_obj = raw.partition("/")
    if raw.startswith("/") or not t_container or not t_obj:
        raise _error(412, form)
    t_account = req.headers.get("x-symlink-target-account")
    if t_account is not None:
        t_account = unquote(t_account)
        if not t_account or "/" in t_account:
            raise _error(412, "Account name cannot contain slashes")
    target_account = t_account or account
    if (target_account, t_container, t_obj) == (account, container, obj):
        raise _error(400, "Symlink cannot target itself")
    sysmeta = {TARGET: quote(f"{t_container}/{t_obj}")}
    if t_account:
        sysmeta[TARGET_ACCOUNT] = quote(t_account)
    content_type = req.headers.get("content-type")
    etag = req.headers.get("x-symlink-target-etag")
    if etag is not None:
        etag = etag.strip().strip('"')
        if any(c in etag for c in ';"\\'):
            raise _error(400, "Bad X-Symlink-Target-Etag format")
        path = f"/v1/{target_account}/{t_container}/{t_obj}"
        acl.authorize(req, target_account, t_container, t_obj, False)
        try:
            meta, _ = resolve(req, target_account, t_container, t_obj, follow_soft=False)
        except st.NotFoundError:
            raise _error(409, "X-Symlink-Target does not exist",
                         headers={"Content-Location": path}) from None
        found = meta.get("meta", {}).get(TARGET_ETAG) or meta["etag"]
        if found != etag:
            raise _error(409, f"Object Etag {found!r} does not match X-Symlink-Target-Etag header {etag!r}",
                         headers={"Content-Location": path})
        sysmeta[TARGET_ETAG] = etag
        sysmeta[TARGET_BYTES] = str(meta.get("meta", {}).get(TARGET_BYTES) or meta["size"])
        content_type = content_type or meta["content_type"]
    elif not content_type:
        content_type = "application/symlink"
    return sysmeta, content_type


def target_of(meta: dict, account: str) -> tuple[str, str, str] | None:
    user = meta.get("meta") or {}
    target = user.get(TARGET)
    if not target:
        return None
    t_container, _, t_obj = unquote(target).partition("/")
    return unquote(user.get(TARGET_ACCOUNT) or account), t_container, t_obj


def resolve(req, account: str, container: str, obj: str, follow_soft: bool = True, **kwargs):
    """(metadata, data path, content location or None) of what a GET/HEAD of the object serves,
    following links; raises NotFoundError, or 409 for loops and static links whose target changed."""
    from pocketstack.object import acl

    store = _storage()
    meta, path = store.head_object(account, container, obj, **kwargs)
    hops, location, expected_etag = 0, None, None
    while True:
        target = target_of(meta, account)
        static_etag = (meta.get("meta") or {}).get(TARGET_ETAG)
        if target is None or not (static_etag or follow_soft):
            break
        if expected_etag and static_etag and expected_etag != static_etag:
            raise _error(409, "X-Symlink-Target-Etag headers do not match",
                         headers={"Content-Location": location})
        if hops >= SYMLOOP_MAX:
            raise _error(409, f"Too many levels of symbolic links, maximum allowed is {SYMLOOP_MAX}")
        hops += 1
        account, container, obj = target
        location = quote(f"/v1/{account}/{container}/{obj}")
        acl.authorize(req, account, container, obj, False)
        expected_etag = static_etag
        meta, path = store.head_object(account, container, obj, **kwargs)
    if expected_etag and target_of(meta, account) is None and meta["etag"] != expected_etag:
        raise _error(409, f"Object Etag {meta['etag']!r} does not match X-Symlink-Target-Etag header "
                          f"{expected_etag!r}", headers={"Content-Location": location})
    if location:
        meta = {**meta, "content_location": location}
    return meta, path


def response_headers(meta: dict, headers: dict, show: bool) -> dict:
    """Never the link's sysmeta; with `show` (`?symlink=get`) its `X-Symlink-Target*` headers."""
    for key in SYSMETA:
        headers.pop(key, None)
        value = (meta.get("meta") or {}).get(key)
        if value and show:
            headers["X-Symlink-" + key[len("X-Object-Sysmeta-Symlink-"):]] = value
    if meta.get("content_location"):
        headers["Content-Location"] = meta["content_location"]
    return headers


EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def listing_etag(sysmeta: dict) -> str:
    """What the container listing records as the link's hash: upstream's etag with parameters
    (`<md5 of nothing>; symlink_target=c/o; ...`), turned into `symlink_path` by `listing()`."""
    parts = [EMPTY_MD5, f"symlink_target={sysmeta[TARGET]}"]
    if TARGET_ACCOUNT in sysmeta:
        parts.append(f"symlink_target_account={sysmeta[TARGET_ACCOUNT]}")
    if TARGET_ETAG in sysmeta:
        parts += [f"symlink_target_etag={sysmeta[TARGET_ETAG]}", f"symlink_target_bytes={sysmeta[TARGET_BYTES]}"]
    return "; ".join(parts)


def listing(items: list[dict], account: str, fmt: str) -> list[dict]:
    """Container listings: the plain hash for every format, plus `symlink_path` (and for static
    links `symlink_etag` / `symlink_bytes`) in JSON, as upstream."""
    for item in items:
        value = item.get("hash")
        if not value or ";" not in value:
            continue
        md5, *params = [p.strip() for p in value.split(";")]
        item["hash"] = md5
        found = dict(p.partition("=")[::2] for p in params)
        if "symlink_target" not in found or fmt != "json":
            continue
        target_account = found.get("symlink_target_account") or quote(account)
        item["symlink_path"] = f"/v1/{target_account}/{found['symlink_target']}"
        if "symlink_target_etag" in found:
            item["symlink_etag"] = found["symlink_target_etag"]
            item["symlink_bytes"] = int(found.get("symlink_target_bytes") or 0)
    return items


def keep_sysmeta(old_meta: dict) -> dict:
    """The sysmeta a POST (which replaces user metadata) must keep."""
    return {k: v for k, v in (old_meta.get("meta") or {}).items() if k in SYSMETA}


def post_redirect(old_meta: dict, account: str):
    """After a POST applied to a symlink: the 307 upstream answers."""
    target = target_of(old_meta, account)
    if target is None:
        return None
    headers = {"Location": quote(f"/v1/{target[0]}/{target[1]}/{target[2]}")}
    etag = (old_meta.get("meta") or {}).get(TARGET_ETAG)
    if etag:
        headers["X-Symlink-Target-Etag"] = etag
    return _error(307, "The requested POST was applied to a symlink. POST directly to the target to apply "
                       "requested metadata.", headers=headers)
