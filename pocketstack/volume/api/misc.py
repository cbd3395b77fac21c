"""Quotas, limits, availability zones, services, pools, capabilities, messages, attachments,
extensions: the smaller Block Storage resources."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import attachments, manager, messages, quotas
from pocketstack.volume import models as m
from pocketstack.volume.api.common import at_least, body_of, bool_param, route, session
from pocketstack.volume.volumes import enforce

SERVICE_DOWN_TIME = 60


# ---------------------------------------------------------------------------- quotas, limits
def _quota_body(sess, project_id: str, usage: bool) -> dict:
    lim = quotas.limits(sess, project_id)
    if not usage:
        return {"id": project_id, **lim}
    used = quotas.usage(sess, project_id)
    return {"id": project_id, **{k: {"limit": v, "in_use": used.get(k, 0), "reserved": 0, "allocated": 0}
                                 for k, v in lim.items()}}


@route("/os-quota-sets/{target}", "GET")
def show_quotas(req):
    target = req.path_params["target"]
    enforce(req.context, "volume_extension:quotas:show", target)
    usage = bool_param(req.query.get("usage", "false"), "usage")
    with session() as sess:
        return {"quota_set": _quota_body(sess, target, usage)}


@route("/os-quota-sets/{target}/defaults", "GET")
def default_quotas(req):
    target = req.path_params["target"]
    enforce(req.context, "volume_extension:quotas:show", target)
    with session() as sess:
        return {"quota_set": {"id": target, **quotas.defaults(sess)}}


@route("/os-quota-sets/{target}", "PUT")
def update_quotas(req):
    target = req.path_params["target"]
    enforce(req.context, "volume_extension:quotas:update", target)
    body = dict(body_of(req, "quota_set"))
    body.pop("tenant_id", None)
    body.pop("id", None)
    with session() as sess:
        quotas.update_limits(sess, target, body)
        sess.flush()
        return {"quota_set": quotas.limits(sess, target)}


@route("/os-quota-sets/{target}", "DELETE")
def delete_quotas(req):
    target = req.path_params["target"]
    enforce(req.context, "volume_extension:quotas:delete", target)
    with session() as sess:
        quotas.reset(sess, target)
    return 200, None


@route("/os-quota-class-sets/{class_name}", "GET")
def show_quota_class(req):
    enforce(req.context, "volume_extension:quota_classes", req.context.project_id)
    with session() as sess:
        return {"quota_class_set": {"id": req.path_params["class_name"], **quotas.defaults(sess)}}


@route("/os-quota-class-sets/{class_name}", "PUT")
def update_quota_class(req):
    enforce(req.context, "volume_extension:quota_classes", req.context.project_id)
    body = body_of(req, "quota_class_set")
    name = req.path_params["class_name"]
    with session() as sess:
        quotas.update_limits(sess, "", body, class_name=name)
        sess.flush()
        return {"quota_class_set": quotas.defaults(sess)}


@route("/limits", "GET")
def limits(req):
    ctx = req.context
    project = req.query.get("project_id") if ctx.is_admin and at_least(req, "3.39") else None
    project = project or ctx.project_id
    enforce(ctx, "limits_extension:used_limits", project)
    with session() as sess:
        lim, used = quotas.limits(sess, project), quotas.usage(sess, project)
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": lim["volumes"], "maxTotalSnapshots": lim["snapshots"],
        "maxTotalVolumeGigabytes": lim["gigabytes"], "maxTotalBackups": lim["backups"],
        "maxTotalBackupGigabytes": lim["backup_gigabytes"], "totalVolumesUsed": used["volumes"],
        "totalSnapshotsUsed": used["snapshots"], "totalGigabytesUsed": used["gigabytes"],
        "totalBackupsUsed": used["backups"], "totalBackupGigabytesUsed": used["backup_gigabytes"]}}}


# ---------------------------------------------------------------------------- AZs, services, pools
@route("/os-availability-zone", "GET")
def availability_zones(req):
    req.context  # noqa: B018 - authenticated callers only
    return {"availabilityZoneInfo": [{"zoneName": manager.availability_zone(), "zoneState": {"available": True}}]}


def _render_service(svc: m.Service, req) -> dict:
    up = svc.last_seen_at is not None and utcnow() - svc.last_seen_at < dt.timedelta(seconds=SERVICE_DOWN_TIME)
    body = {"binary": svc.binary, "host": svc.host, "zone": svc.zone,
            "status": "disabled" if svc.disabled else "enabled", "state": "up" if up else "down",
            "updated_at": svc.last_seen_at, "disabled_reason": svc.disabled_reason}
    if svc.binary == "cinder-volume":
        body.update({"replication_status": "disabled", "active_backend_id": None, "frozen": svc.frozen})
    if at_least(req, "3.7"):
        body["cluster"] = None
    if at_least(req, "3.49"):
        body["backend_state"] = "up" if up else "down"
    return body


@route("/os-services", "GET")
def list_services(req):
    enforce(req.context, "volume_extension:services:index", req.context.project_id)
    with session() as sess:
        q = select(m.Service).order_by(m.Service.id)
        host = req.query.get("host")
        if host:  # as Cinder: `vm` also matches the backends `vm@file` and pools `vm@file#file`
            q = q.where(_on_host(m.Service.host, host))
        if req.query.get("binary"):
            q = q.where(m.Service.binary == req.query["binary"])
        return {"services": [_render_service(s, req) for s in sess.execute(q).scalars()]}


@route("/os-services/{action}", "PUT")
def update_service(req):
    enforce(req.context, "volume_extension:services:update", req.context.project_id)
    action = req.path_params["action"]
    body = req.json_object()
    if action not in ("enable", "disable", "disable-log-reason", "freeze", "thaw"):
        raise NotFound(f"Unknown action {action}.")
    host, binary = body.get("host"), body.get("binary", "cinder-volume")
    if not isinstance(host, str) or not host:
        raise BadRequest("Missing required element 'host' in request body.")
    with session() as sess:
        svc = sess.execute(select(m.Service).where(m.Service.host == host, m.Service.binary == binary)
                           ).scalars().first()
        if svc is None and action in ("freeze", "thaw"):  # Cinder's replication lookup: InvalidInput
            raise BadRequest(f"Invalid input received: No service found with host={host}.")
        if svc is None:
            raise NotFound(f"Service {binary} on host {host} could not be found.")
        if action == "enable":
            svc.disabled, svc.disabled_reason = False, None
        elif action in ("disable", "disable-log-reason"):
            reason = body.get("disabled_reason")
            if action == "disable-log-reason" and (not isinstance(reason, str) or not reason.strip()
                                                   or len(reason) > 255):
                raise BadRequest("Disabled reason contains invalid characters or is too long")
            svc.disabled, svc.disabled_reason = True, reason
        else:
            svc.frozen = action == "freeze"
        svc.updated_at = utcnow()
        out = {"host": svc.host, "binary": svc.binary, "status": "disabled" if svc.disabled else "enabled"}
        if svc.disabled_reason:
            out["disabled_reason"] = svc.disabled_reason
        return out


@route("/scheduler-stats/get_pools", "GET")
def get_pools(req):
    enforce(req.context, "volume_extension:scheduler_stats:get_pools", req.context.project_id)
    caps = manager.backend().capabilities()
    pool = {"name": manager.pool_host()}
    if bool_param(req.query.get("detail", "false"), "detail"):
        pool["capabilities"] = caps
    return {"pools": [pool]}


@route("/capabilities/{host}", "GET")
def capabilities(req):
    enforce(req.context, "volume_extension:capabilities", req.context.project_id)
    if req.path_params["host"] not in (manager.service_host(), manager.pool_host()):
        raise NotFound(f"Service {req.path_params['host']} could not be found.")
    caps = manager.backend().capabilities()
    return {"namespace": "OS::Storage::Capabilities::" + manager.service_host(), "vendor_name": caps["vendor_name"],
            "volume_backend_name": caps["volume_backend_name"], "pool_name": caps["pool_name"],
            "driver_version": caps["driver_version"], "storage_protocol": caps["storage_protocol"],
            "display_name": None, "description": None, "visibility": None, "replication_targets": [],
            "properties": {"thin_provisioning": {"title": "Thin Provisioning", "type": "boolean",
                                                 "description": "Sets thin provisioning."}}}


@route("/os-hosts", "GET")
def list_hosts(req):
    enforce(req.context, "volume_extension:hosts", req.context.project_id)
    with session() as sess:
        services = list(sess.execute(select(m.Service).order_by(m.Service.id)).scalars())
    return {"hosts": [{"host_name": s.host, "service": s.binary, "zone": s.zone,
                       "service-status": "available" if _render_service(s, req)["state"] == "up" else "unavailable",
                       "service-state": "disabled" if s.disabled else "enabled", "last-update": s.last_seen_at}
                      for s in services]}


@route("/os-hosts/{host}", "GET")
def show_host(req):
    enforce(req.context, "volume_extension:hosts", req.context.project_id)
    host = req.path_params["host"]
    with session() as sess:
        if not sess.execute(select(m.Service).where(m.Service.host == host)).scalars().first():
            raise NotFound(f"Host {host} could not be found.")
        used = sess.execute(select(m.Volume).where(_on_host(m.Volume.host, host))
                            ).scalars().all()
        snaps = sess.execute(select(m.Snapshot).where(m.Snapshot.volume_id.in_([v.id for v in used]))
                             ).scalars().all() if used else []
    projects: dict[str, dict] = {}
    for vol in used:
        projects.setdefault(vol.project_id, {"v": [], "s": []})["v"].append(vol.size)
    for snap in snaps:
        projects.setdefault(snap.project_id, {"v": [], "s": []})["s"].append(snap.size)

    def resource(project: str, vols: list, snaps: list) -> dict:
        return {"resource": {"host": host, "project": project, "volume_count": str(len(vols)),
                             "total_volume_gb": str(sum(vols)), "snapshot_count": str(len(snaps)),
                             "total_snapshot_gb": str(sum(snaps))}}
    return {"host": [resource("(total)", [v.size for v in used], [x.size for x in snaps])]
            + [resource(p, u["v"], u["s"]) for p, u in sorted(projects.items())]}


def _on_host(column, host: str):
    """Cinder's host filter: `vm` matches `vm`, its backends `vm@file` and pools `vm@file#file`."""
    like = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(column == host, column.like(like + "@%", escape="\\"), column.like(like + "#%", escape="\\"))


