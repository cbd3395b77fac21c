"""Roles, implied roles, grants (project, domain, system, OS-INHERIT) and role assignments."""
from __future__ import annotations

from sqlalchemy import select

from pocketstack.common.errors import BadRequest
from pocketstack.identity import core
from pocketstack.identity import models as m
from pocketstack.identity.api.common import (
    no_content,
    api,
    apply_filters,
    body_of,
    enforce,
    fmt_role,
    listing,
    session,
    v3_url,
)




# ---------------------------------------------------------------------------- roles
@api.route("/v3/roles", "GET")
def list_roles(req):
    domain_id = req.query.get("domain_id")
    enforce(req, "identity:list_domain_roles" if domain_id else "identity:list_roles")
    with session() as sess:
        rows = sess.execute(select(m.Role).where(m.Role.domain_id == (domain_id or core.NULL_DOMAIN))
                            .order_by(m.Role.name)).scalars()
        items = [fmt_role(req, r) for r in rows]
    return listing(req, "roles", apply_filters(req, items, {"name", "id"}, skip={"domain_id"}))


@api.route("/v3/roles", "POST")
def create_role(req):
    data = body_of(req, "role")
    enforce(req, "identity:create_domain_role" if data.get("domain_id") else "identity:create_role")
    with session() as sess:
        return 201, {"role": fmt_role(req, core.create_role(sess, data, req.context))}


@api.route("/v3/roles/{role_id}", "GET")
def get_role(req):
    enforce(req, "identity:get_role")
    with session() as sess:
        return {"role": fmt_role(req, core.get_role(sess, req.path_params["role_id"]))}


@api.route("/v3/roles/{role_id}", "PATCH")
def update_role(req):
    enforce(req, "identity:update_role")
    data = body_of(req, "role")
    with session() as sess:
        return {"role": fmt_role(req, core.update_role(sess, req.path_params["role_id"], data, req.context))}


@api.route("/v3/roles/{role_id}", "DELETE")
def delete_role(req):
    enforce(req, "identity:delete_role")
    with session() as sess:
        core.delete_role(sess, req.path_params["role_id"], req.context)
    return no_content()


# ---------------------------------------------------------------------------- implied roles
def _role_ref(req, role: m.Role) -> dict:
    return {"id": role.id, "name": role.name, "links": {"self": v3_url(req, f"roles/{role.id}")}}


@api.route("/v3/roles/{prior_id}/implies", "GET")
def list_implied(req):
    enforce(req, "identity:list_implied_roles")
    with session() as sess:
        prior = core.get_role(sess, req.path_params["prior_id"])
        implied = sess.execute(select(m.ImpliedRole.implied_role_id)
                               .where(m.ImpliedRole.prior_role_id == prior.id)).scalars()
        return {"role_inference": {"prior_role": _role_ref(req, prior),
                                   "implies": [_role_ref(req, core.get_role(sess, i)) for i in implied]},
                "links": {"self": req.url}}


@api.route("/v3/roles/{prior_id}/implies/{implied_id}", "PUT")
def create_implied(req):
    enforce(req, "identity:create_implied_role")
    with session() as sess:
        p, i = req.path_params["prior_id"], req.path_params["implied_id"]
        core.create_implied_role(sess, p, i, req.context)
        return 201, {"role_inference": {"prior_role": _role_ref(req, core.get_role(sess, p)),
                                        "implies": _role_ref(req, core.get_role(sess, i))},
                     "links": {"self": req.url}}


@api.route("/v3/roles/{prior_id}/implies/{implied_id}", "GET")
def get_implied(req):
    enforce(req, "identity:get_implied_role")
    with session() as sess:
        p, i = req.path_params["prior_id"], req.path_params["implied_id"]
        core.get_implied_role(sess, p, i)
        return {"role_inference": {"prior_role": _role_ref(req, core.get_role(sess, p)),
                                   "implies": _role_ref(req, core.get_role(sess, i))},
                "links": {"self": req.url}}


@api.route("/v3/roles/{prior_id}/implies/{implied_id}", "HEAD")
def check_implied(req):
    enforce(req, "identity:check_implied_role")
    with session() as sess:
        core.get_implied_role(sess, req.path_params["prior_id"], req.path_params["implied_id"])
    return no_content()


@api.route("/v3/roles/{prior_id}/implies/{implied_id}", "DELETE")
def delete_implied(req):
    enforce(req, "identity:delete_implied_role")
    with session() as sess:
        core.delete_implied_role(sess, req.path_params["prior_id"], req.path_params["implied_id"], req.context)
    return no_content()


@api.route("/v3/role_inferences", "GET")
def list_inferences(req):
    enforce(req, "identity:list_role_inference_rules")
    with session() as sess:
        rules: dict[str, list[str]] = {}
        for row in sess.execute(select(m.ImpliedRole)).scalars():
            rules.setdefault(row.prior_role_id, []).append(row.implied_role_id)
        out = [{"prior_role": _role_ref(req, core.get_role(sess, p)),
                "implies": [_role_ref(req, core.get_role(sess, i)) for i in imp]} for p, imp in rules.items()]
    return {"role_inferences": out, "links": {"self": req.url}}


