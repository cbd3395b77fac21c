"""Account and container quotas (Swift's account_quotas and container_quotas middlewares).

Account: `X-Account-Quota-Bytes` / `X-Account-Quota-Count` (and the legacy
`X-Account-Meta-Quota-Bytes`) may be set or removed only by a reseller request (`ResellerAdmin`,
policy `object_store:reseller_request`): anyone else gets 403, a non-integer 400. Container:
`X-Container-Meta-Quota-Bytes` / `-Quota-Count`, set by the container's owners like any
metadata, must be integers (400 "Invalid bytes quota." / "Invalid count quota.").

An object PUT (or copy) that would take the account or container past a quota is answered
413 "Upload exceeds quota." before anything is written. Upstream trusts `Content-Length`
only; here a chunked upload is also cut off (413, nothing kept) as soon as it passes the
bytes left, so a quota cannot be overrun by leaving the length out.
"""
from __future__ import annotations

from pocketstack.common.runtime import current
from pocketstack.object import capabilities

capabilities.register("account_quotas", {})
capabilities.register("container_quotas", {})

ACCOUNT_QUOTA_HEADERS = ("x-account-quota-bytes", "x-account-quota-count")
LEGACY = "x-account-meta-quota-bytes"


def _error(code, text=None):
    from pocketstack.object.api import SwiftError

    return SwiftError(code, text)


def account_updates(req) -> dict[str, str]:
    """Quota headers of an account POST as metadata updates; 403 unless a reseller request."""
    wanted: dict[str, str | None] = {}
    for name in ACCOUNT_QUOTA_HEADERS + (LEGACY,):
        value = req.headers.get(name)
        removal = req.headers.get(name.replace("x-account-", "x-remove-account-", 1))
        if removal:
            value = ""
        if value is not None:
            wanted[name] = value
    if LEGACY in wanted and "x-account-quota-bytes" not in wanted:
        wanted["x-account-quota-bytes"] = wanted[LEGACY]
    if not wanted:
        return {}
    ctx = req.context
    project_id = req.path_params["account"][5:]
    if not current().enforcer.check("object_store:reseller_request", {"project_id": project_id},
                                    ctx.policy_creds()):
        raise _error(403)
    if any(v and not _digits(v) for v in wanted.values()):
        raise _error(400)
    return {"-".join(p.capitalize() for p in k.split("-")): v for k, v in wanted.items()}


def strip_account_headers(updates: dict[str, str]) -> dict[str, str]:
    """The generic metadata path must not store the quota headers (this module did)."""
    return {k: v for k, v in updates.items() if k.lower() not in ACCOUNT_QUOTA_HEADERS + (LEGACY,)}


def check_container_updates(updates: dict[str, str]) -> None:
    for key, value in updates.items():
        lkey = key.lower()
        if lkey == "x-container-meta-quota-bytes" and value and not _digits(value):
            raise _error(400, "Invalid bytes quota.")
        if lkey == "x-container-meta-quota-count" and value and not _digits(value):
            raise _error(400, "Invalid count quota.")


def _digits(value: str) -> bool:
    """ASCII digits only (str.isdigit() also accepts characters int() refuses, like "²")."""
    return value.isascii() and value.isdigit()


def _int(meta: dict, key: str) -> int | None:
    for k, v in meta.items():
        if k.lower() == key:
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
    return None


def bytes_left(req, account: str, container: str, length: int | None, cinfo: dict | None = None) -> int | None:
    """Check an upload of `length` bytes (None: unknown) against every quota; 413 when it cannot
    fit. Returns how many bytes may still be written (None: no bytes quota)."""
    from pocketstack.object.api import storage

    store = storage()
    left: int | None = None
    reseller = current().enforcer.check("object_store:reseller_request", {"project_id": account[5:]},
                                        req.context.policy_creds()) if req.token else False
    if not reseller:
        info = _account_quota_info(store, account)
        quota = _int(info["metadata"], "x-account-quota-bytes")
        if quota is None:
            quota = _int(info["metadata"], LEGACY)
        if quota is not None:
            left = quota - info["bytes_used"]
            if left < (length or 0):
                raise _error(413, "Upload exceeds quota.")
        quota = _int(info["metadata"], "x-account-quota-count")
        if quota is not None and info["object_count"] + 1 > quota:
            raise _error(413, "Upload exceeds quota.")
    cinfo = cinfo if cinfo is not None else store.container_info(account, container)
    if cinfo is not None:
        quota = _int(cinfo["metadata"], "x-container-meta-quota-bytes")
        if quota is not None:
            room = quota - cinfo["bytes_used"]
            if room < (length or 0):
                raise _error(413, "Upload exceeds quota.")
            left = room if left is None else min(left, room)
        quota = _int(cinfo["metadata"], "x-container-meta-quota-count")
        if quota is not None and cinfo["object_count"] + 1 > quota:
            raise _error(413, "Upload exceeds quota.")
    return left


def _account_quota_info(store, account: str) -> dict:
    return store.account_info(account) or {"metadata": {}, "bytes_used": 0, "object_count": 0}


def limit(chunks, left: int | None):
    """Stop a body that grows past the quota's room (413; the partial write is discarded)."""
    if left is None:
        yield from chunks
        return
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > left:
            raise _error(413, "Upload exceeds quota.")
        yield chunk
