"""Who may do what on an account, container or object: Swift's keystoneauth, with its ACLs.

Order of the checks (as keystoneauth's `authorize`):

1. A valid TempURL signature (`tempurl.py`) grants its one account (or container), nothing more.
2. No token: only the container's referrer ACL (`.r:*`, `.r:host`, `.r:-host`) may grant access
   to objects (and to listings with `.rlistings`); otherwise 401.
3. `ResellerAdmin` owns every account; the project's operator roles (`admin`, `member`,
   `SwiftOperator`) own `AUTH_<project_id>` (policy `object_store:write`); both are "owners".
4. Container ACL entries `<project>:<user>` (ids, `*`, or names when every party is in the
   default domain), then referrer entries, grant access across projects.
5. Account ACLs (`X-Account-Access-Control` JSON with `admin` / `read-write` / `read-only`
   lists). Upstream only TempAuth honours them; here the same principals as container ACLs
   (`<project>:<user>` forms) may be listed, which is what TempAuth users (mapped onto
   Identity users) need.
6. Users of the account's own project: the `reader` role reads (policy `object_store:read`);
   any other role named in the ACL is granted.

Owners see and may set the privileged headers (ACLs, TempURL keys, account ACL); for everyone
else they are removed from requests and responses (upstream's `swift_owner_headers`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from pocketstack.common.runtime import current

READ_HEADER = "X-Container-Read"
WRITE_HEADER = "X-Container-Write"
ACCOUNT_ACL_HEADER = "X-Account-Access-Control"
OWNER_HEADERS = {h.lower() for h in (
    READ_HEADER, WRITE_HEADER, "X-Container-Sync-Key", "X-Container-Sync-To",
    "X-Account-Meta-Temp-URL-Key", "X-Account-Meta-Temp-URL-Key-2",
    "X-Container-Meta-Temp-URL-Key", "X-Container-Meta-Temp-URL-Key-2", ACCOUNT_ACL_HEADER)}
ACCOUNT_ACL_LEVELS = ("read-only", "read-write", "admin")


def _error(code: int, text: str | None = None):
    from pocketstack.object.api import SwiftError

    return SwiftError(code, text)


def _storage():
    from pocketstack.object.api import storage

    return storage()


# ---------------------------------------------------------------------------- ACL syntax
def clean_acl(name: str, value: str) -> str:
    """Validate and normalise a container ACL (`.ref:` / `.referrer:` -> `.r:`, spaces dropped).
    Raises ValueError (the 400's text) as upstream's `clean_acl`."""
    out = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            out.append(raw)
            continue
        first, second = (v.strip() for v in raw.split(":", 1))
        if not first or not first.startswith("."):
            out.append(raw)
        elif first in (".r", ".ref", ".referer", ".referrer"):
            if "write" in name.lower():
                raise ValueError(f"Referrers not allowed in write ACL: {raw!r}")
            negate = second.startswith("-")
            if negate:
                second = second[1:].strip()
            if second and second != "*" and second.startswith("*"):
                second = second[1:].strip()
            if not second or second == ".":
                raise ValueError(f"No host/domain value after referrer designation in ACL: {raw!r}")
            out.append(f".r:{'-' if negate else ''}{second}")
        else:
            raise ValueError(f"Unknown designator {first!r} in ACL: {raw!r}")
    return ",".join(out)


def parse_acl(value: str | None) -> tuple[list[str], list[str]]:
    """(referrers without `.r:`, other entries) of a cleaned ACL string."""
    referrers, groups = [], []
    for item in (value or "").split(","):
        if not item:
            continue
        if item.startswith(".r:"):
            referrers.append(item[3:])
        else:
            groups.append(unquote(item))
    return referrers, groups


def referrer_allowed(referrer: str | None, referrers: list[str]) -> bool:
    """Upstream's rule: entries apply in order; `*` any, `.domain` a suffix, `-x` denies."""
    allow = False
    if referrers:
        host = urlparse(referrer or "").hostname or "unknown"
        for entry in referrers:
            deny = entry.startswith("-")
            if deny:
                entry = entry[1:]
            if entry == "*" or entry == host or (entry.startswith(".") and host.endswith(entry)):
                allow = not deny
    return allow


def clean_account_acl(value: str) -> str:
    """`X-Account-Access-Control`: a JSON object of lists of strings under the three levels."""
    if value == "":
        return ""
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ValueError("Syntax error in input (Invalid JSON)")
    for key, names in data.items():
        if key not in ACCOUNT_ACL_LEVELS:
            raise ValueError(f"Key {key!r} not recognized")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"Value for key {key!r} must be a list")
    # Upstream answers and stores the compact, sorted, ASCII form (format_acl_v2).
    return json.dumps({k: v for k, v in data.items() if v}, ensure_ascii=True, separators=(",", ":"),
                      sort_keys=True)


def clean_request_headers(req, updates: dict[str, str], kind: str) -> dict[str, str]:
    """Validate ACL headers about to be stored (400 on bad syntax) and drop the privileged ones
    when the caller is not an owner (as the proxy does)."""
    owner = is_owner(req)
    out = {}
    for key, value in updates.items():
        lkey = key.lower()
        if lkey in OWNER_HEADERS and not owner:
            continue
        if value:
            try:
                if lkey in (READ_HEADER.lower(), WRITE_HEADER.lower()):
                    value = clean_acl(lkey, value)
                elif lkey == ACCOUNT_ACL_HEADER.lower():
                    value = clean_account_acl(value)
            except ValueError as exc:
                raise _error(400, str(exc)) from None
        out[key] = value
    return out


