"""`/v2.0/agents`, `/v2.0/availability_zones` and `/v2.0/auto-allocated-topology`:
HTTP <-> Neutron JSON only (logic in network/agents.py and network/auto_allocate.py)."""
from __future__ import annotations

from starlette.responses import Response

from pocketstack.network import agents, auto_allocate
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api

AGENT = r.Resource("agent", "agents", [
    r.Attr("admin_state_up", post=False, put=True, validate=r.v_bool),
    r.Attr("description", post=False, put=True, validate=r.v_string(255, nullable=True)),
], named=False)

for alias, name, description in [
    ("agent", "agent", "The agent management extension."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("auto-allocated-topology", "Auto Allocated Topology Services", "Auto Allocated Topology Services."),
    ("dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents"),
]:
    r.register_extension(alias, name, description)


# ---------------------------------------------------------------------------- agents
@api.route("/v2.0/agents", "GET")
def list_agents(req):
    # agent_type matches without regard to case, as on upstream's usual MySQL database
    # (Tempest asks for "DHCP Agent"; the agent reports "DHCP agent").
    hooks = {"agent_type": lambda item, wanted: item["agent_type"].lower() in {w.lower() for w in wanted}}
    return r.list_response(req, "agents", agents.list_agents(req.context), hooks=hooks)


@api.route("/v2.0/agents/{id}", "GET")
def show_agent(req):
    return r.show_response(req, "agent", agents.get_agent(req.context, req.path_params["id"]))


@api.route("/v2.0/agents/{id}", "PUT")
def update_agent(req):
    return {"agent": agents.update_agent(req.context, req.path_params["id"], AGENT.parse_update(req.json))}


@api.route("/v2.0/agents/{id}", "DELETE")
def delete_agent(req):
    agents.delete_agent(req.context, req.path_params["id"])
    return 204, None


# ---------------------------------------------------------------------------- availability zones
@api.route("/v2.0/availability_zones", "GET")
def list_availability_zones(req):
    zones = r.filter_items(req, agents.availability_zones(req.context))
    fields = req.query.getlist("fields")
    return {"availability_zones": [r.select_fields(z, fields) for z in zones]}


# ---------------------------------------------------------------------------- auto-allocated topology
@api.route("/v2.0/auto-allocated-topology/{project_id}", "GET")
def get_topology(req):
    ctx = req.context
    project_id = auto_allocate.validate_project(ctx, req.path_params["project_id"])
    r.enforce(ctx, "get_auto_allocated_topology", {"project_id": project_id, "tenant_id": project_id})
    fields = req.query.getlist("fields")
    if "dry-run" in fields:
        return {"auto_allocated_topology": auto_allocate.check_requirements(ctx, project_id)}
    if fields:
        raise r.neutron_error(400, "BadRequest", "Bad auto_allocate request: Unrecognized field.")
    return {"auto_allocated_topology": auto_allocate.get_auto_allocated_topology(ctx, project_id)}


@api.route("/v2.0/auto-allocated-topology/{project_id}", "DELETE")
def delete_topology(req):
    ctx = req.context
    project_id = auto_allocate.validate_project(ctx, req.path_params["project_id"])
    r.enforce(ctx, "delete_auto_allocated_topology", {"project_id": project_id, "tenant_id": project_id})
    auto_allocate.delete_topology(ctx, project_id)
    return 204, None


# ---------------------------------------------------------------------------- hosting
@api.route("/v2.0/networks/{id}/dhcp-agents", "GET")
def network_dhcp_agents(req):
    return {"agents": agents.dhcp_agents_for_network(req.context, req.path_params["id"])}


@api.route("/v2.0/routers/{id}/l3-agents", "GET")
def router_l3_agents(req):
    return {"agents": agents.l3_agents_for_router(req.context, req.path_params["id"])}


@api.route("/v2.0/agents/{id}/dhcp-networks", "GET")
def agent_dhcp_networks(req):
    key, items = agents.hosted_by_agent(req.context, req.path_params["id"])
    return {"networks": items if key == "networks" else []}


@api.route("/v2.0/agents/{id}/dhcp-networks", "POST")
def add_dhcp_network(req):
    body = req.json_object()
    unknown = set(body) - {"network_id"}
    if unknown or "network_id" not in body:
        raise r.BadRequest("Invalid input: the body must be {'network_id': <network id>}.")
    agents.add_network_to_dhcp_agent(req.context, req.path_params["id"], body["network_id"])
    # upstream serialises the scheduler's `None` result: a JSON `null` body (openstacksdk parses it)
    return Response(b"null", status_code=201, media_type="application/json")


@api.route("/v2.0/agents/{id}/dhcp-networks/{network_id}", "DELETE")
def remove_dhcp_network(req):
    agents.remove_network_from_dhcp_agent(req.context, req.path_params["id"], req.path_params["network_id"])
    return 204, None


@api.route("/v2.0/agents/{id}/l3-routers", "GET")
def agent_l3_routers(req):
    key, items = agents.hosted_by_agent(req.context, req.path_params["id"])
    return {"routers": items if key == "routers" else []}