# ---------------------------------------------------------------------------- grants
def _grant_routes(target: str, actor: str, inherited: bool):
    prefix = "/v3/OS-INHERIT" if inherited else "/v3"
    base = f"{prefix}/{target}s/{{target_id}}/{actor}s/{{actor_id}}/roles"
    if inherited:
        base += "/{role_id}/inherited_to_projects"
        list_path = f"{prefix}/{target}s/{{target_id}}/{actor}s/{{actor_id}}/roles/inherited_to_projects"
    else:
        list_path = base
        base += "/{role_id}"

    def target_domain(sess, target_id):
        if target == "project":
            proj = sess.get(m.Project, target_id)
            return proj.domain_id if proj else None
        return target_id

    @api.route(base, "PUT")
    def put_grant(req):
        enforce(req, "identity:create_grant")
        p = req.path_params
        with session() as sess:
            core.grant(sess, actor, p["actor_id"], target, p["target_id"], p["role_id"], inherited, req.context)
        return no_content()

    @api.route(base, "HEAD")
    @api.route(base, "GET")
    def check_grant(req):
        p = req.path_params
        with session() as sess:
            enforce(req, "identity:check_grant", {"domain_id": target_domain(sess, p["target_id"])})
            core.check_grant(sess, actor, p["actor_id"], target, p["target_id"], p["role_id"], inherited)
        return no_content()

    @api.route(base, "DELETE")
    def delete_grant(req):
        enforce(req, "identity:revoke_grant")
        p = req.path_params
        with session() as sess:
            core.revoke_grant(sess, actor, p["actor_id"], target, p["target_id"], p["role_id"], inherited,
                              req.context)
        return no_content()

    @api.route(list_path, "GET")
    def list_grants(req):
        p = req.path_params
        with session() as sess:
            enforce(req, "identity:list_grants", {"domain_id": target_domain(sess, p["target_id"])})
            roles = core.list_grants(sess, actor, p["actor_id"], target, p["target_id"], inherited)
            return listing(req, "roles", [fmt_role(req, r) for r in roles])

    for fn in (put_grant, check_grant, delete_grant, list_grants):
        fn.__name__ = f"{fn.__name__}_{target}_{actor}{'_inherited' if inherited else ''}"


for _target in ("project", "domain"):
    for _actor in ("user", "group"):
        _grant_routes(_target, _actor, False)
_grant_routes("domain", "user", True)
_grant_routes("domain", "group", True)
_grant_routes("project", "user", True)
_grant_routes("project", "group", True)


def _system_routes(actor: str):
    base = f"/v3/system/{actor}s/{{actor_id}}/roles"

    @api.route(base, "GET")
    def list_system(req):
        enforce(req, f"identity:list_system_grants_for_{actor}")
        with session() as sess:
            roles = core.list_grants(sess, actor, req.path_params["actor_id"], "system", "system")
            return listing(req, "roles", [fmt_role(req, r) for r in roles])

    @api.route(base + "/{role_id}", "PUT")
    def put_system(req):
        enforce(req, f"identity:create_system_grant_for_{actor}")
        with session() as sess:
            core.grant(sess, actor, req.path_params["actor_id"], "system", "system", req.path_params["role_id"],
                       ctx=req.context)
        return no_content()

    @api.route(base + "/{role_id}", "HEAD")
    @api.route(base + "/{role_id}", "GET")
    def check_system(req):
        enforce(req, f"identity:check_system_grant_for_{actor}")
        with session() as sess:
            core.check_grant(sess, actor, req.path_params["actor_id"], "system", "system",
                             req.path_params["role_id"])
        return no_content()

    @api.route(base + "/{role_id}", "DELETE")
    def delete_system(req):
        enforce(req, f"identity:revoke_system_grant_for_{actor}")
        with session() as sess:
            core.revoke_grant(sess, actor, req.path_params["actor_id"], "system", "system",
                              req.path_params["role_id"], ctx=req.context)
        return no_content()


_system_routes("user")
_system_routes("group")


# ---------------------------------------------------------------------------- role assignments
TARGET_OF = {"UserProject": ("user", "project"), "GroupProject": ("group", "project"),
             "UserDomain": ("user", "domain"), "GroupDomain": ("group", "domain"),
             "UserSystem": ("user", "system"), "GroupSystem": ("group", "system")}


