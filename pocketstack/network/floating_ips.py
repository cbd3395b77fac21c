"""Floating IPs: addresses on an external network, NATed to a port's fixed IP by a router.

Allocating one makes a `network:floatingip` port on the external network (through the
core's port functions, no project, as upstream) holding the address. Associating it with
a port needs, as upstream, a router with a gateway on that external network and an
interface on one of the port's subnets (else 404 ExternalGatewayForFloatingIPNotFound);
the fixed IP must be one of the port's (or, when not given, its only IPv4 address), and a
fixed IP carries at most one floating IP per external network (409). Status is ACTIVE
while associated, DOWN otherwise (the no-op dataplane applies NAT at once). A deleted
port's floating IPs are disassociated (`port_deleted`, a hook of the core's port delete).

    create_floating_ip(ctx, data) / update_floating_ip(ctx, id, changes, req=None)
    delete_floating_ip(ctx, id, req=None) / get_floating_ip(ctx, id) / list_floating_ips(ctx)
    port_deleted(port_id)      # the core's port delete calls it (ports.DELETE_HOOKS)
    floating_ips_for_ports(port_ids) -> {port_id: [(fixed_ip, floating_ip)]}   # for compute's addresses
"""
from __future__ import annotations

import ipaddress
import uuid

from sqlalchemy import func, select

from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network import routers
from pocketstack.network.api import resource as r

FLOATING_OWNER = "network:floatingip"

r.register_quota_resource("floatingip", 50, lambda sess, pid: sess.scalar(
    select(func.count()).select_from(m.FloatingIP).where(m.FloatingIP.project_id == pid)))


def session():
    return current().db.session()


def fip_not_found(id_: str):
    return r.not_found("FloatingIPNotFound", f"Floating IP {id_} could not be found")


def bad_fip(msg: str):
    return r.neutron_error(400, "BadRequest", f"Bad floatingip request: {msg}.")


def visible(ctx: AuthContext | None, row: m.FloatingIP) -> bool:
    return ctx is None or r.is_admin(ctx) or ctx.project_id == row.project_id


def load(sess, ctx: AuthContext | None, id_: str) -> m.FloatingIP:
    row = sess.get(m.FloatingIP, id_)
    if row is None or not visible(ctx, row):
        raise fip_not_found(id_)
    _forget_missing_port(sess, row)
    return row


def _forget_missing_port(sess, row: m.FloatingIP) -> None:
    """The associated port was deleted by a path that did not tell us: disassociate."""
    if row.fixed_port_id and sess.get(m.Port, row.fixed_port_id) is None:
        row.fixed_port_id = row.fixed_ip_address = row.router_id = None
        row.status = "DOWN"


def _target(row) -> dict:
    return {"project_id": row.project_id, "tenant_id": row.project_id, "id": row.id}


def render(sess, row: m.FloatingIP, tags: list[str] | None = None) -> dict:
    out = r.standard_attrs(row, tags if tags is not None else r.load_tags(sess, "floatingip", [row.id])[row.id])
    out.pop("name", None)
    details = None
    port = sess.get(m.Port, row.fixed_port_id) if row.fixed_port_id else None
    if port is not None:
        details = {"name": port.name, "network_id": port.network_id, "mac_address": port.mac_address,
                   "admin_state_up": port.admin_state_up, "status": port.status, "device_id": port.device_id,
                   "device_owner": port.device_owner}
    out.update({"floating_ip_address": row.floating_ip_address, "floating_network_id": row.floating_network_id,
                "router_id": row.router_id if port else None, "port_id": row.fixed_port_id if port else None,
                "fixed_ip_address": row.fixed_ip_address if port else None,
                "status": row.status if port else "DOWN", "port_details": details,
                "qos_policy_id": None, "port_forwardings": []})
    return out


def get_floating_ip(ctx, id_: str) -> dict:
    with session() as sess:
        row = load(sess, ctx, id_)
        r.enforce(ctx, "get_floatingip", _target(row))
        return render(sess, row)


def list_floating_ips(ctx) -> list[dict]:
    with session() as sess:
        q = select(m.FloatingIP).order_by(m.FloatingIP.created_at, m.FloatingIP.id)
        if ctx is not None and not r.is_admin(ctx):
            q = q.where(m.FloatingIP.project_id == ctx.project_id)
        rows = list(sess.scalars(q))
        tags = r.load_tags(sess, "floatingip", [x.id for x in rows])
        return [render(sess, x, tags[x.id]) for x in rows]


