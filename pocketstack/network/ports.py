"""Ports: MAC and IP allocation, bindings, port security, security groups, the DHCP port.

A port starts DOWN and becomes ACTIVE once bound (`binding:host_id` set, by compute or an
admin) while admin_state_up; unbinding puts it back DOWN. Ports of the network itself
(`network:*` owners) get no security groups. `port_security_enabled` defaults to the
network's; without it a port may have neither security groups nor allowed address pairs.

The DHCP port: each network with a DHCP-enabled subnet has one port owned by
`network:dhcp` holding one address per such subnet (the first free pool address, as the
DHCP agent takes upstream), so those addresses are never handed to other ports.
"""
from __future__ import annotations

import ipaddress
import socket

from sqlalchemy import func, select

from pocketstack.network import ipam, networks
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic",
              "vdpa", "accelerator-direct", "accelerator-direct-physical", "remote-managed")
BOUND_VIF_TYPE = "bridge"
BOUND_VIF_DETAILS = {"port_filter": True, "connectivity": "l2"}


def _address_pairs(value):
    if not isinstance(value, list):
        raise r.Invalid(f"'{value}' is not a list")
    out = []
    for pair in value:
        if not isinstance(pair, dict) or "ip_address" not in pair or set(pair) - {"ip_address", "mac_address"}:
            raise r.Invalid(f"Unrecognized attribute(s) '{pair}'" if isinstance(pair, dict)
                            else f"'{pair}' is not a dictionary")
        item = {"ip_address": r.v_ip_or_cidr(pair["ip_address"])}
        if pair.get("mac_address") is not None:
            item["mac_address"] = r.v_mac(pair["mac_address"])
        if item in out:
            raise r.Invalid("Duplicate address detected")
        out.append(item)
    return out


def _dhcp_opts(value):
    if not isinstance(value, list):
        raise r.Invalid(f"'{value}' is not a list")
    out = []
    for opt in value:
        if not isinstance(opt, dict) or "opt_name" not in opt or set(opt) - {"opt_name", "opt_value", "ip_version"}:
            raise r.Invalid(f"Invalid data format for extra-dhcp-opt: {opt}")
        out.append({"opt_name": r.v_string(255)(opt["opt_name"]),
                    "opt_value": None if opt.get("opt_value") is None else str(opt["opt_value"]),
                    "ip_version": r.v_enum([4, 6])(opt.get("ip_version", 4))})
    return out


def _fixed_ips(value):
    if not isinstance(value, list):
        raise r.Invalid(f"'{value}' is not a list")
    return value


def _device_owner(value):
    return r.v_string(255)(value)


def _profile(value):
    if value is None:
        return {}
    return r.v_dict(value)


RESOURCE = r.Resource("port", "ports", [
    r.Attr("network_id", required=True, validate=r.v_uuid),
    r.Attr("admin_state_up", put=True, default=True, validate=r.v_bool),
    r.Attr("mac_address", put=True, validate=r.v_mac),
    r.Attr("fixed_ips", put=True, validate=_fixed_ips),
    r.Attr("device_id", put=True, default="", validate=r.v_string(255)),
    r.Attr("device_owner", put=True, default="", validate=_device_owner),
    r.Attr("security_groups", put=True, validate=r.v_list(r.v_uuid, unique=False)),
    r.Attr("allowed_address_pairs", put=True, default=list, validate=_address_pairs),
    r.Attr("extra_dhcp_opts", put=True, default=list, validate=_dhcp_opts),
    r.Attr("port_security_enabled", put=True, validate=r.v_bool),
    r.Attr("binding:host_id", put=True, default="", validate=r.v_string(255, nullable=True)),
    r.Attr("binding:vnic_type", put=True, default="normal", validate=r.v_enum(VNIC_TYPES)),
    r.Attr("binding:profile", put=True, default=dict, validate=_profile),
    r.Attr("dns_name", put=True, default="", validate=r.v_string(255)),
])


def port_not_found(pid: str):
    return r.not_found_error("Port", pid)


