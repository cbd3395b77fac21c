"""The Networking service's public Python interface, and the contract Compute calls.

Compute never touches network tables; it calls these functions (each runs in one database
transaction, joining the caller's when there is one):

    validate_requested_networks(ctx, project_id, requested) -> None
    allocate_for_instance(ctx, *, instance_id, project_id, host, requested,
                          security_groups=None, availability_zone="nova") -> list[vif]
    deallocate_for_instance(ctx, instance_id) -> None
    get_instance_nw_info(instance_id) -> list[vif]
    attach_interface(ctx, instance_id, project_id, host, *, net_id=None, port_id=None,
                     fixed_ip=None, availability_zone="nova") -> vif
    detach_interface(ctx, instance_id, port_id) -> None

For a dataplane backend (with routers.router_sync_data): `network_sync_data(net_id)` and
`port_sync_data(port_id)` describe what to build, after the events that name those ids.

`requested` is "auto", "none" or a list of `{"uuid"?, "port"?, "fixed_ip"?, "tag"?}`.
A vif is `{"id", "address", "type", "active", "devname", "network": {"id", "label", "mtu",
"subnets": [{"cidr", "gateway", "version", "dns_nameservers", "routes", "ips": [{"address",
"type": "fixed", "version", "floating_ips": [{"address", "type": "floating", "version"}]}]}]},
"tag"}`. Ports compute creates are marked `compute_owned` and deleted with the server;
ports the user passed in are only unbound. Errors are `ApiError`s with Neutron's `type`.

The security-group functions come from `security_groups` (re-exported below).
"""
from __future__ import annotations

import ipaddress

from sqlalchemy import select

from pocketstack.common.runtime import current
from pocketstack.network import ipam, networks, ports, subnetpools, subnets
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

try:  # the security-group half of the interface (network services helper)
    from pocketstack.network.security_groups import (  # noqa: F401
        add_security_group_to_instance,
        create_security_group,
        create_security_group_rule,
        delete_security_group,
        delete_security_group_rule,
        ensure_default_security_group,
        get_security_group,
        instance_security_groups,
        list_security_groups,
        remove_security_group_from_instance,
        update_security_group,
    )
except ImportError:  # pragma: no cover - only while that module does not exist
    pass


def session():
    return current().db.session()


# ---------------------------------------------------------------------------- registration
EXTENSIONS = [
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    ("standard-attr-tag", "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, "
     "router, network, policy, subnetpool, port, security_group, floatingip", "Enables to set tag on resources "
     "with standard attribute."),
    ("tag", "Tag support", "Enables to set tag on resources."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron "
     "resources that have Neutron standard attributes."),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of "
     "neutron resources."),
    ("revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match "
     "based on revision_number is supported."),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    ("port-security", "Port Security", "Provides port security"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot "
     "options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."),
    ("network-ip-availability", "Network IP Availability", "Provides IP availability data for each network and "
     "subnet."),
    ("quotas", "Quota management support", "Expose functions for quotas management per project"),
    ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per "
     "project"),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters."),
    ("ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when "
     "listing ports"),
    ("subnet-service-types", "Subnet service types", "Provides ability to set the subnet service_types field"),
    ("empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by attributes with empty "
     "string value"),
    ("network-availability-zone", "Network Availability Zone", "Availability zone support for network."),
    ("ip_allocation", "IP Allocation", "IP allocation extension."),
    ("service-type", "Neutron Service Type Management", "API for retrieving service providers for Neutron "
     "advanced services"),
]


def register() -> None:
    """Extensions, quota resources and tag targets of the core resources (idempotent)."""
    for alias, name, desc in EXTENSIONS:
        r.register_extension(alias, name, desc)
    r.register_quota_resource("network", 100, networks.count)
    r.register_quota_resource("subnet", 100, subnets.count)
    r.register_quota_resource("port", 500, ports.count)
    r.register_quota_resource("subnetpool", -1, subnetpools.count)
    r.register_tags("networks", "network", networks.get_visible, lambda sess, row: networks.policy_target(row))
    r.register_tags("subnets", "subnet", subnets.get_visible, subnets.policy_target)
    r.register_tags("ports", "port", ports.get_visible, lambda sess, row: ports.policy_target(sess, row))
    r.register_tags("subnetpools", "subnetpool", subnetpools.get_visible,
                    lambda sess, row: subnetpools.policy_target(row))


