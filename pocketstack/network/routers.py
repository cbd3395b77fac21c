"""Routers: external gateways (SNAT, external fixed IPs), interfaces, extra routes.

A router owns ports made through the core's port functions: one `network:router_gateway`
port on its external network (no project, as upstream) and one `network:router_interface`
port per attached subnet (by default on the subnet's gateway address). `network_router_port`
records which ports a router owns, so the port table stays the core's.

Upstream's checks, with its error types: the gateway network must exist and be external;
interface subnets must have a gateway IP and must not overlap any other subnet on the
router; a port given as an interface must be free and have fixed IPs; extra routes need a
next hop on one of the router's subnets; an interface whose subnet is still used by an
extra route or a floating IP cannot be removed (409); a router with interfaces cannot be
deleted (409 RouterInUse).

Python interface (also used by floating_ips.py and auto_allocate.py):

    create_router(ctx, data) / update_router(ctx, id, changes, req=None) / delete_router(ctx, id)
    get_router(ctx, id) -> dict / list_routers(ctx) -> list[dict]
    add_interface(ctx, router_id, body) / remove_interface(ctx, router_id, body) -> interface info
    add_extraroutes(ctx, router_id, routes) / remove_extraroutes(ctx, router_id, routes) -> dict
    router_for_floating_ip(sess, port_subnet_ids, external_network_id) -> router id or None
"""
from __future__ import annotations

import ipaddress
import uuid

from sqlalchemy import delete, func, select

from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

GATEWAY = "network:router_gateway"
INTERFACE = "network:router_interface"
AZ = "nova"
MAX_ROUTES = 30

r.register_quota_resource("router", 10, lambda sess, pid: sess.scalar(
    select(func.count()).select_from(m.Router).where(m.Router.project_id == pid)))


def session():
    return current().db.session()


def router_not_found(id_: str):
    return r.not_found("RouterNotFound", f"Router {id_} could not be found")


def bad_router(msg: str):
    return r.neutron_error(400, "BadRequest", f"Bad router request: {msg}.")


# ---------------------------------------------------------------------------- ports (through the core)
def _ports():
    from pocketstack.network import ports

    return ports


def _networks():
    from pocketstack.network import networks

    return networks


def _rbac():
    from pocketstack.network import rbac

    return rbac


def _create_port(sess, ctx, *, network_id: str, project_id: str, device_id: str, device_owner: str,
                 fixed_ips: list | None) -> m.Port:
    """A router-owned port made by the core (IPAM, MAC), as the service itself (upstream
    creates these with an elevated context); no security groups, no port security."""
    data = {"network_id": network_id, "project_id": project_id, "device_id": device_id,
            "device_owner": device_owner, "admin_state_up": True, "name": "", "description": "",
            "fixed_ips": fixed_ips, "security_groups": [], "port_security_enabled": False,
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "binding:vnic_type": "normal",
            "binding:profile": {}, "binding:host_id": "", "dns_name": "", "_explicit": set()}
    port = _ports().create(sess, None, data)
    r.emit("port", "created", {"id": port.id, "network_id": network_id, "device_owner": device_owner})
    return port


def _delete_port(sess, port_id: str) -> None:
    port = sess.get(m.Port, port_id)
    if port is not None:
        _ports().delete_row(sess, port)
        r.emit("port", "deleted", {"id": port_id, "network_id": port.network_id})


def _set_port_owner(sess, port: m.Port, device_id: str, device_owner: str) -> None:
    _ports().update(sess, None, port.id, {"device_id": device_id, "device_owner": device_owner})


def _update_port_ips(sess, port_id: str, fixed_ips: list) -> None:
    _ports().update(sess, None, port_id, {"fixed_ips": fixed_ips})


L3_OWNERS = (GATEWAY, INTERFACE, "network:floatingip")


