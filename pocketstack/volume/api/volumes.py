"""`/v3/{project_id}/volumes`: CRUD, list/detail, metadata, summary and the volume actions."""
from __future__ import annotations

import datetime as dt
import operator

from sqlalchemy import select

from pocketstack.common import pagination
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import attachments, volumes
from pocketstack.volume import models as m
from pocketstack.volume.api.common import at_least, body_of, bool_param, project_url, route, session


def render(sess, req, vol: m.Volume, *, meta=None, image_meta=None, atts=None, type_names=None,
           basic: bool = False) -> dict:
    """Cinder's volume view. `basic` is the create/update response, which (as upstream) has no
    extension attributes (tenant, host, migration status, image metadata)."""
    ctx = req.context
    meta = volumes.shown_metadata_of(sess, [vol.id])[vol.id] if meta is None else meta
    image_meta = volumes.image_metadata_of(sess, [vol.id]).get(vol.id) if image_meta is None else image_meta
    atts = volumes.attachments_of(sess, [vol.id])[vol.id] if atts is None else atts
    if type_names is None:
        vt = sess.get(m.VolumeType, vol.volume_type_id) if vol.volume_type_id else None
        type_name = vt.name if vt else None
    else:
        type_name = type_names.get(vol.volume_type_id)
    link = f"{project_url(req)}/volumes/{vol.id}"
    body = {
        "id": vol.id, "name": vol.name, "description": vol.description, "size": vol.size, "status": vol.status,
        "availability_zone": vol.availability_zone, "created_at": vol.created_at, "updated_at": vol.updated_at,
        "attachments": [{"id": vol.id, "attachment_id": a.id, "volume_id": vol.id, "server_id": a.instance_uuid,
                         "host_name": a.attached_host, "device": a.mountpoint, "attached_at": a.attach_time}
                        for a in atts if a.attach_status == "attached"],
        "volume_type": type_name, "snapshot_id": vol.snapshot_id, "source_volid": vol.source_volid,
        "metadata": meta, "user_id": vol.user_id, "bootable": str(vol.bootable).lower(),
        "encrypted": vol.encrypted, "replication_status": None, "consistencygroup_id": None,
        "multiattach": vol.multiattach, "migration_status": vol.migration_status,
        "links": [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}],
    }
    if not basic:
        body["os-vol-tenant-attr:tenant_id"] = vol.project_id
        if image_meta:
            body["volume_image_metadata"] = image_meta
    if ctx.is_admin and not basic:
        body["os-vol-host-attr:host"] = vol.host
        body["os-vol-mig-status-attr:migstat"] = vol.migration_status
        body["os-vol-mig-status-attr:name_id"] = None
    if at_least(req, "3.13"):
        body["group_id"] = vol.group_id
    if at_least(req, "3.21") and ctx.is_admin:
        body["provider_id"] = None
    if at_least(req, "3.48"):
        body["service_uuid"] = None
        body["shared_targets"] = False if not at_least(req, "3.69") else None
    if at_least(req, "3.61") and ctx.is_admin:
        body["cluster_name"] = None
    if at_least(req, "3.63"):
        body["volume_type_id"] = vol.volume_type_id
    if at_least(req, "3.64"):
        body["encryption_key_id"] = None
    if at_least(req, "3.65"):
        body["consumes_quota"] = vol.consumes_quota
    return body


def render_many(sess, req, vols: list[m.Volume]) -> list[dict]:
    ids = [v.id for v in vols]
    meta = volumes.shown_metadata_of(sess, ids)
    image_meta = volumes.image_metadata_of(sess, ids)
    atts = volumes.attachments_of(sess, ids)
    type_names = {t.id: t.name for t in sess.execute(select(m.VolumeType)).scalars()}
    return [render(sess, req, v, meta=meta[v.id], image_meta=image_meta.get(v.id) or {}, atts=atts[v.id],
                   type_names=type_names) for v in vols]


def _get(sess, req, volume_id: str, basic: bool = False) -> dict:
    vol = volumes.load(sess, req.context, volume_id)
    return {"volume": render(sess, req, vol, basic=basic)}


@route("/volumes", "POST")
def create_volume(req):
    body = body_of(req, "volume")
    hints = (req.json or {}).get("OS-SCH-HNT:scheduler_hints")
    if hints is not None and not isinstance(hints, dict):
        raise BadRequest("Invalid scheduler hints: they must be an object.")
    volume_id = volumes.create(req.context, body)
    with session() as sess:
        return 202, _get(sess, req, volume_id, basic=True)


