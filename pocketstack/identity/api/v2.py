"""Identity API v2.0: tokens, tenants, users, roles, services and endpoints (OS-KSADM).

The deprecated API the Havana-era install guides drive with the `keystone` CLI. It is
a view over the v3 model, limited to the default domain:

* tokens are the ordinary v3 Fernet tokens (issued by the v3 provider from the
  equivalent v3 auth body), rendered as `{"access": {...}}`, so a v2 token also
  validates on v3 and the other way round;
* tenants are projects, global roles are the user's system roles;
* a v2 endpoint (`publicurl`/`internalurl`/`adminurl`) is stored as up to three v3
  endpoints sharing a `legacy_endpoint_id`; v3 endpoints without one are shown
  grouped by service and region, as upstream Keystone does.

Admin calls are guarded by the same `identity:*` policy rules as their v3
counterparts, so the bootstrap `admin_token` and the admin role both pass.
"""
from __future__ import annotations

import re

from sqlalchemy import select
from starlette.responses import Response

from pocketstack.common.db import new_id
from pocketstack.common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from pocketstack.common.runtime import current
from pocketstack.identity import catalog, core, tokens
from pocketstack.identity import models as m
from pocketstack.identity.api.common import api, enforce, no_content, session

MAX_PARAM = 255




def _default_domain() -> str:
    return current().config.get("identity", "default_domain_id")


def _allowed(req, action: str, target: dict | None = None) -> bool:
    """Like `enforce`, but answers instead of raising."""
    ctx = req.context
    creds = ctx.policy_creds()
    creds["token"] = {"project": {"domain": {"id": ctx.project_domain_id}}}
    return current().enforcer.check(action, target or {}, creds)


def _body(req, key: str) -> dict:
    return req.json_object(key)


def _opt_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field '{key}': {value!r} is not of type 'string'.")
    if len(value) > MAX_PARAM:
        raise BadRequest(f"Invalid input for field '{key}': it is longer than {MAX_PARAM} characters.")
    return value


# ---------------------------------------------------------------------------- lookups (default domain only)
def _tenant(sess, tenant_id: str) -> m.Project:
    proj = sess.get(m.Project, tenant_id)
    if proj is None or proj.domain_id != _default_domain():
        raise NotFound(f"Could not find tenant: {tenant_id}.")
    return proj


def _user(sess, user_id: str) -> m.User:
    user = sess.get(m.User, user_id)
    if user is None or user.domain_id != _default_domain():
        raise NotFound(f"Could not find user: {user_id}.")
    return user


def _role(sess, role_id: str) -> m.Role:
    role = sess.get(m.Role, role_id)
    if role is None or role.domain_id != core.NULL_DOMAIN:
        raise NotFound(f"Could not find role: {role_id}.")
    return role


def _service(sess, service_id: str) -> m.Service:
    svc = sess.get(m.Service, service_id)
    if svc is None:
        raise NotFound(f"Could not find service: {service_id}.")
    return svc


# ---------------------------------------------------------------------------- renderings
def fmt_tenant(p: m.Project) -> dict:
    return {**(p.extra or {}), "id": p.id, "name": p.name, "description": p.description or "",
            "enabled": p.enabled}


def fmt_user(u: m.User) -> dict:
    out = {**(u.extra or {}), "id": u.id, "name": u.name, "username": u.name, "enabled": u.enabled}
    if u.default_project_id:
        out["tenantId"] = u.default_project_id
    return out


def fmt_role(r: m.Role) -> dict:
    out = {**(r.extra or {}), "id": r.id, "name": r.name}
    if r.description is not None:
        out["description"] = r.description
    return out


def fmt_service(s: m.Service) -> dict:
    extra = dict(s.extra or {})
    return {**extra, "id": s.id, "type": s.type, "name": extra.get("name") or "",
            "description": extra.get("description") or "", "enabled": s.enabled}


def _v2_time(stamp: str | None) -> str | None:
    """v2 `expires` is second-precision ISO 8601 (`2013-02-27T18:30:59Z`)."""
    return stamp[:19] + "Z" if stamp else stamp


_V3_SUFFIX = re.compile(r"/v3/?$")