# ---------------------------------------------------------------------------- messages
@route("/messages", "GET")
def list_messages(req):
    if not at_least(req, "3.3"):
        raise NotFound("The resource could not be found.")
    enforce(req.context, "message:get_all", req.context.project_id)
    with session() as sess:
        return {"messages": [messages.render(x) for x in messages.list_messages(sess, req.context)]}


@route("/messages/{message_id}", ["GET", "DELETE"])
def message(req):
    if not at_least(req, "3.3"):
        raise NotFound("The resource could not be found.")
    with session() as sess:
        msg = messages.get(sess, req.context, req.path_params["message_id"])
        if req.method == "DELETE":
            enforce(req.context, "message:delete", msg.project_id)
            sess.delete(msg)
            return 204, None
        enforce(req.context, "message:get", msg.project_id)
        return {"message": messages.render(msg)}


# ---------------------------------------------------------------------------- attachments (3.27+)
def _need_attachments(req) -> None:
    if not at_least(req, "3.27"):
        raise NotFound("The resource could not be found.")


@route("/attachments", "POST")
def create_attachment(req):
    _need_attachments(req)
    body = body_of(req, "attachment")
    if "mode" in body and not at_least(req, "3.54"):
        raise BadRequest("Invalid input: 'mode' needs microversion 3.54.")
    with session() as sess:
        att = attachments.create(sess, req.context, body)
        return {"attachment": attachments.render(att)}


