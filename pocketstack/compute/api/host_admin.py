"""os-services, os-hypervisors and os-availability-zone: the admin's view of the hosts.

Microversions: os-services adds `forced_down` (and PUT .../force-down) at 2.11 and moves to
uuid ids with `PUT /os-services/{uuid}` at 2.53; os-hypervisors pages at 2.33, reports
uuid ids with `hypervisor_hostname_pattern`/`with_servers` at 2.53 (the /search and
/servers routes end at 2.52), always lists `servers` when asked at 2.75 and drops the
capacity fields (and /statistics, /uptime) at 2.88, adding `uptime` to the detail.
"""
from __future__ import annotations

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.compute import aggregates, host_admin
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

SV = "os_compute_api:os-services:"
HV = "os_compute_api:os-hypervisors:"
AZ = "os_compute_api:os-availability-zone:"


def _gone(req, last: str):
    if at_least(req, _next(last)):
        raise NotFound("The resource could not be found.")


def _next(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


# ---------------------------------------------------------------------------- services
def _service_view(req, svc, zones: dict) -> dict:
    out = {"binary": svc.binary, "host": svc.host, "id": svc.uuid if at_least(req, "2.53") else svc.id,
           "zone": host_admin.zone_of(svc, zones), "status": "disabled" if svc.disabled else "enabled",
           "state": "up" if host_admin.is_up(svc) else "down",
           "updated_at": p.ts(svc.last_seen_at or svc.updated_at), "disabled_reason": svc.disabled_reason}
    if at_least(req, "2.11"):
        out["forced_down"] = svc.forced_down
    return out


@api.route("/v2.1/os-services", "GET")
def list_services(req):
    p.authorize(req, SV + "list", {})
    p.strict_query(req, ("host", "binary"))
    zones = aggregates.zones_by_host()
    services = host_admin.list_services(req.query.get("host") or None, req.query.get("binary") or None)
    return {"services": [_service_view(req, s, zones) for s in services]}


def _only_compute(svc_binary: str) -> None:
    if svc_binary != host_admin.COMPUTE:
        raise BadRequest(f"Updating a {svc_binary} service is not supported. Only nova-compute services "
                         "can be updated.")


@api.route("/v2.1/os-services/{service_id}", "PUT")
def update_service(req):
    sid = req.path_params["service_id"]
    if at_least(req, "2.53"):
        return _update_v253(req, sid)
    p.authorize(req, SV + "update", {})
    actions = ("enable", "disable", "disable-log-reason") + (("force-down",) if at_least(req, "2.11") else ())
    if sid not in actions:
        raise NotFound("Unknown action")
    allowed = ("host", "binary") + (("disabled_reason",) if sid == "disable-log-reason" else ()) + \
        (("forced_down",) if sid == "force-down" else ())
    data = req.json
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input: {data!r} is not of type 'object'")
    p.check_keys(data, "body", allowed, ("host", "binary"))
    host, binary = data["host"], data["binary"]
    for key in ("host", "binary"):
        p.name(data[key], key)
    _only_compute(binary)
    svc = host_admin.find_service(host, binary)
    if sid == "enable":
        host_admin.update_service(req.context, svc.id, disabled=False, disabled_reason=None)
        return {"service": {"host": host, "binary": binary, "status": "enabled"}}
    if sid == "disable":
        host_admin.update_service(req.context, svc.id, disabled=True, disabled_reason=None)
        return {"service": {"host": host, "binary": binary, "status": "disabled"}}
    if sid == "disable-log-reason":
        if "disabled_reason" not in data:
            raise BadRequest("Missing disabled reason field")
        reason = p.name(data["disabled_reason"], "disabled_reason")
        host_admin.update_service(req.context, svc.id, disabled=True, disabled_reason=reason)
        return {"service": {"host": host, "binary": binary, "status": "disabled", "disabled_reason": reason}}
    if "forced_down" not in data:
        raise BadRequest("Missing forced_down field")
    forced = p.boolean(data["forced_down"], "forced_down")
    host_admin.update_service(req.context, svc.id, forced_down=forced)
    return {"service": {"host": host, "binary": binary, "forced_down": forced}}


def _update_v253(req, sid: str):
    if not p.is_uuid(sid):
        raise host_admin.bad_uuid(sid)
    p.authorize(req, SV + "update", {})
    data = req.json
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input: {data!r} is not of type 'object'")
    p.check_keys(data, "body", ("status", "disabled_reason", "forced_down"))
    svc = host_admin.get_service(sid)
    _only_compute(svc.binary)
    changes: dict = {}
    if "status" in data:
        if data["status"] not in ("enabled", "disabled"):
            raise p.invalid("status", data["status"], f"'{data['status']}' is not one of ['enabled', 'disabled']")
        if data["status"] == "enabled":
            if data.get("disabled_reason"):
                raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
            changes.update(disabled=False, disabled_reason=None)
        else:
            reason = data.get("disabled_reason")
            if reason is not None:
                p.name(reason, "disabled_reason")
            changes.update(disabled=True, disabled_reason=reason)
    if "forced_down" in data:
        changes["forced_down"] = p.boolean(data["forced_down"], "forced_down")
    if not changes:
        raise BadRequest("No updates were requested. Fields 'status' or 'forced_down' should be specified.")
    svc = host_admin.update_service(req.context, svc.id, **changes)
    return {"service": _service_view(req, svc, aggregates.zones_by_host())}


@api.route("/v2.1/os-services/{service_id}", "DELETE")
def delete_service(req):
    p.authorize(req, SV + "delete", {})
    sid = req.path_params["service_id"]
    if at_least(req, "2.53"):
        if not p.is_uuid(sid):
            raise host_admin.bad_uuid(sid)
        key = sid
    else:
        if not sid.isdigit():
            raise BadRequest(f"Invalid input received: id must be an integer")
        key = int(sid)
    try:
        svc = host_admin.get_service(key)
    except NotFound:
        raise NotFound(f"Service {sid} not found.") from None
    host_admin.delete_service(req.context, svc)
    return 204, None


# ---------------------------------------------------------------------------- hypervisors
def _hyp_view(req, node, svc, detail: bool, servers=None, with_servers: bool = False) -> dict:
    uuids = at_least(req, "2.53")
    out = {"id": node.uuid if uuids else node.id, "hypervisor_hostname": node.hypervisor_hostname,
           "state": "up" if host_admin.is_up(svc) else "down",
           "status": "disabled" if svc.disabled else "enabled"}
    if detail:
        out.update(hypervisor_type=node.hypervisor_type, hypervisor_version=node.hypervisor_version,
                   host_ip=node.host_ip,
                   service={"id": svc.uuid if uuids else svc.id, "host": node.host,
                            "disabled_reason": svc.disabled_reason})
        if not at_least(req, "2.88"):
            out.update(vcpus=node.vcpus, memory_mb=node.memory_mb, local_gb=node.local_gb,
                       vcpus_used=node.vcpus_used, memory_mb_used=node.memory_mb_used,
                       local_gb_used=node.local_gb_used, free_ram_mb=node.memory_mb - node.memory_mb_used,
                       free_disk_gb=node.local_gb - node.local_gb_used,
                       current_workload=host_admin.workload(node.host), running_vms=node.running_vms,
                       disk_available_least=node.local_gb - node.local_gb_used)
            import json

            out["cpu_info"] = dict(node.cpu_info or {}) if at_least(req, "2.28") else json.dumps(node.cpu_info or {})
        else:
            out["uptime"] = host_admin.uptime(node)
    if servers:
        out["servers"] = [{"name": i.display_name, "uuid": i.uuid} for i in servers]
    elif with_servers and at_least(req, "2.75"):
        out["servers"] = []
    return out


def _list_hypervisors(req, detail: bool):
    p.authorize(req, HV + ("list-detail" if detail else "list"), {})
    paged = at_least(req, "2.33")
    allowed = (("limit", "marker") if paged else ()) + \
        (("hypervisor_hostname_pattern", "with_servers") if at_least(req, "2.53") else ())
    p.strict_query(req, allowed)
    pattern, with_servers = None, False
    if at_least(req, "2.53"):
        pattern = req.query.get("hypervisor_hostname_pattern")
        if "with_servers" in req.query:
            with_servers = p.bool_param(req.query["with_servers"], "with_servers")
    limit = p.query_limit(req) if paged else None
    marker = req.query.get("marker") if paged else None
    if pattern is not None:
        if "limit" in req.query or marker:
            raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query parameter "
                             "is not supported.")
        nodes = host_admin.list_nodes(pattern)
        if not nodes:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    else:
        nodes = host_admin.list_nodes()
        if marker is not None:
            keys = [str(n.uuid if at_least(req, "2.53") else n.id) for n, _ in nodes]
            if marker not in keys:
                raise BadRequest(f"marker [{marker}] not found")
            nodes = nodes[keys.index(marker) + 1:]
        if limit is not None:
            nodes = nodes[:limit]
    items = []
    for node, svc in nodes:
        servers = host_admin.node_instances(node.host) if with_servers else None
        items.append(_hyp_view(req, node, svc, detail, servers, with_servers))
    body = {"hypervisors": items}
    if paged and pattern is None:
        nxt = p.next_links(req, "os-hypervisors/detail" if detail else "os-hypervisors", items, limit,
                           lambda h: h["id"])
        if nxt:
            body["hypervisors_links"] = nxt
    return body