def v2_catalog(sess, v3_catalog: list[dict]) -> list[dict]:
    """A v3 catalog as v2 `serviceCatalog` entries (one entry per service, region and legacy endpoint).

    Identity endpoints ending in `/v3` (what pocketstack registers) are shown as `/v2.0`:
    v2-era clients (the guide's `keystone` CLI) send admin calls to the catalog's
    adminURL without version discovery.
    """
    ids = [e["id"] for svc in v3_catalog for e in svc["endpoints"]]
    legacy = dict(sess.execute(select(m.Endpoint.id, m.Endpoint.legacy_endpoint_id)
                               .where(m.Endpoint.id.in_(ids))).all()) if ids else {}
    out = []
    for svc in v3_catalog:
        groups: dict[tuple, list[dict]] = {}
        for ep in svc["endpoints"]:
            key = (ep.get("region_id") or ep.get("region"), legacy.get(ep["id"]))
            entries = groups.setdefault(key, [])
            field = f"{ep['interface']}URL"
            slot = next((e for e in entries if field not in e), None)
            if slot is None:
                slot = {"region": key[0]}
                entries.append(slot)
            slot[field] = _V3_SUFFIX.sub("/v2.0", ep["url"]) if svc["type"] == "identity" else ep["url"]
            if key[1]:
                slot["id"] = key[1]
            elif ep["interface"] == "public" or "id" not in slot:
                slot["id"] = ep["id"]
        endpoints = [e for entries in groups.values() for e in entries]
        out.append({"name": svc.get("name") or "", "type": svc["type"], "endpoints": endpoints,
                    "endpoints_links": []})
    return out


def v2_access(sess, token_id: str, body: dict, v3_catalog: list | None) -> dict:
    """The `access` document of a token from its v3 rendering; NotFound when v2 cannot show it."""
    default = _default_domain()
    if body["user"]["domain"]["id"] != default:
        raise NotFound("Could not find token: its user is not in the default domain (v2.0 only sees that one).")
    if "domain" in body or "system" in body:
        raise NotFound("Could not find token: domain- and system-scoped tokens cannot be expressed in v2.0.")
    token = {"id": token_id, "issued_at": body["issued_at"], "expires": _v2_time(body["expires_at"]),
             "audit_ids": list(body["audit_ids"])}
    if "project" in body:
        ref = body["project"]
        if ref["domain"]["id"] != default:
            raise NotFound("Could not find token: its tenant is not in the default domain.")
        proj = sess.get(m.Project, ref["id"])
        token["tenant"] = {"id": ref["id"], "name": ref["name"],
                           "description": (proj.description if proj else None) or "", "enabled": True}
    roles = body.get("roles", [])
    access = {
        "token": token,
        "serviceCatalog": v2_catalog(sess, v3_catalog or []) if "project" in body else [],
        "user": {"id": body["user"]["id"], "name": body["user"]["name"], "username": body["user"]["name"],
                 "roles": [{"name": r["name"]} for r in roles], "roles_links": []},
        "metadata": {"is_admin": 0, "roles": [r["id"] for r in roles]},
    }
    trust = body.get("OS-TRUST:trust")
    if trust:
        access["trust"] = {"id": trust["id"], "impersonation": trust["impersonation"],
                           "trustee_user_id": trust["trustee_user"]["id"],
                           "trustor_user_id": trust["trustor_user"]["id"]}
    return access


# ---------------------------------------------------------------------------- tokens
def _scope_for(sess, auth: dict) -> dict | None:
    """`tenantName` (preferred, as upstream) or `tenantId` in the default domain; 401 when unknown."""
    tenant_id, tenant_name = _opt_str(auth, "tenantId"), _opt_str(auth, "tenantName")
    default = _default_domain()
    if tenant_name:
        proj = sess.execute(select(m.Project).where(m.Project.name == tenant_name,
                                                    m.Project.domain_id == default)).scalar()
        if proj is None:
            raise Unauthorized(f"Could not find tenant: {tenant_name}.")
        return {"project": {"id": proj.id}}
    if tenant_id:
        proj = sess.get(m.Project, tenant_id)
        if proj is None or proj.domain_id != default:
            raise Unauthorized(f"Could not find tenant: {tenant_id}.")
        return {"project": {"id": proj.id}}
    return None


