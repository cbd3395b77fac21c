"""Auto-allocated topology ("get me a network"): a project's private network, subnets from
the default subnet pools and a router uplinked to the default external network.

Built in one transaction (all or nothing: a failure leaves nothing behind, where upstream
cleans up by hand) the first time the project asks, recorded in
`network_auto_allocated_topology`, and returned ever after. Requirements (checked by
`?fields=dry-run` too): an external network with `is_default` and at least one default
subnet pool; otherwise 409 AutoAllocationFailure, as upstream.

    get_or_create_topology(ctx, project_id) -> network_id   # compute's networks=auto
    get_auto_allocated_topology(ctx, project_id) -> {"id", "project_id", "tenant_id"}
    check_requirements(ctx, project_id) -> {"id": "dry-run=pass", ...}
    delete_topology(ctx, project_id) -> None
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.context import AuthContext
from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network import routers
from pocketstack.network.api import resource as r


def session():
    return current().db.session()


def failure(reason: str):
    return r.neutron_error(409, "AutoAllocationFailure", f"Deployment error: {reason}.")


def validate_project(ctx: AuthContext | None, project_id: str | None) -> str:
    """The project the topology is for (`None` in the URL means the caller's); only admins
    may ask for another project's (403 NotAuthorized)."""
    if project_id in (None, "", "None"):
        project_id = ctx.project_id if ctx is not None else None
    if ctx is not None and not r.is_admin(ctx) and project_id != ctx.project_id:
        raise r.neutron_error(403, "NotAuthorized", "Not authorized.")
    return project_id


def _default_external(sess) -> m.Network:
    net = sess.scalars(select(m.Network).where(m.Network.is_default.is_(True), m.Network.external.is_(True))
                       .order_by(m.Network.created_at)).first()
    if net is None:
        raise failure("No default router:external network")
    return net


def _default_pools(sess) -> list[m.SubnetPool]:
    pools = [sess.scalars(select(m.SubnetPool).where(m.SubnetPool.is_default.is_(True),
                                                     m.SubnetPool.ip_version == v)).first() for v in (4, 6)]
    pools = [p for p in pools if p is not None]
    if not pools:
        raise failure("No default subnetpools defined")
    return pools


def check_requirements(ctx: AuthContext | None, project_id: str) -> dict:
    with session() as sess:
        _default_external(sess)
        _default_pools(sess)
    return {"id": "dry-run=pass", "project_id": project_id, "tenant_id": project_id}


def _response(network_id: str, project_id: str) -> dict:
    return {"id": network_id, "project_id": project_id, "tenant_id": project_id}


def get_auto_allocated_topology(ctx: AuthContext | None, project_id: str) -> dict:
    return _response(get_or_create_topology(ctx, project_id), project_id)


def get_or_create_topology(ctx: AuthContext | None, project_id: str) -> str:
    """The project's auto-allocated network id, building the topology the first time."""
    with session() as sess:
        found = sess.get(m.AutoAllocatedTopology, project_id)
        if found is not None and found.network_id and sess.get(m.Network, found.network_id) is not None:
            return found.network_id
    nested = getattr(current().db._local, "session", None) is not None
    try:
        with session() as sess:
            stale = sess.get(m.AutoAllocatedTopology, project_id)
            if stale is not None:
                sess.delete(stale)
                sess.flush()
            net_id, router_id = _build(sess, project_id)
            sess.add(m.AutoAllocatedTopology(project_id=project_id, network_id=net_id, router_id=router_id))
            sess.flush()
    except IntegrityError:
        if nested:
            raise
        with session() as sess:  # another request built it first: ours was rolled back
            return sess.get(m.AutoAllocatedTopology, project_id).network_id
    r.emit("auto_allocated_topology", "created", {"project_id": project_id, "network_id": net_id,
                                                  "router_id": router_id}, ctx)
    return net_id


def _build(sess, project_id: str) -> tuple[str, str]:
    from pocketstack.network import networks, subnets

    external = _default_external(sess)
    pools = _default_pools(sess)
    try:
        data = networks.RESOURCE.parse_create({"network": {"name": "auto_allocated_network",
                                                           "project_id": project_id}}, None)
        net = networks.create(sess, None, data)
        r.emit("network", "created", {"id": net.id, "project_id": project_id, "name": net.name})
        subnet_ids = []
        for pool in pools:
            sdata = subnets.RESOURCE.parse_create({"subnet": {
                "name": f"auto_allocated_subnet_v{pool.ip_version}", "network_id": net.id,
                "project_id": project_id, "ip_version": pool.ip_version, "subnetpool_id": pool.id}}, None)
            subnet_ids.append(subnets.create(sess, None, sdata).id)
            r.emit("subnet", "created", {"id": subnet_ids[-1], "network_id": net.id, "project_id": project_id})
    except ApiError as exc:
        if exc.code >= 500:
            raise
        raise failure("Unable to provide project private network") from None
    try:
        router = routers.create_router(None, {"name": "auto_allocated_router", "description": "",
                                              "project_id": project_id, "admin_state_up": True,
                                              "external_gateway_info": {"network_id": external.id}})
        for sid in subnet_ids:
            routers.add_interface(None, router["id"], {"subnet_id": sid})
    except ApiError as exc:
        if exc.code >= 500:
            raise
        raise failure("Unable to provide external connectivity") from None
    return net.id, router["id"]


def delete_topology(ctx: AuthContext | None, project_id: str) -> None:
    """Remove the router's interfaces, the router and the network (404-free when absent)."""
    from pocketstack.network import networks

    with session() as sess:
        topo = sess.get(m.AutoAllocatedTopology, project_id)
        if topo is None:
            return
        if topo.router_id and sess.get(m.Router, topo.router_id) is not None:
            for port_id in routers._interface_ports(sess, topo.router_id):
                routers.remove_interface(None, topo.router_id, {"port_id": port_id})
            routers.delete_router(None, topo.router_id)
        if topo.network_id and sess.get(m.Network, topo.network_id) is not None:
            networks.delete(sess, None, topo.network_id)
            r.emit("network", "deleted", {"id": topo.network_id, "project_id": project_id}, ctx)
        sess.delete(topo)
    r.emit("auto_allocated_topology", "deleted", {"project_id": project_id}, ctx)
