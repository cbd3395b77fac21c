"""os-simple-tenant-usage: hours, vCPU-, RAM- and disk-hours per project over a period,
computed from servers' `launched_at` / `terminated_at` (deleted servers count too).

Servers count when launched before the period ends and not terminated before it starts;
each is charged from max(launched, start) to min(terminated, end). 2.40 pages the server
usages (limit/marker on the server uuid) with `tenant_usage(s)_links`.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest
from pocketstack.common.runtime import current
from pocketstack.compute import models
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-simple-tenant-usage:"
FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _parse(raw: str | None) -> dt.datetime:
    if not raw:
        return utcnow()
    for fmt in FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    raise BadRequest("Invalid datetime string: Datetime is in invalid format")


def _period(req) -> tuple[dt.datetime, dt.datetime, bool]:
    start = _parse(req.query.get("start"))
    stop = _parse(req.query.get("end"))
    if not start < stop:
        raise BadRequest("Invalid start time. The start time cannot occur after the end time.")
    stop = min(stop, utcnow())
    return start, stop, req.query.get("detailed", "0") == "1"


def _instances(start, stop, project_id, limit, marker):
    inst = getattr(models, "Instance", None)
    if inst is None:
        return []
    with current().db.session() as sess:
        q = select(inst).where(inst.launched_at.is_not(None), inst.launched_at < stop,
                               or_(inst.terminated_at.is_(None), inst.terminated_at > start))
        if project_id:
            q = q.where(inst.project_id == project_id)
        rows = list(sess.scalars(q.order_by(inst.id)))
    if marker is not None:
        ids = [r.uuid for r in rows]
        if marker not in ids:
            raise BadRequest(f"Marker {marker} could not be found.")
        rows = rows[ids.index(marker) + 1:]
    return rows[:limit] if limit is not None else rows


def _hours(launched, terminated, start, stop) -> float:
    begin = max(launched, start)
    end = min(stop, terminated) if terminated else stop
    return max((end - begin).total_seconds(), 0) / 3600.0


def _usages(req, project_id: str | None, detailed: bool):
    start, stop, _ = _period(req)
    limit = marker = None
    if at_least(req, "2.40"):
        limit = p.query_limit(req)
        marker = req.query.get("marker")
    rows = _instances(start, stop, project_id, limit, marker)
    summaries: dict[str, dict] = {}
    servers = []
    now = utcnow()
    for r in rows:
        flavor = r.flavor or {}
        hours = _hours(r.launched_at, r.terminated_at, start, stop)
        local_gb = int(flavor.get("root_gb", 0)) + int(flavor.get("ephemeral_gb", 0))
        info = {"hours": hours, "flavor": flavor.get("name", ""), "instance_id": r.uuid, "name": r.display_name,
                "tenant_id": r.project_id, "memory_mb": int(flavor.get("memory_mb", r.memory_mb or 0)),
                "local_gb": local_gb, "vcpus": int(flavor.get("vcpus", r.vcpus or 0)),
                "started_at": p.ts(r.launched_at), "ended_at": p.ts(r.terminated_at),
                "state": "terminated" if r.terminated_at else r.vm_state,
                "uptime": int(((r.terminated_at or now) - r.launched_at).total_seconds())}
        s = summaries.get(r.project_id)
        if s is None:
            s = summaries[r.project_id] = {"tenant_id": r.project_id, "total_local_gb_usage": 0,
                                           "total_vcpus_usage": 0, "total_memory_mb_usage": 0,
                                           "total_hours": 0, "start": p.ts(start), "stop": p.ts(stop)}
            if detailed:
                s["server_usages"] = []
        s["total_local_gb_usage"] += local_gb * hours
        s["total_vcpus_usage"] += info["vcpus"] * hours
        s["total_memory_mb_usage"] += info["memory_mb"] * hours
        s["total_hours"] += hours
        servers.append(info)
        if detailed:
            s["server_usages"].append(info)
    return list(summaries.values()), servers, limit


def _query(req):
    allowed = ("start", "end", "detailed") + (("limit", "marker") if at_least(req, "2.40") else ())
    p.strict_query(req, allowed)


@api.route("/v2.1/os-simple-tenant-usage", "GET")
def list_usage(req):
    p.authorize(req, R + "list", {})
    _query(req)
    _, _, detailed = _period(req)
    usages, servers, limit = _usages(req, None, detailed)
    body = {"tenant_usages": usages}
    if at_least(req, "2.40"):
        nxt = p.next_links(req, "os-simple-tenant-usage", servers, limit, lambda s: s["instance_id"])
        if nxt:
            body["tenant_usages_links"] = nxt
    return body


@api.route("/v2.1/os-simple-tenant-usage/{project_id}", "GET")
def show_usage(req):
    project_id = req.path_params["project_id"]
    p.authorize(req, R + "show", {"project_id": project_id})
    _query(req)
    usages, servers, limit = _usages(req, project_id, True)
    body = {"tenant_usage": usages[0] if usages else {}}
    if at_least(req, "2.40"):
        nxt = p.next_links(req, f"os-simple-tenant-usage/{project_id}", servers, limit,
                           lambda s: s["instance_id"])
        if nxt:
            body["tenant_usage_links"] = nxt
    return body


@api.route("/v2.1/os-simple-tenant-usage/", "GET")
def empty_project_id(req):
    """An empty project id is no project (Nova answers 404, not the list)."""
    from pocketstack.common.errors import NotFound

    raise NotFound("The resource could not be found.")