def _sg():
    try:
        from pocketstack.network import security_groups
        return security_groups
    except ImportError:  # the security-group module ships separately
        return None


# ---------------------------------------------------------------------------- visibility
def visible_query(ctx):
    q = select(m.Port)
    if ctx is None or r.is_admin(ctx):
        return q
    pid = ctx.project_id
    owned_nets = select(m.Network.id).where(m.Network.project_id == pid)
    return q.where((m.Port.project_id == pid) | m.Port.network_id.in_(owned_nets))


def get_visible(sess, ctx, port_id: str) -> m.Port:
    port = sess.scalars(visible_query(ctx).where(m.Port.id == port_id)).first()
    if port is None:
        raise port_not_found(port_id)
    return port


def policy_target(sess, port: m.Port, net: m.Network | None = None) -> dict:
    net = net or sess.get(m.Network, port.network_id)
    return r.policy_target({"id": port.id, "project_id": port.project_id, "network_id": port.network_id,
                            "device_owner": port.device_owner, "shared": bool(net and net.shared)},
                           **{"network:project_id": net.project_id if net else None,
                              "device_owner_prefix": "network:" if port.device_owner.startswith("network:") else ""})


# ---------------------------------------------------------------------------- rendering
def render_many(sess, ports: list, ctx=None) -> list[dict]:
    """Ports (objects, or plain rows of the port table for lists: read by attribute only)."""
    ids = [p.id for p in ports]
    tags = r.load_tags(sess, "port", ids)
    ips: dict[str, list[dict]] = {i: [] for i in ids}
    groups: dict[str, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        for pid, sid, address in sess.execute(select(m.IPAllocation.port_id, m.IPAllocation.subnet_id,
                                                     m.IPAllocation.ip_address)
                                              .where(m.IPAllocation.port_id.in_(part))):
            ips[pid].append({"subnet_id": sid, "ip_address": address})
        for pid, gid in sess.execute(select(m.SecurityGroupPortBinding.port_id,
                                            m.SecurityGroupPortBinding.security_group_id)
                                     .where(m.SecurityGroupPortBinding.port_id.in_(part))):
            groups[pid].append(gid)
    out, cache = [], {}
    for p in ports:
        fixed = ips[p.id]
        if len(fixed) > 1:
            fixed.sort(key=lambda x: (ipaddress.ip_address(x["ip_address"]).version,
                                      ipaddress.ip_address(x["ip_address"])))
        item = render(p, tags[p.id], fixed, sorted(groups[p.id]))
        out.append(r.hide_attrs(ctx, "get_port", item, cache=cache))
    return out


def render(p: m.Port, tags, fixed_ips, groups) -> dict:
    return {
        **r.standard_attrs(p, tags),
        "network_id": p.network_id,
        "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up,
        "status": p.status,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": fixed_ips,
        "allowed_address_pairs": [{"ip_address": a["ip_address"], "mac_address": a.get("mac_address") or p.mac_address}
                                  for a in p.allowed_address_pairs],
        "extra_dhcp_opts": [dict(o) for o in p.extra_dhcp_opts],
        "security_groups": groups,
        "port_security_enabled": p.port_security_enabled,
        "binding:host_id": p.binding_host_id,
        "binding:vif_type": p.binding_vif_type,
        "binding:vif_details": dict(p.binding_vif_details),
        "binding:vnic_type": p.binding_vnic_type,
        "binding:profile": dict(p.binding_profile),
        "dns_name": p.dns_name,
        "dns_assignment": [{"ip_address": f["ip_address"], "hostname": p.dns_name or _host_label(f["ip_address"]),
                            "fqdn": (p.dns_name or _host_label(f["ip_address"])) + ".openstacklocal."}
                           for f in fixed_ips],
        "propagate_uplink_status": False,
        "resource_request": None,
        "ip_allocation": "immediate",
    }


def _host_label(ip: str) -> str:
    return "host-" + ip.replace(".", "-").replace(":", "-")


def render_one(sess, p: m.Port, ctx=None) -> dict:
    return render_many(sess, [p], ctx)[0]


# ---------------------------------------------------------------------------- binding
def apply_binding(port: m.Port, host: str | None) -> None:
    """Bound (a host) -> the dataplane's vif type and ACTIVE; unbound -> DOWN."""
    port.binding_host_id = host or ""
    if host:
        port.binding_vif_type = BOUND_VIF_TYPE
        port.binding_vif_details = dict(BOUND_VIF_DETAILS)
    else:
        port.binding_vif_type = "unbound"
        port.binding_vif_details = {}
    port.status = "ACTIVE" if host and port.admin_state_up else "DOWN"


# ---------------------------------------------------------------------------- create
def _network_subnets(sess, net_id: str) -> list[m.Subnet]:
    return list(sess.scalars(select(m.Subnet).where(m.Subnet.network_id == net_id)
                             .order_by(m.Subnet.created_at, m.Subnet.id)))


def _check_port_security(enabled: bool, groups: list | None, pairs: list, fixed: bool = True) -> None:
    if not enabled and groups:
        raise r.neutron_error(409, "PortSecurityAndIPRequiredForSecurityGroups",
                              "Port security must be enabled and port must have an IP address in order to use "
                              "security groups.")
    if not enabled and pairs:
        raise r.neutron_error(409, "AddressPairAndPortSecurityRequired",
                              "Port Security must be enabled in order to have allowed address pairs on a port.")


def create(sess, ctx, data: dict, *, status_host: str | None = None) -> m.Port:
    explicit = data.pop("_explicit", set())
    net = networks.get_visible(sess, ctx, data["network_id"])
    owner = data["device_owner"]
    target = r.policy_target({"project_id": data["project_id"], "network_id": net.id, "device_owner": owner,
                              "shared": net.shared},
                             **{"network:project_id": net.project_id,
                                "device_owner_prefix": "network:" if owner.startswith("network:") else ""})
    r.enforce(ctx, "create_port", target)
    r.enforce_attrs(ctx, "create_port", target, explicit, data)
    if not networks.shared_with(sess, ctx, net) and not r.is_admin(ctx):
        # visible (external) but neither ours nor shared with us
        raise r.neutron_error(403, "HTTPForbidden",
                              f"Tenant {data['project_id']} not allowed to create port on this network")
    r.check_quota(sess, data["project_id"], "port", 1)
    subnets = _network_subnets(sess, net.id)
    requested = None
    if data.get("fixed_ips") is not None:
        requested = ipam.resolve_fixed_ips(sess, net.id, subnets, data["fixed_ips"])
    security = data.get("port_security_enabled")
    if security is None:
        security = net.port_security_enabled
    pairs = data["allowed_address_pairs"]
    groups = data.get("security_groups")
    _check_port_security(security, groups, pairs)
    port = m.Port(id=r.new_uuid(), project_id=data["project_id"], network_id=net.id, name=data["name"],
                  description=data["description"], admin_state_up=data["admin_state_up"],
                  device_id=data["device_id"], device_owner=owner, port_security_enabled=security,
                  binding_vnic_type=data["binding:vnic_type"], binding_profile=data["binding:profile"] or {},
                  allowed_address_pairs=pairs, extra_dhcp_opts=data["extra_dhcp_opts"],
                  dns_name=data.get("dns_name") or "")
    apply_binding(port, data.get("binding:host_id") or status_host)
    _insert_with_mac(sess, port, data.get("mac_address"))
    ipam.allocate_for_port(sess, port, subnets, requested, device_owner=owner)
    _set_groups(sess, ctx, port, groups, security)
    sess.flush()
    return port


def _insert_with_mac(sess, port: m.Port, mac: str | None) -> None:
    """Insert the port row with the given MAC (409 MacAddressInUse when taken on the
    network) or a random fa:16:3e one (retried on the unlikely collision). The unique
    (network, mac) constraint is the guard."""
    for _ in range(10):
        port.mac_address = mac or ipam.random_mac()
        taken = port.mac_address

        def exists():
            return sess.scalar(select(func.count()).select_from(m.Port).where(
                m.Port.network_id == port.network_id, m.Port.mac_address == taken)) > 0
        if ipam.try_insert(sess, port, exists):
            return
        if port in sess:
            sess.expunge(port)
        if mac:
            raise ipam.mac_in_use(port.network_id, mac)
    raise r.neutron_error(409, "MacAddressGenerationFailure",
                          f"Unable to generate unique mac on network {port.network_id}.")


def _set_groups(sess, ctx, port: m.Port, groups: list | None, security: bool) -> None:
    sg = _sg()
    if sg is None:
        return
    if groups is None:
        if not security or port.device_owner.startswith("network:"):
            return
        groups = [sg.ensure_default_security_group(port.project_id)]
    else:
        groups = sg.check_groups_for_port(ctx, port.project_id, groups)
    sg.bind_port(port.id, groups)


# ---------------------------------------------------------------------------- update
def update(sess, ctx, port_id: str, data: dict, req=None) -> m.Port:
    port = get_visible(sess, ctx, port_id)
    net = sess.get(m.Network, port.network_id)
    target = policy_target(sess, port, net)
    r.enforce(ctx, "update_port", target)
    if "device_owner" in data and data["device_owner"].startswith("network:"):
        target = {**target, "device_owner_prefix": "network:"}
    r.enforce_attrs(ctx, "update_port", target, set(data), data)
    r.check_if_match(req, port)
    security = data.get("port_security_enabled", port.port_security_enabled)
    sg = _sg()
    current_groups = sg.port_security_groups(port.id) if sg else []
    groups = data.get("security_groups", None)
    pairs = data.get("allowed_address_pairs", port.allowed_address_pairs)
    if "port_security_enabled" in data and not security and "security_groups" not in data and current_groups:
        _check_port_security(security, current_groups, [])
    _check_port_security(security, groups if groups is not None else (current_groups if not security and
                                                                       "port_security_enabled" in data else []),
                         pairs)
    if "mac_address" in data and data["mac_address"] != port.mac_address:
        if port.binding_host_id and port.device_owner.startswith("compute:"):
            raise r.neutron_error(409, "PortBound", f"Unable to complete operation on port {port.id}, port is "
                                                    f"already bound, port type: {port.binding_vif_type}, old_mac "
                                                    f"{port.mac_address}, new_mac {data['mac_address']}.")
        clash = sess.scalar(select(func.count()).select_from(m.Port).where(
            m.Port.network_id == port.network_id, m.Port.mac_address == data["mac_address"]))
        if clash:
            raise ipam.mac_in_use(port.network_id, data["mac_address"])
        port.mac_address = data["mac_address"]
    if "fixed_ips" in data:
        _update_fixed_ips(sess, port, data["fixed_ips"])
    simple = {"name": "name", "description": "description", "admin_state_up": "admin_state_up",
              "device_id": "device_id", "device_owner": "device_owner",
              "port_security_enabled": "port_security_enabled", "binding:vnic_type": "binding_vnic_type",
              "allowed_address_pairs": "allowed_address_pairs", "extra_dhcp_opts": "extra_dhcp_opts",
              "dns_name": "dns_name"}
    for key, col in simple.items():
        if key in data:
            setattr(port, col, data[key])
    if "binding:profile" in data:
        port.binding_profile = data["binding:profile"] or {}
    if "binding:host_id" in data:
        apply_binding(port, data["binding:host_id"])
    elif "admin_state_up" in data:
        apply_binding(port, port.binding_host_id)
    if groups is not None:
        _set_groups(sess, ctx, port, groups, security)
    elif "port_security_enabled" in data and security and not current_groups and sg \
            and not port.device_owner.startswith("network:"):
        pass  # upstream leaves a port without groups when security is switched back on
    r.bump_revision(port)
    sess.flush()
    return port


def _update_fixed_ips(sess, port: m.Port, fixed_ips) -> None:
    if not isinstance(fixed_ips, list):
        raise r.BadRequest(f"Invalid input for fixed_ips. Reason: '{fixed_ips}' is not a list.")
    subnets = _network_subnets(sess, port.network_id)
    wanted = ipam.resolve_fixed_ips(sess, port.network_id, subnets, fixed_ips)
    held = {a.ip_address: a for a in sess.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id == port.id))}
    keep = {e["ip_address"] for e in wanted if e["ip_address"] in held}
    for ip, alloc in held.items():
        if ip not in keep:
            sess.delete(alloc)
    sess.flush()
    new = [e for e in wanted if e["ip_address"] not in keep]
    # a subnet asked for without an address keeps the address it already has there
    for e in list(new):
        if e["ip_address"] is None:
            mine = [ip for ip, a in held.items() if a.subnet_id == e["subnet_id"] and ip in keep]
            if mine:
                new.remove(e)
    if new:
        ipam.allocate_for_port(sess, port, subnets, new, device_owner=port.device_owner)


