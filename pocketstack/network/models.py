"""Network's tables. Every table name starts with `network_` (the migration env keys on it)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.common.db import Base, JSONText, UTCDateTime, utcnow  # noqa: F401


# ---------------------------------------------------------------------------- security groups, routers,
# floating IPs, RBAC, auto-allocated topology (security_groups.py, routers.py, floating_ips.py, rbac.py,
# auto_allocate.py). Standard attributes (description, revision_number, timestamps) are columns here.
class _StdAttrs:
    description: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    revision_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class SecurityGroup(_StdAttrs, Base):
    __tablename__ = "network_security_group"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    stateful: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class DefaultSecurityGroup(Base):
    """One row per project: its `default` group. The primary key makes "create on first
    use" race-free (two concurrent first uses: one insert wins, the other re-reads)."""

    __tablename__ = "network_default_security_group"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("network_security_group.id", ondelete="CASCADE"), nullable=False, unique=True)


class SecurityGroupRule(_StdAttrs, Base):
    __tablename__ = "network_security_group_rule"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    security_group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("network_security_group.id", ondelete="CASCADE"), nullable=False, index=True)
    remote_group_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("network_security_group.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(16), nullable=False)
    ethertype: Mapped[str] = mapped_column(String(8), nullable=False)
    protocol: Mapped[str | None] = mapped_column(String(40))
    port_range_min: Mapped[int | None] = mapped_column(Integer)
    port_range_max: Mapped[int | None] = mapped_column(Integer)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(255))


class SecurityGroupPortBinding(Base):
    """Which groups a port is in (the port's `security_groups`); the core's ports write it
    through `security_groups.bind_port`, compute reads it for a server's groups."""

    __tablename__ = "network_security_group_port_binding"
    port_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_security_group.id"),
                                                   primary_key=True, index=True)


class Router(_StdAttrs, Base):
    __tablename__ = "network_router"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="ACTIVE")
    gw_port_id: Mapped[str | None] = mapped_column(String(36))
    gw_network_id: Mapped[str | None] = mapped_column(String(36), index=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    distributed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    ha: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    availability_zone_hints: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)


class RouterRoute(Base):
    """An extra route (`routes` attribute): destination CIDR via a next hop."""

    __tablename__ = "network_router_route"
    router_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_router.id", ondelete="CASCADE"),
                                           primary_key=True)
    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    nexthop: Mapped[str] = mapped_column(String(64), primary_key=True)


class RouterPort(Base):
    """A port the router owns: its interfaces (`network:router_interface`) and its gateway
    (`network:router_gateway`). The port itself lives in the core's port table."""

    __tablename__ = "network_router_port"
    port_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    router_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_router.id", ondelete="CASCADE"),
                                           nullable=False, index=True)
    port_type: Mapped[str] = mapped_column(String(64), nullable=False)


class FloatingIP(_StdAttrs, Base):
    __tablename__ = "network_floating_ip"
    __table_args__ = (UniqueConstraint("floating_network_id", "floating_ip_address", name="uq_network_fip_address"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    floating_ip_address: Mapped[str] = mapped_column(String(64), nullable=False)
    floating_network_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    floating_port_id: Mapped[str] = mapped_column(String(36), nullable=False)
    fixed_port_id: Mapped[str | None] = mapped_column(String(36), index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64))
    router_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="DOWN")


class RbacPolicy(Base):
    """Neutron's RBAC entry: `action` on `object_type` `object_id` granted to
    `target_project` (a project id or `*`)."""

    __tablename__ = "network_rbac_policy"
    __table_args__ = (UniqueConstraint("object_type", "object_id", "action", "target_project",
                              name="uq_network_rbac_policy"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    object_type: Mapped[str] = mapped_column(String(64), nullable=False)
    object_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(255), nullable=False)
    target_project: Mapped[str] = mapped_column(String(255), nullable=False, index=True)


class AutoAllocatedTopology(Base):
    __tablename__ = "network_auto_allocated_topology"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    network_id: Mapped[str | None] = mapped_column(String(36))
    router_id: Mapped[str | None] = mapped_column(String(36))


class Agent(Base):
    """A dataplane agent (`/v2.0/agents`): the configured backend's agents on this host
    report (heartbeat, configurations) when agents are read; admins may disable or delete them."""

    __tablename__ = "network_agent"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_network_agent_host_binary"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    binary: Mapped[str] = mapped_column(String(255), nullable=False)
    agent_type: Mapped[str] = mapped_column(String(255), nullable=False)
    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    description: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    heartbeat_timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    configurations: Mapped[dict | None] = mapped_column(JSONText)


class DhcpAgentNetwork(Base):
    """An admin's choice of whether a DHCP agent serves a network (dhcp_agent_scheduler);
    without a row, the local DHCP agent serves every network that has a DHCP port."""

    __tablename__ = "network_dhcp_agent_network"
    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_agent.id", ondelete="CASCADE"),
                                          primary_key=True)
    network_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hosted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


