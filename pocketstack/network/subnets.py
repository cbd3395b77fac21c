"""Subnets: CIDR (given or from a subnet pool), gateway, allocation pools, DHCP, IPv6 modes.

Checks follow Neutron: the CIDR matches `ip_version`, no two subnets of one network overlap,
`gateway_ip` defaults to the first host and may be null, allocation pools default to the
CIDR minus network/broadcast/gateway and are validated (inside the CIDR, no overlap, not
containing the gateway), at most `[DEFAULT] max_dns_nameservers` (5) name servers and
`max_subnet_host_routes` (20) host routes, IPv6 RA/address modes consistent and /64 for
SLAAC. A subnet with `enable_dhcp` gets an address on the network's DHCP port
(device_owner `network:dhcp`), which ports therefore never receive.
"""
from __future__ import annotations

import ipaddress

from sqlalchemy import func, or_, select

from pocketstack.common.runtime import current
from pocketstack.network import ipam, networks
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

IPV6_MODES = ("dhcpv6-stateful", "dhcpv6-stateless", "slaac")


def _pools(value):
    if not isinstance(value, list):
        raise r.Invalid(f"'{value}' is not a list")
    return value


def _routes(value):
    if not isinstance(value, list):
        raise r.Invalid(f"'{value}' is not a list")
    out = []
    for route in value:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise r.Invalid(f"Invalid data format for hostroute: '{route}'")
        dest = r.v_cidr(route["destination"])
        hop = r.v_ip(route["nexthop"])
        item = {"destination": dest, "nexthop": hop}
        if item in out:
            raise r.Invalid(f"Duplicate hostroute '{route}'")
        out.append(item)
    return out


def _nameservers(value):
    if not isinstance(value, list):
        raise r.Invalid(f"'{value}' is not a list")
    out = []
    for ns in value:
        try:
            ip = r.v_ip(ns)
        except r.Invalid:
            raise r.Invalid(f"'{ns}' is not a valid nameserver. '{ns}' is not a valid IP address") from None
        if ip in out:
            raise r.Invalid(f"Duplicate nameserver '{ns}'")
        out.append(ip)
    return out


RESOURCE = r.Resource("subnet", "subnets", [
    r.Attr("network_id", required=True, validate=r.v_uuid),
    r.Attr("ip_version", required=True, validate=r.v_enum([4, 6])),
    r.Attr("cidr", validate=r.v_cidr),
    r.Attr("gateway_ip", put=True, validate=r.v_ip_or_none),
    r.Attr("allocation_pools", put=True, validate=_pools),
    r.Attr("dns_nameservers", put=True, default=list, validate=_nameservers),
    r.Attr("host_routes", put=True, default=list, validate=_routes),
    r.Attr("enable_dhcp", put=True, default=True, validate=r.v_bool),
    r.Attr("ipv6_ra_mode", validate=r.v_enum(IPV6_MODES, nullable=True)),
    r.Attr("ipv6_address_mode", validate=r.v_enum(IPV6_MODES, nullable=True)),
    r.Attr("subnetpool_id", validate=r.v_uuid_or_none),
    r.Attr("prefixlen", validate=r.v_int(0, 128)),
    r.Attr("use_default_subnetpool", default=False, validate=r.v_bool),
    r.Attr("service_types", put=True, default=list, validate=r.v_list(r.v_string(255))),
    r.Attr("segment_id", put=True, validate=r.v_uuid_or_none),
])


def subnet_not_found(sid: str):
    return r.not_found_error("Subnet", sid)


# ---------------------------------------------------------------------------- visibility
def visible_query(ctx):
    q = select(m.Subnet)
    if ctx is None or r.is_admin(ctx):
        return q
    pid = ctx.project_id
    # subnets of shared networks are visible; those of external ones are not (Tempest checks it)
    nets = select(m.Network.id).where(or_(m.Network.shared.is_(True), m.Network.id.in_(
        networks.rbac_projects_clause(pid, ("access_as_shared",)))))
    return q.where(or_(m.Subnet.project_id == pid, m.Subnet.network_id.in_(nets)))


def get_visible(sess, ctx, sid: str) -> m.Subnet:
    sub = sess.scalars(visible_query(ctx).where(m.Subnet.id == sid)).first()
    if sub is None:
        raise subnet_not_found(sid)
    return sub