def veto_port_delete(sess, port: m.Port) -> None:
    """The port API may not delete router and floating IP ports (upstream's
    `prevent_l3_port_deletion`): remove the interface, gateway or floating IP instead."""
    if port.device_owner in L3_OWNERS and (sess.get(m.RouterPort, port.id) is not None
                                          or port.device_owner == "network:floatingip"):
        raise r.neutron_error(409, "ServicePortInUse", f"Port {port.id} cannot be deleted directly via the port "
                              f"API: has device owner {port.device_owner}.")


def port_ips(sess, port_id: str) -> list[tuple[str, str]]:
    """(subnet_id, ip_address) of a port, in a stable order."""
    return [(a.subnet_id, a.ip_address) for a in sess.scalars(
        select(m.IPAllocation).where(m.IPAllocation.port_id == port_id)
        .order_by(m.IPAllocation.subnet_id, m.IPAllocation.ip_address))]


# ---------------------------------------------------------------------------- rendering
def _is_admin(ctx) -> bool:
    return r.is_admin(ctx)


def visible(ctx: AuthContext | None, row: m.Router) -> bool:
    return ctx is None or _is_admin(ctx) or ctx.project_id == row.project_id


def load(sess, ctx: AuthContext | None, id_: str, *, lock: bool = False) -> m.Router:
    q = select(m.Router).where(m.Router.id == id_)
    if lock:
        q = q.with_for_update()
    row = sess.scalars(q).first()
    if row is None or not visible(ctx, row):
        raise router_not_found(id_)
    return row


def render(sess, row: m.Router, tags: list[str] | None = None) -> dict:
    out = r.standard_attrs(row, tags if tags is not None else r.load_tags(sess, "router", [row.id])[row.id])
    gateway = None
    if row.gw_network_id:
        ips = port_ips(sess, row.gw_port_id) if row.gw_port_id else []
        gateway = {"network_id": row.gw_network_id, "enable_snat": row.enable_snat,
                   "external_fixed_ips": [{"subnet_id": s, "ip_address": ip} for s, ip in ips]}
    routes = sess.scalars(select(m.RouterRoute).where(m.RouterRoute.router_id == row.id)
                          .order_by(m.RouterRoute.destination, m.RouterRoute.nexthop))
    out.update({"admin_state_up": row.admin_state_up, "status": row.status, "external_gateway_info": gateway,
                "routes": [{"destination": x.destination, "nexthop": x.nexthop} for x in routes],
                "distributed": row.distributed, "ha": row.ha, "flavor_id": None,
                "availability_zone_hints": list(row.availability_zone_hints or []),
                "availability_zones": [AZ]})
    return out


def render_for(sess, ctx, row: m.Router, tags=None) -> dict:
    return r.hide_attrs(ctx, "get_router", render(sess, row, tags))


def get_router(ctx: AuthContext | None, id_: str) -> dict:
    with session() as sess:
        row = load(sess, ctx, id_)
        r.enforce(ctx, "get_router", _target(row))
        return render_for(sess, ctx, row)


def list_routers(ctx: AuthContext | None) -> list[dict]:
    with session() as sess:
        q = select(m.Router).order_by(m.Router.created_at, m.Router.id)
        if ctx is not None and not _is_admin(ctx):
            q = q.where(m.Router.project_id == ctx.project_id)
        rows = list(sess.scalars(q))
        tags = r.load_tags(sess, "router", [x.id for x in rows])
        return [render_for(sess, ctx, x, tags[x.id]) for x in rows]


def _target(row: m.Router) -> dict:
    return {"project_id": row.project_id, "tenant_id": row.project_id, "id": row.id}