@api.route("/v2.1/os-hypervisors", "GET")
def list_hypervisors(req):
    return _list_hypervisors(req, False)


@api.route("/v2.1/os-hypervisors/detail", "GET")
def list_hypervisors_detail(req):
    return _list_hypervisors(req, True)


@api.route("/v2.1/os-hypervisors/statistics", "GET")
def hypervisor_statistics(req):
    _gone(req, "2.87")
    p.authorize(req, HV + "statistics", {})
    return {"hypervisor_statistics": host_admin.statistics()}


def _find_node(req, hid: str):
    if at_least(req, "2.53"):
        if not p.is_uuid(hid):
            raise host_admin.bad_uuid(hid)
        match = lambda n: n.uuid == hid  # noqa: E731
    else:
        if not hid.isdigit():
            raise NotFound(f"Hypervisor with ID '{hid}' could not be found.")
        match = lambda n: n.id == int(hid)  # noqa: E731
    for node, svc in host_admin.list_nodes():
        if match(node):
            return node, svc
    raise NotFound(f"Hypervisor with ID '{hid}' could not be found.")


@api.route("/v2.1/os-hypervisors/{hypervisor_id}", "GET")
def show_hypervisor(req):
    p.authorize(req, HV + "show", {})
    p.strict_query(req, ("with_servers",) if at_least(req, "2.53") else ())
    with_servers = False
    if at_least(req, "2.53") and "with_servers" in req.query:
        with_servers = p.bool_param(req.query["with_servers"], "with_servers")
    node, svc = _find_node(req, req.path_params["hypervisor_id"])
    servers = host_admin.node_instances(node.host) if with_servers else None
    return {"hypervisor": _hyp_view(req, node, svc, True, servers, with_servers)}