@route("/attachments", "GET")
def list_attachments(req):
    _need_attachments(req)
    with session() as sess:
        return {"attachments": [attachments.render(a, detail=False)
                                for a in attachments.list_attachments(sess, req.context, dict(req.query.items()))]}


@route("/attachments/detail", "GET")
def list_attachments_detail(req):
    _need_attachments(req)
    with session() as sess:
        return {"attachments": [attachments.render(a)
                                for a in attachments.list_attachments(sess, req.context, dict(req.query.items()))]}


@route("/attachments/{attachment_id}", "GET")
def show_attachment(req):
    _need_attachments(req)
    with session() as sess:
        att, _ = attachments.load(sess, req.context, req.path_params["attachment_id"])
        return {"attachment": attachments.render(att)}


@route("/attachments/{attachment_id}", "PUT")
def update_attachment(req):
    _need_attachments(req)
    body = body_of(req, "attachment")
    with session() as sess:
        att = attachments.update(sess, req.context, req.path_params["attachment_id"], body)
        return {"attachment": attachments.render(att)}


@route("/attachments/{attachment_id}", "DELETE")
def delete_attachment(req):
    _need_attachments(req)
    with session() as sess:
        status = attachments.delete(sess, req.context, req.path_params["attachment_id"])
    return {"attachments": [], "status": status}


