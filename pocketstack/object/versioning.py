"""Object versioning (Swift's legacy versioned_writes): `X-Versions-Location` and `X-History-Location`.

A container with `X-Versions-Location: <archive container>` ("stack" mode) or
`X-History-Location: <archive container>` ("history" mode) keeps overwritten objects: before a
PUT (or a copy) replaces an object, the current one is copied into the archive container as
`<3 hex digits: length of the name in bytes><name>/<its timestamp>` (upstream's names, so
`swift list --prefix` and clients that browse archives work alike).

- stack mode, DELETE: the newest archived version is copied back and removed from the archive
  (delete markers left by history mode are honoured as upstream); nothing archived: a plain delete.
- history mode, DELETE: the current object is archived, a zero-byte delete marker
  (`application/x-deleted;swift_versions_deleted=1`) is written, then the object is deleted.

Both headers in one request are a 400; an empty value or `X-Remove-Versions-Location` /
`X-Remove-History-Location` turns versioning off. The archive container must exist and be
writable by the caller: otherwise the write is refused with 412, as upstream.
"""
from __future__ import annotations

from urllib.parse import unquote

from pocketstack.common import events
from pocketstack.object import capabilities

VERSIONS = "X-Versions-Location"
HISTORY = "X-History-Location"
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"

capabilities.register("versioned_writes", {"allowed_flags": ["x-versions-location", "x-history-location"]})


def _error(code, text=None):
    from pocketstack.object.api import SwiftError

    return SwiftError(code, text)


def _storage():
    from pocketstack.object.api import storage

    return storage()


def container_updates(req) -> dict[str, str]:
    """The container metadata a PUT/POST sets for versioning ("" removes)."""
    h = req.headers
    versions, history = h.get("x-versions-location"), h.get("x-history-location")
    if versions is not None and history is not None:
        if not history:
            history = None
        elif versions:
            raise _error(400, f"Only one of {VERSIONS} or {HISTORY} may be specified")
        else:
            versions = None
    out: dict[str, str] = {}
    if versions is not None or history is not None:
        value = versions if versions is not None else history
        if value:
            location = unquote(value)
            if "/" in location:
                raise _error(412, "Container name cannot contain slashes")
            from pocketstack.object.api import check_container_name

            check_container_name(location)
            mode_key = VERSIONS if versions is not None else HISTORY
            other = HISTORY if mode_key == VERSIONS else VERSIONS
            return {mode_key: value, other: ""}
        out = {VERSIONS: "", HISTORY: ""}
    if h.get("x-remove-versions-location") or h.get("x-remove-history-location"):
        out = {VERSIONS: "", HISTORY: ""}
    return out


def settings(account: str, container: str, info: dict | None = None) -> tuple[str, str] | None:
    """(mode, archive container) of a versioned container, else None."""
    info = info if info is not None else _storage().container_info(account, container)
    if not info:
        return None
    meta = info["metadata"]
    if meta.get(VERSIONS):
        return "stack", unquote(meta[VERSIONS]).split("/")[0]
    if meta.get(HISTORY):
        return "history", unquote(meta[HISTORY]).split("/")[0]
    return None


def prefix(obj: str) -> str:
    return "%03x%s/" % (len(obj.encode()), obj)


def _authorize_archive(req, account: str, archive: str) -> None:
    from pocketstack.object import acl

    if _storage().container_info(account, archive) is None:
        raise _error(412)
    acl.authorize(req, account, archive, prefix("x"), True)


def _copy(account, s_container, s_obj, d_container, d_obj, meta=None, path=None):
    store = _storage()
    if meta is None:
        meta, path = store.head_object(account, s_container, s_obj)
    return store.put_object(account, d_container, d_obj, store.iter_object(path, meta),
                            {"content_type": meta["content_type"], "meta": dict(meta.get("meta") or {})})


def archive_current(req, account: str, container: str, obj: str, cinfo: dict | None = None) -> None:
    """Before an overwrite: copy the current object (if any) into the archive container."""
    from pocketstack.object import storage as st

    found = settings(account, container, cinfo)
    if found is None:
        return
    _mode, archive = found
    store = _storage()
    try:
        meta, path = store.head_object(account, container, obj)
    except st.NotFoundError:
        return  # nothing to keep (upstream checks the archive container only when it must copy)
    _authorize_archive(req, account, archive)
    name = prefix(obj) + meta["timestamp"]
    try:
        _copy(account, container, obj, archive, name, meta, path)
    except st.NotFoundError:
        raise _error(412) from None
    except st.StorageError:
        raise _error(503) from None
    events.emit("object.version.archived", {"account": account, "container": container, "object": obj,
                                            "archive": f"{archive}/{name}"})


def delete(req, account: str, container: str, obj: str) -> bool:
    """A DELETE in a versioned container; True when handled here (the caller answers 204),
    False when the plain delete should run."""
    from pocketstack.object import storage as st

    found = settings(account, container)
    if found is None:
        return False
    mode, archive = found
    store = _storage()
    if mode == "history":
        _authorize_archive(req, account, archive)
        archive_current(req, account, container, obj)
        marker = prefix(obj) + st.new_timestamp()
        store.put_object(account, archive, marker, iter(()), {"content_type": DELETE_MARKER, "meta": {}})
        return False
    listing = _versions(account, archive, obj)
    if not listing:
        return False
    _authorize_archive(req, account, archive)
    for i, item in enumerate(listing):
        if item["content_type"] == DELETE_MARKER:
            try:
                store.head_object(account, container, obj)
                return False  # the object exists: delete it, back to the delete-marker state
            except st.NotFoundError:
                pass
            for older in listing[i + 1:]:
                if older["content_type"] == DELETE_MARKER:
                    break
                if _restore(account, container, obj, archive, older["name"]):
                    break
            store.delete_object(account, archive, item["name"])
            return True
        if _restore(account, container, obj, archive, item["name"]):
            return True
    return False


def _versions(account: str, archive: str, obj: str) -> list[dict]:
    from pocketstack.object import storage as st

    try:
        return _storage().list_objects(account, archive, limit=10000, prefix=prefix(obj), reverse=True)
    except st.NotFoundError:
        return []


def _restore(account, container, obj, archive, name) -> bool:
    from pocketstack.object import storage as st

    try:
        _copy(account, archive, name, container, obj)
    except st.NotFoundError:
        return False
    try:
        _storage().delete_object(account, archive, name)
    except st.NotFoundError:
        pass
    events.emit("object.version.restored", {"account": account, "container": container, "object": obj,
                                            "archive": f"{archive}/{name}"})
    return True
