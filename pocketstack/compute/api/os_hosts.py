"""os-hosts (deprecated; microversions up to 2.42, 404 after): hosts by their services,
per-host resource usage, enabling/disabling a compute host. Maintenance mode and host power
actions are not something our drivers do: 501, as Nova answers for drivers without them.
"""
from __future__ import annotations

from pocketstack.common.errors import ApiError, BadRequest, NotFound
from pocketstack.compute import aggregates, host_admin
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-hosts:"


class NotSupported(ApiError):
    code = 501
    default_message = "The requested functionality is not supported."


def _gone(req) -> None:
    if at_least(req, "2.43"):
        raise NotFound("The resource could not be found.")


def _compute(host: str):
    for svc in host_admin.list_services(host=host, binary=host_admin.COMPUTE):
        return svc
    raise NotFound(f"Compute host {host} could not be found.")


@api.route("/v2.1/os-hosts", "GET")
def list_hosts(req):
    _gone(req)
    p.authorize(req, R + "list", {})
    zone = req.query.get("zone") or None
    zones = aggregates.zones_by_host()
    out = []
    for svc in host_admin.list_services():
        if svc.disabled:
            continue
        svc_zone = host_admin.zone_of(svc, zones)
        if zone and svc_zone != zone:
            continue
        out.append({"host_name": svc.host, "service": svc.topic or svc.binary.replace("nova-", ""),
                    "zone": svc_zone})
    return {"hosts": out}


@api.route("/v2.1/os-hosts/{host}", "GET")
def show_host(req):
    _gone(req)
    p.authorize(req, R + "show", {})
    host = req.path_params["host"]
    _compute(host)
    node = next((n for n, _ in host_admin.list_nodes() if n.host == host), None)
    if node is None:
        raise NotFound(f"Compute host {host} could not be found.")
    instances = host_admin.node_instances(host)
    rows = [{"host": host, "project": "(total)", "cpu": node.vcpus, "memory_mb": node.memory_mb,
             "disk_gb": node.local_gb},
            {"host": host, "project": "(used_now)", "cpu": node.vcpus_used, "memory_mb": node.memory_mb_used,
             "disk_gb": node.local_gb_used}]
    used_max = {"host": host, "project": "(used_max)", "cpu": 0, "memory_mb": 0, "disk_gb": 0}
    per_project: dict[str, dict] = {}
    for inst in instances:
        flavor = inst.flavor or {}
        disk = int(flavor.get("root_gb", 0)) + int(flavor.get("ephemeral_gb", 0))
        for acc in (used_max, per_project.setdefault(inst.project_id, {"host": host, "project": inst.project_id,
                                                                        "cpu": 0, "memory_mb": 0, "disk_gb": 0})):
            acc["cpu"] += inst.vcpus
            acc["memory_mb"] += inst.memory_mb
            acc["disk_gb"] += disk
    rows.append(used_max)
    rows.extend(per_project.values())
    return {"host": [{"resource": r} for r in rows]}


@api.route("/v2.1/os-hosts/{host}", "PUT")
def update_host(req):
    _gone(req)
    p.authorize(req, R + "update", {})
    body = req.json
    if not isinstance(body, dict):
        raise BadRequest(f"Invalid input: {body!r} is not of type 'object'")
    p.check_keys(body, "body", ("status", "maintenance_mode"))
    if not body:
        raise p.invalid("body", body, f"{body} is not valid under any of the given schemas")
    for key in body:
        value = body[key]
        if not isinstance(value, str) or value.strip().lower() not in ("enable", "disable"):
            raise p.invalid(key, value, f"{value!r} is not one of ['enable', 'disable']")
    host = req.path_params["host"]
    svc = _compute(host)
    result = {"host": host}
    if "status" in body:
        enabled = body["status"].strip().lower() == "enable"
        host_admin.update_service(req.context, svc.id, disabled=not enabled,
                                  disabled_reason=None if enabled else "Disabled via os-hosts")
        result["status"] = "enabled" if enabled else "disabled"
    if "maintenance_mode" in body:
        raise NotSupported()
    return result


def _power(req, action: str, rule: str):
    _gone(req)
    p.authorize(req, R + rule, {})
    _compute(req.path_params["host"])
    raise NotSupported()


@api.route("/v2.1/os-hosts/{host}/startup", "GET")
def startup_host(req):
    return _power(req, "startup", "start")


@api.route("/v2.1/os-hosts/{host}/shutdown", "GET")
def shutdown_host(req):
    return _power(req, "shutdown", "shutdown")


@api.route("/v2.1/os-hosts/{host}/reboot", "GET")
def reboot_host(req):
    return _power(req, "reboot", "reboot")