@route("/attachments/{attachment_id}/action", "POST")
def attachment_action(req):
    if not at_least(req, "3.44"):
        raise NotFound("The resource could not be found.")
    body = req.json_object()
    if "os-complete" not in body:
        raise BadRequest("There is no such action.")
    with session() as sess:
        attachments.complete(sess, req.context, req.path_params["attachment_id"])
    return 204, None


# ---------------------------------------------------------------------------- extensions
EXTENSIONS = [
    ("AvailabilityZones", "os-availability-zone", "Describe Availability Zones."),
    ("Capabilities", "capabilities", "Capabilities support."),
    ("ExtendedServices", "os-extended-services", "Extended services support."),
    ("Hosts", "os-hosts", "Admin-only host administration."),
    ("ExtendedSnapshotAttributes", "os-extended-snapshot-attributes", "Extended SnapshotAttributes support."),
    ("Quotas", "os-quota-sets", "Quota management support."),
    ("QuotaClasses", "os-quota-class-sets", "Quota classes management support."),
    ("QoSSpecs", "qos-specs", "QoS specs support."),
    ("SchedulerStats", "scheduler-stats", "Scheduler stats support."),
    ("Services", "os-services", "Services support."),
    ("SnapshotActions", "os-snapshot-actions", "Enable snapshot manager actions."),
    ("TypesExtraSpecs", "os-types-extra-specs", "Type extra specs support."),
    ("TypesManage", "os-types-manage", "Types manage support."),
    ("UsedLimits", "os-used-limits", "Provide data on limited resources that are being used."),
    ("VolumeActions", "os-volume-actions", "Enable volume actions."),
    ("VolumeHostAttribute", "os-vol-host-attr", "Expose host as an attribute of a volume."),
    ("VolumeImageMetadata", "os-vol-image-meta", "Show image metadata associated with the volume."),
    ("VolumeMigStatusAttribute", "os-vol-mig-status-attr", "Expose migration_status as an attribute of a volume."),
    ("VolumeTenantAttribute", "os-vol-tenant-attr", "Expose the internal project_id as an attribute of a volume."),
    ("VolumeTypeAccess", "os-volume-type-access", "Volume type access support."),
    ("AdminActions", "os-admin-actions", "Enable admin actions."),
    ("Backups", "backups", "Backups support."),
    ("BackupProjectAttribute", "os-backup-project-attr", "Expose project attribute for backups."),
    ("VolumeTransfer", "os-volume-transfer", "Volume transfer management support."),
    ("VolumeManage", "os-volume-manage", "Allows existing backend storage to be 'managed' by Cinder."),
    ("VolumeUnmanage", "os-volume-unmanage", "Enable volume unmanage operation."),
]


@route("/extensions", "GET")
def extensions(req):
    req.context  # noqa: B018
    return {"extensions": [{"name": n, "alias": a, "description": d, "links": [],
                            "updated": "2013-01-01T00:00:00+00:00"} for n, a, d in EXTENSIONS]}




# ---------------------------------------------------------------------------- resource filters (3.33)
# The query filters each list API here accepts (Cinder reads them from resource_filters.json;
# these are the ones our list endpoints implement).
RESOURCE_FILTERS = {
    "volume": ["name", "status", "metadata", "bootable", "availability_zone", "group_id", "size", "volume_type"],
    "snapshot": ["name", "status", "volume_id"],
    "backup": ["name", "status", "volume_id", "snapshot_id", "container"],
    "group": ["name", "status"],
    "group_snapshot": ["name", "status", "group_id"],
    "attachment": ["volume_id", "status", "instance_id"],
    "message": [],
    "pool": [],
    "volume_type": ["is_public"],
}


@route("/resource_filters", "GET")
def resource_filters(req):
    if not at_least(req, "3.33"):
        raise NotFound("The resource could not be found.")
    req.context  # noqa: B018 - authenticated callers only
    wanted = req.query.get("resource")
    names = [wanted] if wanted else list(RESOURCE_FILTERS)
    return {"resource_filters": [{"resource": n, "filters": RESOURCE_FILTERS[n]} for n in names
                                 if n in RESOURCE_FILTERS]}
