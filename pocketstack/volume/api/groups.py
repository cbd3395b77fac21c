"""`/group_types` (3.11+), `/groups` (3.13+) and `/group_snapshots` (3.14+).

Status codes and views are Cinder's: creates answer 202 with the summary view (`id`,
`name`, and `group_type_id` for group snapshots), group updates and deletes 202 without a
body; the detail view gains `group_snapshot_id` / `source_group_id` at 3.14, `volumes`
with `list_volume=true` at 3.25, `replication_status` at 3.38 and, for admins,
`project_id` at 3.58. Below a resource's microversion its URLs are 404.
"""
from __future__ import annotations

from pocketstack.common import pagination
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import group_types, groups
from pocketstack.volume import models as m
from pocketstack.volume.api.common import at_least, body_of, bool_param, project_url, route, session
from pocketstack.volume.volumes import enforce


def _need(req, version: str) -> None:
    if not at_least(req, version):
        raise NotFound("The resource could not be found.")


# ---------------------------------------------------------------------------- group types
@route("/group_types", "GET")
def list_group_types(req):
    _need(req, "3.11")
    with session() as sess:
        return {"group_types": [group_types.render(sess, req.context, gt)
                                for gt in group_types.list_types(sess, req.context, dict(req.query.items()))]}


@route("/group_types", "POST")
def create_group_type(req):
    _need(req, "3.11")
    body = body_of(req, "group_type")
    with session() as sess:
        gt = group_types.create(sess, req.context, body)
        return 202, {"group_type": group_types.render(sess, req.context, gt)}


@route("/group_types/default", "GET")
def default_group_type(req):
    _need(req, "3.11")
    with session() as sess:
        return {"group_type": group_types.render(sess, req.context, group_types.default(sess, req.context))}


@route("/group_types/{type_id}", "GET")
def show_group_type(req):
    _need(req, "3.11")
    with session() as sess:
        gt = group_types.get(sess, req.context, req.path_params["type_id"])
        return {"group_type": group_types.render(sess, req.context, gt)}


@route("/group_types/{type_id}", "PUT")
def update_group_type(req):
    _need(req, "3.11")
    body = body_of(req, "group_type")
    with session() as sess:
        gt = group_types.update(sess, req.context, req.path_params["type_id"], body)
        return {"group_type": group_types.render(sess, req.context, gt)}


@route("/group_types/{type_id}", "DELETE")
def delete_group_type(req):
    _need(req, "3.11")
    with session() as sess:
        group_types.delete(sess, req.context, req.path_params["type_id"])
    return 202, None


@route("/group_types/{type_id}/group_specs", "GET")
def list_group_specs(req):
    _need(req, "3.11")
    enforce(req.context, "group:group_types_specs:get_all", req.context.project_id)
    with session() as sess:
        gt = group_types.get(sess, req.context, req.path_params["type_id"])
        return {"group_specs": group_types.specs_of(sess, gt.id)}


@route("/group_types/{type_id}/group_specs", "POST")
def set_group_specs(req):
    _need(req, "3.11")
    body = req.json_object()
    if "group_specs" not in body:
        raise BadRequest("Missing required element 'group_specs' in request body.")
    with session() as sess:
        return 202, {"group_specs": group_types.set_specs(sess, req.context, req.path_params["type_id"],
                                                          body["group_specs"])}


@route("/group_types/{type_id}/group_specs/{key}", "GET")
def show_group_spec(req):
    _need(req, "3.11")
    enforce(req.context, "group:group_types_specs:get", req.context.project_id)
    key = req.path_params["key"]
    with session() as sess:
        gt = group_types.get(sess, req.context, req.path_params["type_id"])
        specs = group_types.specs_of(sess, gt.id)
    if key not in specs:
        raise NotFound(f"Group Type {gt.id} has no specs with key {key}.")
    return {key: specs[key]}


@route("/group_types/{type_id}/group_specs/{key}", "PUT")
def update_group_spec(req):
    _need(req, "3.11")
    body = req.json_object()
    key = req.path_params["key"]
    if len(body) != 1 or key not in body:
        raise BadRequest("Request body and URI mismatch")
    enforce(req.context, "group:group_types_specs:update", req.context.project_id)
    with session() as sess:
        return group_types.set_specs(sess, req.context, req.path_params["type_id"], body)


@route("/group_types/{type_id}/group_specs/{key}", "DELETE")
def delete_group_spec(req):
    _need(req, "3.11")
    with session() as sess:
        group_types.delete_spec(sess, req.context, req.path_params["type_id"], req.path_params["key"])
    return 202, None


# ---------------------------------------------------------------------------- groups
def _group_view(sess, req, grp: m.Group) -> dict:
    body = {"id": grp.id, "status": grp.status, "availability_zone": grp.availability_zone,
            "created_at": grp.created_at, "name": grp.name, "description": grp.description,
            "group_type": grp.group_type_id, "volume_types": groups.volume_types_of(sess, grp.id)}
    if at_least(req, "3.14"):
        body["group_snapshot_id"] = grp.group_snapshot_id
        body["source_group_id"] = grp.source_group_id
    if at_least(req, "3.25") and bool_param(req.query.get("list_volume", "false"), "list_volume"):
        body["volumes"] = [v.id for v in groups.members(sess, grp.id)]
    if at_least(req, "3.38"):
        body["replication_status"] = "disabled"
    if at_least(req, "3.58") and req.context.is_admin:
        body["project_id"] = grp.project_id
    return body


