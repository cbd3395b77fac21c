"""`/v2.0/routers` with the interface and extra-route actions: HTTP <-> Neutron JSON only."""
from __future__ import annotations

from pocketstack.network import routers
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api


def _gateway(value):
    if value is None:
        return None
    return r.v_dict(value)


ROUTER = r.Resource("router", "routers", [
    r.Attr("admin_state_up", put=True, default=True, validate=r.v_bool),
    r.Attr("external_gateway_info", put=True, default=None, validate=_gateway),
    r.Attr("distributed", put=True, default=False, validate=r.v_bool),
    r.Attr("ha", put=True, default=False, validate=r.v_bool),
    r.Attr("routes", post=False, put=True),
    r.Attr("availability_zone_hints", default=list, validate=r.v_list(r.v_string(255))),
    r.Attr("flavor_id", default=None, validate=r.v_uuid_or_none),
])

for alias, name, description in [
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and "
     "access to external networks via a NAT gateway."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode",
     "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a router on server side "
     "by atomically adding/removing extra routes"),
    ("router_availability_zone", "Router Availability Zone", "Availability zone support for router."),
    ("dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."),
    ("l3-ha", "High Availability Router", "Adds HA capability to routers."),
    ("router-interface-fip", "Router interface FIP", "Allow floating IP association with ports that have "
     "no direct gateway on an external network but whose router does"),
]:
    r.register_extension(alias, name, description)

r.register_tags("routers", "router", routers.load, lambda row: {"project_id": row.project_id,
                                                                "tenant_id": row.project_id})


@api.route("/v2.0/routers", "GET")
def list_routers(req):
    return r.list_response(req, "routers", routers.list_routers(req.context))


@api.route("/v2.0/routers", "POST")
def create_router(req):
    ctx = req.context
    data = ROUTER.parse_create(req.json, ctx)
    return 201, {"router": routers.create_router(ctx, data)}


@api.route("/v2.0/routers/{id}", "GET")
def show_router(req):
    return r.show_response(req, "router", routers.get_router(req.context, req.path_params["id"]))


@api.route("/v2.0/routers/{id}", "PUT")
def update_router(req):
    changes = ROUTER.parse_update(req.json)
    return {"router": routers.update_router(req.context, req.path_params["id"], changes, req)}


@api.route("/v2.0/routers/{id}", "DELETE")
def delete_router(req):
    routers.delete_router(req.context, req.path_params["id"], req)
    return 204, None


@api.route("/v2.0/routers/{id}/add_router_interface", "PUT")
def add_router_interface(req):
    return routers.add_interface(req.context, req.path_params["id"], req.json)


@api.route("/v2.0/routers/{id}/remove_router_interface", "PUT")
def remove_router_interface(req):
    return routers.remove_interface(req.context, req.path_params["id"], req.json)


@api.route("/v2.0/routers/{id}/add_extraroutes", "PUT")
def add_extraroutes(req):
    return {"router": routers.change_extraroutes(req.context, req.path_params["id"], req.json, add=True)}


@api.route("/v2.0/routers/{id}/remove_extraroutes", "PUT")
def remove_extraroutes(req):
    return {"router": routers.change_extraroutes(req.context, req.path_params["id"], req.json, add=False)}
