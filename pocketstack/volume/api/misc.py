"""Quotas, limits, availability zones, services, pools, capabilities, messages, attachments,
extensions: the smaller Block Storage resources."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

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
        if req.query.get("host"):
            q = q.where(m.Service.host == req.query["host"])
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
        used = sess.execute(select(m.Volume).where(m.Volume.host.like(f"{host}%"))).scalars().all()
    projects: dict[str, list] = {}
    for vol in used:
        projects.setdefault(vol.project_id, []).append(vol.size)
    total = [{"resource": {"host": host, "project": "(total)", "volume_count": str(len(used)),
                           "total_volume_gb": str(sum(v.size for v in used)), "total_snapshot_gb": "0"}}]
    return {"host": total + [{"resource": {"host": host, "project": p, "volume_count": str(len(s)),
                                           "total_volume_gb": str(sum(s)), "total_snapshot_gb": "0"}}
                             for p, s in sorted(projects.items())]}


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