# ---------------------------------------------------------------------------- create / update / delete
def create_router(ctx: AuthContext | None, data: dict) -> dict:
    """`data`: the parsed create body (name, description, admin_state_up, distributed, ha,
    external_gateway_info, availability_zone_hints, project_id, `_explicit`)."""
    project_id = data["project_id"]
    target = {"project_id": project_id, "tenant_id": project_id}
    r.enforce(ctx, "create_router", target)
    explicit = set(data.get("_explicit", ()))
    gw = data.get("external_gateway_info")
    if gw:
        explicit |= {f"external_gateway_info:{k}" for k in gw}
    r.enforce_attrs(ctx, "create_router", target, explicit)
    _check_az_hints(data.get("availability_zone_hints") or [])
    now = utcnow()
    with session() as sess:
        r.check_quota(sess, project_id, "router", 1)
        row = m.Router(id=str(uuid.uuid4()), project_id=project_id, name=data.get("name", ""),
                       description=data.get("description", ""), admin_state_up=data.get("admin_state_up", True),
                       distributed=bool(data.get("distributed") or False), ha=bool(data.get("ha") or False),
                       availability_zone_hints=data.get("availability_zone_hints") or [], status="ACTIVE",
                       created_at=now, updated_at=now)
        sess.add(row)
        sess.flush()
        if gw:
            _set_gateway(sess, ctx, row, gw)
        body = render_for(sess, ctx, row, [])
    r.emit("router", "created", {"id": row.id, "project_id": project_id, "name": row.name}, ctx)
    return body


def _check_az_hints(hints) -> None:
    for hint in hints:
        if hint != AZ:
            raise r.not_found("AvailabilityZoneNotFound", f"AvailabilityZone {hint} could not be found.")


def update_router(ctx: AuthContext | None, id_: str, changes: dict, req=None) -> dict:
    with session() as sess:
        row = load(sess, ctx, id_, lock=True)
        r.check_if_match(req, row)
        target = _target(row)
        r.enforce(ctx, "update_router", target)
        explicit = set(changes)
        gw = changes.get("external_gateway_info")
        if gw:
            explicit |= {f"external_gateway_info:{k}" for k in gw}
        r.enforce_attrs(ctx, "update_router", target, explicit)
        if "availability_zone_hints" in changes:
            raise r.BadRequest("Cannot update read-only attribute availability_zone_hints")
        for key in ("name", "description", "admin_state_up", "distributed", "ha"):
            if key in changes:
                setattr(row, key, changes[key])
        if "external_gateway_info" in changes:
            if gw:
                _set_gateway(sess, ctx, row, gw)
            else:
                _clear_gateway(sess, row)
        if "routes" in changes:
            _replace_routes(sess, row, changes["routes"] or [])
        if changes:
            r.bump_revision(row)
        sess.flush()
        body = render_for(sess, ctx, row)
    r.emit("router", "updated", {"id": id_, "changes": sorted(changes)}, ctx)
    return body


def delete_router(ctx: AuthContext | None, id_: str, req=None) -> None:
    with session() as sess:
        row = load(sess, ctx, id_, lock=True)
        r.check_if_match(req, row)
        r.enforce(ctx, "delete_router", _target(row))
        interfaces = sess.scalar(select(func.count()).select_from(m.RouterPort).where(
            m.RouterPort.router_id == row.id, m.RouterPort.port_type == INTERFACE))
        if interfaces:
            raise r.neutron_error(409, "RouterInUse", f"Router {row.id} still has ports")
        _clear_gateway(sess, row)
        r.delete_tags(sess, "router", row.id)
        sess.delete(row)
        project_id = row.project_id
    r.emit("router", "deleted", {"id": id_, "project_id": project_id}, ctx)


