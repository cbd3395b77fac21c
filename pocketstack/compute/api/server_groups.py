"""os-server-groups: create, list, show and delete server groups.

Microversions: 2.13 adds `project_id`/`user_id`; 2.15 allows the soft policies; 2.64
replaces `policies: [p]` (and the empty `metadata`) with `policy` and `rules`
(`max_server_per_host` for anti-affinity); 2.75 refuses unknown query parameters.
Members are listed without deleted servers. Another project's group is a 403 (policy on
its owner), as in Nova.
"""
from __future__ import annotations

from sqlalchemy import select

from pocketstack.common.errors import BadRequest
from pocketstack.common.runtime import current
from pocketstack.compute import models, server_groups
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-server-groups:"


def _live(uuids: list[str]) -> set[str]:
    inst = getattr(models, "Instance", None)
    if inst is None or not uuids:
        return set(uuids)
    with current().db.session() as sess:
        return set(sess.scalars(select(inst.uuid).where(inst.uuid.in_(uuids), inst.deleted.is_(False))))


def _view(req, g: server_groups.GroupInfo, live: set[str] | None = None) -> dict:
    live = _live(list(g.members)) if live is None else live
    out = {"id": g.id, "name": g.name}
    if at_least(req, "2.64"):
        out["policy"] = g.policy
        out["rules"] = dict(g.rules)
    else:
        out["policies"] = [g.policy]
        out["metadata"] = {}
    out["members"] = [m for m in g.members if m in live]
    if at_least(req, "2.13"):
        out["project_id"] = g.project_id
        out["user_id"] = g.user_id
    return out


@api.route("/v2.1/os-server-groups", "GET")
def list_groups(req):
    ctx = req.context
    p.authorize(req, R + "index", {"project_id": ctx.project_id})
    p.strict_query(req, ("all_projects", "limit", "offset"))
    all_projects = False
    if "all_projects" in req.query and ctx.is_admin:
        p.authorize(req, R + "index:all_projects", {"project_id": ctx.project_id})
        all_projects = True
    limit = p.query_limit(req)
    offset = None
    if "offset" in req.query:
        raw = req.query["offset"]
        if not raw.isdigit():
            raise p.invalid("offset", raw, f"'{raw}' does not match '^[0-9]*$'")
        offset = int(raw)
    groups = server_groups.list_groups(ctx, all_projects=all_projects, limit=limit, offset=offset)
    live = _live([m for g in groups for m in g.members])
    return {"server_groups": [_view(req, g, live) for g in groups]}


@api.route("/v2.1/os-server-groups/{group_id}", "GET")
def show_group(req):
    p.strict_query(req, (), "2.102")
    g = server_groups.get_group(None, req.path_params["group_id"])
    p.authorize(req, R + "show", {"project_id": g.project_id})
    return {"server_group": _view(req, g)}


@api.route("/v2.1/os-server-groups/{group_id}", "DELETE")
def delete_group(req):
    g = server_groups.get_group(None, req.path_params["group_id"])
    p.authorize(req, R + "delete", {"project_id": g.project_id})
    server_groups.delete_group(req.context, g.id)
    return 204, None


@api.route("/v2.1/os-server-groups", "POST")
def create_group(req):
    ctx = req.context
    p.authorize(req, R + "create", {"project_id": ctx.project_id})
    v264 = at_least(req, "2.64")
    allowed = ("name", "policy", "rules") if v264 else ("name", "policies")
    body = p.body(req, "server_group", allowed, ("name", "policy") if v264 else ("name", "policies"))
    name = p.name(body["name"])
    choices = list(server_groups.POLICIES) if at_least(req, "2.15") else ["affinity", "anti-affinity"]
    rules: dict = {}
    if v264:
        policy = body["policy"]
        if policy not in choices:
            raise p.invalid("policy", policy, f"'{policy}' is not one of {choices}")
        raw_rules = body.get("rules", {})
        if not isinstance(raw_rules, dict):
            raise p.invalid("rules", raw_rules, f"{raw_rules!r} is not of type 'object'")
        p.check_keys(raw_rules, "rules", ("max_server_per_host",))
        if "max_server_per_host" in raw_rules:
            rules["max_server_per_host"] = p.integer(raw_rules["max_server_per_host"],
                                                     "rules/max_server_per_host", 1)
        if policy != "anti-affinity" and rules:
            raise BadRequest("Only anti-affinity policy supports rules.")
    else:
        policies = body["policies"]
        if not isinstance(policies, list):
            raise p.invalid("policies", policies, f"{policies!r} is not of type 'array'")
        if len(policies) != 1:
            raise p.invalid("policies", policies, f"{policies!r} should have exactly one item")
        policy = policies[0]
        if policy not in choices:
            raise p.invalid("policies/0", policy, f"'{policy}' is not one of {choices}")
    g = server_groups.create_group(ctx, name, policy, rules)
    return {"server_group": _view(req, g, set())}