def _v3_auth(sess, auth: dict) -> dict:
    """The v3 auth body equivalent to a v2 `auth` object."""
    default = _default_domain()
    creds, token = auth.get("passwordCredentials"), auth.get("token")
    if creds is not None:
        if not isinstance(creds, dict):
            raise BadRequest("Invalid input for field 'passwordCredentials': it must be an object.")
        password = creds.get("password")
        if not isinstance(password, str):
            raise BadRequest("Invalid input for field 'passwordCredentials': 'password' is a required string.")
        user_id, username = _opt_str(creds, "userId"), _opt_str(creds, "username")
        if user_id:
            user = sess.get(m.User, user_id)
            if user is not None and user.domain_id != default:
                raise Unauthorized("Non-default domain users cannot use the v2.0 API.")
            ref = {"id": user_id, "password": password}
        elif username:
            ref = {"name": username, "domain": {"id": default}, "password": password}
        else:
            raise BadRequest("Invalid input for field 'passwordCredentials': 'username' or 'userId' is required.")
        identity = {"methods": ["password"], "password": {"user": ref}}
    elif token is not None:
        if not isinstance(token, dict) or not isinstance(token.get("id"), str) or not token["id"]:
            raise BadRequest("Invalid input for field 'token': 'id' is a required string.")
        identity = {"methods": ["token"], "token": {"id": token["id"]}}
    else:
        raise BadRequest("Invalid input for field 'auth': expecting 'passwordCredentials' or 'token'.")
    scope = _scope_for(sess, auth)
    out = {"identity": identity}
    if scope:
        out["scope"] = scope
    elif creds is not None:
        out["scope"] = "unscoped"  # v2 never scopes to the default project by itself
    return out


@api.route("/v2.0/tokens", "POST")
def issue_token(req):
    auth = req.json_object("auth")
    with session() as sess:
        token_id, body = tokens.provider().issue(sess, _v3_auth(sess, auth))
        try:
            access = v2_access(sess, token_id, body, body.get("catalog"))
        except NotFound as err:
            raise Unauthorized(err.message) from None
    return {"access": access}


def _subject(req, sess, token_id: str):
    """Validate a token for an admin (or its owner); NotFound when invalid or not v2-expressible."""
    try:
        payload, body = tokens.provider().validate(sess, token_id)
    except NotFound:
        enforce(req, "identity:validate_token", {"token": {"user_id": None}})
        raise NotFound("Could not find token.") from None
    ctx = req.context
    if ctx.user_id != payload.user_id:
        enforce(req, "identity:validate_token", {"token": {"user_id": payload.user_id}})
    belongs_to = req.query.get("belongsTo")
    if belongs_to is not None and payload.project_id != belongs_to:
        raise Unauthorized("The token does not belong to the given tenant.")
    return payload, body


@api.route("/v2.0/tokens/{token_id}", "GET")
def validate_token(req):
    token_id = req.path_params["token_id"]
    with session() as sess:
        payload, body = _subject(req, sess, token_id)
        cat = tokens.provider().catalog(sess, payload.project_id) if payload.project_id else None
        access = v2_access(sess, token_id, body, cat)
    if req.method == "HEAD":
        return Response(status_code=200)
    return {"access": access}


@api.route("/v2.0/tokens/{token_id}", "DELETE")
def revoke_token(req):
    token_id = req.path_params["token_id"]
    ctx = req.context
    with session() as sess:
        try:
            payload, _ = tokens.provider().validate(sess, token_id)
        except NotFound:
            enforce(req, "identity:revoke_token", {"token": {"user_id": None}})
            raise NotFound("Could not find token.") from None
        if ctx.user_id != payload.user_id:
            enforce(req, "identity:revoke_token", {"token": {"user_id": payload.user_id}})
        core.revoke(sess, audit_id=payload.audit_ids[0])
    return no_content()


@api.route("/v2.0/tokens/{token_id}/endpoints", "GET")
def token_endpoints(req):
    token_id = req.path_params["token_id"]
    with session() as sess:
        payload, body = _subject(req, sess, token_id)
        cat = tokens.provider().catalog(sess, payload.project_id) if payload.project_id else []
        v2_access(sess, token_id, body, None)  # refuses tokens v2 cannot express
        endpoints = [{"name": svc["name"], "type": svc["type"], **ep}
                     for svc in v2_catalog(sess, cat) for ep in svc["endpoints"]]
    return {"endpoints": endpoints, "endpoints_links": []}


