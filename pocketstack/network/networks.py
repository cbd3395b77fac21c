"""Networks: visibility, provider segments, create/update/delete, rendering.

Who sees a network: its project, admins, everybody when it is `shared` or `router:external`,
and projects an RBAC policy (`access_as_shared` / `access_as_external`, the rbac module's
table) names. A network nobody may see is a 404, never a 403.

Provider segments (ML2's type drivers): `flat` (a physical network, at most one network
each; `[ml2_type_flat] flat_networks`, `*` = any), `vlan` (ids 1-4094 per physical network,
tenant networks drawn from `[ml2_type_vlan] network_vlan_ranges` = `physnet:min:max,...`),
`vxlan`/`geneve` (VNIs from `[ml2_type_vxlan] vni_ranges` / `[ml2_type_geneve] vni_ranges`),
`local`. Project networks get the first type of `[ml2] tenant_network_types` with a free
id. Every taken id is a unique `alloc_key` row, so concurrent creates never share one.
"""
from __future__ import annotations

from sqlalchemy import func, or_, select

from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

TYPES = ("flat", "vlan", "vxlan", "geneve", "local")
OVERHEAD = {"vxlan": 50, "geneve": 58}

RESOURCE = r.Resource("network", "networks", [
    r.Attr("admin_state_up", put=True, default=True, validate=r.v_bool),
    r.Attr("shared", put=True, default=False, validate=r.v_bool),
    r.Attr("router:external", put=True, default=False, validate=r.v_bool),
    r.Attr("is_default", put=True, default=False, validate=r.v_bool),
    r.Attr("mtu", put=True, validate=r.v_int(68, 65535)),
    r.Attr("port_security_enabled", put=True, default=True, validate=r.v_bool),
    r.Attr("dns_domain", put=True, default="", validate=r.v_string(255)),
    r.Attr("availability_zone_hints", default=list, validate=r.v_list(r.v_string(255))),
    r.Attr("provider:network_type", validate=r.v_string(32)),
    r.Attr("provider:physical_network", validate=r.v_string(64, nullable=True)),
    r.Attr("provider:segmentation_id", validate=r.v_int(nullable=True)),
])


def conf(section: str, key: str, default: str) -> str:
    return current().config.get(section, key, default)


def net_not_found(net_id: str):
    return r.not_found_error("Network", net_id)


# ---------------------------------------------------------------------------- visibility
def rbac_projects_clause(project_id: str | None, actions=("access_as_shared", "access_as_external")):
    """Network ids an RBAC policy opens to `project_id`."""
    return select(m.RbacPolicy.object_id).where(
        m.RbacPolicy.object_type == "network", m.RbacPolicy.action.in_(actions),
        m.RbacPolicy.target_project.in_([project_id or "", "*"]))


def visible_query(ctx, *, admin_sees_all: bool = True):
    q = select(m.Network)
    if ctx is None or (admin_sees_all and r.is_admin(ctx)):
        return q
    pid = ctx.project_id
    return q.where(or_(m.Network.project_id == pid, m.Network.shared.is_(True), m.Network.external.is_(True),
                       m.Network.id.in_(rbac_projects_clause(pid))))


def get_visible(sess, ctx, net_id: str) -> m.Network:
    net = sess.scalars(visible_query(ctx).where(m.Network.id == net_id)).first()
    if net is None:
        raise net_not_found(net_id)
    return net


def shared_with(sess, ctx, net: m.Network) -> bool:
    """Whether the caller may use (attach ports to) a network it does not own."""
    if ctx is None or r.is_admin(ctx) or net.project_id == ctx.project_id or net.shared:
        return True
    return sess.scalar(select(func.count()).select_from(m.RbacPolicy).where(
        m.RbacPolicy.object_type == "network", m.RbacPolicy.object_id == net.id,
        m.RbacPolicy.action == "access_as_shared",
        m.RbacPolicy.target_project.in_([ctx.project_id, "*"]))) > 0


