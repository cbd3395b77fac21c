"""Domains, projects (with tags and hierarchy), users, groups and memberships."""
from __future__ import annotations

from sqlalchemy import select

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.identity import core
from pocketstack.identity import models as m
from pocketstack.identity.api.common import (
    no_content,
    api,
    apply_filters,
    body_of,
    enforce,
    fmt_domain,
    fmt_group,
    fmt_project,
    fmt_user,
    listing,
    session,
)



# ---------------------------------------------------------------------------- domains
@api.route("/v3/domains", "GET")
def list_domains(req):
    enforce(req, "identity:list_domains")
    with session() as sess:
        items = [fmt_domain(req, d) for d in sess.execute(select(m.Domain).order_by(m.Domain.name)).scalars()]
    return listing(req, "domains", apply_filters(req, items, {"name", "enabled", "id"}))


@api.route("/v3/domains", "POST")
def create_domain(req):
    enforce(req, "identity:create_domain")
    data = body_of(req, "domain")
    with session() as sess:
        dom = core.create_domain(sess, data, req.context)
        return 201, {"domain": fmt_domain(req, dom)}


@api.route("/v3/domains/{domain_id}", "GET")
def get_domain(req):
    did = req.path_params["domain_id"]
    enforce(req, "identity:get_domain", {"domain": {"id": did}, "domain_id": did})
    with session() as sess:
        return {"domain": fmt_domain(req, core.get_domain(sess, did))}


@api.route("/v3/domains/{domain_id}", "PATCH")
def update_domain(req):
    enforce(req, "identity:update_domain")
    data = body_of(req, "domain")
    with session() as sess:
        return {"domain": fmt_domain(req, core.update_domain(sess, req.path_params["domain_id"], data, req.context))}


@api.route("/v3/domains/{domain_id}", "DELETE")
def delete_domain(req):
    enforce(req, "identity:delete_domain")
    with session() as sess:
        core.delete_domain(sess, req.path_params["domain_id"], req.context)
    return no_content()


# ---------------------------------------------------------------------------- projects
def _project_filters(req, items):
    items = apply_filters(req, items, {"name", "enabled", "domain_id", "parent_id", "is_domain", "id"})
    tags = req.query.get("tags")
    if tags:
        want = set(tags.split(","))
        items = [p for p in items if want <= set(p["tags"])]
    tags_any = req.query.get("tags-any")
    if tags_any:
        want = set(tags_any.split(","))
        items = [p for p in items if want & set(p["tags"])]
    not_tags = req.query.get("not-tags")
    if not_tags:
        want = set(not_tags.split(","))
        items = [p for p in items if not want <= set(p["tags"])]
    not_any = req.query.get("not-tags-any")
    if not_any:
        want = set(not_any.split(","))
        items = [p for p in items if not want & set(p["tags"])]
    return items


@api.route("/v3/projects", "GET")
def list_projects(req):
    domain_id = req.query.get("domain_id")
    enforce(req, "identity:list_projects", {"domain_id": domain_id})
    with session() as sess:
        if req.query.get("is_domain", "").lower() == "true":
            items = [dict(fmt_domain(req, d), is_domain=True, parent_id=None, domain_id=None)
                     for d in sess.execute(select(m.Domain).order_by(m.Domain.name)).scalars()]
            return listing(req, "projects", apply_filters(req, items, {"name", "enabled", "id"}))
        items = [fmt_project(req, p) for p in sess.execute(select(m.Project).order_by(m.Project.name)).scalars()]
    return listing(req, "projects", _project_filters(req, items))


@api.route("/v3/projects", "POST")
def create_project(req):
    data = body_of(req, "project")
    enforce(req, "identity:create_project", {"project": data, "domain_id": data.get("domain_id")})
    with session() as sess:
        obj = core.create_project(sess, data, req.context)
        if isinstance(obj, m.Domain):
            return 201, {"project": dict(fmt_domain(req, obj), is_domain=True, parent_id=None, domain_id=None)}
        return 201, {"project": fmt_project(req, obj)}