# ---------------------------------------------------------------------------- gateway
def _set_gateway(sess, ctx, row: m.Router, gw) -> None:
    if not isinstance(gw, dict):
        raise r.BadRequest(f"Invalid input for external_gateway_info. Reason: '{gw}' is not a dictionary.")
    unknown = set(gw) - {"network_id", "enable_snat", "external_fixed_ips", "qos_policy_id"}
    if unknown:
        raise r.BadRequest("Invalid input for external_gateway_info. Reason: Unexpected keys supplied: "
                           f"{', '.join(sorted(unknown))}.")
    net_id = gw.get("network_id")
    if not net_id:
        raise r.BadRequest("Invalid input for external_gateway_info. Reason: network_id must be specified.")
    try:
        r.v_uuid(net_id)
    except r.Invalid as exc:
        raise r.BadRequest(f"Invalid input for external_gateway_info. Reason: {exc}.") from None
    network = _networks().get_visible(sess, ctx, net_id)
    if not _rbac().external_for(sess, network, row.project_id):
        raise bad_router(f"Network {net_id} is not an external network")
    enable_snat = row.enable_snat if "enable_snat" not in gw else _bool(gw["enable_snat"], "enable_snat")
    fixed = gw.get("external_fixed_ips")
    if fixed is not None and not isinstance(fixed, list):
        raise r.BadRequest(f"Invalid input for external_fixed_ips. Reason: '{fixed}' is not a list.")
    for item in fixed or []:
        if not isinstance(item, dict) or set(item) - {"subnet_id", "ip_address"}:
            raise r.BadRequest("Invalid input for external_fixed_ips. Reason: Invalid data format for fixed IP: "
                               f"'{item}'.")
    same_net = row.gw_network_id == net_id and row.gw_port_id
    if same_net and fixed is None:
        row.enable_snat = enable_snat
        return
    if same_net:
        current_ips = [{"subnet_id": s, "ip_address": ip} for s, ip in port_ips(sess, row.gw_port_id)]
        wanted = [dict(x) for x in fixed]
        if _same_ips(current_ips, wanted):
            row.enable_snat = enable_snat
            return
        _update_port_ips(sess, row.gw_port_id, fixed)
        row.enable_snat = enable_snat
        return
    if row.gw_port_id:
        _clear_gateway(sess, row)
    port = _create_port(sess, ctx, network_id=net_id, project_id="", device_id=row.id, device_owner=GATEWAY,
                        fixed_ips=fixed)
    sess.add(m.RouterPort(port_id=port.id, router_id=row.id, port_type=GATEWAY))
    row.gw_port_id, row.gw_network_id, row.enable_snat = port.id, net_id, enable_snat
    sess.flush()


def _same_ips(have: list[dict], want: list[dict]) -> bool:
    for w in want:
        if not any((w.get("subnet_id") in (None, h["subnet_id"])) and (w.get("ip_address") in (None, h["ip_address"]))
                   for h in have):
            return False
    return len(have) == len(want)


def _bool(value, field: str) -> bool:
    try:
        return r.v_bool(value)
    except r.Invalid as exc:
        raise r.BadRequest(f"Invalid input for {field}. Reason: {exc}.") from None


def _clear_gateway(sess, row: m.Router) -> None:
    if not row.gw_port_id:
        row.gw_network_id = None
        return
    in_use = sess.scalars(select(m.FloatingIP.id).where(m.FloatingIP.router_id == row.id,
                                                        m.FloatingIP.floating_network_id == row.gw_network_id)).first()
    if in_use:
        raise r.neutron_error(409, "RouterExternalGatewayInUseByFloatingIp",
                              f"Gateway cannot be updated for router {row.id}, since a gateway to external network "
                              f"{row.gw_network_id} is required by one or more floating IPs.")
    port_id = row.gw_port_id
    row.gw_port_id, row.gw_network_id = None, None
    sess.execute(delete(m.RouterPort).where(m.RouterPort.port_id == port_id))
    sess.flush()
    if sess.get(m.Port, port_id) is not None:
        _delete_port(sess, port_id)


# ---------------------------------------------------------------------------- interfaces
def _interface_ports(sess, router_id: str) -> list[str]:
    return list(sess.scalars(select(m.RouterPort.port_id).where(
        m.RouterPort.router_id == router_id, m.RouterPort.port_type == INTERFACE).order_by(m.RouterPort.port_id)))


def router_subnets(sess, router_id: str, *, with_gateway: bool = False) -> list[m.Subnet]:
    ports = _interface_ports(sess, router_id)
    if with_gateway:
        row = sess.get(m.Router, router_id)
        if row is not None and row.gw_port_id:
            ports.append(row.gw_port_id)
    if not ports:
        return []
    ids = set(sess.scalars(select(m.IPAllocation.subnet_id).where(m.IPAllocation.port_id.in_(ports))))
    return list(sess.scalars(select(m.Subnet).where(m.Subnet.id.in_(ids)))) if ids else []