# ---------------------------------------------------------------------------- rendering
def render_many(sess, nets: list[m.Network], ctx=None) -> list[dict]:
    ids = [n.id for n in nets]
    tags = r.load_tags(sess, "network", ids)
    subnets: dict[str, list[str]] = {i: [] for i in ids}
    segs: dict[str, list[m.Segment]] = {i: [] for i in ids}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for sid, nid in sess.execute(select(m.Subnet.id, m.Subnet.network_id).where(m.Subnet.network_id.in_(part))
                                     .order_by(m.Subnet.created_at, m.Subnet.id)):
            subnets[nid].append(sid)
        for seg in sess.scalars(select(m.Segment).where(m.Segment.network_id.in_(part))
                                .order_by(m.Segment.segment_index)):
            segs[seg.network_id].append(seg)
    out, cache = [], {}
    for n in nets:
        item = render(n, tags[n.id], subnets[n.id], segs[n.id])
        out.append(r.hide_attrs(ctx, "get_network", item, cache=cache))
    return out


def render(n: m.Network, tags: list[str], subnet_ids: list[str], segs: list[m.Segment]) -> dict:
    seg = segs[0] if segs else None
    return {
        **r.standard_attrs(n, tags),
        "admin_state_up": n.admin_state_up,
        "status": n.status,
        "subnets": subnet_ids,
        "shared": n.shared,
        "router:external": n.external,
        "is_default": n.is_default,
        "mtu": n.mtu,
        "port_security_enabled": n.port_security_enabled,
        "dns_domain": n.dns_domain,
        "availability_zone_hints": list(n.availability_zone_hints or []),
        "availability_zones": ["nova"],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "l2_adjacency": True,
        "provider:network_type": seg.network_type if seg else None,
        "provider:physical_network": seg.physical_network if seg else None,
        "provider:segmentation_id": seg.segmentation_id if seg else None,
    }


def render_one(sess, n: m.Network, ctx=None) -> dict:
    return render_many(sess, [n], ctx)[0]


def policy_target(n: m.Network) -> dict:
    return r.policy_target({"id": n.id, "project_id": n.project_id, "shared": n.shared,
                            "router:external": n.external})


# ---------------------------------------------------------------------------- segments
def _ranges(raw: str) -> list[tuple[int, int]]:
    out = []
    for part in raw.split(","):
        part = part.strip()
        if ":" in part:
            lo, hi = part.split(":", 1)
            out.append((int(lo), int(hi)))
    return out


def vlan_ranges() -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for part in conf("ml2_type_vlan", "network_vlan_ranges", "").split(","):
        bits = part.strip().split(":")
        if not bits[0]:
            continue
        out.setdefault(bits[0], [])
        if len(bits) == 3:
            out[bits[0]].append((int(bits[1]), int(bits[2])))
    return out


def tunnel_ranges(kind: str) -> list[tuple[int, int]]:
    default = "1:1000" if kind == "vxlan" else ""
    return _ranges(conf(f"ml2_type_{kind}", "vni_ranges", default))


def _key(kind: str, physnet: str | None, seg_id: int | None) -> str | None:
    if kind == "local":
        return None
    if kind == "flat":
        return f"flat:{physnet}"
    return f"{kind}:{physnet or ''}:{seg_id}"


def _in_use(kind, physnet, seg_id):
    if kind == "flat":
        return r.neutron_error(409, "FlatNetworkInUse", f"Unable to create the flat network. Physical network "
                                                        f"{physnet} is in use.")
    if kind == "vlan":
        return r.neutron_error(409, "VlanIdInUse", f"Unable to create the network. The VLAN {seg_id} on physical "
                                                   f"network {physnet} is in use.")
    return r.neutron_error(409, "TunnelIdInUse", f"Unable to create the network. The tunnel ID {seg_id} is in use.")


