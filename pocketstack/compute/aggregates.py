"""Host aggregates: named sets of compute hosts with metadata.

The `availability_zone` metadata key is what puts hosts in an availability zone (the
scheduler and os-availability-zone read it); so, as in Nova, a host may not sit in two
aggregates naming different zones, and a zone cannot be renamed while its hosts run
servers (that would move the servers). Events: `compute.aggregate.*`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute import models as m
from pocketstack.compute.models import Aggregate, AggregateHost, AggregateMetadata

AZ_KEY = "availability_zone"


@dataclass
class AggregateInfo:
    id: int
    uuid: str
    name: str
    hosts: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    created_at: object = None
    updated_at: object = None

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)


def _session():
    return current().db.session()


def _conf(key: str, fallback: str) -> str:
    return current().config.get("compute", key, fallback) or fallback


def internal_az() -> str:
    return _conf("internal_service_availability_zone", "internal")


def default_az() -> str:
    return _conf("default_availability_zone", "nova")


class AggregateNotFound(NotFound):
    def __init__(self, agg_id):
        super().__init__(f"Aggregate {agg_id} could not be found.")


def _info(sess, row: Aggregate) -> AggregateInfo:
    hosts = sorted(sess.scalars(select(AggregateHost.host).where(AggregateHost.aggregate_id == row.id)))
    meta = {x.key: x.value for x in sess.scalars(select(AggregateMetadata)
                                                 .where(AggregateMetadata.aggregate_id == row.id))}
    return AggregateInfo(row.id, row.uuid, row.name, hosts, meta, row.created_at, row.updated_at)


def _row(sess, agg_id: int) -> Aggregate:
    row = sess.get(Aggregate, agg_id)
    if row is None:
        raise AggregateNotFound(agg_id)
    return row


def list_aggregates() -> list[AggregateInfo]:
    with _session() as sess:
        return [_info(sess, r) for r in sess.scalars(select(Aggregate).order_by(Aggregate.id))]


def get_aggregate(agg_id: int) -> AggregateInfo:
    with _session() as sess:
        return _info(sess, _row(sess, agg_id))


def host_zones(sess, host: str, excluding: int | None = None) -> set[str]:
    """The zones other aggregates give `host`."""
    q = (select(AggregateMetadata.value).join(AggregateHost, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id)
         .where(AggregateHost.host == host, AggregateMetadata.key == AZ_KEY))
    if excluding is not None:
        q = q.where(AggregateMetadata.aggregate_id != excluding)
    return set(sess.scalars(q))


def _check_az(agg_id, az: str | None, action: str) -> None:
    if az is not None and az == internal_az():
        raise BadRequest(f"Aggregate {agg_id}: Action '{action}' cannot be performed because the "
                         f"availability zone cannot be the internal one ('{az}').")


def _hosts_with_servers(sess, hosts: list[str]) -> bool:
    inst = getattr(m, "Instance", None)
    if inst is None or not hosts:
        return False
    q = select(func.count()).select_from(inst).where(inst.host.in_(hosts))
    if hasattr(inst, "deleted"):
        q = q.where(inst.deleted.is_(False))
    return bool(sess.scalar(q))


def _apply_metadata(sess, row: Aggregate, metadata: dict, action: str) -> None:
    info = _info(sess, row)
    if AZ_KEY in metadata:
        new_az = metadata[AZ_KEY]
        _check_az(row.id, new_az, action)
        for host in info.hosts:
            others = host_zones(sess, host, excluding=row.id)
            if new_az is not None and others and others != {new_az}:
                raise BadRequest(f"Aggregate {row.id}: Action '{action}' cannot be performed because "
                                 f"host {host} is already in availability zone(s) {', '.join(sorted(others))}.")
        if new_az != info.availability_zone and _hosts_with_servers(sess, info.hosts):
            raise BadRequest(f"Aggregate {row.id}: Action '{action}' cannot be performed because one or "
                             "more hosts contain instances in this zone.")
    for key, value in metadata.items():
        existing = sess.get(AggregateMetadata, (row.id, key))
        if value is None:
            if existing is not None:
                sess.delete(existing)
        elif existing is None:
            sess.add(AggregateMetadata(aggregate_id=row.id, key=key, value=str(value)))
        else:
            existing.value = str(value)
    row.updated_at = utcnow()


def create_aggregate(ctx, name: str, az: str | None) -> AggregateInfo:
    _check_az(name, az, "create_aggregate")
    with _session() as sess:
        if sess.scalar(select(Aggregate.id).where(Aggregate.name == name)) is not None:
            raise Conflict(f"Aggregate {name} already exists.")
        row = Aggregate(uuid=str(uuid.uuid4()), name=name, created_at=utcnow())
        sess.add(row)
        sess.flush()
        if az:
            sess.add(AggregateMetadata(aggregate_id=row.id, key=AZ_KEY, value=az))
        sess.flush()
        info = _info(sess, row)
    emit("compute.aggregate.create", {"aggregate_id": info.id, "uuid": info.uuid, "name": name}, context=ctx)
    return info


def update_aggregate(ctx, agg_id: int, name: str | None = None, az=...) -> AggregateInfo:
    with _session() as sess:
        row = _row(sess, agg_id)
        if name is not None and name != row.name:
            if sess.scalar(select(Aggregate.id).where(Aggregate.name == name)) is not None:
                raise Conflict(f"Aggregate {name} already exists.")
            row.name = name
            row.updated_at = utcnow()
        if az is not ...:
            _apply_metadata(sess, row, {AZ_KEY: az}, "update_aggregate")
        sess.flush()
        info = _info(sess, row)
    emit("compute.aggregate.update", {"aggregate_id": agg_id}, context=ctx)
    return info


def delete_aggregate(ctx, agg_id: int) -> None:
    with _session() as sess:
        row = _row(sess, agg_id)
        if sess.scalar(select(func.count()).select_from(AggregateHost).where(AggregateHost.aggregate_id == agg_id)):
            raise BadRequest(f"Aggregate {agg_id}: Action 'delete' cannot be performed because the host "
                             "aggregate is not empty.")
        sess.execute(delete(AggregateMetadata).where(AggregateMetadata.aggregate_id == agg_id))
        sess.delete(row)
    emit("compute.aggregate.delete", {"aggregate_id": agg_id}, context=ctx)


def _host_exists(sess, host: str) -> bool:
    return sess.scalar(select(m.Service.id).where(m.Service.host == host, m.Service.binary == "nova-compute")) \
        is not None


def add_host(ctx, agg_id: int, host: str) -> AggregateInfo:
    with _session() as sess:
        row = _row(sess, agg_id)
        if not _host_exists(sess, host):
            raise NotFound(f"Compute host {host} could not be found.")
        if sess.get(AggregateHost, (agg_id, host)) is not None:
            raise Conflict(f"Aggregate {agg_id} already has host {host}.")
        az = _info(sess, row).availability_zone
        if az is not None:
            others = host_zones(sess, host, excluding=agg_id)
            if others and others != {az}:
                raise Conflict(f"Cannot add host to aggregate {agg_id}. Reason: One or more hosts already "
                               f"in availability zone(s) {sorted(others)}.")
            if _hosts_with_servers(sess, [host]) and _zone_of(sess, host) != az:
                raise Conflict(f"Cannot add host to aggregate {agg_id}. Reason: Host {host} has servers "
                               f"in availability zone {_zone_of(sess, host)}.")
        sess.add(AggregateHost(aggregate_id=agg_id, host=host))
        row.updated_at = utcnow()
        sess.flush()
        info = _info(sess, row)
    emit("compute.aggregate.add_host", {"aggregate_id": agg_id, "host": host}, context=ctx)
    return info


def remove_host(ctx, agg_id: int, host: str) -> AggregateInfo:
    with _session() as sess:
        row = sess.get(Aggregate, agg_id)
        link = sess.get(AggregateHost, (agg_id, host)) if row is not None else None
        if row is None or link is None:
            raise NotFound(f"Cannot remove host {host} in aggregate {agg_id}")
        az = _info(sess, row).availability_zone
        if az is not None and _hosts_with_servers(sess, [host]) and not host_zones(sess, host, excluding=agg_id):
            raise Conflict(f"Cannot remove host from aggregate {agg_id}. Reason: Host {host} has servers "
                           f"in availability zone {az}.")
        sess.delete(link)
        row.updated_at = utcnow()
        sess.flush()
        info = _info(sess, row)
    emit("compute.aggregate.remove_host", {"aggregate_id": agg_id, "host": host}, context=ctx)
    return info


def set_metadata(ctx, agg_id: int, metadata: dict) -> AggregateInfo:
    with _session() as sess:
        row = _row(sess, agg_id)
        _apply_metadata(sess, row, metadata, "update_aggregate_metadata")
        sess.flush()
        info = _info(sess, row)
    emit("compute.aggregate.update_metadata", {"aggregate_id": agg_id, "keys": sorted(metadata)}, context=ctx)
    return info


def _zone_of(sess, host: str) -> str:
    zones = host_zones(sess, host)
    return sorted(zones)[0] if zones else default_az()


def zone_of_host(host: str) -> str:
    """The availability zone of a compute host: its aggregates' zone, else the default."""
    with _session() as sess:
        return _zone_of(sess, host)


def zones_by_host() -> dict[str, str]:
    with _session() as sess:
        out: dict[str, str] = {}
        rows = sess.execute(select(AggregateHost.host, AggregateMetadata.value)
                            .join(AggregateMetadata, AggregateMetadata.aggregate_id == AggregateHost.aggregate_id)
                            .where(AggregateMetadata.key == AZ_KEY)).all()
        for host, zone in sorted(rows):
            out.setdefault(host, zone)
        return out