def _check_overlap(sess, router_id: str, new_subnets: list[m.Subnet]) -> None:
    existing = router_subnets(sess, router_id)
    for new in new_subnets:
        new_net = ipaddress.ip_network(new.cidr)
        for old in existing:
            if old.id == new.id:
                raise bad_router(f"Router already has a port on subnet {new.id}")
            if new_net.version == ipaddress.ip_network(old.cidr).version and \
                    new_net.overlaps(ipaddress.ip_network(old.cidr)):
                raise bad_router(f"Cidr {new.cidr} of subnet {new.id} overlaps with cidr {old.cidr} of subnet {old.id}")


def _interface_info(row: m.Router, port: m.Port, subnet_ids: list[str]) -> dict:
    return {"id": row.id, "tenant_id": row.project_id, "project_id": row.project_id, "port_id": port.id,
            "network_id": port.network_id, "subnet_id": subnet_ids[0] if subnet_ids else None,
            "subnet_ids": subnet_ids}


def _parse_interface_body(body) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        raise r.BadRequest("Bad router request: Either subnet_id or port_id must be specified.")
    unknown = set(body) - {"subnet_id", "port_id"}
    if unknown:
        raise r.BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    for name, value in (("subnet_id", subnet_id), ("port_id", port_id)):
        if value is not None:
            try:
                r.v_uuid(value)
            except r.Invalid as exc:
                raise r.BadRequest(f"Invalid input for {name}. Reason: {exc}.") from None
    return subnet_id, port_id


def _visible_subnet(sess, ctx, subnet_id: str) -> m.Subnet:
    subnet = sess.get(m.Subnet, subnet_id)
    if subnet is None:
        raise r.not_found_error("Subnet", subnet_id)
    if ctx is not None and not _is_admin(ctx) and subnet.project_id != ctx.project_id:
        network = sess.get(m.Network, subnet.network_id)
        if not (network.shared or _rbac_shared(sess, network.id, ctx.project_id)):
            raise r.not_found_error("Subnet", subnet_id)
    return subnet


def _rbac_shared(sess, network_id: str, project_id: str) -> bool:
    return sess.scalars(select(m.RbacPolicy.id).where(
        m.RbacPolicy.object_type == "network", m.RbacPolicy.object_id == network_id,
        m.RbacPolicy.action == "access_as_shared", m.RbacPolicy.target_project.in_([project_id, "*"]))).first() \
        is not None


def add_interface(ctx: AuthContext | None, router_id: str, body) -> dict:
    subnet_id, port_id = _parse_interface_body(body)
    if subnet_id and port_id:
        raise bad_router("Cannot specify both subnet-id and port-id")
    if not subnet_id and not port_id:
        raise bad_router("Either subnet_id or port_id must be specified")
    with session() as sess:
        row = load(sess, ctx, router_id, lock=True)
        r.enforce(ctx, "add_router_interface", _target(row))
        if port_id:
            port = sess.get(m.Port, port_id)
            if port is None or (ctx is not None and not _is_admin(ctx) and port.project_id != ctx.project_id):
                raise r.not_found_error("Port", port_id)
            if port.device_id or port.device_owner:
                raise r.neutron_error(409, "PortInUse",
                                      f"Unable to complete operation on port {port.id} for network "
                                      f"{port.network_id}. Port already has an attached device {port.device_id}.")
            ips = port_ips(sess, port.id)
            if not ips:
                raise bad_router("Router port must have at least one fixed IP")
            subnets = [sess.get(m.Subnet, s) for s in dict.fromkeys(s for s, _ in ips)]
            if len([s for s in subnets if s.ip_version == 4]) > 1:
                raise bad_router("Cannot have multiple IPv4 subnets on router port")
            _check_overlap(sess, row.id, subnets)
            _set_port_owner(sess, port, row.id, INTERFACE)
        else:
            subnet = _visible_subnet(sess, ctx, subnet_id)
            if not subnet.gateway_ip:
                raise bad_router("Subnet for router interface must have a gateway IP")
            _check_overlap(sess, row.id, [subnet])
            taken = sess.get(m.IPAllocation, (subnet.network_id, subnet.gateway_ip))
            if taken is not None:
                raise r.neutron_error(409, "IpAddressInUse", f"Unable to complete operation for network "
                                      f"{subnet.network_id}. The IP address {subnet.gateway_ip} is in use.")
            port = _create_port(sess, ctx, network_id=subnet.network_id, project_id=row.project_id,
                                device_id=row.id, device_owner=INTERFACE,
                                fixed_ips=[{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}])
        sess.add(m.RouterPort(port_id=port.id, router_id=row.id, port_type=INTERFACE))
        r.bump_revision(row)
        sess.flush()
        info = _interface_info(row, port, list(dict.fromkeys(s for s, _ in port_ips(sess, port.id))))
    r.emit("router", "interface.added", {"id": router_id, "port_id": info["port_id"],
                                          "subnet_ids": info["subnet_ids"]}, ctx)
    return info


