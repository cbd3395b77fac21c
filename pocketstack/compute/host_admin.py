"""What admins see and change about compute hosts: services (os-services), hypervisors
(os-hypervisors) and availability zones. The rows are written by the host agents
(`hosts.py`: registration, heartbeats, resource tracking); this module only reads them
and applies the admin switches (disable with a reason, force down, delete).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute import aggregates
from pocketstack.compute import models as m
from pocketstack.compute.models import AggregateHost, ComputeNode, Service

COMPUTE = "nova-compute"


def _session():
    return current().db.session()


def is_up(svc: Service) -> bool:
    """Alive while its heartbeat is recent (`[compute] service_down_time`) and not forced down."""
    if svc.forced_down:
        return False
    try:
        down_time = current().config.getint("compute", "service_down_time") or 60
    except Exception:  # noqa: BLE001 - unset option
        down_time = 60
    seen = svc.last_seen_at or svc.updated_at or svc.created_at
    return seen is not None and utcnow() - seen <= dt.timedelta(seconds=down_time)


def zone_of(svc: Service, zones: dict[str, str]) -> str:
    if svc.binary != COMPUTE:
        return aggregates.internal_az()
    return zones.get(svc.host, aggregates.default_az())


# ---------------------------------------------------------------------------- services
def list_services(host: str | None = None, binary: str | None = None) -> list[Service]:
    with _session() as sess:
        q = select(Service).order_by(Service.id)
        if host:
            q = q.where(Service.host == host)
        if binary:
            q = q.where(Service.binary == binary)
        return list(sess.scalars(q))


def get_service(service_id) -> Service:
    with _session() as sess:
        col = Service.uuid if isinstance(service_id, str) else Service.id
        svc = sess.scalar(select(Service).where(col == service_id))
        if svc is None:
            raise NotFound(f"Service {service_id} could not be found.")
        return svc


def update_service(ctx, svc_id: int, **values) -> Service:
    with _session() as sess:
        svc = sess.get(Service, svc_id)
        if svc is None:
            raise NotFound(f"Service {svc_id} could not be found.")
        for key, value in values.items():
            setattr(svc, key, value)
        svc.updated_at = svc.updated_at  # heartbeat time is the agent's, not ours
        sess.flush()
    emit("compute.service.update", {"service_id": svc.uuid, "host": svc.host, "binary": svc.binary,
                                    **{k: v for k, v in values.items()}}, context=ctx)
    return svc


def find_service(host: str, binary: str) -> Service:
    with _session() as sess:
        svc = sess.scalar(select(Service).where(Service.host == host, Service.binary == binary))
        if svc is None:
            raise NotFound(f"Service {binary} on host {host} could not be found.")
        return svc


def _live_instances(sess, host: str):
    inst = getattr(m, "Instance", None)
    if inst is None:
        return []
    q = select(inst).where(inst.host == host)
    if hasattr(inst, "deleted"):
        q = q.where(inst.deleted.is_(False))
    return list(sess.scalars(q.order_by(inst.id)))


def delete_service(ctx, svc: Service) -> None:
    with _session() as sess:
        row = sess.get(Service, svc.id)
        if row is None:
            raise NotFound(f"Service {svc.id} not found.")
        if row.binary == COMPUTE:
            if _live_instances(sess, row.host):
                raise Conflict("Unable to delete compute service that is hosting instances. "
                               "Migrate or delete the instances first.")
            mig = getattr(m, "Migration", None)
            if mig is not None:
                busy = sess.scalar(select(func.count()).select_from(mig).where(
                    (mig.source_compute == row.host) | (mig.dest_compute == row.host),
                    mig.status.in_(("queued", "preparing", "running", "migrating", "post-migrating",
                                    "finished", "confirming", "reverting", "pre-migrating"))))
                if busy:
                    raise Conflict("Unable to delete compute service that has in-progress migrations. "
                                   "Complete the migrations or delete the instances first.")
            sess.execute(delete(AggregateHost).where(AggregateHost.host == row.host))
            sess.execute(delete(ComputeNode).where(ComputeNode.host == row.host))
        sess.delete(row)
    emit("compute.service.delete", {"service_id": svc.uuid, "host": svc.host, "binary": svc.binary}, context=ctx)


# ---------------------------------------------------------------------------- hypervisors
def list_nodes(pattern: str | None = None) -> list[tuple[ComputeNode, Service]]:
    """Compute nodes with their nova-compute service (nodes without one are skipped, as Nova)."""
    with _session() as sess:
        services = {s.host: s for s in sess.scalars(select(Service).where(Service.binary == COMPUTE))}
        q = select(ComputeNode).order_by(ComputeNode.id)
        if pattern is not None:
            q = q.where(ComputeNode.hypervisor_hostname.like(f"%{pattern}%"))
        return [(n, services[n.host]) for n in sess.scalars(q) if n.host in services]


def node_instances(host: str) -> list:
    with _session() as sess:
        return _live_instances(sess, host)


def workload(host: str) -> int:
    """Servers on the host with a task in progress (Nova's `current_workload`)."""
    return sum(1 for i in node_instances(host) if getattr(i, "task_state", None))


def uptime(node: ComputeNode) -> str:
    """An uptime line in the shape `uptime(1)` prints, as libvirt hosts report it."""
    now = utcnow()
    up = now - (node.started_at or now)
    days, rest = up.days, up.seconds
    hours, minutes = rest // 3600, (rest % 3600) // 60
    span = f"{days} day{'s' if days != 1 else ''}, {hours:2d}:{minutes:02d}" if days else f"{hours:2d}:{minutes:02d}"
    return f" {now:%H:%M:%S} up {span},  1 user,  load average: 0.00, 0.00, 0.00"


def statistics() -> dict:
    nodes = list_nodes()
    keys = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "running_vms")
    out = {k: sum(getattr(n, k) for n, _ in nodes) for k in keys}
    out["count"] = len(nodes)
    out["free_ram_mb"] = out["memory_mb"] - out["memory_mb_used"]
    out["free_disk_gb"] = out["local_gb"] - out["local_gb_used"]
    out["disk_available_least"] = out["free_disk_gb"]
    out["current_workload"] = sum(workload(n.host) for n, _ in nodes)
    return out


# ---------------------------------------------------------------------------- zones
def zones() -> tuple[list[str], list[str], dict[str, dict]]:
    """(available zones, unavailable zones, {zone: {host: {binary: state}}}) as Nova derives
    them from services: a zone is available when an enabled service is in it; only enabled
    services are listed under their zone's hosts."""
    by_host = aggregates.zones_by_host()
    available: set[str] = set()
    disabled: set[str] = set()
    hosts: dict[str, dict] = {}
    for svc in list_services():
        zone = zone_of(svc, by_host)
        if svc.disabled:
            disabled.add(zone)
            continue
        available.add(zone)
        hosts.setdefault(zone, {}).setdefault(svc.host, {})[svc.binary] = {
            "available": is_up(svc), "active": True, "updated_at": svc.last_seen_at or svc.updated_at}
    return sorted(available), sorted(disabled - available), hosts


def bad_uuid(value: str) -> BadRequest:
    return BadRequest(f"Invalid uuid {value}")
