"""The access-control and middleware features, as the few hook calls `api.py` makes.

Upstream these are WSGI middlewares stacked in front of the proxy (keystoneauth, tempauth,
tempurl, formpost, staticweb, account_quotas, container_quotas, versioned_writes, symlink,
cors, the object expirer). Here `api.py` calls one hook per step of a request, and this module
runs the features in upstream's pipeline order, so each feature stays a small module of its
own (`acl`, `tempauth`, `tempurl`, `formpost`, `staticweb`, `quotas`, `versioning`, `expirer`,
`symlink`, `cors`) and the API module stays about HTTP. Importing this module registers every
feature in `/info` (`capabilities`).
"""
from __future__ import annotations

from pocketstack.common import events
from pocketstack.object import (acl, cors, expirer, formpost, quotas, staticweb, symlink, tempauth,  # noqa: F401
                                tempurl, versioning)
from pocketstack.object import storage as st


def _error(code, text=None):
    from pocketstack.object.api import SwiftError

    return SwiftError(code, text)


def _storage():
    from pocketstack.object.api import storage

    return storage()


# ---------------------------------------------------------------------------- accounts
def account_post(req, account: str, updates: dict) -> dict:
    """Metadata updates of an account POST: privileged headers for owners only, ACL syntax,
    quota headers for resellers only."""
    updates = quotas.strip_account_headers(acl.clean_request_headers(req, updates, "account"))
    acl_value = req.headers.get(acl.ACCOUNT_ACL_HEADER.lower())
    if acl_value is not None or req.headers.get("x-remove-account-access-control"):
        updates.update(acl.clean_request_headers(
            req, {acl.ACCOUNT_ACL_HEADER: "" if req.headers.get("x-remove-account-access-control") else acl_value},
            "account"))
    quota = quotas.account_updates(req)
    updates.update(quota)
    if quota:
        events.emit("object.account.quota_updated", {"account": account, "quotas": quota})
    if any(k.lower() in acl.OWNER_HEADERS for k in updates):
        events.emit("object.account.acl_updated", {"account": account,
                                                   "headers": sorted(k for k in updates
                                                                     if k.lower() in acl.OWNER_HEADERS)})
    return updates


def account_read(req, account: str) -> None:
    expirer.reap(account)


def account_headers(req, headers: dict) -> dict:
    return acl.filter_response_headers(req, headers)


# ---------------------------------------------------------------------------- containers
def container_write(req, account: str, container: str, updates: dict) -> dict:
    """Metadata updates of a container PUT/POST."""
    updates = acl.clean_request_headers(req, updates, "container")
    quotas.check_container_updates(updates)
    updates.update(versioning.container_updates(req))
    if any(k.lower() in (acl.READ_HEADER.lower(), acl.WRITE_HEADER.lower()) for k in updates):
        events.emit("object.container.acl_updated", {
            "account": account, "container": container,
            "read": updates.get(acl.READ_HEADER), "write": updates.get(acl.WRITE_HEADER)})
    return updates


def container_read(req, account: str, container: str) -> None:
    expirer.reap(account, container)


def container_listing(req, account: str, items: list[dict], fmt: str) -> list[dict]:
    return symlink.listing(items, account, fmt)


def container_headers(req, account: str, container: str, headers: dict) -> dict:
    acl.filter_response_headers(req, headers)
    return cors.add_headers(req, account, container, headers)


def static_web(req, account: str, container: str, obj: str | None = None):
    """A static-web answer for anonymous (or `X-Web-Mode`) GET/HEAD, or None."""
    return staticweb.handle(req, account, container, obj)


def form_post(req, account: str, container: str, prefix: str = ""):
    """A FormPost upload (multipart/form-data POST signed with a Temp-URL key), or None."""
    if not formpost.requested(req):
        return None
    return formpost.handle(req, account, container, prefix)


def options(req, account: str, container: str | None = None, obj: str | None = None):
    return cors.preflight(req, account, container, obj)