# ---------------------------------------------------------------------------- nw info
def _vifs(sess, port_rows: list[m.Port], tags: dict | None = None) -> list[dict]:
    if not port_rows:
        return []
    ids = [p.id for p in port_rows]
    allocs = list(sess.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id.in_(ids))))
    subnet_ids = {a.subnet_id for a in allocs}
    subs = {s.id: s for s in sess.scalars(select(m.Subnet).where(m.Subnet.id.in_(subnet_ids or [""])))}
    nets = {n.id: n for n in sess.scalars(select(m.Network).where(
        m.Network.id.in_({p.network_id for p in port_rows})))}
    fips: dict[tuple[str, str], list[str]] = {}
    for fip in sess.scalars(select(m.FloatingIP).where(m.FloatingIP.fixed_port_id.in_(ids))):
        fips.setdefault((fip.fixed_port_id, fip.fixed_ip_address), []).append(fip.floating_ip_address)
    out = []
    for p in port_rows:
        net = nets.get(p.network_id)
        by_subnet: dict[str, dict] = {}
        mine = sorted((a for a in allocs if a.port_id == p.id),
                      key=lambda a: (ipaddress.ip_address(a.ip_address).version, ipaddress.ip_address(a.ip_address)))
        for a in mine:
            s = subs[a.subnet_id]
            entry = by_subnet.setdefault(s.id, {
                "cidr": s.cidr, "gateway": s.gateway_ip, "version": s.ip_version,
                "dns_nameservers": list(s.dns_nameservers), "routes": [dict(h) for h in s.host_routes],
                "enable_dhcp": s.enable_dhcp, "ips": []})
            entry["ips"].append({"address": a.ip_address, "type": "fixed", "version": s.ip_version,
                                 "floating_ips": [{"address": f, "type": "floating", "version": 4}
                                                  for f in fips.get((p.id, a.ip_address), [])]})
        out.append({"id": p.id, "address": p.mac_address, "type": p.binding_vif_type or "bridge",
                    "active": p.status == "ACTIVE", "devname": f"tap{p.id[:11]}",
                    "vnic_type": p.binding_vnic_type,
                    "network": {"id": p.network_id, "label": net.name if net else "", "mtu": net.mtu if net else 1500,
                                "subnets": list(by_subnet.values())},
                    "tag": (tags or {}).get(p.id)})
    return out


def _instance_ports(sess, instance_id: str) -> list[m.Port]:
    return list(sess.scalars(select(m.Port).where(m.Port.device_id == instance_id,
                                                  m.Port.device_owner.startswith("compute:"))
                             .order_by(m.Port.created_at, m.Port.id)))


def get_instance_nw_info(instance_id: str) -> list[dict]:
    with session() as sess:
        return _vifs(sess, _instance_ports(sess, instance_id))


def get_instances_nw_info(instance_ids: list[str]) -> dict[str, list[dict]]:
    """`get_instance_nw_info` for many servers (a server list page): a few queries per 100
    ports instead of a few per server."""
    out: dict[str, list[dict]] = {i: [] for i in instance_ids}
    with session() as sess:
        rows: list[m.Port] = []
        ids = list(out)
        for k in range(0, len(ids), 500):
            rows += sess.scalars(select(m.Port).where(m.Port.device_id.in_(ids[k:k + 500]),
                                                      m.Port.device_owner.startswith("compute:"))
                                 .order_by(m.Port.created_at, m.Port.id))
        for k in range(0, len(rows), 100):
            chunk = rows[k:k + 100]
            for port, vif in zip(chunk, _vifs(sess, chunk)):
                out[port.device_id].append(vif)
    return out


def instances_security_group_names(instance_ids: list[str]) -> dict[str, list[str]]:
    """The names of the groups on each server's ports (each group once, in name order), for
    the servers that have ports: `instance_security_groups` batched for a server list."""
    found: dict[str, dict[str, str]] = {}
    ids = list(instance_ids)
    with session() as sess:
        for k in range(0, len(ids), 500):
            stmt = (select(m.Port.device_id, m.SecurityGroup.id, m.SecurityGroup.name)
                    .join(m.SecurityGroupPortBinding, m.SecurityGroupPortBinding.port_id == m.Port.id)
                    .join(m.SecurityGroup, m.SecurityGroup.id == m.SecurityGroupPortBinding.security_group_id)
                    .where(m.Port.device_id.in_(ids[k:k + 500]), m.Port.device_owner.like("compute:%")))
            for device_id, sg_id, name in sess.execute(stmt):
                found.setdefault(device_id, {})[sg_id] = name
    return {i: [name for name, _ in sorted((n, s) for s, n in g.items())] for i, g in found.items()}


