"""os-keypairs: a user's key pairs (generate, import, list, show, delete).

Microversions: 2.2 adds `type` (ssh/x509) and turns create into 201 and delete into 204;
2.10 lets admins act for another user (`user_id` in the body or the query); 2.35 pages
the list (limit/marker on names, `keypairs_links`); 2.92 stops generating keys
(`public_key` required) and allows '@' and '.' in names. A generated private key is in
the create response only, never stored or logged.
"""
from __future__ import annotations

from pocketstack.compute import keypairs
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-keypairs:"
NAME_RE = r"^[_\- a-zA-Z0-9]+$"
NAME_RE_292 = r"^[_\-\@\. a-zA-Z0-9]+$"


def _ts(value):
    return value.replace(tzinfo=None).isoformat() if value is not None else None


def _user(req) -> str | None:
    if at_least(req, "2.10"):
        values = req.query.getlist("user_id")
        return values[0] if values else None
    return None


def _query(req, extra=()):
    allowed = (("user_id",) if at_least(req, "2.10") else ()) + tuple(extra)
    p.strict_query(req, allowed, "2.75")


@api.route("/v2.1/os-keypairs", "POST")
def create_keypair(req):
    allowed = ["name", "public_key"]
    if at_least(req, "2.2"):
        allowed.append("type")
    if at_least(req, "2.10"):
        allowed.append("user_id")
    required = ("name", "public_key") if at_least(req, "2.92") else ("name",)
    kp = p.body(req, "keypair", tuple(allowed), required)
    name = p.name(kp["name"], "name", NAME_RE_292 if at_least(req, "2.92") else NAME_RE)
    key_type = kp.get("type", "ssh")
    if key_type not in ("ssh", "x509"):
        raise p.invalid("type", key_type, f"'{key_type}' is not one of ['ssh', 'x509']")
    public_key = kp.get("public_key")
    if public_key is not None and not isinstance(public_key, str):
        raise p.invalid("public_key", public_key, f"{public_key!r} is not of type 'string'")
    user_id = kp.get("user_id") if at_least(req, "2.10") else None
    if user_id is not None and not isinstance(user_id, str):
        raise p.invalid("user_id", user_id, f"{user_id!r} is not of type 'string'")
    ctx = req.context
    user_id = user_id or ctx.user_id
    p.authorize(req, R + "create", {"user_id": user_id})
    info, private = keypairs.create_keypair(ctx, user_id, name, key_type, public_key)
    body = {"name": info.name, "public_key": info.public_key, "fingerprint": info.fingerprint,
            "user_id": info.user_id}
    if at_least(req, "2.2"):
        body["type"] = info.type
    if private is not None:
        body["private_key"] = private
    return (201 if at_least(req, "2.2") else 200), {"keypair": body}


@api.route("/v2.1/os-keypairs", "GET")
def list_keypairs(req):
    paged = at_least(req, "2.35")
    _query(req, ("limit", "marker") if paged else ())
    ctx = req.context
    user_id = _user(req) or ctx.user_id
    p.authorize(req, R + "index", {"user_id": user_id})
    limit = p.query_limit(req) if paged else None
    marker = req.query.get("marker") if paged else None
    items = keypairs.list_keypairs(user_id, limit=limit, marker=marker)
    out = []
    for k in items:
        entry = {"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint}
        if at_least(req, "2.2"):
            entry["type"] = k.type
        out.append({"keypair": entry})
    body = {"keypairs": out}
    if paged:
        nxt = p.next_links(req, "os-keypairs", items, limit, lambda k: k.name)
        if nxt:
            body["keypairs_links"] = nxt
    return body


@api.route("/v2.1/os-keypairs/{name}", "GET")
def show_keypair(req):
    _query(req)
    ctx = req.context
    user_id = _user(req) or ctx.user_id
    p.authorize(req, R + "show", {"user_id": user_id})
    k = keypairs.get_keypair(user_id, req.path_params["name"])
    body = {"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint, "user_id": k.user_id,
            "created_at": _ts(k.created_at), "deleted": False, "deleted_at": None, "id": k.id,
            "updated_at": None}
    if at_least(req, "2.2"):
        body["type"] = k.type
    return {"keypair": body}


@api.route("/v2.1/os-keypairs/{name}", "DELETE")
def delete_keypair(req):
    _query(req)
    ctx = req.context
    user_id = _user(req) or ctx.user_id
    p.authorize(req, R + "delete", {"user_id": user_id})
    keypairs.delete_keypair(ctx, user_id, req.path_params["name"])
    return (204 if at_least(req, "2.2") else 202), None