# ---------------------------------------------------------------------------- delete
# Other modules (routers, floating IPs) may veto or clean up a port delete: fn(sess, port).
DELETE_CHECKS: list = []
DELETE_HOOKS: list = []


def delete(sess, ctx, port_id: str, req=None) -> m.Port:
    port = get_visible(sess, ctx, port_id)
    r.enforce(ctx, "delete_port", policy_target(sess, port))
    r.check_if_match(req, port)
    for fn in DELETE_CHECKS:
        fn(sess, port)
    delete_row(sess, port)
    return port


def delete_row(sess, port: m.Port) -> None:
    """Remove a port and everything hanging off it; its addresses return to the pools."""
    for fn in DELETE_HOOKS:
        fn(sess, port)
    sess.query(m.IPAllocation).filter(m.IPAllocation.port_id == port.id).delete()
    sess.query(m.SecurityGroupPortBinding).filter(m.SecurityGroupPortBinding.port_id == port.id).delete()
    r.delete_tags(sess, "port", port.id)
    sess.delete(port)
    sess.flush()


def count(sess, project_id: str) -> int:
    return sess.scalar(select(func.count()).select_from(m.Port).where(m.Port.project_id == project_id))


# ---------------------------------------------------------------------------- DHCP port
def dhcp_host() -> str:
    return socket.gethostname()