# ---------------------------------------------------------------------------- association
def _association(sess, ctx, row: m.FloatingIP, port_id: str, fixed_ip: str | None) -> tuple[str, str, str]:
    """(port_id, fixed_ip, router_id) after upstream's checks."""
    try:
        r.v_uuid(port_id)
    except r.Invalid as exc:
        raise r.BadRequest(f"Invalid input for port_id. Reason: {exc}.") from None
    port = sess.get(m.Port, port_id)
    if port is None or (ctx is not None and not r.is_admin(ctx) and port.project_id != ctx.project_id):
        raise r.not_found_error("Port", port_id)
    if port.project_id != row.project_id and not r.is_admin(ctx):
        raise bad_fip(f"Cannot create floating IP and bind it to Port {port_id}, since that port is owned by a "
                      "different tenant")
    ips = routers.port_ips(sess, port.id)
    if fixed_ip is not None:
        try:
            fixed_ip = r.v_ip(fixed_ip)
        except r.Invalid as exc:
            raise r.BadRequest(f"Invalid input for fixed_ip_address. Reason: {exc}.") from None
        match = [(s, ip) for s, ip in ips if ip == fixed_ip]
        if not match:
            raise bad_fip(f"Port {port_id} does not have fixed ip {fixed_ip}")
    else:
        v4 = [(s, ip) for s, ip in ips if ipaddress.ip_address(ip).version == 4]
        if not v4:
            raise bad_fip(f"Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses")
        if len(v4) > 1:
            raise bad_fip(f"Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 "
                          "address when assigning a floating IP")
        match = v4
    if ipaddress.ip_address(match[0][1]).version != 4:
        raise bad_fip(f"Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses")
    subnet_id, fixed_ip = match[0]
    router_id = routers.router_for_floating_ip(sess, [subnet_id], row.floating_network_id)
    if router_id is None:
        raise r.not_found("ExternalGatewayForFloatingIPNotFound",
                          f"External network {row.floating_network_id} is not reachable from subnet {subnet_id}.  "
                          f"Therefore, cannot associate Port {port_id} with a Floating IP.")
    taken = sess.scalars(select(m.FloatingIP).where(
        m.FloatingIP.fixed_port_id == port_id, m.FloatingIP.fixed_ip_address == fixed_ip,
        m.FloatingIP.floating_network_id == row.floating_network_id, m.FloatingIP.id != row.id)).first()
    if taken is not None:
        raise r.neutron_error(409, "FloatingIPPortAlreadyAssociated",
                              f"Cannot associate floating IP {row.floating_ip_address} ({row.id}) with port "
                              f"{port_id} using fixed IP {fixed_ip}, as that fixed IP already has a floating IP on "
                              f"external network {row.floating_network_id}.")
    return port_id, fixed_ip, router_id


def _apply(row: m.FloatingIP, assoc: tuple | None) -> None:
    if assoc is None:
        row.fixed_port_id = row.fixed_ip_address = row.router_id = None
        row.status = "DOWN"
    else:
        row.fixed_port_id, row.fixed_ip_address, row.router_id = assoc
        row.status = "ACTIVE"


# ---------------------------------------------------------------------------- create / update / delete
def create_floating_ip(ctx: AuthContext | None, data: dict) -> dict:
    """`data`: parsed body (floating_network_id, subnet_id, floating_ip_address, port_id,
    fixed_ip_address, description, project_id, `_explicit`)."""
    project_id = data["project_id"]
    target = {"project_id": project_id, "tenant_id": project_id}
    r.enforce(ctx, "create_floatingip", target)
    r.enforce_attrs(ctx, "create_floatingip", target, data.get("_explicit", ()))
    net_id = data["floating_network_id"]
    with session() as sess:
        network = routers._networks().get_visible(sess, ctx, net_id)
        if not routers._rbac().external_for(sess, network, project_id):
            raise bad_fip(f"Network {net_id} is not a valid external network")
        r.check_quota(sess, project_id, "floatingip", 1)
        fixed = _floating_request(sess, net_id, data.get("subnet_id"), data.get("floating_ip_address"))
        now = utcnow()
        fip_id = str(uuid.uuid4())
        port = routers._create_port(sess, ctx, network_id=net_id, project_id="", device_id=fip_id,
                                    device_owner=FLOATING_OWNER, fixed_ips=fixed)
        v4 = [ip for _, ip in routers.port_ips(sess, port.id) if ipaddress.ip_address(ip).version == 4]
        if not v4:
            raise r.neutron_error(400, "ExternalIpAddressExhausted" if not fixed else "BadRequest",
                                  f"Unable to find any IP address on external network {net_id}.")
        row = m.FloatingIP(id=fip_id, project_id=project_id, floating_ip_address=v4[0], floating_network_id=net_id,
                           floating_port_id=port.id, description=data.get("description") or "", status="DOWN",
                           created_at=now, updated_at=now)
        sess.add(row)
        sess.flush()
        if data.get("port_id"):
            _apply(row, _association(sess, ctx, row, data["port_id"], data.get("fixed_ip_address")))
        elif data.get("fixed_ip_address"):
            raise bad_fip("fixed_ip_address cannot be specified without a port_id")
        sess.flush()
        body = render(sess, row, [])
    r.emit("floatingip", "created", {"id": row.id, "project_id": project_id,
                                    "floating_ip_address": row.floating_ip_address, "port_id": row.fixed_port_id}, ctx)
    return body