def _list(req, detail: bool):
    ctx = req.context
    query = dict(req.query.items())
    limit = pagination.parse_limit(query.pop("limit", None), max_limit=1000)
    marker = query.pop("marker", None)
    offset = query.pop("offset", None)
    times = {k: query.pop(k) for k in ("created_at", "updated_at") if k in query} if at_least(req, "3.60") else {}
    with session() as sess:
        vols = [v for v in volumes.list_volumes(sess, ctx, query) if _times_match(v, times)]
        total = len(vols)
        try:
            page, more = pagination.offset_page(vols, limit=limit, marker=marker, offset=offset,
                                                key=lambda v: v.id)
        except BadRequest:
            raise NotFound(f"Marker {marker} could not be found.") from None
        if detail:
            items = render_many(sess, req, page)
        else:
            link = project_url(req)
            items = [{"id": v.id, "name": v.name,
                      "links": [{"rel": "self", "href": f"{link}/volumes/{v.id}"},
                                {"rel": "bookmark", "href": f"{link}/volumes/{v.id}"}]} for v in page]
    body = {"volumes": items}
    if more and page:
        base = f"{project_url(req)}/volumes" + ("/detail" if detail else "")
        body["volumes_links"] = [{"rel": "next", "href": pagination.next_link(
            base, list(req.query.multi_items()), page[-1].id)}]
    if at_least(req, "3.45") and bool_param(req.query.get("with_count", "false"), "with_count"):
        body["count"] = total
    return body


TIME_OPS = {"gt": operator.gt, "gte": operator.ge, "eq": operator.eq, "neq": operator.ne, "lt": operator.lt,
            "lte": operator.le}


def _times_match(vol: m.Volume, filters: dict[str, str]) -> bool:
    """3.60: `created_at=gt:2024-01-01T00:00:00` (gt, gte, eq, neq, lt, lte; comma-separated
    conditions all hold); a volume never updated does not match an `updated_at` filter."""
    for key, text in filters.items():
        value = getattr(vol, key)
        for cond in text.split(","):
            op, _, stamp = cond.partition(":")
            if op not in TIME_OPS or not stamp:
                raise BadRequest(f"Invalid filter {key}={text}: use <gt|gte|eq|neq|lt|lte>:<ISO 8601 time>.")
            try:
                when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                raise BadRequest(f"Invalid time in filter {key}={text}.") from None
            when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
            if value is None or not TIME_OPS[op](value, when):
                return False
    return True


@route("/volumes", "GET")
def list_volumes(req):
    return _list(req, detail=False)


@route("/volumes/detail", "GET")
def list_volumes_detail(req):
    return _list(req, detail=True)


@route("/volumes/summary", "GET")
def volume_summary(req):
    if not at_least(req, "3.12"):
        raise NotFound("The resource could not be found.")
    all_tenants = bool_param(req.query.get("all_tenants", "false"), "all_tenants")
    with session() as sess:
        volumes.enforce(req.context, "volume:get_all_summary", req.context.project_id)
        body = volumes.summary(sess, req.context, all_tenants)
    if at_least(req, "3.36"):
        body["metadata"] = {}
    return {"volume-summary": body}


@route("/volumes/", ["GET", "PUT", "DELETE"])
def volume_without_id(req):
    raise NotFound("Volume could not be found.")


@route("/volumes/{volume_id}", "GET")
def show_volume(req):
    with session() as sess:
        return _get(sess, req, req.path_params["volume_id"])


@route("/volumes/{volume_id}", "PUT")
def update_volume(req):
    body = body_of(req, "volume")
    with session() as sess:
        vol = volumes.update(sess, req.context, req.path_params["volume_id"], body)
        sess.flush()
        return {"volume": render(sess, req, vol, basic=True)}


@route("/volumes/{volume_id}", "DELETE")
def delete_volume(req):
    cascade = bool_param(req.query.get("cascade", "false"), "cascade")
    force = bool_param(req.query.get("force", "false"), "force") if at_least(req, "3.23") else False
    volumes.delete(req.context, req.path_params["volume_id"], cascade=cascade, force=force)
    return 202, None


# ---------------------------------------------------------------------------- metadata
@route("/volumes/{volume_id}/metadata", "GET")
def get_metadata(req):
    with session() as sess:
        vol = volumes.load(sess, req.context, req.path_params["volume_id"], "volume:get_volume_metadata")
        return {"metadata": volumes.metadata_of(sess, [vol.id])[vol.id]}