def remove_interface(ctx: AuthContext | None, router_id: str, body) -> dict:
    subnet_id, port_id = _parse_interface_body(body)
    if not subnet_id and not port_id:
        raise bad_router("Either subnet_id or port_id must be specified")
    with session() as sess:
        row = load(sess, ctx, router_id, lock=True)
        r.enforce(ctx, "remove_router_interface", _target(row))
        owned = _interface_ports(sess, row.id)
        if port_id:
            if port_id not in owned:
                raise r.not_found("RouterInterfaceNotFound",
                                  f"Router {row.id} does not have an interface with id {port_id}")
            port = sess.get(m.Port, port_id)
            subnet_ids = list(dict.fromkeys(s for s, _ in port_ips(sess, port_id)))
            if subnet_id and subnet_id not in subnet_ids:
                raise r.neutron_error(400, "SubnetMismatchForPort",
                                      f"Subnet on port {port_id} does not match the requested subnet {subnet_id}.")
        else:
            port = None
            for pid in owned:
                if subnet_id in [s for s, _ in port_ips(sess, pid)]:
                    port = sess.get(m.Port, pid)
                    break
            if port is None:
                if sess.get(m.Subnet, subnet_id) is None:
                    raise r.not_found_error("Subnet", subnet_id)
                raise r.not_found("RouterInterfaceNotFoundForSubnet",
                                  f"Router {row.id} has no interface on subnet {subnet_id}")
            subnet_ids = list(dict.fromkeys(s for s, _ in port_ips(sess, port.id)))
        _check_interface_unused(sess, row, subnet_ids)
        sess.execute(delete(m.RouterPort).where(m.RouterPort.port_id == port.id))
        sess.flush()
        info = _interface_info(row, port, subnet_ids)
        _delete_port(sess, port.id)
        r.bump_revision(row)
    r.emit("router", "interface.removed", {"id": router_id, "port_id": info["port_id"],
                                          "subnet_ids": info["subnet_ids"]}, ctx)
    return info


def _check_interface_unused(sess, row: m.Router, subnet_ids: list[str]) -> None:
    subnets = [sess.get(m.Subnet, s) for s in subnet_ids]
    # other interfaces may still reach the next hop (two subnets of one network)
    remaining = [s for s in router_subnets(sess, row.id, with_gateway=True) if s.id not in subnet_ids]
    for route in sess.scalars(select(m.RouterRoute).where(m.RouterRoute.router_id == row.id)):
        hop = ipaddress.ip_address(route.nexthop)
        if any(hop in ipaddress.ip_network(s.cidr) for s in subnets) and \
                not any(hop in ipaddress.ip_network(s.cidr) for s in remaining):
            raise r.neutron_error(409, "RouterInterfaceInUseByRoute",
                                  f"Router interface for subnet {subnet_ids[0]} on router {row.id} cannot be "
                                  "deleted, as it is required by one or more routes.")
    fixed_ports = select(m.IPAllocation.port_id).where(m.IPAllocation.subnet_id.in_(subnet_ids))
    used = sess.scalars(select(m.FloatingIP.id).where(m.FloatingIP.router_id == row.id,
                                                      m.FloatingIP.fixed_port_id.in_(fixed_ports))).first()
    if used:
        raise r.neutron_error(409, "RouterInterfaceInUseByFloatingIP",
                              f"Router interface for subnet {subnet_ids[0]} on router {row.id} cannot be deleted, "
                              "as it is required by one or more floating IPs.")


