"""A server's sub-resources: metadata, tags, ips, interfaces, volume attachments,
instance actions, migrations (and os-migrations), password.

HTTP <-> JSON only; the rules and state checks live in `compute.servers` / `actions`.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from starlette.responses import Response

from pocketstack.common.errors import ApiError, BadRequest, Conflict, NotFound
from pocketstack.common.events import emit
from pocketstack.compute import instance_actions, rpc
from pocketstack.compute import volumes as compute_volumes
from pocketstack.compute import servers as sv
from pocketstack.compute.api.common import api, at_least, session
from pocketstack.compute.api.servers import _bad, _metadata, addresses, base, fmt_usec
from pocketstack.compute.models import BlockDeviceMapping, Instance, Migration


def _no_content():
    return Response(status_code=204)


# ---------------------------------------------------------------------------- metadata
@api.route("/v2.1/servers/{server_id}/metadata", "GET")
def list_metadata(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:server-metadata:index")
    return {"metadata": dict(inst.meta or {})}


@api.route("/v2.1/servers/{server_id}/metadata", "POST")
def update_metadata(req):
    body = req.json_object()
    meta = _metadata(body.get("metadata") if "metadata" in body else None)
    out = sv.set_metadata(req.context, req.path_params["server_id"], meta, replace=False,
                          rule="os_compute_api:server-metadata:update")
    return {"metadata": out}


@api.route("/v2.1/servers/{server_id}/metadata", "PUT")
def replace_metadata(req):
    body = req.json_object()
    meta = _metadata(body.get("metadata") if "metadata" in body else None)
    out = sv.set_metadata(req.context, req.path_params["server_id"], meta, replace=True,
                          rule="os_compute_api:server-metadata:update_all")
    return {"metadata": out}


@api.route("/v2.1/servers/{server_id}/metadata/{key}", "GET")
def show_metadata_item(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:server-metadata:show")
    key = req.path_params["key"]
    if key not in (inst.meta or {}):
        raise NotFound("Metadata item was not found")
    return {"meta": {key: inst.meta[key]}}


@api.route("/v2.1/servers/{server_id}/metadata/{key}", "PUT")
def set_metadata_item(req):
    body = req.json_object()
    meta = body.get("meta")
    if not isinstance(meta, dict) or len(meta) != 1:
        if isinstance(meta, dict):
            raise BadRequest("Request body may not contain more than one item" if meta else
                             "Request body and URI mismatch")
        raise _bad("meta", f"{meta!r}. {meta!r} is not of type 'object'")
    _metadata(meta, "meta")
    key = req.path_params["key"]
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    sv.set_metadata(req.context, req.path_params["server_id"], meta, replace=False,
                    rule="os_compute_api:server-metadata:create")
    return {"meta": meta}


@api.route("/v2.1/servers/{server_id}/metadata/{key}", "DELETE")
def delete_metadata_item(req):
    sv.delete_metadata_item(req.context, req.path_params["server_id"], req.path_params["key"])
    return _no_content()


# ---------------------------------------------------------------------------- tags (2.26)
def _need_226(req):
    if not at_least(req, "2.26"):
        raise NotFound("The resource could not be found.")


@api.route("/v2.1/servers/{server_id}/tags", "GET")
def list_tags(req):
    _need_226(req)
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-server-tags:index")
    return {"tags": list(inst.tags or [])}


@api.route("/v2.1/servers/{server_id}/tags", "PUT")
def replace_tags(req):
    _need_226(req)
    tags = req.json_object().get("tags")
    if not isinstance(tags, list):
        raise _bad("tags", f"{tags!r}. {tags!r} is not of type 'array'")
    out = sv.set_tags(req.context, req.path_params["server_id"], tags, rule="os_compute_api:os-server-tags:update_all")
    return {"tags": out}


@api.route("/v2.1/servers/{server_id}/tags", "DELETE")
def delete_tags(req):
    _need_226(req)
    sv.set_tags(req.context, req.path_params["server_id"], [], rule="os_compute_api:os-server-tags:delete_all")
    return _no_content()


@api.route("/v2.1/servers/{server_id}/tags/{tag}", "GET")
def check_tag(req):
    _need_226(req)
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-server-tags:show")
    if req.path_params["tag"] not in (inst.tags or []):
        raise NotFound(f"Tag {req.path_params['tag']} could not be found.")
    return _no_content()


@api.route("/v2.1/servers/{server_id}/tags/{tag}", "PUT")
def add_tag(req):
    _need_226(req)
    sid, tag = req.path_params["server_id"], req.path_params["tag"]
    inst = sv.get(req.context, sid, "os_compute_api:os-server-tags:update")
    existed = tag in (inst.tags or [])
    sv.set_tags(req.context, sid, None, add=tag, rule="os_compute_api:os-server-tags:update")
    if existed:
        return _no_content()
    return Response(status_code=201, headers={"Location": f"{base(req)}/v2.1/servers/{sid}/tags/{tag}"})


@api.route("/v2.1/servers/{server_id}/tags/{tag}", "DELETE")
def delete_tag(req):
    _need_226(req)
    sv.set_tags(req.context, req.path_params["server_id"], None, remove=req.path_params["tag"],
                rule="os_compute_api:os-server-tags:delete")
    return _no_content()


# ---------------------------------------------------------------------------- ips
@api.route("/v2.1/servers/{server_id}/ips", "GET")
def list_ips(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:ips:index")
    return {"addresses": addresses(sv.nw_info(inst.uuid), extended=False)}


@api.route("/v2.1/servers/{server_id}/ips/{network}", "GET")
def show_ips(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:ips:show")
    addrs = addresses(sv.nw_info(inst.uuid), extended=False)
    label = req.path_params["network"]
    if label not in addrs:
        raise NotFound("Instance is not a member of specified network")
    return {label: addrs[label]}


# ---------------------------------------------------------------------------- interfaces
def _attachment(vif: dict) -> dict:
    net = vif.get("network") or {}
    fixed = [{"subnet_id": s.get("id", ""), "ip_address": ip["address"]}
             for s in net.get("subnets", []) for ip in s.get("ips", [])]
    return {"port_state": vif.get("status", "ACTIVE"), "port_id": vif["id"], "net_id": net.get("id"),
            "mac_addr": vif.get("address"), "fixed_ips": fixed}


@api.route("/v2.1/servers/{server_id}/os-interface", "GET")
def list_interfaces(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-attach-interfaces:list")
    out = []
    for vif in sv.nw_info(inst.uuid):
        a = _attachment(vif)
        if at_least(req, "2.70"):
            a["tag"] = vif.get("tag")
        out.append(a)
    return {"interfaceAttachments": out}


@api.route("/v2.1/servers/{server_id}/os-interface/{port_id}", "GET")
def show_interface(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-attach-interfaces:show")
    for vif in sv.nw_info(inst.uuid):
        if vif["id"] == req.path_params["port_id"]:
            a = _attachment(vif)
            if at_least(req, "2.70"):
                a["tag"] = vif.get("tag")
            return {"interfaceAttachment": a}
    raise NotFound(f"Port {req.path_params['port_id']} is not attached")


@api.route("/v2.1/servers/{server_id}/os-interface", "POST")
def attach_interface(req):
    body = req.json_object()
    att = body.get("interfaceAttachment", {})
    if not isinstance(att, dict):
        raise _bad("interfaceAttachment", f"{att!r}")
    net_id, port_id = att.get("net_id"), att.get("port_id")
    fixed = att.get("fixed_ips") or []
    if net_id and port_id:
        raise BadRequest("Must not input both network_id and port_id")
    fixed_ip = fixed[0].get("ip_address") if fixed and isinstance(fixed[0], dict) else None
    if fixed_ip and not net_id:
        raise BadRequest("Must input network_id when request IP address")
    ctx = req.context
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-attach-interfaces:create")
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "attach_interface", [sv.ACTIVE, sv.PAUSED, sv.STOPPED], (None,))
        instance_actions.record(sess, inst.uuid, "attach_interface", ctx, req.request_id)
    fn = sv.net_fn("attach_interface")
    if fn is None:
        raise Conflict("Failed to attach network adapter device: the network service is not available.")
    try:
        vif = fn(ctx, inst.uuid, inst.project_id, inst.host, net_id=net_id, port_id=port_id, fixed_ip=fixed_ip)
    except ApiError as err:
        if err.code == 404:
            raise BadRequest(err.message) if net_id else NotFound(err.message) from None
        raise
    try:
        rpc.call(inst.host, "attach_interface", instance_uuid=inst.uuid, vif=vif)
    except rpc.HostUnavailable:
        pass
    emit("compute.instance.interface_attach.end", {"instance_id": inst.uuid, "port_id": vif.get("id")},
         context=ctx)
    a = _attachment(vif)
    if at_least(req, "2.70"):
        a["tag"] = att.get("tag")
    return {"interfaceAttachment": a}


@api.route("/v2.1/servers/{server_id}/os-interface/{port_id}", "DELETE")
def detach_interface(req):
    ctx = req.context
    port_id = req.path_params["port_id"]
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-attach-interfaces:delete")
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "detach_interface", [sv.ACTIVE, sv.PAUSED, sv.STOPPED], (None,))
    vif = next((v for v in sv.nw_info(inst.uuid) if v["id"] == port_id), None)
    if vif is None:
        raise NotFound(f"Port {port_id} is not attached")
    with session() as sess:
        instance_actions.record(sess, inst.uuid, "detach_interface", ctx, req.request_id)
    fn = sv.net_fn("detach_interface")
    if fn is not None:
        fn(ctx, inst.uuid, port_id)
    try:
        rpc.call(inst.host, "detach_interface", instance_uuid=inst.uuid, vif=vif)
    except rpc.HostUnavailable:
        pass
    emit("compute.instance.interface_detach.end", {"instance_id": inst.uuid, "port_id": port_id}, context=ctx)
    return Response(status_code=202)


# ---------------------------------------------------------------------------- volume attachments
def _volume_attachment(req, b: BlockDeviceMapping) -> dict:
    out = {"device": b.device_name, "serverId": b.instance_uuid, "volumeId": b.volume_id}
    if not at_least(req, "2.89"):
        out["id"] = b.volume_id
    if at_least(req, "2.70"):
        out["tag"] = b.tag
    if at_least(req, "2.79"):
        out["delete_on_termination"] = bool(b.delete_on_termination)
    if at_least(req, "2.89"):
        out["attachment_id"] = b.attachment_id
        out["bdm_uuid"] = b.uuid
    return out


@api.route("/v2.1/servers/{server_id}/os-volume_attachments", "GET")
def list_volume_attachments(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-volumes-attachments:index")
    with session() as sess:
        rows = list(sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == inst.uuid, BlockDeviceMapping.destination_type == "volume",
            BlockDeviceMapping.volume_id.is_not(None)).order_by(BlockDeviceMapping.id)))
    return {"volumeAttachments": [_volume_attachment(req, b) for b in rows]}


@api.route("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", "GET")
def show_volume_attachment(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-volumes-attachments:show")
    with session() as sess:
        b = sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == inst.uuid,
            BlockDeviceMapping.volume_id == req.path_params["volume_id"])).first()
    if b is None:
        raise NotFound(f"Instance {inst.uuid} is not attached to volume {req.path_params['volume_id']}.")
    return {"volumeAttachment": _volume_attachment(req, b)}


@api.route("/v2.1/servers/{server_id}/os-volume_attachments", "POST")
def attach_volume(req):
    body = req.json_object("volumeAttachment")
    volume_id = body.get("volumeId")
    if not isinstance(volume_id, str) or not volume_id:
        raise BadRequest("Invalid input for field/attribute volumeId. 'volumeId' is a required property")
    allowed = {"volumeId", "device"} | ({"tag"} if at_least(req, "2.49") else set()) | \
        ({"delete_on_termination"} if at_least(req, "2.79") else set())
    extra = set(body) - allowed
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(extra))} was unexpected)")
    dot = body.get("delete_on_termination", False)
    if not isinstance(dot, bool):
        raise BadRequest("Invalid input for field/attribute delete_on_termination: it must be a boolean.")
    ctx = req.context
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-volumes-attachments:create")
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "attach_volume", [sv.ACTIVE, sv.PAUSED, sv.STOPPED, sv.RESIZED, sv.SOFT_DELETED,
                                               sv.SHELVED, sv.OFFLOADED], None)
    bdm = compute_volumes.attach(ctx, inst, volume_id, device=body.get("device"), tag=body.get("tag"),
                                 delete_on_termination=dot)
    emit("compute.instance.volume.attach", {"instance_id": inst.uuid, "volume_id": volume_id}, context=ctx)
    if at_least(req, "2.101"):  # 202 without a body (the attachment is done by now here)
        return 202, None
    return {"volumeAttachment": _volume_attachment(req, bdm)}


@api.route("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", "PUT")
def update_volume_attachment(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-volumes-attachments:update")
    body = req.json_object("volumeAttachment")
    volume_id = req.path_params["volume_id"]
    with session() as sess:
        b = sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == inst.uuid, BlockDeviceMapping.volume_id == volume_id)).first()
        if b is None:
            raise NotFound(f"Volume {volume_id} is not attached to server {inst.uuid}.")
        if body.get("volumeId") not in (None, volume_id):
            raise BadRequest("Swapping volumes is not supported by this cloud's volume service.")
        if "delete_on_termination" in body and at_least(req, "2.85"):
            if not isinstance(body["delete_on_termination"], bool):
                raise BadRequest("Invalid input for field/attribute delete_on_termination.")
            b.delete_on_termination = body["delete_on_termination"]
    return _no_content()


@api.route("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", "DELETE")
def detach_volume(req):
    ctx = req.context
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-volumes-attachments:delete")
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "detach_volume", [sv.ACTIVE, sv.PAUSED, sv.STOPPED, sv.RESIZED, sv.SOFT_DELETED,
                                               sv.SHELVED, sv.OFFLOADED], None)
    compute_volumes.detach(ctx, inst, req.path_params["volume_id"])
    emit("compute.instance.volume.detach", {"instance_id": inst.uuid, "volume_id": req.path_params["volume_id"]},
         context=ctx)
    return 202, None


# ---------------------------------------------------------------------------- instance actions
def _action_body(req, a, with_events: bool, events=None) -> dict:
    body = {"action": a.action, "instance_uuid": a.instance_uuid, "request_id": a.request_id,
            "user_id": a.user_id or "", "project_id": a.project_id or "", "start_time": fmt_usec(a.start_time),
            "message": a.message}
    if at_least(req, "2.58"):
        body["updated_at"] = fmt_usec(a.updated_at or a.start_time)
    if with_events:
        out = []
        for e in events or []:
            ev = {"event": e.event, "start_time": fmt_usec(e.start_time), "finish_time": fmt_usec(e.finish_time),
                  "result": e.result}
            if sv.allowed(req.context, "os_compute_api:os-instance-actions:events:details") or not at_least(
                    req, "2.51"):
                ev["traceback"] = e.traceback
            if at_least(req, "2.62"):
                import hashlib

                ev["hostId"] = hashlib.sha224(((a.project_id or "") + (e.host or "")).encode()).hexdigest() \
                    if e.host else ""
                if sv.allowed(req.context, "os_compute_api:os-instance-actions:events:details"):
                    ev["host"] = e.host or ""
            if at_least(req, "2.84") and sv.allowed(req.context, "os_compute_api:os-instance-actions:events:details"):
                ev["details"] = e.details
            out.append(ev)
        body["events"] = out
    return body


@api.route("/v2.1/servers/{server_id}/os-instance-actions", "GET")
def list_instance_actions(req):
    ctx = req.context
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-instance-actions:list",
                       deleted_ok=at_least(req, "2.21"))
        rows = instance_actions.list_actions(sess, inst.uuid)
    if at_least(req, "2.58"):
        since = req.query.get("changes-since")
        before = req.query.get("changes-before") if at_least(req, "2.66") else None
        from pocketstack.compute.api.servers import _parse_time

        if since:
            t = _parse_time(since, "changes-since")
            rows = [r for r in rows if (r.updated_at or r.start_time) >= t]
        if before:
            t = _parse_time(before, "changes-before")
            rows = [r for r in rows if (r.updated_at or r.start_time) <= t]
        marker = req.query.get("marker")
        if marker:
            idx = next((i for i, r in enumerate(rows) if r.request_id == marker), None)
            if idx is None:
                raise BadRequest(f"Marker {marker} could not be found.")
            rows = rows[idx + 1:]
        limit = req.query.get("limit")
        if limit is not None:
            try:
                rows = rows[:max(0, int(limit))]
            except ValueError:
                raise _bad("limit", limit) from None
    return {"instanceActions": [_action_body(req, r, False) for r in rows]}


@api.route("/v2.1/servers/{server_id}/os-instance-actions/{request_id}", "GET")
def show_instance_action(req):
    ctx = req.context
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-instance-actions:show",
                       deleted_ok=at_least(req, "2.21"))
        a = instance_actions.get_action(sess, inst.uuid, req.path_params["request_id"])
        if a is None:
            raise NotFound(f"Action for request_id {req.path_params['request_id']} on instance {inst.uuid} "
                           f"not found")
        events = instance_actions.events_of(sess, a.id)
    show_events = sv.allowed(ctx, "os_compute_api:os-instance-actions:events", sv.target_of(inst))
    if not show_events and not at_least(req, "2.51"):
        return {"instanceAction": _action_body(req, a, False)}
    return {"instanceAction": _action_body(req, a, True, events if show_events or at_least(req, "2.51") else [])}


# ---------------------------------------------------------------------------- migrations
def _migration_body(req, m: Migration, *, server_scoped: bool = False) -> dict:
    b = base(req)
    body = {"id": m.id, "status": m.status, "instance_uuid": m.instance_uuid,
            "source_compute": m.source_compute, "source_node": m.source_node, "dest_compute": m.dest_compute,
            "dest_node": m.dest_node, "dest_host": m.dest_host, "created_at": fmt_usec(m.created_at),
            "updated_at": fmt_usec(m.updated_at)}
    if server_scoped:
        body = {"id": m.id, "status": m.status, "server_uuid": m.instance_uuid,
                "source_compute": m.source_compute, "source_node": m.source_node, "dest_compute": m.dest_compute,
                "dest_node": m.dest_node, "dest_host": m.dest_host, "created_at": fmt_usec(m.created_at),
                "updated_at": fmt_usec(m.updated_at), "memory_total_bytes": None,
                "memory_processed_bytes": None, "memory_remaining_bytes": None, "disk_total_bytes": None,
                "disk_processed_bytes": None, "disk_remaining_bytes": None}
        if at_least(req, "2.59"):
            body["uuid"] = m.uuid
        if at_least(req, "2.80"):
            body["project_id"] = m.project_id
            body["user_id"] = m.user_id
        return body
    body["old_instance_type_id"] = int(m.old_flavor_id) if (m.old_flavor_id or "").isdigit() else 0
    body["new_instance_type_id"] = int(m.new_flavor_id) if (m.new_flavor_id or "").isdigit() else 0
    if at_least(req, "2.23"):
        body["migration_type"] = m.migration_type
        if m.migration_type == "live-migration" and m.status in ("running", "preparing", "queued"):
            body["links"] = [
                {"rel": "self", "href": f"{b}/v2.1/servers/{m.instance_uuid}/migrations/{m.id}"},
                {"rel": "bookmark", "href": f"{b}/servers/{m.instance_uuid}/migrations/{m.id}"}]
    if at_least(req, "2.59"):
        body["uuid"] = m.uuid
    if at_least(req, "2.80"):
        body["project_id"] = m.project_id
        body["user_id"] = m.user_id
    return body


@api.route("/v2.1/os-migrations", "GET")
def list_migrations(req):
    ctx = req.context
    sv.enforce(ctx, "os_compute_api:os-migrations:index")
    q = select(Migration)
    qp = req.query
    if qp.get("host"):
        q = q.where((Migration.source_compute == qp["host"]) | (Migration.dest_compute == qp["host"]))
    if qp.get("status"):
        q = q.where(Migration.status == qp["status"])
    if qp.get("instance_uuid"):
        q = q.where(Migration.instance_uuid == qp["instance_uuid"])
    if qp.get("migration_type") and at_least(req, "2.23"):
        q = q.where(Migration.migration_type == qp["migration_type"])
    if at_least(req, "2.80"):
        if qp.get("project_id"):
            q = q.where(Migration.project_id == qp["project_id"])
        if qp.get("user_id"):
            q = q.where(Migration.user_id == qp["user_id"])
    with session() as sess:
        rows = list(sess.scalars(q.order_by(Migration.created_at.desc(), Migration.id.desc())))
    if at_least(req, "2.59"):
        marker = qp.get("marker")
        if marker:
            idx = next((i for i, r in enumerate(rows) if r.uuid == marker), None)
            if idx is None:
                raise BadRequest(f"Marker {marker} could not be found.")
            rows = rows[idx + 1:]
        if qp.get("limit"):
            rows = rows[:max(0, int(qp["limit"]))] if qp["limit"].isdigit() else rows
    return {"migrations": [_migration_body(req, m) for m in rows]}


@api.route("/v2.1/servers/{server_id}/migrations", "GET")
def list_server_migrations(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:servers:migrations:index")
    with session() as sess:
        rows = list(sess.scalars(select(Migration).where(Migration.instance_uuid == inst.uuid,
                                                         Migration.migration_type == "live-migration",
                                                         Migration.status.in_(("running", "queued",
                                                                               "preparing")))))
    return {"migrations": [_migration_body(req, m, server_scoped=True) for m in rows]}


@api.route("/v2.1/servers/{server_id}/migrations/{migration_id}", "GET")
def show_server_migration(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:servers:migrations:show")
    with session() as sess:
        m = sess.get(Migration, int(req.path_params["migration_id"])) \
            if req.path_params["migration_id"].isdigit() else None
    if m is None or m.instance_uuid != inst.uuid or m.migration_type != "live-migration":
        raise NotFound(f"Migration {req.path_params['migration_id']} could not be found.")
    if m.status not in ("running", "queued", "preparing"):
        raise NotFound(f"Migration {m.id} for instance {inst.uuid} is not in progress.")
    return {"migration": _migration_body(req, m, server_scoped=True)}


@api.route("/v2.1/servers/{server_id}/migrations/{migration_id}/action", "POST")
def force_complete(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:servers:migrations:force_complete")
    raise BadRequest(f"Instance {inst.uuid} is in an invalid state for 'force_complete'")


@api.route("/v2.1/servers/{server_id}/migrations/{migration_id}", "DELETE")
def abort_migration(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:servers:migrations:delete")
    raise NotFound(f"Migration {req.path_params['migration_id']} for instance {inst.uuid} is not in progress.")


# ---------------------------------------------------------------------------- password
@api.route("/v2.1/servers/{server_id}/os-server-password", "GET")
def show_password(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-server-password:show")
    sm = inst.system_metadata or {}
    pw = "".join(sm.get(f"password_{i}", "") for i in range(4))
    return {"password": pw}


@api.route("/v2.1/servers/{server_id}/os-server-password", "DELETE")
def clear_password(req):
    ctx = req.context
    with session() as sess:
        inst = sv.load(sess, ctx, req.path_params["server_id"], "os_compute_api:os-server-password:clear")
        sm = {k: v for k, v in (inst.system_metadata or {}).items() if not k.startswith("password_")}
        inst.system_metadata = sm
        inst.updated_at = dt.datetime.now(dt.timezone.utc)
    emit("compute.instance.update", {"instance_id": inst.uuid, "fields": ["password"]}, context=ctx)
    return _no_content()


def set_password(instance_uuid: str, encrypted: str) -> None:
    """What the metadata service's POST /openstack/latest/password stores (once)."""
    chunks = [encrypted[i:i + 255] for i in range(0, 255 * 4, 255)]
    with session() as sess:
        inst = sess.scalars(select(Instance).where(Instance.uuid == instance_uuid)).first()
        if inst is None:
            raise NotFound(f"Instance {instance_uuid} could not be found.")
        sm = dict(inst.system_metadata or {})
        if any(sm.get(f"password_{i}") for i in range(4)):
            raise Conflict("Password already set")
        for i, c in enumerate(chunks):
            sm[f"password_{i}"] = c
        inst.system_metadata = sm