@api.route("/v2.1/os-hypervisors/{hypervisor_id}/uptime", "GET")
def hypervisor_uptime(req):
    _gone(req, "2.87")
    p.authorize(req, HV + "uptime", {})
    node, svc = _find_node(req, req.path_params["hypervisor_id"])
    out = _hyp_view(req, node, svc, False)
    out["uptime"] = host_admin.uptime(node)
    return {"hypervisor": out}


def _by_pattern(req, pattern: str, with_servers: bool):
    nodes = host_admin.list_nodes(pattern)
    if not nodes:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    out = []
    for node, svc in nodes:
        servers = host_admin.node_instances(node.host) if with_servers else None
        out.append(_hyp_view(req, node, svc, False, servers))
    return {"hypervisors": out}


@api.route("/v2.1/os-hypervisors/{pattern}/search", "GET")
def search_hypervisors(req):
    _gone(req, "2.52")
    p.authorize(req, HV + "search", {})
    return _by_pattern(req, req.path_params["pattern"], False)


@api.route("/v2.1/os-hypervisors/{pattern}/servers", "GET")
def hypervisor_servers(req):
    _gone(req, "2.52")
    p.authorize(req, HV + "servers", {})
    return _by_pattern(req, req.path_params["pattern"], True)


# ---------------------------------------------------------------------------- zones
@api.route("/v2.1/os-availability-zone", "GET")
def list_zones(req):
    p.authorize(req, AZ + "list", {})
    p.strict_query(req, (), "2.102")
    available, unavailable, _ = host_admin.zones()
    internal = aggregates.internal_az()
    info = [{"zoneName": z, "zoneState": {"available": True}, "hosts": None} for z in available if z != internal]
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": None} for z in unavailable if z != internal]
    return {"availabilityZoneInfo": info}


@api.route("/v2.1/os-availability-zone/detail", "GET")
def list_zones_detail(req):
    p.authorize(req, AZ + "detail", {})
    p.strict_query(req, (), "2.102")
    available, unavailable, hosts = host_admin.zones()
    info = []
    for zone in available:
        zone_hosts = {h: {b: {**st, "updated_at": p.ts(st["updated_at"])} for b, st in svcs.items()}
                      for h, svcs in hosts.get(zone, {}).items()}
        info.append({"zoneName": zone, "zoneState": {"available": True}, "hosts": zone_hosts})
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": None} for z in unavailable]
    return {"availabilityZoneInfo": info}