# ---------------------------------------------------------------------------- extra routes
def _parse_routes(routes) -> list[tuple[str, str]]:
    if not isinstance(routes, list):
        raise r.BadRequest(f"Invalid input for routes. Reason: '{routes}' is not a list.")
    out = []
    for item in routes:
        if not isinstance(item, dict) or set(item) != {"destination", "nexthop"}:
            raise r.BadRequest(f"Invalid input for routes. Reason: Invalid data format for hostroute: '{item}'.")
        try:
            dest = ipaddress.ip_network(str(item["destination"]), strict=False)
            hop = ipaddress.ip_address(str(item["nexthop"]))
            if "/" not in str(item["destination"]):
                raise ValueError
        except ValueError:
            raise r.BadRequest(f"Invalid input for routes. Reason: Invalid data format for hostroute: "
                               f"'{item}'.") from None
        if dest.version != hop.version:
            raise _invalid_routes(item, "the nexthop and destination are not of the same IP version")
        key = (str(dest), str(hop))
        if key in out:
            raise r.BadRequest(f"Invalid input for routes. Reason: Duplicate hostroute '{item}'.")
        out.append(key)
    return out


def _invalid_routes(route, reason: str):
    return r.neutron_error(400, "InvalidRoutes", f"Invalid format for routes: {route}, {reason}.")


def _check_nexthops(sess, row: m.Router, routes: list[tuple[str, str]]) -> None:
    subnets = router_subnets(sess, row.id, with_gateway=True)
    own_ips = set()
    for pid in _interface_ports(sess, row.id) + ([row.gw_port_id] if row.gw_port_id else []):
        own_ips |= {ip for _, ip in port_ips(sess, pid)}
    for dest, hop in routes:
        route = {"destination": dest, "nexthop": hop}
        if hop in own_ips:
            raise _invalid_routes(route, "the nexthop is used by router")
        if not any(ipaddress.ip_address(hop) in ipaddress.ip_network(s.cidr) for s in subnets):
            raise _invalid_routes(route, "the nexthop is not connected with router")


def _replace_routes(sess, row: m.Router, routes) -> None:
    parsed = _parse_routes(routes)
    if len(parsed) > MAX_ROUTES:
        raise r.neutron_error(400, "RoutesExhausted", f"Unable to complete operation for {row.id}. The number of "
                              f"routes exceeds the maximum {MAX_ROUTES}.")
    _check_nexthops(sess, row, parsed)
    sess.execute(delete(m.RouterRoute).where(m.RouterRoute.router_id == row.id))
    for dest, hop in parsed:
        sess.add(m.RouterRoute(router_id=row.id, destination=dest, nexthop=hop))
    sess.flush()


def _routes_body(body) -> list:
    if not isinstance(body, dict) or not isinstance(body.get("router"), dict) or "routes" not in body["router"]:
        raise r.BadRequest("Invalid input for routes. Reason: the body must be {'router': {'routes': [...]}}.")
    unknown = set(body["router"]) - {"routes"}
    if unknown:
        raise r.BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    return body["router"]["routes"]