@route("/volumes/{volume_id}/metadata", ["POST", "PUT"])
def set_metadata(req):
    body = req.json_object()
    if not isinstance(body.get("metadata"), dict):
        raise BadRequest("Malformed request body: 'metadata' must be an object.")
    with session() as sess:
        meta = volumes.replace_metadata(sess, req.context, req.path_params["volume_id"], body["metadata"],
                                        delete_others=req.method == "PUT")
        return {"metadata": meta}


@route("/volumes/{volume_id}/metadata/{key}", "GET")
def get_metadata_key(req):
    with session() as sess:
        vol = volumes.load(sess, req.context, req.path_params["volume_id"], "volume:get_volume_metadata")
        meta = volumes.metadata_of(sess, [vol.id])[vol.id]
        key = req.path_params["key"]
        if key not in meta:
            raise NotFound(f"Volume {vol.id} has no metadata with key {key}.")
        return {"meta": {key: meta[key]}}


@route("/volumes/{volume_id}/metadata/{key}", "PUT")
def set_metadata_key(req):
    body = req.json_object()
    meta = body.get("meta")
    key = req.path_params["key"]
    if not isinstance(meta, dict) or len(meta) != 1:
        raise BadRequest("Request body and URI mismatch: 'meta' must hold exactly one item.")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    with session() as sess:
        volumes.replace_metadata(sess, req.context, req.path_params["volume_id"], meta, delete_others=False)
        return {"meta": volumes.check_metadata(meta)}


@route("/volumes/{volume_id}/metadata/{key}", "DELETE")
def delete_metadata_key(req):
    with session() as sess:
        volumes.delete_metadata_key(sess, req.context, req.path_params["volume_id"], req.path_params["key"])
    return 200, None


