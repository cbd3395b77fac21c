"""The capabilities registry behind `GET /info` (Swift's `register_swift_info`).

Upstream every middleware announces itself in the proxy's `/info` document under its own key
(`tempurl`, `slo`, `account_quotas`, ...), and clients (python-swiftclient's `swift
capabilities`, Tempest's `is_extension_enabled`, the SDK) decide what to use from it. Here each
feature module calls `register(name, {...})` at import time; `document()` builds the answer.

Keys registered with `admin=True` go under `admin` in the document only (upstream shows them
to requests signed with the admin key; we never expose them, as `expose_info` with no admin key).
"""
from __future__ import annotations

import copy
import threading

_lock = threading.Lock()
_public: dict[str, dict] = {}
_admin: dict[str, dict] = {}


def register(name: str, info: dict | None = None, admin: bool = False) -> None:
    """Announce feature `name` with its settings (merged into an earlier registration)."""
    target = _admin if admin else _public
    with _lock:
        target.setdefault(name, {}).update(copy.deepcopy(info or {}))


def unregister(name: str) -> None:
    with _lock:
        _public.pop(name, None)
        _admin.pop(name, None)


def get(name: str) -> dict | None:
    with _lock:
        value = _public.get(name)
        return copy.deepcopy(value) if value is not None else None


def document(only: set[str] | None = None, exclude: set[str] | None = None) -> dict:
    """The `/info` body; `only` / `exclude` are the `swiftinfo_sig`-less query filters."""
    with _lock:
        doc = copy.deepcopy(_public)
    if only:
        doc = {k: v for k, v in doc.items() if k in only}
    for key in exclude or ():
        if "." in key:
            section, _, attr = key.partition(".")
            doc.get(section, {}).pop(attr, None)
        else:
            doc.pop(key, None)
    return doc