def sync_dhcp_port(sess, net: m.Network | None) -> None:
    """One `network:dhcp` port per network with DHCP-enabled subnets, holding an address on
    each of them; removed when no such subnet remains."""
    if net is None:
        return
    subs = [s for s in _network_subnets(sess, net.id) if s.enable_dhcp]
    port = sess.scalars(select(m.Port).where(m.Port.network_id == net.id,
                                             m.Port.device_owner == "network:dhcp")).first()
    if not subs:
        if port is not None:
            delete_row(sess, port)
            r.emit("port", "deleted", {"id": port.id, "network_id": net.id, "device_owner": "network:dhcp"})
        return
    if port is None:
        port = m.Port(id=r.new_uuid(), project_id=net.project_id, network_id=net.id, name="",
                      device_id=f"dhcp-{net.id}", device_owner="network:dhcp", port_security_enabled=False)
        port.admin_state_up = True
        apply_binding(port, dhcp_host())
        _insert_with_mac(sess, port, None)
        r.emit("port", "created", {"id": port.id, "network_id": net.id, "device_owner": "network:dhcp"})
    held = {a.subnet_id: a for a in sess.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id == port.id))}
    wanted = {s.id for s in subs}
    for sid, alloc in held.items():
        if sid not in wanted:
            sess.delete(alloc)
    for s in subs:
        if s.id in held:
            continue
        if ipam.is_auto_address(s):
            ipam.allocate_auto_address(sess, s, port.id, port.mac_address)
        elif ipam.allocate_any(sess, s, port.id) is None:
            raise ipam.ip_generation_failure(net.id)
    sess.flush()