# ---------------------------------------------------------------------------- extensions
EXTENSIONS = {
    "OS-KSADM": {"name": "OpenStack Keystone Admin", "alias": "OS-KSADM",
                 "namespace": "https://docs.openstack.org/identity/api/ext/OS-KSADM/v1.0",
                 "updated": "2013-07-11T17:14:00-00:00",
                 "description": "OpenStack extensions to Keystone v2.0 API enabling Administrative Operations.",
                 "links": []},
    "OS-KSCRUD": {"name": "OpenStack Keystone User CRUD", "alias": "OS-KSCRUD",
                  "namespace": "https://docs.openstack.org/identity/api/ext/OS-KSCRUD/v1.0",
                  "updated": "2013-07-07T12:00:0-00:00",
                  "description": "OpenStack extensions to Keystone v2.0 API enabling User Operations.",
                  "links": []},
}


@api.route("/v2.0/extensions", "GET")
def list_extensions(req):
    return {"extensions": {"values": list(EXTENSIONS.values())}}


@api.route("/v2.0/extensions/{alias}", "GET")
def get_extension(req):
    ext = EXTENSIONS.get(req.path_params["alias"])
    if ext is None:
        raise NotFound(f"Could not find extension: {req.path_params['alias']}.")
    return {"extension": ext}


# ---------------------------------------------------------------------------- tenants
@api.route("/v2.0/tenants", "GET")
def list_tenants(req):
    """Admins see every tenant (or `?name=` one); other callers their own enabled tenants."""
    ctx = req.context
    default = _default_domain()
    name = req.query.get("name")
    with session() as sess:
        if name is not None:
            proj = sess.execute(select(m.Project).where(m.Project.name == name,
                                                        m.Project.domain_id == default)).scalar()
            enforce(req, "identity:get_project", {"project": {"id": proj.id if proj else None},
                                                  "domain_id": default})
            if proj is None:
                raise NotFound(f"Could not find tenant: {name}.")
            return {"tenant": fmt_tenant(proj)}
        if _allowed(req, "identity:list_projects", {"domain_id": default}):
            projects = sess.execute(select(m.Project).where(m.Project.domain_id == default)
                                    .order_by(m.Project.name)).scalars()
        elif ctx.user_id:
            projects = [p for p in core.user_projects(sess, ctx.user_id) if p.domain_id == default and p.enabled]
        else:
            projects = []
        return {"tenants": [fmt_tenant(p) for p in projects], "tenants_links": []}


def _tenant_data(data: dict) -> dict:
    data = {k: v for k, v in data.items() if k not in ("id", "tenantId")}
    if "domain_id" in data and data["domain_id"] != _default_domain():
        raise BadRequest("v2.0 tenants live in the default domain.")
    for key in ("parent_id", "is_domain"):
        if key in data:
            raise BadRequest(f"Invalid input for field '{key}': not part of the v2.0 API.")
    if data.get("description") is None:
        data.pop("description", None)
    return data


@api.route("/v2.0/tenants", "POST")
def create_tenant(req):
    data = _tenant_data(_body(req, "tenant"))
    default = _default_domain()
    enforce(req, "identity:create_project", {"project": data, "domain_id": default})
    with session() as sess:
        proj = core.create_project(sess, {**data, "domain_id": default}, req.context)
        return {"tenant": fmt_tenant(proj)}


@api.route("/v2.0/tenants/{tenant_id}", "GET")
def get_tenant(req):
    tid = req.path_params["tenant_id"]
    enforce(req, "identity:get_project", {"project": {"id": tid}, "domain_id": _default_domain()})
    with session() as sess:
        return {"tenant": fmt_tenant(_tenant(sess, tid))}


@api.route("/v2.0/tenants/{tenant_id}", "POST")
@api.route("/v2.0/tenants/{tenant_id}", "PUT")
def update_tenant(req):
    tid = req.path_params["tenant_id"]
    data = _tenant_data(_body(req, "tenant"))
    data.pop("domain_id", None)
    enforce(req, "identity:update_project", {"project": {"id": tid}, "domain_id": _default_domain()})
    with session() as sess:
        _tenant(sess, tid)
        return {"tenant": fmt_tenant(core.update_project(sess, tid, data, req.context))}