def _add_segment(sess, net_id: str, kind: str, physnet, seg_id) -> bool:
    from pocketstack.network.ipam import try_insert

    key = _key(kind, physnet, seg_id)
    row = m.Segment(id=r.new_uuid(), network_id=net_id, network_type=kind, physical_network=physnet,
                    segmentation_id=seg_id, alloc_key=key)
    return try_insert(sess, row, lambda: key is not None and sess.scalar(
        select(func.count()).select_from(m.Segment).where(m.Segment.alloc_key == key)) > 0)


def validate_provider(kind: str, physnet, seg_id) -> tuple[str, str | None, int | None]:
    """Neutron's provider-attribute rules per type (400 InvalidInput on misuse)."""
    drivers = [t.strip() for t in conf("ml2", "type_drivers", ",".join(TYPES)).split(",") if t.strip()]
    if kind not in TYPES or kind not in drivers:
        raise r.InvalidInput(f"network_type value '{kind}' not supported")
    if kind == "flat":
        if seg_id is not None:
            raise r.InvalidInput("segmentation_id prohibited for flat provider network")
        if not physnet:
            raise r.InvalidInput("physical_network required for flat provider network")
        allowed = [p.strip() for p in conf("ml2_type_flat", "flat_networks", "*").split(",") if p.strip()]
        if "*" not in allowed and physnet not in allowed:
            raise r.InvalidInput(f"physical_network '{physnet}' unknown for flat provider network")
    elif kind == "vlan":
        if seg_id is not None and not 1 <= seg_id <= 4094:
            raise r.InvalidInput("segmentation_id out of range (1 through 4094)")
        ranges = vlan_ranges()
        if physnet and physnet not in ranges and seg_id is None:
            raise r.InvalidInput(f"physical_network '{physnet}' unknown for VLAN provider network")
        if not physnet and seg_id is not None:
            raise r.InvalidInput("provider:physical_network specified for VLAN provider network must be given "
                                 "with segmentation_id")
    elif kind in ("vxlan", "geneve"):
        if physnet:
            raise r.InvalidInput(f"provider:physical_network specified for {kind.upper()} network")
        if seg_id is not None and not 1 <= seg_id <= (2 ** 24 - 1):
            raise r.InvalidInput(f"{kind.upper()} network unknown segmentation_id {seg_id}")
    elif kind == "local":
        if physnet or seg_id is not None:
            raise r.InvalidInput("provider:physical_network and provider:segmentation_id prohibited for local "
                                 "provider network")
    return kind, physnet or None, seg_id


def _allocate_from(sess, net_id: str, kind: str, pools: list[tuple[str | None, int, int]]) -> bool:
    """Take the lowest free id of the ranges (retrying past ids taken concurrently)."""
    for physnet, lo, hi in pools:
        used = set(sess.scalars(select(m.Segment.segmentation_id).where(
            m.Segment.network_type == kind,
            m.Segment.physical_network.is_(None) if physnet is None else m.Segment.physical_network == physnet)))
        for seg_id in range(lo, hi + 1):
            if seg_id in used:
                continue
            if _add_segment(sess, net_id, kind, physnet, seg_id):
                return True
    return False


def add_provider_segment(sess, net_id: str, kind: str, physnet, seg_id) -> None:
    kind, physnet, seg_id = validate_provider(kind, physnet, seg_id)
    if kind == "vlan" and seg_id is None:
        ranges = vlan_ranges()
        pools = [(p, lo, hi) for p, rs in ranges.items() if physnet in (None, p) for lo, hi in rs]
        if not _allocate_from(sess, net_id, "vlan", pools):
            raise no_network_available()
        return
    if kind in ("vxlan", "geneve") and seg_id is None:
        if not _allocate_from(sess, net_id, kind, [(None, lo, hi) for lo, hi in tunnel_ranges(kind)]):
            raise no_network_available()
        return
    if not _add_segment(sess, net_id, kind, physnet, seg_id):
        raise _in_use(kind, physnet, seg_id)