# ---------------------------------------------------------------------------- diagnostics
@api.route("/v2.1/servers/{server_id}/diagnostics", "GET")
def server_diagnostics(req):
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:os-server-diagnostics")
    if not inst.host or inst.vm_state in (sv.BUILDING, sv.OFFLOADED):
        raise Conflict(f"Cannot 'get_diagnostics' instance {inst.uuid} while it is in vm_state {inst.vm_state}")
    vifs = sv.nw_info(inst.uuid)
    fl = inst.flavor or {}
    uptime = int((dt.datetime.now(dt.timezone.utc) - (inst.launched_at or inst.created_at)).total_seconds())
    if not at_least(req, "2.48"):
        out = {"cpu0_time": 0, "memory": int(fl.get("memory_mb", 0)) * 1024, "vda_read": 0, "vda_write": 0,
               "vda_read_req": 0, "vda_write_req": 0, "vda_errors": -1}
        for i, _vif in enumerate(vifs):
            out.update({f"tap{i}_rx": 0, f"tap{i}_tx": 0, f"tap{i}_rx_drop": 0, f"tap{i}_tx_drop": 0,
                        f"tap{i}_rx_errors": 0, f"tap{i}_tx_errors": 0, f"tap{i}_rx_packets": 0,
                        f"tap{i}_tx_packets": 0})
        return out
    states = {1: "running", 3: "paused", 4: "shutdown", 6: "crashed", 7: "suspended"}
    vcpus = int(fl.get("vcpus", 1))
    # the fake driver answers as a libvirt/KVM host would (the schema knows no "fake" driver)
    return {"state": states.get(inst.power_state, "pending"), "driver": "libvirt", "hypervisor": "kvm",
            "hypervisor_os": "linux", "uptime": uptime, "config_drive": bool(inst.config_drive),
            "num_cpus": vcpus, "num_nics": len(vifs), "num_disks": 1,
            "memory_details": {"maximum": int(fl.get("memory_mb", 0)), "used": 0},
            "cpu_details": [{"id": i, "time": 0, "utilisation": 0} for i in range(vcpus)],
            "nic_details": [{"mac_address": v.get("address"), "rx_octets": 0, "rx_errors": 0, "rx_drop": 0,
                             "rx_packets": 0, "rx_rate": None, "tx_octets": 0, "tx_errors": 0, "tx_drop": 0,
                             "tx_packets": 0, "tx_rate": None} for v in vifs],
            "disk_details": [{"read_bytes": 0, "read_requests": 0, "write_bytes": 0, "write_requests": 0,
                              "errors_count": 0}]}


