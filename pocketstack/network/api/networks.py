"""`/v2.0/networks` and `/v2.0/network-ip-availabilities`."""
from __future__ import annotations

from pocketstack.network import models as m
from pocketstack.network import networks, subnets
from pocketstack.network.api import crud
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api, session


def _show_check(sess, ctx, net):
    if not r.check(ctx, "get_network", networks.policy_target(net)):
        # an RBAC grant makes the network shared / external for its target project, as upstream
        from pocketstack.network import rbac
        if not (networks.shared_with(sess, ctx, net) or rbac.external_for(sess, net, ctx.project_id)):
            raise networks.net_not_found(net.id)


crud.register(networks, sql_filters={**crud.owner_filters(m.Network), "name": m.Network.name}, show_check=_show_check)


@api.route("/v2.0/network-ip-availabilities", "GET")
def list_ip_availabilities(req):
    ctx = req.context
    r.enforce(ctx, "get_network_ip_availability", {})
    with session() as sess:
        items = [subnets.ip_availability(sess, n) for n in sess.scalars(networks.visible_query(None))]
    versions = req.query.getlist("ip_version")
    if versions:
        items = [i for i in items if any(str(s["ip_version"]) in versions for s in i["subnet_ip_availability"])]
    return r.list_response(req, "network_ip_availabilities", items, extra_params=("ip_version",))


@api.route("/v2.0/network-ip-availabilities/{id}", "GET")
def show_ip_availability(req):
    ctx = req.context
    r.enforce(ctx, "get_network_ip_availability", {})
    with session() as sess:
        net = networks.get_visible(sess, None, req.path_params["id"])
        return r.show_response(req, "network_ip_availability", subnets.ip_availability(sess, net))