@api.route("/v2.0/tenants/{tenant_id}", "DELETE")
def delete_tenant(req):
    tid = req.path_params["tenant_id"]
    enforce(req, "identity:delete_project", {"project": {"id": tid}, "domain_id": _default_domain()})
    with session() as sess:
        _tenant(sess, tid)
        core.delete_project(sess, tid, req.context)
    return no_content()


@api.route("/v2.0/tenants/{tenant_id}/users", "GET")
def list_tenant_users(req):
    tid = req.path_params["tenant_id"]
    enforce(req, "identity:list_users", {"domain_id": _default_domain()})
    with session() as sess:
        _tenant(sess, tid)
        uids = set(sess.execute(select(m.Assignment.actor_id).where(
            m.Assignment.type == "UserProject", m.Assignment.target_id == tid)).scalars())
        users = [u for u in (sess.get(m.User, i) for i in uids) if u is not None and u.domain_id == _default_domain()]
        return {"users": [fmt_user(u) for u in sorted(users, key=lambda u: u.name)], "users_links": []}


# ---------------------------------------------------------------------------- role assignments
def _grant_target(req, sess):
    p = req.path_params
    tid, uid = p["tenant_id"], p["user_id"]
    _tenant(sess, tid)
    _user(sess, uid)
    return tid, uid


@api.route("/v2.0/tenants/{tenant_id}/users/{user_id}/roles", "GET")
def list_tenant_user_roles(req):
    enforce(req, "identity:list_grants", {"domain_id": _default_domain()})
    with session() as sess:
        tid, uid = _grant_target(req, sess)
        ids = core.effective_role_ids(sess, uid, project_id=tid, expand_implied=False)
        return {"roles": [fmt_role(r) for r in core.roles_by_ids(sess, ids)], "roles_links": []}


@api.route("/v2.0/tenants/{tenant_id}/users/{user_id}/roles/OS-KSADM/{role_id}", "PUT")
def add_tenant_user_role(req):
    enforce(req, "identity:create_grant", {"domain_id": _default_domain()})
    with session() as sess:
        tid, uid = _grant_target(req, sess)
        role = _role(sess, req.path_params["role_id"])
        core.grant(sess, "user", uid, "project", tid, role.id, ctx=req.context)
        return {"role": fmt_role(role)}


@api.route("/v2.0/tenants/{tenant_id}/users/{user_id}/roles/OS-KSADM/{role_id}", "DELETE")
def remove_tenant_user_role(req):
    enforce(req, "identity:revoke_grant", {"domain_id": _default_domain()})
    with session() as sess:
        tid, uid = _grant_target(req, sess)
        role = _role(sess, req.path_params["role_id"])
        core.revoke_grant(sess, "user", uid, "project", tid, role.id, ctx=req.context)
    return no_content()


@api.route("/v2.0/users/{user_id}/roles", "GET")
def list_user_roles(req):
    """With `?tenantId=` the user's roles there; without, its global (= v3 system) roles."""
    uid = req.path_params["user_id"]
    tid = req.query.get("tenantId")
    with session() as sess:
        if tid:
            enforce(req, "identity:list_grants", {"domain_id": _default_domain()})
            _tenant(sess, tid)
            _user(sess, uid)
            ids = core.effective_role_ids(sess, uid, project_id=tid, expand_implied=False)
            roles = core.roles_by_ids(sess, ids)
        else:
            enforce(req, "identity:list_system_grants_for_user")
            _user(sess, uid)
            roles = core.list_grants(sess, "user", uid, "system", "system")
        return {"roles": [fmt_role(r) for r in sorted(roles, key=lambda r: r.name)], "roles_links": []}


@api.route("/v2.0/users/{user_id}/roles/OS-KSADM/{role_id}", "PUT")
def add_global_role(req):
    enforce(req, "identity:create_system_grant_for_user")
    with session() as sess:
        uid = _user(sess, req.path_params["user_id"]).id
        role = _role(sess, req.path_params["role_id"])
        core.grant(sess, "user", uid, "system", "system", role.id, ctx=req.context)
        return {"role": fmt_role(role)}


@api.route("/v2.0/users/{user_id}/roles/OS-KSADM/{role_id}", "DELETE")
def remove_global_role(req):
    enforce(req, "identity:revoke_system_grant_for_user")
    with session() as sess:
        uid = _user(sess, req.path_params["user_id"]).id
        role = _role(sess, req.path_params["role_id"])
        core.revoke_grant(sess, "user", uid, "system", "system", role.id, ctx=req.context)
    return no_content()


