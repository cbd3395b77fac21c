"""`/v2.0/floatingips`: HTTP <-> Neutron JSON only (logic in network/floating_ips.py)."""
from __future__ import annotations

from pocketstack.network import floating_ips as fips
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api

FLOATINGIP = r.Resource("floatingip", "floatingips", [
    r.Attr("description", put=True, default="", validate=r.v_string(255)),
    r.Attr("floating_network_id", required=True, validate=r.v_uuid),
    r.Attr("subnet_id", default=None, validate=r.v_uuid_or_none),
    r.Attr("floating_ip_address", default=None, validate=r.v_ip_or_none),
    r.Attr("port_id", put=True, default=None, validate=r.v_uuid_or_none),
    r.Attr("fixed_ip_address", put=True, default=None, validate=r.v_ip_or_none),
    r.Attr("dns_name", default=""),
    r.Attr("dns_domain", default=""),
    r.Attr("qos_policy_id", default=None),
], named=False)

for alias, name, description in [
    ("fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource"),
    ("floatingip-pools", "Floating IP Pools Extension", "Provides a floating IP pools API."),
]:
    r.register_extension(alias, name, description)

r.register_tags("floatingips", "floatingip", fips.load, lambda row: {"project_id": row.project_id,
                                                                    "tenant_id": row.project_id})


@api.route("/v2.0/floatingips", "GET")
def list_floating_ips(req):
    return r.list_response(req, "floatingips", fips.list_floating_ips(req.context))


@api.route("/v2.0/floatingips", "POST")
def create_floating_ip(req):
    ctx = req.context
    data = FLOATINGIP.parse_create(req.json, ctx)
    for unsupported in ("dns_name", "dns_domain", "qos_policy_id"):
        if data.get(unsupported):
            raise r.BadRequest(f"Unrecognized attribute(s) '{unsupported}'")
    return 201, {"floatingip": fips.create_floating_ip(ctx, data)}


@api.route("/v2.0/floatingips/{id}", "GET")
def show_floating_ip(req):
    return r.show_response(req, "floatingip", fips.get_floating_ip(req.context, req.path_params["id"]))


@api.route("/v2.0/floatingips/{id}", "PUT")
def update_floating_ip(req):
    changes = FLOATINGIP.parse_update(req.json)
    return {"floatingip": fips.update_floating_ip(req.context, req.path_params["id"], changes, req)}


@api.route("/v2.0/floatingips/{id}", "DELETE")
def delete_floating_ip(req):
    fips.delete_floating_ip(req.context, req.path_params["id"], req)
    return 204, None


@api.route("/v2.0/floatingip_pools", "GET")
def list_floating_ip_pools(req):
    """One pool per IPv4 subnet of each external network the caller can see."""
    from sqlalchemy import select

    from pocketstack.network import models as m
    from pocketstack.network.api.common import session

    req.context  # noqa: B018 - a valid token is required
    with session() as sess:
        rows = sess.execute(select(m.Subnet, m.Network).join(m.Network, m.Network.id == m.Subnet.network_id)
                            .where(m.Network.external.is_(True), m.Subnet.ip_version == 4)).all()
    pools = [{"subnet_id": s.id, "subnet_name": s.name, "network_id": n.id, "cidr": s.cidr,
              "project_id": n.project_id, "tenant_id": n.project_id} for s, n in rows]
    return {"floatingip_pools": r.filter_items(req, pools)}