def change_extraroutes(ctx: AuthContext | None, router_id: str, body, add: bool) -> dict:
    """extraroute-atomic: add (idempotent) or remove (absent ones ignored) routes."""
    changes = _parse_routes(_routes_body(body))
    action = "add_extraroutes" if add else "remove_extraroutes"
    with session() as sess:
        row = load(sess, ctx, router_id, lock=True)
        r.enforce(ctx, action, _target(row))
        have = [(x.destination, x.nexthop) for x in sess.scalars(
            select(m.RouterRoute).where(m.RouterRoute.router_id == row.id))]
        if add:
            new = have + [c for c in changes if c not in have]
        else:
            new = [h for h in have if h not in changes]
        _replace_routes(sess, row, [{"destination": d, "nexthop": n} for d, n in new])
        r.bump_revision(row)
        sess.flush()
        body = render_for(sess, ctx, row)
    r.emit("router", "updated", {"id": router_id, "changes": [action]}, ctx)
    return body


# ---------------------------------------------------------------------------- floating IP support
def router_for_floating_ip(sess, port_subnet_ids: list[str], external_network_id: str) -> str | None:
    """A router with a gateway on `external_network_id` and an interface on one of the
    subnets (upstream's `_get_router_for_floatingip`): None when unreachable."""
    if not port_subnet_ids:
        return None
    iface_ports = select(m.IPAllocation.port_id).where(m.IPAllocation.subnet_id.in_(port_subnet_ids))
    q = (select(m.Router.id).join(m.RouterPort, m.RouterPort.router_id == m.Router.id)
         .where(m.RouterPort.port_type == INTERFACE, m.RouterPort.port_id.in_(iface_ports),
                m.Router.gw_network_id == external_network_id).order_by(m.Router.created_at))
    return sess.scalars(q).first()


def router_of_port(sess, port_id: str) -> str | None:
    row = sess.get(m.RouterPort, port_id)
    return row.router_id if row else None


# ---------------------------------------------------------------------------- dataplane view
def _port_view(sess, port_id: str) -> dict | None:
    port = sess.get(m.Port, port_id)
    if port is None:
        return None
    ips = []
    for subnet_id, ip in port_ips(sess, port.id):
        subnet = sess.get(m.Subnet, subnet_id)
        ips.append({"subnet_id": subnet_id, "ip_address": ip, "cidr": subnet.cidr if subnet else None,
                    "prefixlen": ipaddress.ip_network(subnet.cidr).prefixlen if subnet else None,
                    "gateway_ip": subnet.gateway_ip if subnet else None})
    return {"id": port.id, "network_id": port.network_id, "mac_address": port.mac_address, "fixed_ips": ips,
            "mtu": (sess.get(m.Network, port.network_id).mtu if sess.get(m.Network, port.network_id) else 1500)}


def router_sync_data(router_id: str) -> dict | None:
    """Everything an L3 dataplane needs for one router namespace (upstream's L3 agent sync
    data): state, gateway port (SNAT on/off), interface ports with their subnets, extra
    routes and floating IP NAT pairs. None when the router is gone. A backend calls it on
    the `network.router.*` and `network.floatingip.*` events."""
    with session() as sess:
        row = sess.get(m.Router, router_id)
        if row is None:
            return None
        routes = sess.scalars(select(m.RouterRoute).where(m.RouterRoute.router_id == row.id)
                              .order_by(m.RouterRoute.destination))
        fips = sess.scalars(select(m.FloatingIP).where(m.FloatingIP.router_id == row.id,
                                                       m.FloatingIP.fixed_port_id.is_not(None))
                            .order_by(m.FloatingIP.floating_ip_address))
        return {"id": row.id, "project_id": row.project_id, "admin_state_up": row.admin_state_up,
                "distributed": row.distributed, "ha": row.ha, "enable_snat": row.enable_snat,
                "gateway": _port_view(sess, row.gw_port_id) if row.gw_port_id else None,
                "interfaces": [v for v in (_port_view(sess, p) for p in _interface_ports(sess, row.id)) if v],
                "routes": [{"destination": x.destination, "nexthop": x.nexthop} for x in routes],
                "floating_ips": [{"id": f.id, "floating_ip_address": f.floating_ip_address,
                                  "fixed_ip_address": f.fixed_ip_address, "port_id": f.fixed_port_id}
                                 for f in fips]}