# ---------------------------------------------------------------------------- validation
def _port_in_use(port_id: str):
    return r.neutron_error(409, "PortInUse", f"Unable to complete operation on port {port_id} for network "
                                             "because it is in use.")


def _requires_subnet(net_id: str):
    return r.neutron_error(400, "NetworkRequiresSubnet",
                           f"Network {net_id} requires a subnet in order to boot instances on.")


def _check_entry(sess, ctx, entry: dict) -> None:
    if not isinstance(entry, dict):
        raise r.BadRequest(f"Bad networks format: '{entry}'")
    port_id, net_id, fixed_ip = entry.get("port"), entry.get("uuid"), entry.get("fixed_ip")
    if port_id:
        port = ports.get_visible(sess, ctx, port_id)
        if port.device_id or port.device_owner:
            raise _port_in_use(port_id)
        if net_id and port.network_id != net_id:
            raise r.InvalidInput(f"Port {port_id} is not on network {net_id}")
        return
    if not net_id:
        raise r.BadRequest("Bad networks format: network uuid or port is required")
    net = networks.get_visible(sess, ctx, net_id)
    if not networks.shared_with(sess, ctx, net):
        raise networks.net_not_found(net_id)
    subs = list(sess.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id)))
    if not subs:
        raise _requires_subnet(net.id)
    if fixed_ip:
        try:
            addr = ipaddress.ip_address(fixed_ip)
        except ValueError:
            raise r.neutron_error(400, "InvalidIpAddress", f"{fixed_ip} is not a valid IP address") from None
        match = [s for s in subs if addr in ipaddress.ip_network(s.cidr)]
        if not match:
            raise ipam.invalid_ip_for_network(fixed_ip)
        if sess.get(m.IPAllocation, (net.id, str(addr))) is not None or match[0].gateway_ip == str(addr):
            raise r.neutron_error(409, "IpAddressAlreadyAllocated",
                                  f"IP address {fixed_ip} already allocated in subnet {match[0].id}")


def validate_requested_networks(ctx, project_id: str, requested) -> None:
    """Everything that can be checked before a server is created (404/409/400 errors)."""
    if requested in ("auto", "none", None):
        if requested == "auto":
            with session() as sess:
                _auto_network(sess, ctx, project_id, create=False)
        return
    if not isinstance(requested, list):
        raise r.BadRequest("Bad networks format")
    with session() as sess:
        seen_ports = set()
        for entry in requested:
            _check_entry(sess, ctx, entry)
            if isinstance(entry, dict) and entry.get("port"):
                if entry["port"] in seen_ports:
                    raise _port_in_use(entry["port"])
                seen_ports.add(entry["port"])


def _auto_network_id(ctx, project_id: str) -> str:
    """The network `networks=auto` means, building the auto-allocated topology outside
    any other transaction (it settles a concurrent build itself)."""
    with session() as sess:
        net = _auto_network(sess, ctx, project_id, create=False)
        if net is not None:
            return net.id
    from pocketstack.network import auto_allocate

    return auto_allocate.get_or_create_topology(ctx, project_id)


def _auto_network(sess, ctx, project_id: str, create: bool = True) -> m.Network | None:
    """`networks=auto`: the project's only network, else the only shared one, else the
    auto-allocated topology ("get me a network")."""
    own = list(sess.scalars(select(m.Network).where(m.Network.project_id == project_id,
                                                    m.Network.external.is_(False))))
    if len(own) > 1:
        raise r.neutron_error(409, "NetworkAmbiguous",
                              "Multiple possible networks found, use a Network ID to be more specific.")
    if own:
        return own[0]
    shared = list(sess.scalars(select(m.Network).where(m.Network.shared.is_(True), m.Network.external.is_(False))))
    if len(shared) > 1:
        raise r.neutron_error(409, "NetworkAmbiguous",
                              "Multiple possible networks found, use a Network ID to be more specific.")
    if shared:
        return shared[0]
    if not create:
        return None
    try:
        from pocketstack.network import auto_allocate
    except ImportError:
        auto_allocate = None
    if auto_allocate is not None and hasattr(auto_allocate, "get_or_create_topology"):
        return sess.get(m.Network, auto_allocate.get_or_create_topology(ctx, project_id))
    return _simple_private_network(sess, project_id)


