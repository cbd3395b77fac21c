"""`/v2.0/quotas`: per-project limits (show, update, delete = back to defaults, defaults,
details with usage) over the resources registered with `resource.register_quota_resource`."""
from __future__ import annotations

from sqlalchemy import delete, select

from pocketstack.common.errors import BadRequest
from pocketstack.network import models as m
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api, session


def _target(project_id: str) -> dict:
    return {"project_id": project_id, "tenant_id": project_id}


def _body(project_id: str, limits: dict) -> dict:
    return {**limits, "project_id": project_id, "tenant_id": project_id}


@api.route("/v2.0/quotas", "GET")
def list_quotas(req):
    ctx = req.context
    if not r.is_admin(ctx):
        raise r.PolicyNotAuthorized("get_quota")
    with session() as sess:
        projects = sorted(set(sess.scalars(select(m.Quota.project_id))))
        return {"quotas": [_body(p, r.project_limits(sess, p)) for p in projects]}


@api.route("/v2.0/quotas/tenant", "GET")
def quota_tenant(req):
    return {"tenant": {"tenant_id": req.context.project_id}}


@api.route("/v2.0/quotas/project", "GET")
def quota_project(req):
    return {"project": {"project_id": req.context.project_id}}


@api.route("/v2.0/quotas/{project_id}", "GET")
def show_quota(req):
    pid = req.path_params["project_id"]
    r.enforce(req.context, "get_quota", _target(pid))
    with session() as sess:
        return {"quota": r.project_limits(sess, pid)}


@api.route("/v2.0/quotas/{project_id}/default", "GET")
def show_default_quota(req):
    pid = req.path_params["project_id"]
    r.enforce(req.context, "get_quota", _target(pid))
    return {"quota": {name: r.default_limit(name) for name in r.QUOTA_RESOURCES}}


@api.route("/v2.0/quotas/{project_id}/details", "GET")
def show_quota_details(req):
    pid = req.path_params["project_id"]
    r.enforce(req.context, "get_quota", _target(pid))
    with session() as sess:
        limits = r.project_limits(sess, pid)
        return {"quota": {name: {"limit": limits[name], "used": res.count(sess, pid), "reserved": 0}
                          for name, res in r.QUOTA_RESOURCES.items()}}


@api.route("/v2.0/quotas/{project_id}", "PUT")
def update_quota(req):
    ctx = req.context
    pid = req.path_params["project_id"]
    r.enforce(ctx, "update_quota", _target(pid))
    body = req.json
    if not isinstance(body, dict) or not isinstance(body.get("quota"), dict):
        raise BadRequest("Unable to find 'quota' in request body")
    data = dict(body["quota"])
    data.pop("force", None)
    data.pop("check_limit", None)
    unknown = [k for k in data if k not in r.QUOTA_RESOURCES]
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    values = {}
    for name, value in data.items():
        try:
            values[name] = r.v_int(minimum=-1)(value)
        except r.Invalid as exc:
            raise BadRequest(f"Invalid input for {name}. Reason: {exc}.") from None
    with session() as sess:
        for name, value in values.items():
            row = sess.get(m.Quota, (pid, name))
            if row is None:
                sess.add(m.Quota(project_id=pid, resource=name, limit=value))
            else:
                row.limit = value
        sess.flush()
        limits = r.project_limits(sess, pid)
    r.emit("quota", "updated", {"project_id": pid, **values}, ctx)
    return {"quota": limits}


@api.route("/v2.0/quotas/{project_id}", "DELETE")
def delete_quota(req):
    ctx = req.context
    pid = req.path_params["project_id"]
    r.enforce(ctx, "delete_quota", _target(pid))
    with session() as sess:
        sess.execute(delete(m.Quota).where(m.Quota.project_id == pid))
    r.emit("quota", "deleted", {"project_id": pid}, ctx)
    return 204, None