def filter_response_headers(req, headers: dict) -> dict:
    """Remove the privileged headers from what a non-owner sees."""
    if is_owner(req):
        return headers
    for key in [k for k in headers if k.lower() in OWNER_HEADERS]:
        del headers[key]
    return headers


# ---------------------------------------------------------------------------- decisions
@dataclass
class Access:
    owner: bool = False
    via: str = ""  # owner, reader, acl, referrer, account-acl, tempurl


def is_owner(req) -> bool:
    access = req.state.get("swift_access")
    return bool(access and access.owner)


def _account_project(account: str) -> str | None:
    if account.startswith("AUTH_") and len(account) > 5:
        return account[5:]
    return None


def _policy(rule: str, project_id: str, ctx) -> bool:
    return current().enforcer.check(rule, {"project_id": project_id}, ctx.policy_creds())


def _names_allowed(ctx, project_id: str) -> bool:
    """keystoneauth allows names in ACLs only when user, scoped project and account's project
    are all in the default domain (names are unique only within a domain)."""
    if (ctx.user_domain_id or "default") != "default" or (ctx.project_domain_id or "default") != "default":
        return False
    if ctx.project_id == project_id:
        return True
    from pocketstack.identity import models as im

    with current().db.session() as sess:
        proj = sess.get(im.Project, project_id)
        return proj is not None and proj.domain_id == "default"


def _principal_matches(ctx, entries: list[str], project_id: str) -> bool:
    """`<project>:<user>` entries: ids or `*` always; names only where keystoneauth allows them."""
    entries = set(entries)
    ids = {f"{p}:{u}" for p in (ctx.project_id, "*") for u in (ctx.user_id, "*") if p and u}
    if ids & entries:
        return True
    names = {f"{p}:{u}" for p in (ctx.project_id, ctx.project_name, "*")
             for u in (ctx.user_id, ctx.user_name, "*") if p and u} - ids
    return bool(names & entries) and _names_allowed(ctx, project_id)


def _account_acl_level(ctx, account: str, project_id: str) -> int:
    """0 none, 1 read-only, 2 read-write, 3 admin."""
    info = _storage().account_info(account)
    raw = (info or {}).get("metadata", {}).get(ACCOUNT_ACL_HEADER)
    if not raw:
        return 0
    try:
        data = json.loads(raw)
    except ValueError:
        return 0
    level = 0
    for i, key in enumerate(ACCOUNT_ACL_LEVELS, 1):
        if _principal_matches(ctx, [e for e in data.get(key, []) if isinstance(e, str)], project_id):
            level = i
    return level


def container_acl(account: str, container: str, write: bool) -> str | None:
    info = _storage().container_info(account, container)
    if info is None:
        return None
    return info["metadata"].get(WRITE_HEADER if write else READ_HEADER)


def authorize(req, account: str, container: str | None, obj: str | None, write: bool,
              use_acl: bool = True) -> Access:
    """Decide, remember (`req.state["swift_access"]`) and return the caller's access; raises 401/403.

    `use_acl`: whether the container's ACL applies to this request (object requests and
    container reads; container writes are for owners only, as upstream)."""
    from pocketstack.object import tempurl

    project_id = _account_project(account)
    if "tempurl" in req.state:
        if not tempurl.allows(req, account, container):
            raise _error(401)
        return Access(via="tempurl")
    if tempurl.requested(req):
        access = tempurl.authorize(req, account, container, obj)
        req.state["swift_access"] = access
        return access

    def acl_entries():
        acl = container_acl(account, container, write) if (use_acl and container and project_id) else None
        return parse_acl(acl)

    if not req.token:
        referrers, groups = acl_entries()
        if project_id and referrers and not write and referrer_allowed(req.headers.get("referer"), referrers) \
                and (obj or ".rlistings" in groups):
            return _remember(req, Access(via="referrer"))
        raise _error(401)
    ctx = req.context  # 401 for an invalid or expired token
    if project_id is None:
        raise _error(403)
    # Owners: the project's operator roles, or ResellerAdmin anywhere (no ACL read needed).
    if _policy("object_store:write", project_id, ctx):
        return _remember(req, Access(owner=True, via="owner"))
    referrers, groups = acl_entries()
    if groups and _principal_matches(ctx, groups, project_id):
        return _remember(req, Access(via="acl"))
    if referrers and not write and referrer_allowed(req.headers.get("referer"), referrers) \
            and (obj or ".rlistings" in groups):
        return _remember(req, Access(via="referrer"))
    level = _account_acl_level(ctx, account, project_id)
    if level == 3:
        return _remember(req, Access(owner=True, via="account-acl"))
    if level == 2 and (container or not write):
        return _remember(req, Access(via="account-acl"))
    if level == 1 and not write:
        return _remember(req, Access(via="account-acl"))
    if ctx.project_id != project_id:
        raise _error(403)
    if not write and _policy("object_store:read", project_id, ctx):
        return _remember(req, Access(via="reader"))
    roles = {r.lower() for r in ctx.roles}
    if any(g.lower() in roles for g in groups):
        return _remember(req, Access(via="acl-role"))
    raise _error(403)


def _remember(req, access: Access) -> Access:
    # A COPY checks its source and then its destination: the weaker answer wins for the
    # privileged headers (a non-owner must not smuggle ACLs through either side).
    prev = req.state.get("swift_access")
    if prev is not None and not prev.owner:
        access = Access(owner=False, via=access.via)
    req.state["swift_access"] = access
    return access