def no_network_available():
    return r.neutron_error(503, "NoNetworkAvailable",
                           "Unable to create the network. No tenant network is available for allocation.")


def add_tenant_segment(sess, net_id: str) -> str:
    types = [t.strip() for t in conf("ml2", "tenant_network_types", "vxlan,local").split(",") if t.strip()]
    for kind in types:
        if kind == "local":
            sess.add(m.Segment(id=r.new_uuid(), network_id=net_id, network_type="local"))
            return kind
        if kind == "vlan":
            pools = [(p, lo, hi) for p, rs in vlan_ranges().items() for lo, hi in rs]
        elif kind in ("vxlan", "geneve"):
            pools = [(None, lo, hi) for lo, hi in tunnel_ranges(kind)]
        else:
            continue
        if _allocate_from(sess, net_id, kind, pools):
            return kind
    raise no_network_available()


def max_mtu(kind: str) -> int:
    base = int(conf("DEFAULT", "global_physnet_mtu", "1500") or 1500)
    return base - OVERHEAD.get(kind, 0)


# ---------------------------------------------------------------------------- create / update / delete
def create(sess, ctx, data: dict) -> m.Network:
    explicit = data.pop("_explicit", set())
    project = data["project_id"]
    target = r.policy_target({"project_id": project, "shared": data.get("shared", False),
                              "router:external": data.get("router:external", False)})
    r.enforce(ctx, "create_network", target)
    r.enforce_attrs(ctx, "create_network", target, explicit, data)
    r.check_quota(sess, project, "network", 1)
    net = m.Network(id=r.new_uuid(), project_id=project, name=data["name"], description=data["description"],
                    admin_state_up=data["admin_state_up"], shared=data["shared"], external=data["router:external"],
                    is_default=data["is_default"], port_security_enabled=data["port_security_enabled"],
                    dns_domain=data["dns_domain"], availability_zone_hints=data["availability_zone_hints"],
                    status="ACTIVE" if data["admin_state_up"] else "DOWN")
    if net.is_default and not net.external:
        raise r.InvalidInput("Only external networks may be the default network")
    sess.add(net)
    sess.flush()
    provider = {k: data.get(f"provider:{k}") for k in ("network_type", "physical_network", "segmentation_id")}
    if provider["network_type"] is not None:
        add_provider_segment(sess, net.id, provider["network_type"], provider["physical_network"],
                             provider["segmentation_id"])
        kind = provider["network_type"]
    elif provider["physical_network"] is not None or provider["segmentation_id"] is not None:
        raise r.InvalidInput("provider:network_type required")
    else:
        kind = add_tenant_segment(sess, net.id)
    limit = max_mtu(kind)
    mtu = data.get("mtu")
    if mtu is not None and mtu > limit:
        raise r.InvalidInput(f"Requested MTU is too big, maximum is {limit}")
    net.mtu = mtu if mtu is not None else limit
    if net.is_default:
        _clear_other_defaults(sess, net.id)
    sess.flush()
    return net


def _clear_other_defaults(sess, net_id: str) -> None:
    for other in sess.scalars(select(m.Network).where(m.Network.is_default.is_(True), m.Network.id != net_id)):
        raise r.neutron_error(409, "DefaultExternalNetworkExists",
                              f"Default external network {other.id} already exists")


UPDATABLE = {"name", "description", "admin_state_up", "shared", "router:external", "is_default", "mtu",
             "port_security_enabled", "dns_domain"}