# ---------------------------------------------------------------------------- actions
@route("/volumes/{volume_id}/action", "POST")
def volume_action(req):
    body = req.json_object()
    if len(body) != 1:
        raise BadRequest("There is either no action or more than one action in the request body.")
    (action, args), = body.items()
    handler = ACTIONS.get(action)
    if handler is None:
        raise BadRequest(f"There is no such action: {action}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadRequest(f"Invalid body for action {action}: it must be an object.")
    return handler(req, req.path_params["volume_id"], args)


def _extend(req, volume_id, args):
    if "new_size" not in args:
        raise BadRequest("Missing required element 'new_size' in request body.")
    volumes.extend(req.context, volume_id, args["new_size"], attached_ok=at_least(req, "3.42"))
    return 202, None


def _extend_completion(req, volume_id, args):
    # 3.71 announces it; like Cinder the action itself is not gated on the microversion.
    if set(args) - {"error"}:
        raise BadRequest("Invalid input for field/attribute os-extend_volume_completion: "
                         f"additional properties are not allowed ({', '.join(sorted(set(args) - {'error'}))}).")
    error = args.get("error")
    volumes.extend_completion(req.context, volume_id, False if error is None else bool_param(error, "error"))
    return 202, None


def _in_session(fn):
    def run(req, volume_id, args):
        with session() as sess:
            result = fn(sess, req, volume_id, args)
        return result if result is not None else (202, None)
    return run


@_in_session
def _reset_status(sess, req, volume_id, args):
    volumes.reset_status(sess, req.context, volume_id, args)


def _force_delete(req, volume_id, args):
    volumes.delete(req.context, volume_id, force=True)
    return 202, None


@_in_session
def _set_bootable(sess, req, volume_id, args):
    if "bootable" not in args:
        raise BadRequest("Must specify bootable in request.")
    volumes.set_bootable(sess, req.context, volume_id, args["bootable"])
    return 200, None


@_in_session
def _readonly(sess, req, volume_id, args):
    if "readonly" not in args:
        raise BadRequest("Must specify readonly in request.")
    volumes.set_readonly(sess, req.context, volume_id, args["readonly"])


def _retype(req, volume_id, args):
    volumes.retype(req.context, volume_id, args)
    return 202, None


def _upload(req, volume_id, args):
    return 202, {"os-volume_upload_image": volumes.upload_to_image(req.context, volume_id, args)}


def _revert(req, volume_id, args):
    if not at_least(req, "3.40"):
        raise NotFound("The resource could not be found.")
    volumes.revert_to_snapshot(req.context, volume_id, args.get("snapshot_id"))
    return 202, None


@_in_session
def _reserve(sess, req, volume_id, args):
    attachments.reserve(sess, req.context, volume_id)


@_in_session
def _unreserve(sess, req, volume_id, args):
    attachments.unreserve(sess, req.context, volume_id)


@_in_session
def _attach(sess, req, volume_id, args):
    attachments.attach(sess, req.context, volume_id, args)


@_in_session
def _begin_detaching(sess, req, volume_id, args):
    attachments.begin_detaching(sess, req.context, volume_id)


@_in_session
def _roll_detaching(sess, req, volume_id, args):
    attachments.roll_detaching(sess, req.context, volume_id)


@_in_session
def _detach(sess, req, volume_id, args):
    attachments.detach(sess, req.context, volume_id, args.get("attachment_id"))


@_in_session
def _force_detach(sess, req, volume_id, args):
    attachments.detach(sess, req.context, volume_id, args.get("attachment_id"), force=True)


@_in_session
def _initialize_connection(sess, req, volume_id, args):
    return 200, {"connection_info": attachments.initialize_connection(sess, req.context, volume_id,
                                                                      args.get("connector"))}


@_in_session
def _terminate_connection(sess, req, volume_id, args):
    attachments.terminate_connection(sess, req.context, volume_id, args.get("connector"))


@_in_session
def _set_image_metadata(sess, req, volume_id, args):
    vol = volumes.load(sess, req.context, volume_id, "volume_extension:volume_image_metadata:set")
    meta = volumes.check_metadata(args.get("metadata"))
    for key, value in meta.items():
        row = sess.get(m.VolumeImageMetadata, (vol.id, key))
        if row is None:
            sess.add(m.VolumeImageMetadata(volume_id=vol.id, key=key, value=value))
        else:
            row.value = value
    sess.flush()
    return 200, {"metadata": volumes.image_metadata_of(sess, [vol.id]).get(vol.id, {})}


@_in_session
def _unset_image_metadata(sess, req, volume_id, args):
    vol = volumes.load(sess, req.context, volume_id, "volume_extension:volume_image_metadata:remove")
    key = args.get("key")
    row = sess.get(m.VolumeImageMetadata, (vol.id, key)) if isinstance(key, str) else None
    if row is None:
        raise NotFound(f"Glance metadata for volume {vol.id} with key {key} could not be found.")
    sess.delete(row)
    return 200, None


@_in_session
def _show_image_metadata(sess, req, volume_id, args):
    vol = volumes.load(sess, req.context, volume_id, "volume_extension:volume_image_metadata:show")
    return 200, {"metadata": volumes.image_metadata_of(sess, [vol.id]).get(vol.id, {})}


ACTIONS = {
    "os-extend": _extend, "os-extend_volume_completion": _extend_completion, "os-reset_status": _reset_status,
    "os-force_delete": _force_delete,
    "os-set_bootable": _set_bootable, "os-update_readonly_flag": _readonly, "os-retype": _retype,
    "os-volume_upload_image": _upload, "revert": _revert, "os-reserve": _reserve, "os-unreserve": _unreserve,
    "os-attach": _attach, "os-begin_detaching": _begin_detaching, "os-roll_detaching": _roll_detaching,
    "os-detach": _detach, "os-force_detach": _force_detach, "os-initialize_connection": _initialize_connection,
    "os-terminate_connection": _terminate_connection, "os-set_image_metadata": _set_image_metadata,
    "os-unset_image_metadata": _unset_image_metadata, "os-show_image_metadata": _show_image_metadata,
}



def _reimage(req, volume_id, args):
    """`os-reimage` (3.68): write an image over the volume (Nova's rebuild of a volume-backed
    server, with `reimage_reserved` while it holds the attachment). Checked here as Cinder
    does; the copy runs on the task runner through `volume.core.reimage`."""
    if not at_least(req, "3.68"):
        raise BadRequest("There is no such action: os-reimage")
    if not args.get("image_id") or set(args) - {"image_id", "reimage_reserved"}:
        raise BadRequest("Invalid input for field/attribute os-reimage: 'image_id' is required and only "
                         "'image_id' and 'reimage_reserved' are allowed.")
    image_id = volumes.check_reimage(req.context, volume_id, str(args["image_id"]),
                                     bool_param(args.get("reimage_reserved", False), "reimage_reserved"))
    from pocketstack.common.runtime import current
    from pocketstack.volume import core

    current().tasks.submit("volume.reimage", core.reimage, volume_id, image_id)
    return 202, None


ACTIONS["os-reimage"] = _reimage