def _hierarchy(req, sess, proj: m.Project, out: dict) -> None:
    """`parents_as_list`, `subtree_as_list`, `parents_as_ids`, `subtree_as_ids` query options."""
    for what in ("parents", "subtree"):
        if req.query_flag(f"{what}_as_list") and req.query_flag(f"{what}_as_ids"):
            raise BadRequest(f"Cannot use '{what}_as_list' and '{what}_as_ids' query params at the same time.")
    if req.query_flag("parents_as_list"):
        out["parents"] = [{"project": fmt_project(req, p)} for p in core.ancestors(sess, proj)]
    if req.query_flag("subtree_as_list"):
        out["subtree"] = [{"project": fmt_project(req, p)} for p in core.subtree(sess, proj.id)]
    if req.query_flag("parents_as_ids"):
        # Nearest parent outermost; the domain (the project acting as a domain) is the root.
        ids = {proj.domain_id: None}
        for p in reversed(core.ancestors(sess, proj)):
            ids = {p.id: ids}
        out["parents"] = ids
    if req.query_flag("subtree_as_ids"):
        def tree(pid):
            kids = core.children(sess, pid)
            return {k.id: tree(k.id) for k in kids} or None
        out["subtree"] = tree(proj.id)


@api.route("/v3/projects/{project_id}", "GET")
def get_project(req):
    pid = req.path_params["project_id"]
    with session() as sess:
        proj = sess.get(m.Project, pid)
        target = {"project": {"id": pid}, "domain_id": proj.domain_id if proj else None}
        enforce(req, "identity:get_project", target)
        if proj is None:
            dom = sess.get(m.Domain, pid)
            if dom is not None:
                return {"project": dict(fmt_domain(req, dom), is_domain=True, parent_id=None, domain_id=None)}
            raise NotFound(f"Could not find project: {pid}.")
        out = fmt_project(req, proj)
        _hierarchy(req, sess, proj, out)
        return {"project": out}


@api.route("/v3/projects/{project_id}", "PATCH")
def update_project(req):
    enforce(req, "identity:update_project")
    data = body_of(req, "project")
    with session() as sess:
        pid = req.path_params["project_id"]
        if sess.get(m.Project, pid) is None and sess.get(m.Domain, pid) is not None:
            # a domain seen through the projects API (is_domain=true)
            dom = core.update_domain(sess, pid, {k: v for k, v in data.items() if k != "is_domain"}, req.context)
            return {"project": dict(fmt_domain(req, dom), is_domain=True, parent_id=None, domain_id=None)}
        return {"project": fmt_project(req, core.update_project(sess, pid, data, req.context))}


@api.route("/v3/projects/{project_id}", "DELETE")
def delete_project(req):
    enforce(req, "identity:delete_project")
    with session() as sess:
        pid = req.path_params["project_id"]
        if sess.get(m.Project, pid) is None and sess.get(m.Domain, pid) is not None:
            core.delete_domain(sess, pid, req.context)
        else:
            core.delete_project(sess, pid, req.context, cascade=req.query_flag("cascade"))
    return no_content()


@api.route("/v3/projects/{project_id}/tags", "GET")
def list_project_tags(req):
    pid = req.path_params["project_id"]
    enforce(req, "identity:project_tags", {"project": {"id": pid}})
    with session() as sess:
        return {"tags": list(core.get_project(sess, pid).tags)}


@api.route("/v3/projects/{project_id}/tags", "PUT")
def replace_project_tags(req):
    enforce(req, "identity:update_project_tags")
    data = req.json_object()
    with session() as sess:
        proj = core.get_project(sess, req.path_params["project_id"])
        proj.tags = core.check_tags(data.get("tags"))
        return {"tags": list(proj.tags), "links": {"self": req.url}}


@api.route("/v3/projects/{project_id}/tags", "DELETE")
def clear_project_tags(req):
    enforce(req, "identity:update_project_tags")
    with session() as sess:
        core.get_project(sess, req.path_params["project_id"]).tags = []
    return no_content()


