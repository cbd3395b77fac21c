"""Compute's tables. Every table name starts with `compute_` (the migration env keys on it).

Sections are owned by the modules that use them: hosts (services and compute nodes, shared
by the scheduler, the host agents and the os-services / os-hypervisors APIs) first, then
servers, flavors, keypairs, quotas, aggregates, server groups, ...
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.common.db import Base, JSONText, UTCDateTime, utcnow


# ---------------------------------------------------------------------------- hosts
class Service(Base):
    """One nova service on one host (`nova-compute` per compute host, `nova-scheduler`,
    `nova-conductor`): what os-services lists, disables and forces down. `last_seen_at` is
    the heartbeat: a service is `up` while it is recent (`[DEFAULT] service_down_time`)."""

    __tablename__ = "compute_service"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_compute_service_host_binary"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    binary: Mapped[str] = mapped_column(String(255), nullable=False)
    topic: Mapped[str | None] = mapped_column(String(255))
    zone: Mapped[str] = mapped_column(String(255), nullable=False, default="internal")
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    forced_down: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=66)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ComputeNode(Base):
    """A hypervisor (one per compute host for every driver we have): capacity reported by its
    virt driver, usage kept by the resource tracker as instances land and leave."""

    __tablename__ = "compute_node"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    hypervisor_type: Mapped[str] = mapped_column(String(255), nullable=False)
    hypervisor_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1000)
    host_ip: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="up")
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    local_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    vcpus_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    memory_mb_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cpu_allocation_ratio: Mapped[float] = mapped_column(JSONText, nullable=False, default=16.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(JSONText, nullable=False, default=1.5)
    disk_allocation_ratio: Mapped[float] = mapped_column(JSONText, nullable=False, default=1.0)
    cpu_info: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------------------- flavors
class Flavor(Base):
    """A flavor (Nova's instance type). `flavorid` is the public id clients use (the guide's
    "1".."5" or a uuid); `id` is only the internal key extra specs and access rows hang on."""

    __tablename__ = "compute_flavor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    root_gb: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    swap: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rxtx_factor: Mapped[float] = mapped_column(JSONText, nullable=False, default=1.0)
    vcpu_weight: Mapped[int | None] = mapped_column(Integer)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FlavorExtraSpec(Base):
    __tablename__ = "compute_flavor_extra_spec"
    flavor_id: Mapped[int] = mapped_column(Integer, ForeignKey("compute_flavor.id", ondelete="CASCADE"),
                                           primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class FlavorProject(Base):
    """A project allowed to use a private flavor (os-flavor-access)."""

    __tablename__ = "compute_flavor_project"
    flavor_id: Mapped[int] = mapped_column(Integer, ForeignKey("compute_flavor.id", ondelete="CASCADE"),
                                           primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)


# ---------------------------------------------------------------------------- keypairs
class KeyPair(Base):
    """A user's key pair (keypairs belong to users, not projects, as in Nova)."""

    __tablename__ = "compute_keypair"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_compute_keypair_user_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False, default="ssh")
    public_key: Mapped[str] = mapped_column(Text, nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# ---------------------------------------------------------------------------- quotas
class Quota(Base):
    """A project's (user_id "") or a project user's hard limit for one resource."""

    __tablename__ = "compute_quota"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "resource", name="uq_compute_quota"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaClass(Base):
    """Defaults per quota class; the `default` class is what every project starts with."""

    __tablename__ = "compute_quota_class"
    __table_args__ = (UniqueConstraint("class_name", "resource", name="uq_compute_quota_class"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    class_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaGuard(Base):
    """One row per project, written first by every quota check so that concurrent creates in
    one project serialise (row lock on PostgreSQL/MySQL, the write lock on SQLite) between
    counting usage and inserting the new rows."""

    __tablename__ = "compute_quota_guard"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


# ---------------------------------------------------------------------------- aggregates
class Aggregate(Base):
    __tablename__ = "compute_aggregate"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AggregateHost(Base):
    __tablename__ = "compute_aggregate_host"
    aggregate_id: Mapped[int] = mapped_column(Integer, ForeignKey("compute_aggregate.id", ondelete="CASCADE"),
                                              primary_key=True)
    host: Mapped[str] = mapped_column(String(255), primary_key=True)


class AggregateMetadata(Base):
    """Aggregate metadata; the `availability_zone` key puts the aggregate's hosts in that AZ."""

    __tablename__ = "compute_aggregate_metadata"
    aggregate_id: Mapped[int] = mapped_column(Integer, ForeignKey("compute_aggregate.id", ondelete="CASCADE"),
                                              primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


# ---------------------------------------------------------------------------- server groups
class ServerGroup(Base):
    """A server group: one policy (affinity, anti-affinity, soft-*) and its rules
    (`max_server_per_host` for anti-affinity, microversion 2.64)."""

    __tablename__ = "compute_server_group"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    policy: Mapped[str] = mapped_column(String(255), nullable=False)
    rules: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ServerGroupMember(Base):
    __tablename__ = "compute_server_group_member"
    group_id: Mapped[int] = mapped_column(Integer, ForeignKey("compute_server_group.id", ondelete="CASCADE"),
                                          primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


# ---------------------------------------------------------------------------- servers
class Instance(Base):
    """A server. `id` (an integer) only names it on its host (`instance-%08x`); the API uses
    `uuid`. Deleted servers stay (deleted=True) so `changes-since` and admins' `deleted=True`
    listings see them, as upstream's soft-deleted rows. The flavor is a snapshot taken at
    boot (resize keeps the old one in `old_flavor` until confirmed)."""

    __tablename__ = "compute_instance"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    display_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    hostname: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    description: Mapped[str | None] = mapped_column(Text)
    image_ref: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    flavor: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    old_flavor: Mapped[dict | None] = mapped_column(JSONText)
    new_flavor: Mapped[dict | None] = mapped_column(JSONText)
    # the flavor's size, denormalised so quotas count cores and RAM in SQL
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    key_name: Mapped[str | None] = mapped_column(String(255))
    key_data: Mapped[str | None] = mapped_column(Text)
    vm_state: Mapped[str] = mapped_column(String(32), nullable=False, default="building")
    task_state: Mapped[str | None] = mapped_column(String(32))
    power_state: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    host: Mapped[str | None] = mapped_column(String(255), index=True)
    node: Mapped[str | None] = mapped_column(String(255))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    pinned_availability_zone: Mapped[str | None] = mapped_column(String(255))
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    locked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    locked_by: Mapped[str | None] = mapped_column(String(16))
    locked_reason: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict] = mapped_column("metadata", JSONText, nullable=False, default=dict)
    tags: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)
    system_metadata: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    user_data: Mapped[str | None] = mapped_column(Text)
    config_drive: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    access_ip_v4: Mapped[str | None] = mapped_column(String(64))
    access_ip_v6: Mapped[str | None] = mapped_column(String(64))
    reservation_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    launch_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    security_groups: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)
    requested_networks: Mapped[object] = mapped_column(JSONText, nullable=True)
    scheduler_hints: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    disk_config: Mapped[str] = mapped_column(String(16), nullable=False, default="MANUAL")
    root_device_name: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InstanceFault(Base):
    """Why a server went to ERROR (`fault` in its show body while in ERROR)."""

    __tablename__ = "compute_instance_fault"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    code: Mapped[int] = mapped_column(Integer, nullable=False)
    message: Mapped[str] = mapped_column(String(255), nullable=False)
    details: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class InstanceAction(Base):
    """One user request on a server (os-instance-actions), keyed by its request id."""

    __tablename__ = "compute_instance_action"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(255))
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InstanceActionEvent(Base):
    """A step of an action (`compute_reboot_instance`, ...) with its result."""

    __tablename__ = "compute_instance_action_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    event: Mapped[str] = mapped_column(String(255), nullable=False)
    result: Mapped[str | None] = mapped_column(String(16))
    traceback: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Migration(Base):
    """A resize, cold migration, live migration or evacuation (os-migrations)."""

    __tablename__ = "compute_migration"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    project_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    source_compute: Mapped[str | None] = mapped_column(String(255))
    source_node: Mapped[str | None] = mapped_column(String(255))
    dest_compute: Mapped[str | None] = mapped_column(String(255))
    dest_node: Mapped[str | None] = mapped_column(String(255))
    dest_host: Mapped[str | None] = mapped_column(String(255))
    old_flavor_id: Mapped[str | None] = mapped_column(String(255))
    new_flavor_id: Mapped[str | None] = mapped_column(String(255))
    migration_type: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BlockDeviceMapping(Base):
    """A server's disks as requested (`block_device_mapping_v2`) and attached volumes; the
    block storage service plugs in through the volume rows (`destination_type` volume)."""

    __tablename__ = "compute_block_device_mapping"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    source_type: Mapped[str] = mapped_column(String(32), nullable=False)
    destination_type: Mapped[str | None] = mapped_column(String(32))
    device_name: Mapped[str | None] = mapped_column(String(255))
    device_type: Mapped[str | None] = mapped_column(String(32))
    disk_bus: Mapped[str | None] = mapped_column(String(32))
    boot_index: Mapped[int | None] = mapped_column(Integer)
    image_id: Mapped[str | None] = mapped_column(String(64))
    volume_id: Mapped[str | None] = mapped_column(String(64))
    snapshot_id: Mapped[str | None] = mapped_column(String(64))
    attachment_id: Mapped[str | None] = mapped_column(String(64))
    volume_size: Mapped[int | None] = mapped_column(Integer)
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    tag: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