def _page(req, rows: list, name: str, render) -> dict:
    query = dict(req.query.items())
    limit = pagination.parse_limit(query.get("limit"), max_limit=1000)
    try:
        page, more = pagination.offset_page(rows, limit=limit, marker=query.get("marker"),
                                            offset=query.get("offset"), key=lambda r: r.id)
    except BadRequest:
        raise NotFound(f"Marker {query.get('marker')} could not be found.") from None
    body = {name: [render(r) for r in page]}
    if more and page:
        body[name[:-1] + "_links"] = [{"rel": "next", "href": pagination.next_link(
            f"{project_url(req)}/{name}", list(req.query.multi_items()), page[-1].id)}]
    return body


def _list_groups(req, detail: bool):
    _need(req, "3.13")
    with session() as sess:
        rows = groups.list_groups(sess, req.context, dict(req.query.items()))
        return _page(req, rows, "groups", (lambda g: _group_view(sess, req, g)) if detail
                     else (lambda g: {"id": g.id, "name": g.name}))


@route("/groups", "GET")
def list_groups(req):
    return _list_groups(req, False)


@route("/groups/detail", "GET")
def list_groups_detail(req):
    return _list_groups(req, True)


@route("/groups", "POST")
def create_group(req):
    _need(req, "3.13")
    group_id = groups.create(req.context, body_of(req, "group"))
    with session() as sess:
        grp = sess.get(m.Group, group_id)
        return 202, {"group": {"id": grp.id, "name": grp.name}}


@route("/groups/action", "POST")
def create_group_from_source(req):
    _need(req, "3.14")
    group_id = groups.create_from_source(req.context, body_of(req, "create-from-src"))
    with session() as sess:
        grp = sess.get(m.Group, group_id)
        return 202, {"group": {"id": grp.id, "name": grp.name}}


@route("/groups/{group_id}", "GET")
def show_group(req):
    _need(req, "3.13")
    with session() as sess:
        return {"group": _group_view(sess, req, groups.load(sess, req.context, req.path_params["group_id"]))}


@route("/groups/{group_id}", "PUT")
def update_group(req):
    _need(req, "3.13")
    groups.update(req.context, req.path_params["group_id"], body_of(req, "group"))
    return 202, None


@route("/groups/{group_id}/action", "POST")
def group_action(req):
    _need(req, "3.13")
    body = req.json_object()
    group_id = req.path_params["group_id"]
    if "delete" in body:
        args = body["delete"] if isinstance(body["delete"], dict) else {}
        groups.delete(req.context, group_id, bool_param(args.get("delete-volumes", False), "delete-volumes"))
        return 202, None
    if "reset_status" in body and at_least(req, "3.20"):
        args = body["reset_status"] if isinstance(body["reset_status"], dict) else {}
        with session() as sess:
            groups.reset_status(sess, req.context, group_id, args.get("status"))
        return 202, None
    raise BadRequest(f"There is no such action: {', '.join(body) or 'none'}")


# ---------------------------------------------------------------------------- group snapshots
def _gs_view(req, gs: m.GroupSnapshot) -> dict:
    body = {"id": gs.id, "group_id": gs.group_id, "group_type_id": gs.group_type_id, "status": gs.status,
            "created_at": gs.created_at, "name": gs.name, "description": gs.description}
    if at_least(req, "3.58") and req.context.is_admin:
        body["project_id"] = gs.project_id
    return body


def _list_snapshots(req, detail: bool):
    _need(req, "3.14")
    with session() as sess:
        rows = groups.list_groups(sess, req.context, dict(req.query.items()), m.GroupSnapshot,
                                  "group:get_all_group_snapshots")
        return _page(req, rows, "group_snapshots", (lambda g: _gs_view(req, g)) if detail
                     else (lambda g: {"id": g.id, "name": g.name, "group_type_id": g.group_type_id}))


@route("/group_snapshots", "GET")
def list_group_snapshots(req):
    return _list_snapshots(req, False)


@route("/group_snapshots/detail", "GET")
def list_group_snapshots_detail(req):
    return _list_snapshots(req, True)


@route("/group_snapshots", "POST")
def create_group_snapshot(req):
    _need(req, "3.14")
    gs_id = groups.create_snapshot(req.context, body_of(req, "group_snapshot"))
    with session() as sess:
        gs = sess.get(m.GroupSnapshot, gs_id)
        return 202, {"group_snapshot": {"id": gs.id, "name": gs.name, "group_type_id": gs.group_type_id}}


@route("/group_snapshots/{gs_id}", "GET")
def show_group_snapshot(req):
    _need(req, "3.14")
    with session() as sess:
        return {"group_snapshot": _gs_view(req, groups.load_snapshot(sess, req.context, req.path_params["gs_id"]))}


@route("/group_snapshots/{gs_id}", "DELETE")
def delete_group_snapshot(req):
    _need(req, "3.14")
    groups.delete_snapshot(req.context, req.path_params["gs_id"])
    return 202, None


@route("/group_snapshots/{gs_id}/action", "POST")
def group_snapshot_action(req):
    _need(req, "3.19")
    body = req.json_object()
    if "reset_status" not in body:
        raise BadRequest(f"There is no such action: {', '.join(body) or 'none'}")
    args = body["reset_status"] if isinstance(body["reset_status"], dict) else {}
    with session() as sess:
        groups.reset_snapshot_status(sess, req.context, req.path_params["gs_id"], args.get("status"))
    return 202, None
