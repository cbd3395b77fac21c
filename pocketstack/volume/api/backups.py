"""`/v3/{project_id}/backups`: create, list/detail, show, update (3.9), delete, restore,
export/import records and the admin actions (reset status, force delete)."""
from __future__ import annotations

from pocketstack.common import pagination
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import backups
from pocketstack.volume import models as m
from pocketstack.volume.api.common import at_least, body_of, bool_param, project_url, route, session


def _links(req, backup_id: str) -> list[dict]:
    link = f"{project_url(req)}/backups/{backup_id}"
    return [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}]


def summary(req, backup: m.Backup) -> dict:
    body = {"id": backup.id, "name": backup.name, "links": _links(req, backup.id)}
    if at_least(req, "3.43"):
        body["metadata"] = backup.metadata_ or {}
    return body


def render(req, backup: m.Backup, has_dependents: bool) -> dict:
    ctx = req.context
    body = {
        "id": backup.id, "name": backup.name, "description": backup.description, "status": backup.status,
        "size": backup.size, "object_count": backup.object_count, "availability_zone": backup.availability_zone,
        "container": backup.container, "created_at": backup.created_at, "updated_at": backup.updated_at,
        "fail_reason": backup.fail_reason, "volume_id": backup.volume_id, "links": _links(req, backup.id),
        "is_incremental": backup.is_incremental, "has_dependent_backups": has_dependents,
        "snapshot_id": backup.snapshot_id, "data_timestamp": backup.data_timestamp,
    }
    if at_least(req, "3.18") and current().enforcer.check(
            "backup:backup_project_attribute", {"project_id": backup.project_id}, ctx.policy_creds()):
        body["os-backup-project-attr:project_id"] = backup.project_id
    if at_least(req, "3.43"):
        body["metadata"] = backup.metadata_ or {}
    if at_least(req, "3.56"):
        body["user_id"] = backup.user_id
    if at_least(req, "3.64"):
        body["encryption_key_id"] = None
    return body


def _show(sess, req, backup: m.Backup) -> dict:
    return {"backup": render(req, backup, bool(backups.dependents(sess, [backup.id])))}


@route("/backups", "POST")
def create_backup(req):
    body = body_of(req, "backup")
    if not at_least(req, "3.43") and ("metadata" in body):
        raise BadRequest("Additional properties are not allowed ('metadata' was unexpected)")
    if not at_least(req, "3.51") and ("availability_zone" in body):
        raise BadRequest("Additional properties are not allowed ('availability_zone' was unexpected)")
    backup_id = backups.create(req.context, body)
    with session() as sess:
        return 202, {"backup": summary(req, sess.get(m.Backup, backup_id))}


def _list(req, detail: bool):
    ctx = req.context
    query = dict(req.query.items())
    limit = pagination.parse_limit(query.pop("limit", None), max_limit=1000)
    marker = query.pop("marker", None)
    offset = query.pop("offset", None)
    with_count = at_least(req, "3.45") and bool_param(query.pop("with_count", "false"), "with_count")
    with session() as sess:
        items = backups.list_backups(sess, ctx, query)
        try:
            page, more = pagination.offset_page(items, limit=limit, marker=marker, offset=offset,
                                                key=lambda b: b.id)
        except BadRequest:
            raise NotFound(f"Marker {marker} could not be found.") from None
        if detail:
            parents = backups.dependents(sess, [b.id for b in page])
            out = [render(req, b, b.id in parents) for b in page]
        else:
            out = [{"id": b.id, "name": b.name, "links": _links(req, b.id)} for b in page]
    body = {"backups": out}
    if more and page:
        base = f"{project_url(req)}/backups" + ("/detail" if detail else "")
        body["backups_links"] = [{"rel": "next", "href": pagination.next_link(
            base, list(req.query.multi_items()), page[-1].id)}]
    if with_count:
        body["count"] = len(items)
    return body


@route("/backups", "GET")
def list_backups(req):
    return _list(req, detail=False)


@route("/backups/detail", "GET")
def list_backups_detail(req):
    return _list(req, detail=True)


@route("/backups/import_record", "POST")
def import_record(req):
    body = body_of(req, "backup-record")
    backup_id = backups.import_record(req.context, body)
    with session() as sess:
        return 201, {"backup": {"id": backup_id, "name": sess.get(m.Backup, backup_id).name,
                                "links": _links(req, backup_id)}}


@route("/backups/{backup_id}", "GET")
def show_backup(req):
    with session() as sess:
        return _show(sess, req, backups.load(sess, req.context, req.path_params["backup_id"]))


@route("/backups/{backup_id}", "PUT")
def update_backup(req):
    if not at_least(req, "3.9"):
        raise NotFound("The resource could not be found.")
    body = body_of(req, "backup")
    with session() as sess:
        backup = backups.update(sess, req.context, req.path_params["backup_id"], body,
                                metadata_allowed=at_least(req, "3.43"))
        sess.flush()
        return {"backup": summary(req, backup)}


@route("/backups/{backup_id}", "DELETE")
def delete_backup(req):
    backups.delete(req.context, req.path_params["backup_id"])
    return 202, None


@route("/backups/{backup_id}/restore", "POST")
def restore_backup(req):
    body = req.json_object()
    args = body.get("restore") or {}
    result = backups.restore(req.context, req.path_params["backup_id"], args)
    return 202, {"restore": result}


@route("/backups/{backup_id}/export_record", "GET")
def export_record(req):
    with session() as sess:
        return {"backup-record": backups.export_record(sess, req.context, req.path_params["backup_id"])}


@route("/backups/{backup_id}/action", "POST")
def backup_action(req):
    body = req.json_object()
    if len(body) != 1:
        raise BadRequest("There is either no action or more than one action in the request body.")
    (action, args), = body.items()
    backup_id = req.path_params["backup_id"]
    if action == "os-reset_status":
        if not isinstance(args, dict) or "status" not in args:
            raise BadRequest("Must specify 'status'.")
        with session() as sess:
            backups.reset_status(sess, req.context, backup_id, args["status"])
        return 202, None
    if action == "os-force_delete":
        backups.delete(req.context, backup_id, force=True)
        return 202, None
    raise BadRequest(f"There is no such action: {action}")