@api.route("/v3/role_assignments", "GET")
def list_role_assignments(req):
    q = req.query
    scope_domain = q.get("scope.domain.id")
    enforce(req, "identity:list_role_assignments", {"domain_id": scope_domain})
    effective = req.query_flag("effective")
    names = req.query_flag("include_names")
    if effective and q.get("group.id"):
        raise BadRequest("Specifying a group with effective is not allowed.")
    with session() as sess:
        rows = [(a.type, a.actor_id, a.target_id, a.role_id, a.inherited)
                for a in sess.execute(select(m.Assignment)).scalars()]
        # Expand into what the assignments mean for each user and project.
        out = []
        for kind, actor_id, target_id, role_id, inherited in rows:
            actor, target = TARGET_OF[kind]
            entries = [(actor, actor_id, target, target_id, role_id, inherited, None)]
            if effective:
                expanded = []
                for (a, aid, t, tid, rid, inh, via) in entries:
                    if inh:
                        if t == "domain":
                            tids = list(sess.execute(select(m.Project.id).where(m.Project.domain_id == tid)).scalars())
                        else:
                            tids = [p.id for p in core.subtree(sess, tid)]
                        expanded += [(a, aid, "project", x, rid, False, via) for x in tids]
                    else:
                        expanded.append((a, aid, t, tid, rid, inh, via))
                entries = []
                for (a, aid, t, tid, rid, inh, via) in expanded:
                    if a == "group":
                        entries += [("user", u, t, tid, rid, inh, aid) for u in core.group_user_ids(sess, aid)]
                    else:
                        entries.append((a, aid, t, tid, rid, inh, via))
                with_implied = []
                for e in entries:
                    with_implied.append(e)
                    for implied in core.implied_closure(sess, [e[4]]):
                        with_implied.append(e[:4] + (implied,) + e[5:] + (e[4],))
                # Domain-specific roles only lend their implied roles; they never show as effective.
                domain_roles = set(sess.execute(select(m.Role.id).where(m.Role.domain_id != core.NULL_DOMAIN))
                                   .scalars())
                entries = [e for e in with_implied if e[4] not in domain_roles]
            out.extend(entries)
        items = []
        seen = set()
        for e in out:
            a, aid, t, tid, rid, inh, via = e[:7]
            prior = e[7] if len(e) > 7 else None
            if q.get("user.id") and not (a == "user" and aid == q["user.id"]):
                continue
            if q.get("group.id") and not (a == "group" and aid == q["group.id"]):
                continue
            if q.get("role.id") and rid != q["role.id"]:
                continue
            if q.get("scope.project.id"):
                wanted = {q["scope.project.id"]}
                if req.query_flag("include_subtree"):
                    wanted |= {p.id for p in core.subtree(sess, q["scope.project.id"])}
                if not (t == "project" and tid in wanted):
                    continue
            if scope_domain and not (t == "domain" and tid == scope_domain):
                continue
            if q.get("scope.system") and t != "system":
                continue
            if "scope.OS-INHERIT:inherited_to" in q and not inh:
                continue
            key = (a, aid, t, tid, rid, inh)
            if key in seen:
                continue
            seen.add(key)
            items.append(_fmt_assignment(req, sess, a, aid, t, tid, rid, inh, via, prior, names))
    return {"role_assignments": items, "links": {"self": req.url, "previous": None, "next": None}}


def _fmt_assignment(req, sess, actor, actor_id, target, target_id, role_id, inherited, via_group, prior, names):
    role = sess.get(m.Role, role_id)
    role_ref = {"id": role_id}
    if names and role is not None:
        role_ref["name"] = role.name
        if role.domain_id != core.NULL_DOMAIN:
            dom = sess.get(m.Domain, role.domain_id)
            role_ref["domain"] = {"id": role.domain_id, "name": dom.name if dom else None}
    actor_ref = {"id": actor_id}
    if names:
        obj = sess.get(m.User if actor == "user" else m.Group, actor_id)
        if obj is not None:
            dom = sess.get(m.Domain, obj.domain_id)
            actor_ref.update(name=obj.name, domain={"id": obj.domain_id, "name": dom.name if dom else None})
    if target == "system":
        scope = {"system": {"all": True}}
        link = v3_url(req, f"system/{actor}s/{actor_id}/roles/{role_id}")
    else:
        tref = {"id": target_id}
        if names:
            if target == "project":
                proj = sess.get(m.Project, target_id)
                if proj is not None:
                    dom = sess.get(m.Domain, proj.domain_id)
                    tref.update(name=proj.name, domain={"id": proj.domain_id, "name": dom.name if dom else None})
            else:
                dom = sess.get(m.Domain, target_id)
                if dom is not None:
                    tref["name"] = dom.name
        scope = {target: tref}
        if inherited:
            scope["OS-INHERIT:inherited_to"] = "projects"
            link = v3_url(req, f"OS-INHERIT/{target}s/{target_id}/{actor}s/{actor_id}/roles/{role_id}"
                               f"/inherited_to_projects")
        else:
            link = v3_url(req, f"{target}s/{target_id}/{actor}s/{actor_id}/roles/{role_id}")
    links = {"assignment": link}
    if via_group:
        links["membership"] = v3_url(req, f"groups/{via_group}/users/{actor_id}")
    if prior:
        links["prior_role"] = v3_url(req, f"roles/{prior}")
    return {"role": role_ref, actor: actor_ref, "scope": scope, "links": links}