def _floating_request(sess, net_id: str, subnet_id, address) -> list[dict] | None:
    """The floating port's fixed_ips: a given subnet and/or address, else the first IPv4
    subnet of the external network with room (the core's IPAM picks)."""
    if subnet_id is None and address is None:
        v4 = list(sess.scalars(select(m.Subnet).where(m.Subnet.network_id == net_id, m.Subnet.ip_version == 4)
                               .order_by(m.Subnet.created_at)))
        if not v4:
            raise r.neutron_error(400, "BadRequest", f"Bad floatingip request: Network {net_id} does not contain "
                                  "any IPv4 subnet.")
        return [{"subnet_id": v4[0].id}] if len(v4) == 1 else None
    entry = {}
    if subnet_id is not None:
        subnet = sess.get(m.Subnet, subnet_id)
        if subnet is None:
            raise r.not_found_error("Subnet", subnet_id)
        if subnet.network_id != net_id:
            raise bad_fip(f"Subnet {subnet_id} is not on the external network {net_id}")
        if subnet.ip_version != 4:
            raise bad_fip(f"Subnet {subnet_id} is not an IPv4 subnet")
        entry["subnet_id"] = subnet_id
    if address is not None:
        if ipaddress.ip_address(address).version != 4:
            raise bad_fip(f"{address} is not an IPv4 address")
        entry["ip_address"] = address
    return [entry]


def update_floating_ip(ctx: AuthContext | None, id_: str, changes: dict, req=None) -> dict:
    with session() as sess:
        row = load(sess, ctx, id_)
        r.check_if_match(req, row)
        r.enforce(ctx, "update_floatingip", _target(row))
        if "description" in changes:
            row.description = changes["description"] or ""
        if "port_id" in changes:
            if changes["port_id"]:
                _apply(row, _association(sess, ctx, row, changes["port_id"], changes.get("fixed_ip_address")))
            else:
                _apply(row, None)
        elif changes.get("fixed_ip_address"):
            if not row.fixed_port_id:
                raise bad_fip("fixed_ip_address cannot be specified without a port_id")
            _apply(row, _association(sess, ctx, row, row.fixed_port_id, changes["fixed_ip_address"]))
        if changes:
            r.bump_revision(row)
        sess.flush()
        body = render(sess, row)
    r.emit("floatingip", "updated", {"id": id_, "port_id": body["port_id"],
                                    "fixed_ip_address": body["fixed_ip_address"]}, ctx)
    return body


def delete_floating_ip(ctx: AuthContext | None, id_: str, req=None) -> None:
    with session() as sess:
        row = load(sess, ctx, id_)
        r.check_if_match(req, row)
        r.enforce(ctx, "delete_floatingip", _target(row))
        port_id = row.floating_port_id
        r.delete_tags(sess, "floatingip", row.id)
        sess.delete(row)
        sess.flush()
        if sess.get(m.Port, port_id) is not None:
            routers._delete_port(sess, port_id)
        payload = {"id": id_, "project_id": row.project_id, "floating_ip_address": row.floating_ip_address}
    r.emit("floatingip", "deleted", payload, ctx)


# ---------------------------------------------------------------------------- hooks for the core and compute
def port_deleted(port_id: str) -> None:
    """Disassociate the floating IPs of a port being deleted (the core's port delete calls it)."""
    with session() as sess:
        rows = list(sess.scalars(select(m.FloatingIP).where(m.FloatingIP.fixed_port_id == port_id)))
        for row in rows:
            _apply(row, None)
            r.bump_revision(row)
        sess.flush()
    for row in rows:
        r.emit("floatingip", "updated", {"id": row.id, "port_id": None, "fixed_ip_address": None})


def _on_port_delete(sess, port: m.Port) -> None:
    port_deleted(port.id)


def _register_port_hooks() -> None:
    from pocketstack.network import ports

    if routers.veto_port_delete not in ports.DELETE_CHECKS:
        ports.DELETE_CHECKS.append(routers.veto_port_delete)
    if _on_port_delete not in ports.DELETE_HOOKS:
        ports.DELETE_HOOKS.append(_on_port_delete)


_register_port_hooks()


def floating_ips_for_ports(port_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{port_id: [(fixed_ip, floating_ip), ...]}: what compute shows as `floating` addresses."""
    out: dict[str, list[tuple[str, str]]] = {}
    if not port_ids:
        return out
    with session() as sess:
        for row in sess.scalars(select(m.FloatingIP).where(m.FloatingIP.fixed_port_id.in_(port_ids))):
            out.setdefault(row.fixed_port_id, []).append((row.fixed_ip_address, row.floating_ip_address))
    return out