def _simple_private_network(sess, project_id: str) -> m.Network:
    data = networks.RESOURCE.parse_create({"network": {"name": "auto_allocated_network",
                                                       "project_id": project_id}}, None)
    net = networks.create(sess, None, data)
    sdata = subnets.RESOURCE.parse_create({"subnet": {"network_id": net.id, "ip_version": 4,
                                                      "cidr": "10.0.0.0/24", "name": "auto_allocated_subnet",
                                                      "project_id": project_id}}, None)
    subnets.create(sess, None, sdata)
    r.emit("network", "created", {"id": net.id, "project_id": project_id, "auto_allocated": True})
    return net


# ---------------------------------------------------------------------------- allocate / deallocate
def _resolve_groups(ctx, project_id: str, security_groups) -> list[str] | None:
    try:
        from pocketstack.network import security_groups as sgmod
    except ImportError:
        return None
    names = security_groups if security_groups else ["default"]
    out = []
    for ref in names:
        ref = ref.get("name") if isinstance(ref, dict) else ref
        if ref == "default":
            out.append(sgmod.ensure_default_security_group(project_id))
        else:
            out.append(sgmod.get_security_group(ctx, ref, project_id)["id"])
    return list(dict.fromkeys(out))


def _create_port(sess, ctx, *, net_id: str, project_id: str, instance_id: str, host: str, az: str,
                 fixed_ip: str | None, groups: list[str] | None) -> m.Port:
    net = networks.get_visible(sess, ctx, net_id)
    if not networks.shared_with(sess, ctx, net):
        raise networks.net_not_found(net_id)
    body: dict = {"network_id": net.id, "device_id": instance_id, "device_owner": f"compute:{az}",
                  "project_id": project_id, "binding:host_id": host or ""}
    if fixed_ip:
        body["fixed_ips"] = [{"ip_address": fixed_ip}]
    data = ports.RESOURCE.parse_create({"port": body}, None)
    r.check_quota(sess, project_id, "port", 1)
    port = ports.create(sess, None, data)
    port.compute_owned = True
    if groups is not None and port.port_security_enabled:
        from pocketstack.network import security_groups as sgmod
        sgmod.bind_port(port.id, groups)
    return port


def _bind_existing(sess, ctx, port_id: str, instance_id: str, host: str, az: str) -> m.Port:
    port = ports.get_visible(sess, ctx, port_id)
    if port.device_id or port.device_owner:
        raise _port_in_use(port_id)
    port.device_id = instance_id
    port.device_owner = f"compute:{az}"
    port.compute_owned = False
    ports.apply_binding(port, host)
    r.bump_revision(port)
    return port


def allocate_for_instance(ctx, *, instance_id: str, project_id: str, host: str, requested,
                          security_groups=None, availability_zone: str = "nova") -> list[dict]:
    """Create or bind the server's ports (all or nothing) and return its vifs."""
    if requested in ("none", None) or requested == []:
        return []
    groups = _resolve_groups(ctx, project_id, security_groups)
    made, tags = [], {}
    if requested == "auto":
        # resolved in its own transaction: when several builds of one project race to
        # create the auto-allocated topology, the losers must see the winner's commit
        requested = [{"uuid": _auto_network_id(ctx, project_id)}]
    with session() as sess:
        entries = requested
        for entry in entries:
            _check_entry(sess, ctx, entry)
            if entry.get("port"):
                port = _bind_existing(sess, ctx, entry["port"], instance_id, host, availability_zone)
            else:
                port = _create_port(sess, ctx, net_id=entry["uuid"], project_id=project_id, instance_id=instance_id,
                                    host=host, az=availability_zone, fixed_ip=entry.get("fixed_ip"), groups=groups)
            made.append(port)
            if entry.get("tag"):
                tags[port.id] = entry["tag"]
        sess.flush()
        vifs = _vifs(sess, made, tags)
    for port in made:
        r.emit("port", "updated" if not port.compute_owned else "created",
               {"id": port.id, "device_id": instance_id, "network_id": port.network_id}, ctx)
    return vifs


def _release(sess, port: m.Port) -> str:
    if port.compute_owned:
        ports.delete_row(sess, port)
        return "deleted"
    port.device_id = ""
    port.device_owner = ""
    ports.apply_binding(port, None)
    r.bump_revision(port)
    return "updated"