def policy_target(sess, sub: m.Subnet) -> dict:
    net = sess.get(m.Network, sub.network_id)
    return r.policy_target({"id": sub.id, "project_id": sub.project_id, "network_id": sub.network_id,
                            "shared": bool(net and net.shared)}, **{"network:project_id": net.project_id if net else None})


# ---------------------------------------------------------------------------- rendering
def render(s: m.Subnet, tags: list[str]) -> dict:
    return {
        **r.standard_attrs(s, tags),
        "network_id": s.network_id,
        "ip_version": s.ip_version,
        "cidr": s.cidr,
        "gateway_ip": s.gateway_ip,
        "allocation_pools": [dict(p) for p in s.allocation_pools],
        "dns_nameservers": list(s.dns_nameservers),
        "host_routes": [dict(h) for h in s.host_routes],
        "enable_dhcp": s.enable_dhcp,
        "ipv6_ra_mode": s.ipv6_ra_mode,
        "ipv6_address_mode": s.ipv6_address_mode,
        "subnetpool_id": s.subnetpool_id,
        "service_types": list(s.service_types),
        "segment_id": s.segment_id,
        "dns_publish_fixed_ip": False,
    }


def render_many(sess, subs: list[m.Subnet], ctx=None) -> list[dict]:
    tags = r.load_tags(sess, "subnet", [s.id for s in subs])
    cache: dict = {}
    return [r.hide_attrs(ctx, "get_subnet", cache=cache, item=render(s, tags[s.id])) for s in subs]


def render_one(sess, s: m.Subnet, ctx=None) -> dict:
    return render_many(sess, [s], ctx)[0]


# ---------------------------------------------------------------------------- checks
def _limits():
    cfg = current().config
    return (int(cfg.get("DEFAULT", "max_dns_nameservers", "5") or 5),
            int(cfg.get("DEFAULT", "max_subnet_host_routes", "20") or 20))


def _check_lists(data: dict, sid: str, version: int) -> None:
    max_dns, max_routes = _limits()
    if len(data.get("dns_nameservers") or []) > max_dns:
        raise r.neutron_error(400, "DNSNameServersExhausted", f"Unable to complete operation for {sid}. The number "
                                                             f"of DNS nameservers exceeds the limit {max_dns}.")
    if len(data.get("host_routes") or []) > max_routes:
        raise r.neutron_error(400, "HostRoutesExhausted", f"Unable to complete operation for {sid}. The number of "
                                                         f"host routes exceeds the limit {max_routes}.")
    for ns in data.get("dns_nameservers") or []:
        if ipaddress.ip_address(ns).version != version:
            raise r.InvalidInput(f"Invalid nameserver {ns} for IPv{version} subnet")
    for route in data.get("host_routes") or []:
        if ipaddress.ip_network(route["destination"]).version != version or \
                ipaddress.ip_address(route["nexthop"]).version != version:
            raise r.InvalidInput(f"Host route {route} doesn't match the subnet's IP version {version}")


def _check_ipv6_modes(data: dict) -> None:
    ra, addr = data.get("ipv6_ra_mode"), data.get("ipv6_address_mode")
    if data["ip_version"] == 4:
        if ra or addr:
            raise r.InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4")
        return
    if ra and addr and ra != addr:
        raise r.InvalidInput(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not valid. "
                             "If both attributes are set, they must be the same value")
    if not data["enable_dhcp"] and (ra or addr):
        raise r.InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
    if addr in ipam.AUTO_ADDRESS_MODES or ra in ipam.AUTO_ADDRESS_MODES:
        if ipaddress.ip_network(data["cidr"]).prefixlen != 64:
            raise r.InvalidInput(f"Invalid CIDR {data['cidr']} for IPv6 address mode. OpenStack uses the EUI-64 "
                                 "address format, which requires the prefix to be /64")


def _check_overlap(sess, net_id: str, cidr: str, exclude: str | None = None) -> None:
    new = ipaddress.ip_network(cidr)
    for other_id, other in sess.execute(select(m.Subnet.id, m.Subnet.cidr).where(m.Subnet.network_id == net_id)):
        if other_id != exclude and ipaddress.ip_network(other).overlaps(new):
            raise r.InvalidInput(f"Requested subnet with cidr: {cidr} for network: {net_id} overlaps with "
                                 "another subnet")


