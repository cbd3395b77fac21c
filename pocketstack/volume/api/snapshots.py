"""`/v3/{project_id}/snapshots`: CRUD, list/detail, metadata and snapshot actions."""
from __future__ import annotations

from pocketstack.common import pagination
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import snapshots
from pocketstack.volume import models as m
from pocketstack.volume.api.common import at_least, body_of, project_url, route, session


def render(req, snap: m.Snapshot, meta: dict[str, str], *, detail: bool = True) -> dict:
    body = {"id": snap.id, "name": snap.name, "description": snap.description, "volume_id": snap.volume_id,
            "size": snap.size, "status": snap.status, "created_at": snap.created_at,
            "updated_at": snap.updated_at, "metadata": meta}
    if detail:
        body["os-extended-snapshot-attributes:progress"] = snap.progress
        body["os-extended-snapshot-attributes:project_id"] = snap.project_id
    if at_least(req, "3.41"):
        body["user_id"] = snap.user_id
    if at_least(req, "3.14"):
        body["group_snapshot_id"] = snap.group_snapshot_id
    if at_least(req, "3.65"):
        body["consumes_quota"] = snap.consumes_quota
    return body


@route("/snapshots", "POST")
def create_snapshot(req):
    body = body_of(req, "snapshot")
    snapshot_id = snapshots.create(req.context, body, in_use_allowed=at_least(req, "3.66"))
    with session() as sess:
        snap = snapshots.load(sess, req.context, snapshot_id)
        return 202, {"snapshot": render(req, snap, snapshots.metadata_of(sess, [snap.id])[snap.id], detail=False)}


def _list(req, detail: bool):
    query = dict(req.query.items())
    limit = pagination.parse_limit(query.pop("limit", None), max_limit=1000)
    marker = query.pop("marker", None)
    offset = query.pop("offset", None)
    with session() as sess:
        snaps = snapshots.list_snapshots(sess, req.context, query)
        try:
            page, more = pagination.offset_page(snaps, limit=limit, marker=marker, offset=offset,
                                                key=lambda s: s.id)
        except BadRequest:
            raise NotFound(f"Marker {marker} could not be found.") from None
        meta = snapshots.metadata_of(sess, [s.id for s in page])
        body = {"snapshots": [render(req, s, meta[s.id], detail=detail) for s in page]}
    if more and page:
        base = f"{project_url(req)}/snapshots" + ("/detail" if detail else "")
        body["snapshots_links"] = [{"rel": "next", "href": pagination.next_link(
            base, list(req.query.multi_items()), page[-1].id)}]
    return body


@route("/snapshots", "GET")
def list_snapshots(req):
    return _list(req, detail=False)


@route("/snapshots/detail", "GET")
def list_snapshots_detail(req):
    return _list(req, detail=True)


@route("/snapshots/", ["GET", "PUT", "DELETE"])
def snapshot_without_id(req):
    raise NotFound("Snapshot could not be found.")


@route("/snapshots/{snapshot_id}", "GET")
def show_snapshot(req):
    with session() as sess:
        snap = snapshots.load(sess, req.context, req.path_params["snapshot_id"])
        return {"snapshot": render(req, snap, snapshots.metadata_of(sess, [snap.id])[snap.id])}


@route("/snapshots/{snapshot_id}", "PUT")
def update_snapshot(req):
    body = body_of(req, "snapshot")
    with session() as sess:
        snap = snapshots.update(sess, req.context, req.path_params["snapshot_id"], body)
        return {"snapshot": render(req, snap, snapshots.metadata_of(sess, [snap.id])[snap.id], detail=False)}


@route("/snapshots/{snapshot_id}", "DELETE")
def delete_snapshot(req):
    snapshots.delete(req.context, req.path_params["snapshot_id"])
    return 202, None


@route("/snapshots/{snapshot_id}/action", "POST")
def snapshot_action(req):
    body = req.json_object()
    if len(body) != 1:
        raise BadRequest("There is either no action or more than one action in the request body.")
    (action, args), = body.items()
    args = args or {}
    snapshot_id = req.path_params["snapshot_id"]
    if action == "os-force_delete":
        snapshots.delete(req.context, snapshot_id, force=True)
    elif action == "os-reset_status":
        if not isinstance(args, dict) or "status" not in args:
            raise BadRequest("Must specify 'status'.")
        with session() as sess:
            snapshots.reset_status(sess, req.context, snapshot_id, args["status"])
    elif action == "os-unmanage":
        from pocketstack.volume import snapshot_manage

        snapshot_manage.unmanage(req.context, snapshot_id)
    elif action == "os-update_snapshot_status":
        if not isinstance(args, dict) or "status" not in args:
            raise BadRequest("Must specify 'status'.")
        with session() as sess:
            snap = snapshots.load(sess, req.context, snapshot_id, "volume:update_snapshot")
            if args["status"] not in ("available", "error", "creating", "deleting", "error_deleting"):
                raise BadRequest(f"Invalid status {args['status']!r}.")
            snap.status = args["status"]
            if "progress" in args:
                snap.progress = str(args["progress"])
    else:
        raise BadRequest(f"There is no such action: {action}")
    return 202, None


@route("/snapshots/{snapshot_id}/metadata", "GET")
def get_metadata(req):
    with session() as sess:
        snap = snapshots.load(sess, req.context, req.path_params["snapshot_id"], "volume:get_snapshot_metadata")
        return {"metadata": snapshots.metadata_of(sess, [snap.id])[snap.id]}


@route("/snapshots/{snapshot_id}/metadata", ["POST", "PUT"])
def set_metadata(req):
    body = req.json_object()
    if not isinstance(body.get("metadata"), dict):
        raise BadRequest("Malformed request body: 'metadata' must be an object.")
    with session() as sess:
        return {"metadata": snapshots.replace_metadata(sess, req.context, req.path_params["snapshot_id"],
                                                       body["metadata"], delete_others=req.method == "PUT")}


@route("/snapshots/{snapshot_id}/metadata/{key}", "GET")
def get_metadata_key(req):
    with session() as sess:
        snap = snapshots.load(sess, req.context, req.path_params["snapshot_id"], "volume:get_snapshot_metadata")
        meta, key = snapshots.metadata_of(sess, [snap.id])[snap.id], req.path_params["key"]
        if key not in meta:
            raise NotFound(f"Snapshot {snap.id} has no metadata with key {key}.")
        return {"meta": {key: meta[key]}}


@route("/snapshots/{snapshot_id}/metadata/{key}", "PUT")
def set_metadata_key(req):
    meta, key = req.json_object().get("meta"), req.path_params["key"]
    if not isinstance(meta, dict) or len(meta) != 1 or key not in meta:
        raise BadRequest("Request body and URI mismatch")
    with session() as sess:
        snapshots.replace_metadata(sess, req.context, req.path_params["snapshot_id"], meta, delete_others=False)
    return {"meta": {key: str(meta[key])}}


@route("/snapshots/{snapshot_id}/metadata/{key}", "DELETE")
def delete_metadata_key(req):
    with session() as sess:
        snapshots.delete_metadata_key(sess, req.context, req.path_params["snapshot_id"], req.path_params["key"])
    return 200, None