def deallocate_for_instance(ctx, instance_id: str) -> None:
    """Delete the ports compute created for the server; unbind those the user passed in."""
    done = []
    with session() as sess:
        for port in _instance_ports(sess, instance_id):
            done.append((port.id, _release(sess, port)))
    for port_id, action in done:
        r.emit("port", action, {"id": port_id, "device_id": instance_id}, ctx)


def attach_interface(ctx, instance_id: str, project_id: str, host: str, *, net_id: str | None = None,
                     port_id: str | None = None, fixed_ip: str | None = None,
                     availability_zone: str = "nova", tag: str | None = None) -> dict:
    entry: dict = {}
    if port_id:
        entry["port"] = port_id
    elif net_id:
        entry["uuid"] = net_id
        if fixed_ip:
            entry["fixed_ip"] = fixed_ip
    else:
        with session() as sess:
            net = _auto_network(sess, ctx, project_id, create=False)
            if net is None:
                raise r.neutron_error(404, "NetworkNotFound", "No network is available for the interface.")
            entry["uuid"] = net.id
    if tag:
        entry["tag"] = tag
    groups = None if port_id else _resolve_groups(ctx, project_id, None)
    with session() as sess:
        _check_entry(sess, ctx, entry)
        if port_id:
            port = _bind_existing(sess, ctx, port_id, instance_id, host, availability_zone)
        else:
            port = _create_port(sess, ctx, net_id=entry["uuid"], project_id=project_id, instance_id=instance_id,
                                host=host, az=availability_zone, fixed_ip=fixed_ip, groups=groups)
        sess.flush()
        vif = _vifs(sess, [port], {port.id: tag} if tag else None)[0]
    r.emit("port", "created" if not port_id else "updated", {"id": vif["id"], "device_id": instance_id}, ctx)
    return vif


def detach_interface(ctx, instance_id: str, port_id: str) -> None:
    with session() as sess:
        port = sess.get(m.Port, port_id)
        if port is None or port.device_id != instance_id:
            raise ports.port_not_found(port_id)
        action = _release(sess, port)
    r.emit("port", action, {"id": port_id, "device_id": instance_id}, ctx)


# ---------------------------------------------------------------------------- dataplane views
def network_sync_data(net_id: str) -> dict | None:
    """What an L2/DHCP dataplane needs for one network (bridge, VLAN or VXLAN; a dnsmasq per
    DHCP subnet): segments, MTU, subnets, and the DHCP host entries (MAC -> address, host
    name, extra options). None when the network is gone. A backend calls it on the
    `network.network.*`, `network.subnet.*` and `network.port.*` events."""
    with session() as sess:
        net = sess.get(m.Network, net_id)
        if net is None:
            return None
        segs = sess.scalars(select(m.Segment).where(m.Segment.network_id == net.id)
                            .order_by(m.Segment.segment_index)).all()
        subs = sess.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id)
                            .order_by(m.Subnet.created_at, m.Subnet.id)).all()
        hosts = []
        rows = sess.execute(select(m.IPAllocation, m.Port).join(m.Port, m.Port.id == m.IPAllocation.port_id)
                            .where(m.IPAllocation.network_id == net.id)
                            .order_by(m.IPAllocation.ip_address)).all()
        for alloc, port in rows:
            hosts.append({"port_id": port.id, "mac_address": port.mac_address, "ip_address": alloc.ip_address,
                          "subnet_id": alloc.subnet_id, "device_owner": port.device_owner,
                          "hostname": port.dns_name or "host-" + alloc.ip_address.replace(".", "-").replace(":", "-"),
                          "extra_dhcp_opts": [dict(o) for o in port.extra_dhcp_opts]})
        return {"id": net.id, "project_id": net.project_id, "admin_state_up": net.admin_state_up, "mtu": net.mtu,
                "external": net.external, "shared": net.shared,
                "segments": [{"network_type": x.network_type, "physical_network": x.physical_network,
                              "segmentation_id": x.segmentation_id} for x in segs],
                "subnets": [{"id": x.id, "ip_version": x.ip_version, "cidr": x.cidr, "gateway_ip": x.gateway_ip,
                             "enable_dhcp": x.enable_dhcp, "dns_nameservers": list(x.dns_nameservers),
                             "host_routes": [dict(h) for h in x.host_routes], "ipv6_ra_mode": x.ipv6_ra_mode,
                             "ipv6_address_mode": x.ipv6_address_mode} for x in subs],
                "dhcp_hosts": hosts}