# ---------------------------------------------------------------------------- users
_USER_KEYS_DROPPED = ("id", "username", "domain_id", "tenantId", "tenant_id", "default_project_id")


def _user_data(sess, data: dict) -> tuple[dict, str | None, bool]:
    """v2 user body -> (v3 user data, tenant to grant the member role on, tenant given)."""
    if "domain_id" in data and data["domain_id"] != _default_domain():
        raise BadRequest("v2.0 users live in the default domain.")
    tenant_given = "tenantId" in data or "tenant_id" in data
    tenant_id = data.get("tenantId", data.get("tenant_id"))
    if tenant_id is not None and not isinstance(tenant_id, str):
        raise BadRequest("Invalid input for field 'tenantId': it must be a string.")
    if "enabled" in data and not isinstance(data["enabled"], bool):
        raise BadRequest("Invalid input for field 'enabled': Enabled field must be a boolean.")
    out = {k: v for k, v in data.items() if k not in _USER_KEYS_DROPPED}
    if out.get("email", "") is None:
        out.pop("email")
    if "password" in out and out["password"] is None:
        out.pop("password")
    if tenant_id:
        _tenant(sess, tenant_id)
    if tenant_given:
        out["default_project_id"] = tenant_id or None
    return out, tenant_id or None, tenant_given


def _grant_member(sess, user_id: str, tenant_id: str, ctx) -> None:
    """Upstream v2 makes a user with a default tenant a member of it."""
    role = core.role_by_name(sess, "member")
    if role is not None:
        core.grant(sess, "user", user_id, "project", tenant_id, role.id, ctx=ctx)


@api.route("/v2.0/users", "GET")
def list_users(req):
    default = _default_domain()
    name = req.query.get("name")
    with session() as sess:
        if name is not None:
            user = sess.execute(select(m.User).where(m.User.name == name, m.User.domain_id == default)).scalar()
            enforce(req, "identity:get_user", {"user": {"id": user.id if user else None}, "domain_id": default})
            if user is None:
                raise NotFound(f"Could not find user: {name}.")
            return {"user": fmt_user(user)}
        enforce(req, "identity:list_users", {"domain_id": default})
        users = sess.execute(select(m.User).where(m.User.domain_id == default).order_by(m.User.name)).scalars()
        return {"users": [fmt_user(u) for u in users], "users_links": []}


@api.route("/v2.0/users", "POST")
def create_user(req):
    data = _body(req, "user")
    default = _default_domain()
    enforce(req, "identity:create_user", {"user": {"domain_id": default}, "domain_id": default})
    with session() as sess:
        v3, tenant_id, _ = _user_data(sess, data)
        user = core.create_user(sess, {**v3, "domain_id": default}, req.context)
        if tenant_id:
            _grant_member(sess, user.id, tenant_id, req.context)
        return {"user": fmt_user(user)}


