"""Compute's tables. Every table name starts with `compute_` (the migration env keys on it).

Sections are owned by the modules that use them: hosts (services and compute nodes, shared
by the scheduler, the host agents and the os-services / os-hypervisors APIs) first, then
servers, flavors, keypairs, quotas, aggregates, server groups, ...
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String, Text, UniqueConstraint
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