# ---------------------------------------------------------------------------- external events
_EVENT_NAMES = ("network-changed", "network-vif-plugged", "network-vif-unplugged", "network-vif-deleted",
                "volume-extended", "power-update", "accelerator-request-bound", "volume-reimaged")


@api.route("/v2.1/os-server-external-events", "POST")
def external_events(req):
    """What Neutron and Cinder tell Nova; accepted and acknowledged (the fake driver waits for none)."""
    ctx = req.context
    sv.enforce(ctx, "os_compute_api:os-server-external-events:create")
    events = req.json_object().get("events")
    if not isinstance(events, list) or not events:
        raise BadRequest("Invalid input for field/attribute events.")
    out, found = [], False
    with session() as sess:
        for ev in events:
            if not isinstance(ev, dict) or ev.get("name") not in _EVENT_NAMES or "server_uuid" not in ev:
                raise BadRequest(f"Invalid input for field/attribute events. Value: {ev!r}")
            item = {"name": ev["name"], "server_uuid": ev["server_uuid"], "status": ev.get("status", "completed")}
            if "tag" in ev:
                item["tag"] = ev["tag"]
            inst = sess.scalars(select(Instance).where(Instance.uuid == str(ev["server_uuid"]),
                                                       Instance.deleted.is_(False))).first()
            if inst is None or not inst.host:
                item["code"] = 404 if inst is None else 422
            else:
                item["code"] = 200
                found = True
                emit("compute.instance.external_event", {"instance_id": inst.uuid, "name": ev["name"]},
                     context=ctx)
            out.append(item)
    if not found:
        raise NotFound("No instances found for any event")
    return (200 if all(e["code"] == 200 for e in out) else 207), {"events": out}