@api.route("/v2.0/users/{user_id}", "GET")
def get_user(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:get_user", {"user": {"id": uid}, "domain_id": _default_domain()})
    with session() as sess:
        return {"user": fmt_user(_user(sess, uid))}


def _update_user(req, allowed: tuple[str, ...] | None = None, required: str | None = None):
    uid = req.path_params["user_id"]
    data = _body(req, "user")
    if required and data.get(required) is None:
        raise BadRequest(f"Invalid input for field '{required}': it is required.")
    if allowed is not None:
        data = {k: v for k, v in data.items() if k in allowed}
    enforce(req, "identity:update_user", {"user": {"id": uid}, "domain_id": _default_domain()})
    with session() as sess:
        _user(sess, uid)
        v3, tenant_id, _ = _user_data(sess, data)
        user = core.update_user(sess, uid, v3, req.context)
        if tenant_id:
            _grant_member(sess, uid, tenant_id, req.context)
        return {"user": fmt_user(user)}


@api.route("/v2.0/users/{user_id}", "PUT")
@api.route("/v2.0/users/{user_id}", "POST")
def update_user(req):
    return _update_user(req)


@api.route("/v2.0/users/{user_id}/OS-KSADM/password", "PUT")
def set_user_password(req):
    return _update_user(req, ("password",), required="password")


@api.route("/v2.0/users/{user_id}/OS-KSADM/enabled", "PUT")
def set_user_enabled(req):
    return _update_user(req, ("enabled",), required="enabled")


@api.route("/v2.0/users/{user_id}/OS-KSADM/tenant", "PUT")
def set_user_tenant(req):
    return _update_user(req, ("tenantId",), required="tenantId")


@api.route("/v2.0/users/{user_id}", "DELETE")
def delete_user(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:delete_user", {"user": {"id": uid}, "domain_id": _default_domain()})
    with session() as sess:
        _user(sess, uid)
        core.delete_user(sess, uid, req.context)
    return no_content()


@api.route("/v2.0/OS-KSCRUD/users/{user_id}", "PATCH")
def change_own_password(req):
    """A user changes its own password and gets a fresh token for the same tenant."""
    uid = req.path_params["user_id"]
    ctx = req.context
    if ctx.user_id != uid:
        raise Forbidden("Users can only change their own password.")
    data = _body(req, "user")
    original, password = data.get("original_password"), data.get("password")
    if not isinstance(original, str) or not isinstance(password, str):
        raise BadRequest("Both 'original_password' and 'password' are required strings.")
    with session() as sess:
        _user(sess, uid)
        core.change_own_password(sess, uid, original, password)
    auth = {"identity": {"methods": ["password"], "password": {"user": {"id": uid, "password": password}}},
            "scope": {"project": {"id": ctx.project_id}} if ctx.project_id else "unscoped"}
    with session() as sess:
        token_id, body = tokens.provider().issue(sess, auth)
        return {"access": v2_access(sess, token_id, body, body.get("catalog"))}


# ---------------------------------------------------------------------------- roles
@api.route("/v2.0/OS-KSADM/roles", "GET")
def list_roles(req):
    enforce(req, "identity:list_roles")
    with session() as sess:
        roles = sess.execute(select(m.Role).where(m.Role.domain_id == core.NULL_DOMAIN)
                             .order_by(m.Role.name)).scalars()
        return {"roles": [fmt_role(r) for r in roles], "roles_links": []}


@api.route("/v2.0/OS-KSADM/roles", "POST")
def create_role(req):
    data = {k: v for k, v in _body(req, "role").items() if k not in ("id", "domain_id")}
    if data.get("description", "") is None:
        data.pop("description")
    enforce(req, "identity:create_role")
    with session() as sess:
        return {"role": fmt_role(core.create_role(sess, data, req.context))}


@api.route("/v2.0/OS-KSADM/roles/{role_id}", "GET")
def get_role(req):
    enforce(req, "identity:get_role")
    with session() as sess:
        return {"role": fmt_role(_role(sess, req.path_params["role_id"]))}


@api.route("/v2.0/OS-KSADM/roles/{role_id}", "DELETE")
def delete_role(req):
    enforce(req, "identity:delete_role")
    with session() as sess:
        core.delete_role(sess, _role(sess, req.path_params["role_id"]).id, req.context)
    return no_content()


# ---------------------------------------------------------------------------- services
@api.route("/v2.0/OS-KSADM/services", "GET")
def list_services(req):
    enforce(req, "identity:list_services")
    with session() as sess:
        services = sess.execute(select(m.Service).order_by(m.Service.type)).scalars()
        return {"OS-KSADM:services": [fmt_service(s) for s in services]}


@api.route("/v2.0/OS-KSADM/services", "POST")
def create_service(req):
    data = req.json_object("OS-KSADM:service")
    data = {k: v for k, v in data.items() if k != "id" and not (k in ("name", "description") and v is None)}
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise BadRequest("Invalid input for field 'type': it is a required string.")
    enforce(req, "identity:create_service")
    with session() as sess:
        return {"OS-KSADM:service": fmt_service(catalog.create_service(sess, data, req.context))}


@api.route("/v2.0/OS-KSADM/services/{service_id}", "GET")
def get_service(req):
    enforce(req, "identity:get_service")
    with session() as sess:
        return {"OS-KSADM:service": fmt_service(_service(sess, req.path_params["service_id"]))}


@api.route("/v2.0/OS-KSADM/services/{service_id}", "DELETE")
def delete_service(req):
    enforce(req, "identity:delete_service")
    with session() as sess:
        catalog.delete_service(sess, _service(sess, req.path_params["service_id"]).id, req.context)
    return no_content()


# ---------------------------------------------------------------------------- endpoints
INTERFACES = ("public", "internal", "admin")


@api.route("/v2.0/endpoints", "GET")
def list_endpoints(req):
    """Legacy endpoints merged by `legacy_endpoint_id`; plain v3 ones by service and region."""
    enforce(req, "identity:list_endpoints")
    legacy: dict[str, dict] = {}
    plain: dict[tuple, list[m.Endpoint]] = {}
    with session() as sess:
        for ep in sess.execute(select(m.Endpoint).order_by(m.Endpoint.service_id, m.Endpoint.interface)).scalars():
            if ep.legacy_endpoint_id:
                out = legacy.setdefault(ep.legacy_endpoint_id, {
                    **(ep.extra or {}), "id": ep.legacy_endpoint_id, "region": ep.region_id,
                    "service_id": ep.service_id, "enabled": ep.enabled})
                out[f"{ep.interface}url"] = ep.url
            else:
                plain.setdefault((ep.service_id, ep.region_id), []).append(ep)
    out = list(legacy.values())
    for (service_id, region), eps in plain.items():
        item = {"service_id": service_id, "region": region, "enabled": eps[0].enabled}
        for ep in eps:
            if ep.interface == "public":
                item["id"] = ep.id
            item.setdefault(f"{ep.interface}url", ep.url)
        if "id" in item:  # v2 endpoints need a public URL
            out.append(item)
    return {"endpoints": out, "endpoints_links": []}


@api.route("/v2.0/endpoints", "POST")
def create_endpoint(req):
    data = _body(req, "endpoint")
    urls = {}
    for interface in INTERFACES:
        url = data.get(f"{interface}url")
        if url is not None and not isinstance(url, str):
            raise BadRequest(f"Invalid input for field '{interface}url': it must be a string.")
        if url:
            urls[interface] = url
    if "public" not in urls:
        raise BadRequest("Invalid input for field 'publicurl': it is required.")
    if not isinstance(data.get("service_id"), str) or not data["service_id"]:
        raise BadRequest("Invalid input for field 'service_id': it is required.")
    region = data.get("region")
    if region is not None and (not isinstance(region, str) or len(region) > MAX_PARAM):
        raise BadRequest("Invalid input for field 'region': it must be a string.")
    enforce(req, "identity:create_endpoint")
    legacy_id = new_id()
    extra = {k: v for k, v in data.items()
             if k not in ("id", "region", "region_id", "service_id", "enabled", "publicurl", "internalurl",
                          "adminurl", "legacy_endpoint_id", "interface", "url")}
    with session() as sess:
        _service(sess, data["service_id"])
        if region and sess.get(m.Region, region) is None:
            catalog.create_region(sess, {}, req.context, region_id=region)
        for interface, url in urls.items():
            body = {**extra, "interface": interface, "url": url, "service_id": data["service_id"],
                    "region_id": region}
            if "enabled" in data:
                body["enabled"] = data["enabled"]
            ep = catalog.create_endpoint(sess, body, req.context)
            ep.legacy_endpoint_id = legacy_id
            enabled = ep.enabled
    out = {**extra, "id": legacy_id, "region": region, "service_id": data["service_id"], "enabled": enabled}
    out.update({f"{i}url": u for i, u in urls.items()})
    return {"endpoint": out}


@api.route("/v2.0/endpoints/{endpoint_id}", "DELETE")
def delete_endpoint(req):
    """Deletes the v3 endpoints of a legacy endpoint (or of a service+region group shown by its public id)."""
    enforce(req, "identity:delete_endpoint")
    eid = req.path_params["endpoint_id"]
    with session() as sess:
        eps = list(sess.execute(select(m.Endpoint).where(m.Endpoint.legacy_endpoint_id == eid)).scalars())
        if not eps:
            ep = sess.get(m.Endpoint, eid)
            if ep is not None and not ep.legacy_endpoint_id and ep.interface == "public":
                eps = [e for e in sess.execute(select(m.Endpoint).where(
                    m.Endpoint.service_id == ep.service_id, m.Endpoint.legacy_endpoint_id.is_(None))).scalars()
                    if e.region_id == ep.region_id]
        if not eps:
            raise NotFound(f"Could not find endpoint: {eid}.")
        for ep in eps:
            catalog.delete_endpoint(sess, ep.id, req.context)
    return no_content()