@api.route("/v3/projects/{project_id}/tags/{tag}", "GET")
@api.route("/v3/projects/{project_id}/tags/{tag}", "HEAD")
def check_project_tag(req):
    pid = req.path_params["project_id"]
    enforce(req, "identity:project_tags", {"project": {"id": pid}})
    with session() as sess:
        if req.path_params["tag"] not in core.get_project(sess, pid).tags:
            raise NotFound(f"Could not find project tag: {req.path_params['tag']}.")
    return no_content()


@api.route("/v3/projects/{project_id}/tags/{tag}", "PUT")
def add_project_tag(req):
    enforce(req, "identity:update_project_tags")
    tag = req.path_params["tag"]
    with session() as sess:
        proj = core.get_project(sess, req.path_params["project_id"])
        proj.tags = core.check_tags(list(proj.tags) + [tag])
    return 201, None, {"Location": req.url}


@api.route("/v3/projects/{project_id}/tags/{tag}", "DELETE")
def delete_project_tag(req):
    enforce(req, "identity:update_project_tags")
    tag = req.path_params["tag"]
    with session() as sess:
        proj = core.get_project(sess, req.path_params["project_id"])
        if tag not in proj.tags:
            raise NotFound(f"Could not find project tag: {tag}.")
        proj.tags = [t for t in proj.tags if t != tag]
    return no_content()


# ---------------------------------------------------------------------------- users
def _fmt_users(req, sess, users):
    return [fmt_user(req, u, core.password_expires_at(sess, u)) for u in users]


@api.route("/v3/users", "GET")
def list_users(req):
    domain_id = req.query.get("domain_id")
    enforce(req, "identity:list_users", {"domain_id": domain_id})
    with session() as sess:
        items = _fmt_users(req, sess, sess.execute(select(m.User).order_by(m.User.name)).scalars())
    return listing(req, "users", apply_filters(req, items, {"name", "enabled", "domain_id", "id",
                                                            "default_project_id"}))


@api.route("/v3/users", "POST")
def create_user(req):
    data = body_of(req, "user")
    enforce(req, "identity:create_user", {"user": {"domain_id": data.get("domain_id")}})
    with session() as sess:
        user = core.create_user(sess, data, req.context)
        return 201, {"user": fmt_user(req, user, core.password_expires_at(sess, user))}


@api.route("/v3/users/{user_id}", "GET")
def get_user(req):
    uid = req.path_params["user_id"]
    with session() as sess:
        user = sess.get(m.User, uid)
        enforce(req, "identity:get_user", {"user": {"id": uid}, "domain_id": user.domain_id if user else None})
        if user is None:
            raise NotFound(f"Could not find user: {uid}.")
        return {"user": fmt_user(req, user, core.password_expires_at(sess, user))}


@api.route("/v3/users/{user_id}", "PATCH")
def update_user(req):
    enforce(req, "identity:update_user")
    data = body_of(req, "user")
    with session() as sess:
        user = core.update_user(sess, req.path_params["user_id"], data, req.context)
        return {"user": fmt_user(req, user, core.password_expires_at(sess, user))}


@api.route("/v3/users/{user_id}", "DELETE")
def delete_user(req):
    enforce(req, "identity:delete_user")
    with session() as sess:
        core.delete_user(sess, req.path_params["user_id"], req.context)
    return no_content()


@api.route("/v3/users/{user_id}/password", "POST")
def change_password(req):
    """Self-service password change; the old password authenticates the call (no token needed)."""
    uid = req.path_params["user_id"]
    data = body_of(req, "user")
    if not isinstance(data.get("original_password"), str) or not isinstance(data.get("password"), str):
        raise BadRequest("Both 'original_password' and 'password' are required strings.")
    with session() as sess:
        core.change_own_password(sess, uid, data["original_password"], data["password"])
    return no_content()