# ---------------------------------------------------------------------------- core: networks, segments,
# subnets, IP allocations, ports, subnet pools, quotas, tags (networks.py, subnets.py, ports.py, ipam.py,
# subnetpools.py, api/resource.py).
class Network(_StdAttrs, Base):
    __tablename__ = "network_network"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="", index=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    external: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)  # router:external
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    mtu: Mapped[int] = mapped_column(Integer, nullable=False, default=1500)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    dns_domain: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    availability_zone_hints: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)


class Segment(Base):
    """A network's provider segment. `alloc_key` ("vlan:physnet1:101", "flat:physnet1",
    "vxlan::5001") is unique: the database, not a read-then-write, guarantees that two
    networks never get the same VLAN/VNI or flat physical network. Local segments have none."""

    __tablename__ = "network_segment"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_network.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    network_type: Mapped[str] = mapped_column(String(32), nullable=False)
    physical_network: Mapped[str | None] = mapped_column(String(64))
    segmentation_id: Mapped[int | None] = mapped_column(Integer)
    segment_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    alloc_key: Mapped[str | None] = mapped_column(String(128), unique=True)


class Subnet(_StdAttrs, Base):
    __tablename__ = "network_subnet"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    network_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_network.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    ip_version: Mapped[int] = mapped_column(Integer, nullable=False)
    cidr: Mapped[str] = mapped_column(String(64), nullable=False)
    gateway_ip: Mapped[str | None] = mapped_column(String(64))
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(16))
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(16))
    subnetpool_id: Mapped[str | None] = mapped_column(String(36), index=True)
    segment_id: Mapped[str | None] = mapped_column(String(36))
    allocation_pools: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)  # [{start, end}]
    dns_nameservers: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)
    host_routes: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)  # [{destination, nexthop}]
    service_types: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)


class Port(_StdAttrs, Base):
    __tablename__ = "network_port"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uq_network_port_mac"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    network_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_network.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    mac_address: Mapped[str] = mapped_column(String(32), nullable=False)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), nullable=False, default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), nullable=False, default="", index=True)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    binding_host_id: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    binding_vif_type: Mapped[str] = mapped_column(String(64), nullable=False, default="unbound")
    binding_vif_details: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    binding_vnic_type: Mapped[str] = mapped_column(String(64), nullable=False, default="normal")
    binding_profile: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    allowed_address_pairs: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)
    extra_dhcp_opts: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)
    dns_name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    # created by compute for a server (deleted when the server goes), not passed in by the user
    compute_owned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class IPAllocation(Base):
    """One address held by one port. The primary key (network, address) is the race-free
    guard of IPAM: two concurrent creates that pick the same address cannot both insert."""

    __tablename__ = "network_ip_allocation"
    network_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_network.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    subnet_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_subnet.id"), nullable=False, index=True)
    port_id: Mapped[str] = mapped_column(String(36), ForeignKey("network_port.id", ondelete="CASCADE"),
                                         nullable=False, index=True)


class SubnetPool(_StdAttrs, Base):
    __tablename__ = "network_subnet_pool"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    ip_version: Mapped[int] = mapped_column(Integer, nullable=False)
    prefixes: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)
    default_prefixlen: Mapped[int] = mapped_column(Integer, nullable=False)
    min_prefixlen: Mapped[int] = mapped_column(Integer, nullable=False)
    max_prefixlen: Mapped[int] = mapped_column(Integer, nullable=False)
    shared: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    default_quota: Mapped[int | None] = mapped_column(Integer)
    address_scope_id: Mapped[str | None] = mapped_column(String(36))


class Quota(Base):
    __tablename__ = "network_quota"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit: Mapped[int] = mapped_column(Integer, nullable=False)


class Tag(Base):
    """Tags of any network resource (standard-attr-tag), keyed by resource type and id."""

    __tablename__ = "network_tag"
    resource_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