# ---------------------------------------------------------------------------- objects
def object_read(req, account: str, container: str, obj: str, **kwargs):
    """(meta, path) a GET/HEAD serves: expired objects are gone, symlinks are followed
    (unless `?symlink=get`)."""
    if req.query.get("symlink") == "get":
        meta, path = _storage().head_object(account, container, obj, **kwargs)
    else:
        meta, path = symlink.resolve(req, account, container, obj, **kwargs)
    if expirer.is_expired(meta):
        expirer.expire_one(account, container, obj)
        raise st.NotFoundError(obj)
    return meta, path


def object_headers(req, account: str, container: str, obj: str, meta: dict, headers: dict) -> dict:
    symlink.response_headers(meta, headers, show=req.query.get("symlink") == "get")
    tempurl.response_headers(req, obj, headers)
    return cors.add_headers(req, account, container, headers)


def object_put(req, account: str, container: str, obj: str, length: int | None, metadata: dict) -> int | None:
    """Before a PUT's body is read: symlink, expiry, quotas and versioning; fills `metadata`
    (content_type, meta) and returns the bytes the quotas leave (None: unlimited)."""
    if symlink.requested(req):
        sysmeta, content_type = symlink.prepare_put(req, account, container, obj, length)
        metadata["meta"].update(sysmeta)
        metadata["listing_etag"] = symlink.listing_etag(sysmeta)
        if content_type:
            metadata["content_type"] = content_type
    delete_at = expirer.requested_delete_at(req)
    if delete_at:
        metadata["meta"][expirer.HEADER] = str(delete_at)
    cinfo = _storage().container_info(account, container)  # read once for quotas and versioning
    if cinfo is None:
        raise _error(404)
    left = quotas.bytes_left(req, account, container, length, cinfo)
    versioning.archive_current(req, account, container, obj, cinfo)
    return left


def object_copy(req, s_account: str, s_container: str, s_obj: str, d_account: str, d_container: str,
                d_obj: str, src: dict, meta: dict) -> None:
    """A copy (COPY or PUT + X-Copy-From) reads an unexpired source and writes like a PUT."""
    if expirer.is_expired(src):
        raise _error(404)
    delete_at = expirer.requested_delete_at(req)
    if delete_at:
        meta[expirer.HEADER] = str(delete_at)
    else:
        meta.pop(expirer.HEADER, None)
    quotas.bytes_left(req, d_account, d_container, src.get("size"))
    versioning.archive_current(req, d_account, d_container, d_obj)


def object_written(account: str, container: str, obj: str, meta: dict) -> None:
    expirer.schedule(account, container, obj, expirer.delete_at_of(meta))


def object_post(req, account: str, container: str, obj: str, old: dict, updates: dict) -> None:
    """A POST replaces user metadata: expired objects are 404, `X-Delete-At` is set anew,
    symlink sysmeta is kept."""
    if symlink.requested(req):
        raise _error(400, "A PUT request is required to set a symlink target")
    if expirer.is_expired(old):
        raise _error(404)
    delete_at = expirer.requested_delete_at(req)
    if delete_at:
        updates["meta"][expirer.HEADER] = str(delete_at)
    updates["meta"].update(symlink.keep_sysmeta(old))


def object_posted(req, account: str, container: str, obj: str, old: dict, updates: dict) -> None:
    expirer.schedule(account, container, obj, expirer.delete_at_of(updates))
    redirect = symlink.post_redirect(old, account)
    if redirect is not None:
        raise redirect


def object_delete(req, account: str, container: str, obj: str) -> bool:
    """True when versioning answered the DELETE (restored a previous version)."""
    try:
        meta, _ = _storage().head_object(account, container, obj)
        if expirer.is_expired(meta):
            expirer.expire_one(account, container, obj)
    except st.NotFoundError:
        pass
    return versioning.delete(req, account, container, obj)