def update(sess, ctx, net_id: str, data: dict, req=None) -> m.Network:
    net = get_visible(sess, ctx, net_id)
    target = policy_target(net)
    r.enforce(ctx, "update_network", target)
    r.enforce_attrs(ctx, "update_network", target, set(data), data)
    r.check_if_match(req, net)
    for key in ("provider:network_type", "provider:physical_network", "provider:segmentation_id"):
        if key in data:
            raise r.InvalidInput("Plugin does not support updating provider attributes")
    if data.get("shared") is False and net.shared:
        _check_unshare(sess, net)
    for key, value in data.items():
        attr = {"router:external": "external"}.get(key, key)
        if key == "mtu":
            segs = sess.scalars(select(m.Segment).where(m.Segment.network_id == net.id)).all()
            limit = max_mtu(segs[0].network_type if segs else "local")
            if value > limit:
                raise r.InvalidInput(f"Requested MTU is too big, maximum is {limit}")
        setattr(net, attr, value)
    if "admin_state_up" in data:
        net.status = "ACTIVE" if net.admin_state_up else "DOWN"
    if net.is_default and not net.external:
        raise r.InvalidInput("Only external networks may be the default network")
    if data.get("is_default"):
        _clear_other_defaults(sess, net.id)
    r.bump_revision(net)
    sess.flush()
    return net


def _check_unshare(sess, net: m.Network) -> None:
    """A network stops being shared only when no other project has ports on it."""
    other = sess.scalar(select(func.count()).select_from(m.Port).where(
        m.Port.network_id == net.id, m.Port.project_id != net.project_id,
        ~m.Port.device_owner.startswith("network:")))
    if other:
        raise r.neutron_error(409, "InvalidSharedSetting",
                              f"Unable to reconfigure sharing settings for network {net.id}. "
                              "Multiple tenants are using it.")


# Other modules (routers, RBAC) may veto a network delete: fn(sess, net) raising an ApiError.
DELETE_CHECKS: list = []


def delete(sess, ctx, net_id: str, req=None) -> m.Network:
    from pocketstack.network import ports

    net = get_visible(sess, ctx, net_id)
    r.enforce(ctx, "delete_network", policy_target(net))
    r.check_if_match(req, net)
    for fn in DELETE_CHECKS:
        fn(sess, net)
    # unassociated floating IPs go with their external network, as upstream
    loose = sess.scalars(select(m.FloatingIP).where(m.FloatingIP.floating_network_id == net.id,
                                                    m.FloatingIP.fixed_port_id.is_(None))).all()
    for fip in loose:
        sess.delete(fip)
        r.emit("floatingip", "deleted", {"id": fip.id, "floating_ip_address": fip.floating_ip_address})
    sess.flush()
    auto_delete = ["network:dhcp"] + (["network:floatingip"] if loose else [])
    loose_ports = {f.floating_port_id for f in loose}
    in_use = sess.scalar(select(func.count()).select_from(m.Port).where(
        m.Port.network_id == net.id, m.Port.device_owner.not_in(auto_delete) | (
            (m.Port.device_owner == "network:floatingip") & m.Port.id.not_in(loose_ports or {""}))))
    if in_use:
        raise r.neutron_error(409, "NetworkInUse", f"Unable to complete operation on network {net.id}. There are "
                                                   "one or more ports still in use on the network.")
    for port in sess.scalars(select(m.Port).where(m.Port.network_id == net.id)).all():
        ports.delete_row(sess, port)
        r.emit("port", "deleted", {"id": port.id, "network_id": net.id, "device_owner": port.device_owner})
    sess.flush()
    for sub in sess.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id)).all():
        r.delete_tags(sess, "subnet", sub.id)
        sess.delete(sub)
        r.emit("subnet", "deleted", {"id": sub.id, "network_id": net.id})
    sess.flush()
    r.delete_tags(sess, "network", net.id)
    sess.query(m.RbacPolicy).filter(m.RbacPolicy.object_type == "network",
                                    m.RbacPolicy.object_id == net.id).delete()
    sess.delete(net)
    sess.flush()
    return net


def count(sess, project_id: str) -> int:
    return sess.scalar(select(func.count()).select_from(m.Network).where(m.Network.project_id == project_id))