def port_sync_data(port_id: str) -> dict | None:
    """What plugging one port needs (tap device on the network's bridge, anti-spoofing and
    security-group filtering): MAC, addresses, host, groups, allowed address pairs."""
    with session() as sess:
        port = sess.get(m.Port, port_id)
        if port is None:
            return None
        ips = [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in sess.scalars(
            select(m.IPAllocation).where(m.IPAllocation.port_id == port.id).order_by(m.IPAllocation.ip_address))]
        groups = list(sess.scalars(select(m.SecurityGroupPortBinding.security_group_id).where(
            m.SecurityGroupPortBinding.port_id == port.id).order_by(m.SecurityGroupPortBinding.security_group_id)))
        return {"id": port.id, "network_id": port.network_id, "mac_address": port.mac_address, "fixed_ips": ips,
                "admin_state_up": port.admin_state_up, "status": port.status, "host": port.binding_host_id,
                "vif_type": port.binding_vif_type, "vnic_type": port.binding_vnic_type,
                "device_id": port.device_id, "device_owner": port.device_owner,
                "devname": f"tap{port.id[:11]}", "port_security_enabled": port.port_security_enabled,
                "security_groups": groups, **_security_view(sess, groups),
                "allowed_address_pairs": [{"ip_address": a["ip_address"],
                                           "mac_address": a.get("mac_address") or port.mac_address}
                                          for a in port.allowed_address_pairs]}


def _security_view(sess, group_ids: list[str]) -> dict:
    """For a firewall: the rules of `group_ids` and, per remote group they name, its members'
    addresses (fixed IPs and allowed address pairs of every port in that group)."""
    rules = list(sess.scalars(select(m.SecurityGroupRule).where(m.SecurityGroupRule.security_group_id.in_(
        group_ids or [""])).order_by(m.SecurityGroupRule.id)))
    remote = sorted({x.remote_group_id for x in rules if x.remote_group_id})
    members: dict[str, set[str]] = {g: set() for g in remote}
    for gid, port in sess.execute(select(m.SecurityGroupPortBinding.security_group_id, m.Port).join(
            m.Port, m.Port.id == m.SecurityGroupPortBinding.port_id).where(
            m.SecurityGroupPortBinding.security_group_id.in_(remote or [""]))):
        members[gid].update(a["ip_address"] for a in port.allowed_address_pairs)
        members[gid].update(sess.scalars(select(m.IPAllocation.ip_address).where(m.IPAllocation.port_id == port.id)))
    return {"security_group_rules": [{"security_group_id": x.security_group_id, "direction": x.direction,
                                      "ethertype": x.ethertype, "protocol": x.protocol,
                                      "port_range_min": x.port_range_min, "port_range_max": x.port_range_max,
                                      "remote_ip_prefix": x.remote_ip_prefix, "remote_group_id": x.remote_group_id}
                                     for x in rules],
            "remote_group_members": {g: sorted(ips) for g, ips in members.items()}}


def port_by_fixed_ip(network_ids: list[str], ip_address: str) -> dict | None:
    """The port holding `ip_address` on one of `network_ids` (the metadata proxy's "which
    instance is asking"): {"id", "network_id", "device_id", "device_owner", "project_id"}."""
    with session() as sess:
        row = sess.execute(select(m.Port).join(m.IPAllocation, m.IPAllocation.port_id == m.Port.id).where(
            m.IPAllocation.network_id.in_(network_ids or [""]), m.IPAllocation.ip_address == ip_address)).first()
        if row is None:
            return None
        port = row[0]
        return {"id": port.id, "network_id": port.network_id, "device_id": port.device_id,
                "device_owner": port.device_owner, "project_id": port.project_id}


# ---------------------------------------------------------------------------- small helpers for others
def get_network(ctx, net_id: str) -> dict:
    with session() as sess:
        return networks.render_one(sess, networks.get_visible(sess, ctx, net_id), ctx)


def list_networks(ctx) -> list[dict]:
    with session() as sess:
        return networks.render_many(sess, list(sess.scalars(networks.visible_query(ctx))), ctx)


def network_counts(project_id: str) -> dict:
    with session() as sess:
        return {"network": networks.count(sess, project_id), "port": ports.count(sess, project_id),
                "subnet": subnets.count(sess, project_id)}

