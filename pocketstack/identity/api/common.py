"""The Identity API object and what every identity route module shares:
policy enforcement, JSON renderings of resources, list filters and links.
"""
from __future__ import annotations

from typing import Any, Iterable

from pocketstack.common.errors import BadRequest
from pocketstack.common.runtime import current
from pocketstack.common.web import Api, ApiRequest
from pocketstack.identity import models as m

api = Api("identity", www_authenticate='Keystone uri="{}"')


def www_authenticate(base_url: str) -> str:
    return f'Keystone uri="{base_url}"'


def session():
    return current().db.session()


def enforce(req: ApiRequest, action: str, target: dict | None = None) -> None:
    ctx = req.context
    creds = ctx.policy_creds()
    creds["token"] = {"project": {"domain": {"id": ctx.project_domain_id}}}
    # Rules name target fields both upstream's way (`%(target.domain.id)s`) and bare.
    target = dict(target or {})
    current().enforcer.enforce(action, {**target, "target": target}, creds)


def body_of(req: ApiRequest, key: str) -> dict:
    return req.json_object(key)


def v3_url(req: ApiRequest, path: str) -> str:
    return f"{req.base_url}/v3/{path}"


def no_content():
    """204 No Content (a fresh Response each time: they are not reusable)."""
    from starlette.responses import Response

    return Response(status_code=204)


def list_links(req: ApiRequest) -> dict:
    return {"self": req.url, "previous": None, "next": None}


# ---------------------------------------------------------------------------- renderings
def fmt_domain(req, d: m.Domain) -> dict:
    return {"id": d.id, "name": d.name, "description": d.description or "", "enabled": d.enabled,
            "tags": list(d.tags or []), "options": dict(d.options or {}), **(d.extra or {}),
            "links": {"self": v3_url(req, f"domains/{d.id}")}}


def fmt_project(req, p: m.Project) -> dict:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description or "",
            "enabled": p.enabled, "parent_id": p.parent_id or p.domain_id, "is_domain": False,
            "tags": list(p.tags or []), "options": dict(p.options or {}), **(p.extra or {}),
            "links": {"self": v3_url(req, f"projects/{p.id}")}}


def fmt_user(req, u: m.User, password_expires_at=None) -> dict:
    from pocketstack.identity.tokens import fmt_time

    out = {**(u.extra or {}), "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
           "password_expires_at": fmt_time(password_expires_at), "options": dict(u.options or {}),
           "links": {"self": v3_url(req, f"users/{u.id}")}}
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    return out


def fmt_group(req, g: m.Group) -> dict:
    return {**(g.extra or {}), "id": g.id, "name": g.name, "domain_id": g.domain_id,
            "description": g.description or "", "links": {"self": v3_url(req, f"groups/{g.id}")}}


def fmt_role(req, r: m.Role) -> dict:
    out = {**(r.extra or {}), "id": r.id, "name": r.name,
           "domain_id": None if r.domain_id == "<<null>>" else r.domain_id,
           "options": dict(r.options or {}), "links": {"self": v3_url(req, f"roles/{r.id}")}}
    if r.description is not None:
        out["description"] = r.description
    return out


# ---------------------------------------------------------------------------- list filters
_BOOL_KEYS = {"enabled", "is_domain", "unrestricted"}
_SKIP = {"marker", "limit", "sort_key", "sort_dir", "fields"}
_OPS = {
    "contains": lambda v, q: q in v,
    "icontains": lambda v, q: q.lower() in v.lower(),
    "startswith": lambda v, q: v.startswith(q),
    "istartswith": lambda v, q: v.lower().startswith(q.lower()),
    "endswith": lambda v, q: v.endswith(q),
    "iendswith": lambda v, q: v.lower().endswith(q.lower()),
}


def _as_bool(value: str) -> bool:
    return value.lower() not in ("0", "false", "no", "off")


def apply_filters(req: ApiRequest, items: list[dict], keys: Iterable[str], *, skip: Iterable[str] = ()) -> list[dict]:
    """Keystone's list hints: exact `key=value` and `key__contains=...` style filters."""
    keys, skip = set(keys), set(skip) | _SKIP
    out = items
    for name, value in req.query.multi_items():
        if name in skip:
            continue
        field, _, op = name.partition("__")
        if field not in keys:
            continue
        if op:
            fn = _OPS.get(op)
            if fn is None:
                continue
            out = [i for i in out if isinstance(i.get(field), str) and fn(i[field], value)]
        elif field in _BOOL_KEYS:
            want = _as_bool(value)
            out = [i for i in out if bool(i.get(field)) == want]
        else:
            out = [i for i in out if _match(i.get(field), value)]
    return out


def _match(actual: Any, value: str) -> bool:
    if actual is None:
        return value == "" or value.lower() == "none"
    return str(actual) == value


def truncate(items: list) -> tuple[list, bool]:
    limit = current().config.get("DEFAULT", "list_limit")
    if limit and limit.isdigit() and len(items) > int(limit):
        return items[: int(limit)], True
    return items, False


def listing(req: ApiRequest, key: str, items: list[dict]) -> dict:
    items, truncated = truncate(items)
    out = {key: items, "links": list_links(req)}
    if truncated:
        out["truncated"] = True
    return out


def require(data: dict, *fields: str) -> None:
    for f in fields:
        if f not in data or data[f] is None:
            raise BadRequest(f"Invalid input for field '{f}': '{f}' is a required property.")
