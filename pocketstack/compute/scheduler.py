"""The filter scheduler: which compute node a server goes to.

Filters (as Nova's of the same names): ComputeFilter (service up and enabled),
RAM/Disk/Core with each node's allocation ratios, AvailabilityZoneFilter,
AggregateInstanceExtraSpecsFilter, ImagePropertiesFilter, Same/DifferentHostFilter and
ServerGroup(Anti)AffinityFilter; soft-(anti-)affinity are weighers. Weighers: free RAM
(spread) then free vCPUs. The chosen node is then *claimed* (`hosts.claim`, one
conditional UPDATE): when a concurrent boot took the room first, the next candidate is
tried, so parallel boots never overcommit a host.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from pocketstack.common.db import utcnow
from pocketstack.common.runtime import current
from pocketstack.compute import hosts
from pocketstack.compute.models import (AggregateHost, AggregateMetadata, ComputeNode, Instance,
                                        Service)

log = logging.getLogger("pocketstack.compute.scheduler")

NO_VALID_HOST = "No valid host was found. "


class NoValidHost(Exception):
    def __init__(self, reason: str = "There are not enough hosts available."):
        super().__init__(NO_VALID_HOST + reason)


@dataclass
class RequestSpec:
    flavor: dict
    project_id: str
    instance_uuid: str = ""
    availability_zone: str | None = None
    image_props: dict = field(default_factory=dict)
    hints: dict = field(default_factory=dict)
    ignore_hosts: list = field(default_factory=list)
    force_hosts: list = field(default_factory=list)
    force_nodes: list = field(default_factory=list)
    group: object = None  # server_groups.GroupInfo


@dataclass
class HostState:
    node: ComputeNode
    service: Service
    aggregates_meta: list  # [{key: value}] of each aggregate the host is in
    az: str
    instances: int = 0
    group_members_here: int = 0

    @property
    def host(self) -> str:
        return self.node.host


def service_is_up(svc: Service) -> bool:
    if svc.forced_down:
        return False
    down_time = current().config.getint("compute", "service_down_time") or 60
    seen = svc.last_seen_at or svc.updated_at or svc.created_at
    return seen is not None and utcnow() - seen <= dt.timedelta(seconds=down_time)


def _host_states(sess) -> list[HostState]:
    default_az = current().config.get("compute", "default_availability_zone") or "nova"
    services = {s.host: s for s in sess.scalars(select(Service).where(Service.binary == "nova-compute"))}
    aggs: dict[str, list[dict]] = {}
    meta_by_agg: dict[int, dict] = {}
    for m in sess.scalars(select(AggregateMetadata)):
        meta_by_agg.setdefault(m.aggregate_id, {})[m.key] = m.value
    for ah in sess.scalars(select(AggregateHost)):
        aggs.setdefault(ah.host, []).append(meta_by_agg.get(ah.aggregate_id, {}))
    out = []
    for node in sess.scalars(select(ComputeNode).order_by(ComputeNode.id)):
        svc = services.get(node.host)
        if svc is None:
            continue
        metas = aggs.get(node.host, [])
        az = next((m["availability_zone"] for m in metas if m.get("availability_zone")), default_az)
        out.append(HostState(node=node, service=svc, aggregates_meta=metas, az=az))
    return out


def host_az(host: str) -> str:
    """The availability zone a host is in (its aggregates' `availability_zone`, else the default)."""
    with current().db.session() as sess:
        for hs in _host_states(sess):
            if hs.host == host:
                return hs.az
    return current().config.get("compute", "default_availability_zone") or "nova"


# ---------------------------------------------------------------------------- filters
def _fits(hs: HostState, flavor: dict) -> tuple[bool, str]:
    vcpus, ram, disk = hosts.usage_of(flavor)
    max_cpu, max_ram, max_disk = hosts.limits(hs.node)
    if hs.node.memory_mb_used + ram > max_ram:
        return False, "RamFilter"
    if hs.node.local_gb_used + disk > max_disk:
        return False, "DiskFilter"
    if hs.node.vcpus_used + vcpus > max_cpu:
        return False, "CoreFilter"
    return True, ""


def _extra_specs_match(hs: HostState, extra_specs: dict) -> bool:
    """AggregateInstanceExtraSpecsFilter: scoped (`aggregate_instance_extra_specs:`) or
    unscoped keys must equal a value of the host's aggregates' metadata."""
    for key, wanted in extra_specs.items():
        scope, _, name = key.partition(":")
        if name and scope != "aggregate_instance_extra_specs":
            continue  # other filters' scopes (hw:, quota:, ...)
        name = name or key
        values = {m[name] for m in hs.aggregates_meta if name in m}
        options = {v.strip() for value in values for v in value.split(",")}
        wanted = str(wanted)
        if wanted.startswith("<in> "):
            if not any(wanted[5:].strip() in v for v in values):
                return False
        elif wanted.startswith("<or> "):
            if not options & {w.strip() for w in wanted[5:].split("<or>")}:
                return False
        elif wanted.strip() not in options:
            return False
    return True


def _image_props_match(hs: HostState, props: dict) -> bool:
    """ImagePropertiesFilter: the fake hypervisor is x86_64 / qemu-kvm compatible / hvm."""
    arch = props.get("hw_architecture") or props.get("architecture")
    if arch and arch.lower() not in ("x86_64", "i686"):
        return False
    htype = props.get("img_hv_type") or props.get("hypervisor_type")
    if htype and htype.lower() not in ("fake", "qemu", "kvm"):
        return False
    mode = props.get("hw_vm_mode") or props.get("vm_mode")
    if mode and mode.lower() not in ("hvm",):
        return False
    return True


def _hint_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _hosts_of(sess, uuids: list[str]) -> set[str]:
    if not uuids:
        return set()
    return {h for h in sess.scalars(select(Instance.host).where(Instance.uuid.in_(uuids),
                                                               Instance.deleted.is_(False))) if h}


def select_destinations(spec: RequestSpec) -> list[HostState]:
    """Candidates in preference order; raises `NoValidHost` when none passes the filters."""
    with current().db.session() as sess:
        states = _host_states(sess)
        group_hosts: dict[str, int] = {}
        if spec.group is not None:
            others = [m for m in spec.group.members if m != spec.instance_uuid]
            if others:
                for h in sess.scalars(select(Instance.host).where(Instance.uuid.in_(others),
                                                                   Instance.deleted.is_(False))):
                    if h:
                        group_hosts[h] = group_hosts.get(h, 0) + 1
        same = _hosts_of(sess, _hint_list(spec.hints.get("same_host")))
        different = _hosts_of(sess, _hint_list(spec.hints.get("different_host")))
    passed = []
    for hs in states:
        why = None
        if spec.force_hosts and hs.host not in spec.force_hosts:
            why = "force_hosts"
        elif spec.force_nodes and hs.node.hypervisor_hostname not in spec.force_nodes:
            why = "force_nodes"
        elif hs.host in spec.ignore_hosts:
            why = "ignore_hosts"
        elif hs.service.disabled or not service_is_up(hs.service):
            why = "ComputeFilter"
        elif spec.availability_zone and hs.az != spec.availability_zone:
            why = "AvailabilityZoneFilter"
        else:
            ok, why = _fits(hs, spec.flavor)
            if ok:
                why = None
                if not _extra_specs_match(hs, spec.flavor.get("extra_specs") or {}):
                    why = "AggregateInstanceExtraSpecsFilter"
                elif not _image_props_match(hs, spec.image_props):
                    why = "ImagePropertiesFilter"
                elif same and hs.host not in same:
                    why = "SameHostFilter"
                elif different and hs.host in different:
                    why = "DifferentHostFilter"
                elif spec.group is not None:
                    here = group_hosts.get(hs.host, 0)
                    hs.group_members_here = here
                    if spec.group.policy == "affinity" and group_hosts and here == 0:
                        why = "ServerGroupAffinityFilter"
                    elif spec.group.policy == "anti-affinity" and here >= spec.group.max_server_per_host:
                        why = "ServerGroupAntiAffinityFilter"
        if why:
            log.debug("host %s filtered out by %s for %s", hs.host, why, spec.instance_uuid)
            continue
        passed.append(hs)
    if not passed:
        raise NoValidHost()
    return sorted(passed, key=lambda hs: _weigh(hs, spec), reverse=True)


def _weigh(hs: HostState, spec: RequestSpec) -> tuple:
    max_cpu, max_ram, _ = hosts.limits(hs.node)
    soft = 0
    if spec.group is not None:
        if spec.group.policy == "soft-affinity":
            soft = hs.group_members_here
        elif spec.group.policy == "soft-anti-affinity":
            soft = -hs.group_members_here
    return (soft, max_ram - hs.node.memory_mb_used, max_cpu - hs.node.vcpus_used, -hs.node.id)


def schedule_and_claim(spec: RequestSpec) -> ComputeNode:
    """Pick a node and claim the flavor on it; retries the next candidate when a concurrent
    claim took the room first. Raises `NoValidHost` when nothing fits any more."""
    for _round in range(3):
        candidates = select_destinations(spec)
        for hs in candidates:
            if hosts.claim(hs.node, spec.flavor):
                return hs.node
    raise NoValidHost()