def _check_gateway(cidr: str, gateway: str | None) -> None:
    if gateway is None:
        return
    net = ipaddress.ip_network(cidr)
    g = ipaddress.ip_address(gateway)
    if g.version != net.version:
        raise r.InvalidInput(f"Gateway IP version inconsistent with allocation pool version")
    if net.version == 4 and net.prefixlen < 31 and g in (net.network_address, net.broadcast_address):
        raise r.InvalidInput(f"Gateway is not valid on subnet")
    if net.version == 6 and g == net.network_address and net.prefixlen < 127:
        raise r.InvalidInput(f"Gateway is not valid on subnet")


# ---------------------------------------------------------------------------- create
def create(sess, ctx, data: dict) -> m.Subnet:
    from pocketstack.network import ports, subnetpools

    explicit = data.pop("_explicit", set())
    net = networks.get_visible(sess, ctx, data["network_id"])
    target = r.policy_target({"project_id": data["project_id"], "network_id": net.id, "shared": net.shared},
                             **{"network:project_id": net.project_id})
    r.enforce(ctx, "create_subnet", target)
    r.enforce_attrs(ctx, "create_subnet", target, explicit, data)
    r.check_quota(sess, data["project_id"], "subnet", 1)
    version = data["ip_version"]
    pool_id = data.get("subnetpool_id")
    if pool_id is None and data.get("use_default_subnetpool"):
        pool_id = subnetpools.default_pool_id(sess, version)
        if pool_id is None:
            raise r.BadRequest(f"No default subnetpool found for IPv{version}")
    if pool_id is not None:
        data["cidr"] = subnetpools.allocate(sess, ctx, pool_id, version, data.get("cidr"), data.get("prefixlen"))
    elif data.get("cidr") is None:
        raise r.BadRequest("Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
    elif "prefixlen" in data:
        raise r.InvalidInput("Bad subnets request: prefixlen cannot be given with a cidr")
    cidr = data["cidr"]
    if ipaddress.ip_network(cidr).version != version:
        raise r.InvalidInput(f"Cidr {cidr} does not match ip_version {version}")
    if version == 4 and ipaddress.ip_network(cidr).prefixlen == 0 or \
            version == 6 and ipaddress.ip_network(cidr).prefixlen == 0:
        raise r.InvalidInput("0 is not allowed as CIDR prefix length")
    _check_ipv6_modes(data)
    sid = r.new_uuid()
    _check_lists(data, sid, version)
    _check_overlap(sess, net.id, cidr)
    net_addr = ipaddress.ip_network(cidr)
    if "gateway_ip" in data:
        gateway = data["gateway_ip"]
    else:
        gateway = str(net_addr.network_address + 1) if net_addr.num_addresses > 2 or version == 6 else None
    _check_gateway(cidr, gateway)
    if data.get("allocation_pools") is not None:
        pools = ipam.validate_pools(data["allocation_pools"], cidr, gateway)
    else:
        pools = ipam.default_pools(cidr, gateway)
    sub = m.Subnet(id=sid, project_id=data["project_id"], network_id=net.id, name=data["name"],
                   description=data["description"], ip_version=version, cidr=cidr, gateway_ip=gateway,
                   enable_dhcp=data["enable_dhcp"], ipv6_ra_mode=data.get("ipv6_ra_mode"),
                   ipv6_address_mode=data.get("ipv6_address_mode"), subnetpool_id=pool_id,
                   segment_id=data.get("segment_id"), allocation_pools=pools,
                   dns_nameservers=data["dns_nameservers"], host_routes=data["host_routes"],
                   service_types=data["service_types"])
    sess.add(sub)
    sess.flush()
    ports.sync_dhcp_port(sess, net)
    _auto_address_existing_ports(sess, sub)
    return sub


def _auto_address_existing_ports(sess, sub: m.Subnet) -> None:
    """Upstream gives every existing port on the network its EUI-64 address on a new SLAAC subnet."""
    if not ipam.is_auto_address(sub):
        return
    for port in sess.scalars(select(m.Port).where(m.Port.network_id == sub.network_id)).all():
        if port.device_owner.startswith("network:router") or port.device_owner == "network:dhcp":
            continue
        ipam.allocate_auto_address(sess, sub, port.id, port.mac_address)


# ---------------------------------------------------------------------------- update / delete
def update(sess, ctx, sid: str, data: dict, req=None) -> m.Subnet:
    from pocketstack.network import ports

    sub = get_visible(sess, ctx, sid)
    target = policy_target(sess, sub)
    r.enforce(ctx, "update_subnet", target)
    r.enforce_attrs(ctx, "update_subnet", target, set(data), data)
    r.check_if_match(req, sub)
    for key in ("network_id", "ip_version", "cidr", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id",
                "prefixlen", "use_default_subnetpool"):
        if key in data:
            raise r.BadRequest(f"Cannot update read-only attribute {key}")
    _check_lists(data, sub.id, sub.ip_version)
    gateway = data.get("gateway_ip", sub.gateway_ip)
    if "gateway_ip" in data:
        _check_gateway(sub.cidr, gateway)
        if gateway is not None and gateway != sub.gateway_ip:
            holder = sess.get(m.IPAllocation, (sub.network_id, gateway))
            if holder is not None and not (sess.get(m.Port, holder.port_id).device_owner in ipam.ROUTER_OWNERS):
                raise r.neutron_error(409, "IpAddressInUse", f"Unable to complete operation for network "
                                                             f"{sub.network_id}. The IP address {gateway} is in use.")
    if "allocation_pools" in data:
        pools = data["allocation_pools"]
        sub.allocation_pools = (ipam.validate_pools(pools, sub.cidr, gateway) if pools is not None
                                else ipam.default_pools(sub.cidr, gateway))
    elif "gateway_ip" in data and gateway:
        ipam.validate_pools(sub.allocation_pools, sub.cidr, gateway)
    for key in ("name", "description", "gateway_ip", "dns_nameservers", "host_routes", "enable_dhcp",
                "service_types", "segment_id"):
        if key in data:
            setattr(sub, key, data[key])
    r.bump_revision(sub)
    sess.flush()
    if "enable_dhcp" in data:
        ports.sync_dhcp_port(sess, sess.get(m.Network, sub.network_id))
    return sub


# Other modules (routers) may veto a subnet delete: fn(sess, subnet) raising an ApiError.
DELETE_CHECKS: list = []


def delete(sess, ctx, sid: str, req=None) -> m.Subnet:
    from pocketstack.network import ports

    sub = get_visible(sess, ctx, sid)
    r.enforce(ctx, "delete_subnet", policy_target(sess, sub))
    r.check_if_match(req, sub)
    for fn in DELETE_CHECKS:
        fn(sess, sub)
    holders = sess.execute(select(m.IPAllocation.port_id, m.Port.device_owner).join(
        m.Port, m.Port.id == m.IPAllocation.port_id).where(m.IPAllocation.subnet_id == sub.id)).all()
    auto = ipam.is_auto_address(sub)
    for port_id, owner in holders:
        if owner == "network:dhcp" or (auto and not owner.startswith("network:router")):
            continue
        raise r.neutron_error(409, "SubnetInUse", f"Unable to complete operation on subnet {sub.id}: One or more "
                                                  "ports have an IP allocation from this subnet.")
    touched = {pid for pid, _ in holders}
    sess.query(m.IPAllocation).filter(m.IPAllocation.subnet_id == sub.id).delete()
    for pid in touched:
        port = sess.get(m.Port, pid)
        if port is not None:
            r.bump_revision(port)
    r.delete_tags(sess, "subnet", sub.id)
    net = sess.get(m.Network, sub.network_id)
    sess.delete(sub)
    sess.flush()
    ports.sync_dhcp_port(sess, net)
    return sub


def count(sess, project_id: str) -> int:
    return sess.scalar(select(func.count()).select_from(m.Subnet).where(m.Subnet.project_id == project_id))


# ---------------------------------------------------------------------------- availability
def ip_availability(sess, net: m.Network) -> dict:
    subs = sess.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id)
                        .order_by(m.Subnet.created_at, m.Subnet.id)).all()
    per = []
    for s in subs:
        used = sess.scalar(select(func.count()).select_from(m.IPAllocation).where(m.IPAllocation.subnet_id == s.id))
        per.append({"subnet_id": s.id, "subnet_name": s.name, "cidr": s.cidr, "ip_version": s.ip_version,
                    "total_ips": ipam.pool_size(s), "used_ips": used})
    return {"network_id": net.id, "network_name": net.name, "project_id": net.project_id,
            "tenant_id": net.project_id, "total_ips": sum(p["total_ips"] for p in per),
            "used_ips": sum(p["used_ips"] for p in per), "subnet_ip_availability": per}