@api.route("/v3/users/{user_id}/groups", "GET")
def list_user_groups(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:list_groups_for_user", {"user": {"id": uid}})
    with session() as sess:
        core.get_user(sess, uid)
        groups = [core.get_group(sess, g) for g in core.user_group_ids(sess, uid)]
        items = [fmt_group(req, g) for g in sorted(groups, key=lambda g: g.name)]
    return listing(req, "groups", apply_filters(req, items, {"name", "domain_id"}))


@api.route("/v3/users/{user_id}/projects", "GET")
def list_user_projects(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:list_user_projects", {"user_id": uid})
    with session() as sess:
        core.get_user(sess, uid)
        items = [fmt_project(req, p) for p in core.user_projects(sess, uid)]
    return listing(req, "projects", apply_filters(req, items, {"name", "enabled", "domain_id"}))


# ---------------------------------------------------------------------------- groups
@api.route("/v3/groups", "GET")
def list_groups(req):
    enforce(req, "identity:list_groups", {"domain_id": req.query.get("domain_id")})
    with session() as sess:
        items = [fmt_group(req, g) for g in sess.execute(select(m.Group).order_by(m.Group.name)).scalars()]
    return listing(req, "groups", apply_filters(req, items, {"name", "domain_id", "id"}))


@api.route("/v3/groups", "POST")
def create_group(req):
    enforce(req, "identity:create_group")
    data = body_of(req, "group")
    with session() as sess:
        return 201, {"group": fmt_group(req, core.create_group(sess, data, req.context))}


@api.route("/v3/groups/{group_id}", "GET")
def get_group(req):
    gid = req.path_params["group_id"]
    with session() as sess:
        grp = sess.get(m.Group, gid)
        enforce(req, "identity:get_group", {"domain_id": grp.domain_id if grp else None})
        if grp is None:
            raise NotFound(f"Could not find group: {gid}.")
        return {"group": fmt_group(req, grp)}


@api.route("/v3/groups/{group_id}", "PATCH")
def update_group(req):
    enforce(req, "identity:update_group")
    data = body_of(req, "group")
    with session() as sess:
        return {"group": fmt_group(req, core.update_group(sess, req.path_params["group_id"], data, req.context))}


@api.route("/v3/groups/{group_id}", "DELETE")
def delete_group(req):
    enforce(req, "identity:delete_group")
    with session() as sess:
        core.delete_group(sess, req.path_params["group_id"], req.context)
    return no_content()


@api.route("/v3/groups/{group_id}/users", "GET")
def list_group_users(req):
    gid = req.path_params["group_id"]
    with session() as sess:
        grp = core.get_group(sess, gid)
        enforce(req, "identity:list_users_in_group", {"domain_id": grp.domain_id})
        users = [core.get_user(sess, u) for u in core.group_user_ids(sess, gid)]
        items = _fmt_users(req, sess, sorted(users, key=lambda u: u.name))
    return listing(req, "users", apply_filters(req, items, {"name", "enabled", "domain_id"}))


@api.route("/v3/groups/{group_id}/users/{user_id}", "PUT")
def add_group_user(req):
    enforce(req, "identity:add_user_to_group")
    with session() as sess:
        core.add_user_to_group(sess, req.path_params["group_id"], req.path_params["user_id"], req.context)
    return no_content()


@api.route("/v3/groups/{group_id}/users/{user_id}", "HEAD")
@api.route("/v3/groups/{group_id}/users/{user_id}", "GET")
def check_group_user(req):
    enforce(req, "identity:check_user_in_group")
    gid, uid = req.path_params["group_id"], req.path_params["user_id"]
    with session() as sess:
        core.get_group(sess, gid)
        core.get_user(sess, uid)
        if uid not in core.group_user_ids(sess, gid):
            raise NotFound(f"Could not find user {uid} in group {gid}.")
    return no_content()


@api.route("/v3/groups/{group_id}/users/{user_id}", "DELETE")
def remove_group_user(req):
    enforce(req, "identity:remove_user_from_group")
    with session() as sess:
        core.remove_user_from_group(sess, req.path_params["group_id"], req.path_params["user_id"], req.context)
    return no_content()
