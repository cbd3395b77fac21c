"""Routers through the real `openstack` CLI and raw HTTP: gateways, interfaces, extra
routes, admin-only flags, Neutron's errors, isolation; plus availability zones and agents."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.network.l3_util import call, err_type, member


def net(cloud, token, method, path, **kw):
    return call(cloud, token, method, path, kw.get("json"))


def _net_and_subnet(cloud, token, name, cidr, **subnet):
    network = call(cloud, token, "POST", "/networks", {"network": {"name": name}}, 201)["network"]
    body = {"network_id": network["id"], "cidr": cidr, "ip_version": 4, "name": name + "-sub", **subnet}
    return network, call(cloud, token, "POST", "/subnets", {"subnet": body}, 201)["subnet"]


@pytest.fixture(scope="module")
def env(cloud):
    """An external network (admin) and a member of project `rt-alpha` with a private network."""
    admin = cloud.token()
    ext = call(cloud, admin, "POST", "/networks", {"network": {"name": "ext-net", "router:external": True}},
               201)["network"]
    call(cloud, admin, "POST", "/subnets", {"subnet": {
        "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4, "enable_dhcp": False, "name": "ext-sub",
        "allocation_pools": [{"start": "203.0.113.101", "end": "203.0.113.200"}], "gateway_ip": "203.0.113.1"}}, 201)
    out = {"rt-alpha": member(cloud, "rt-alpha"), "rt-beta": member(cloud, "rt-beta")}
    a = out["rt-alpha"]
    _, a["subnet"] = _net_and_subnet(cloud, a["token"], "priv", "192.168.1.0/24")
    a["subnet"]["name"] = "priv-sub"
    return out


def test_guide_router_with_gateway_and_interface(cloud, env):
    a = env["rt-alpha"]
    router = cloud.os_json("router", "create", "router1", env=a["env"])
    assert router["status"] == "ACTIVE" and router["admin_state_up"] is True
    assert router["external_gateway_info"] is None and router["routes"] == []
    assert "distributed" not in router and "ha" not in router  # admin-only attributes are hidden
    cloud.openstack("router", "set", "--external-gateway", "ext-net", "router1", env=a["env"])
    cloud.openstack("router", "add", "subnet", "router1", "priv-sub", env=a["env"])
    shown = call(cloud, a["token"], "GET", f"/routers/{router['id']}", expect=200)["router"]
    gw = shown["external_gateway_info"]
    ext_id = call(cloud, a["token"], "GET", "/networks?name=ext-net", expect=200)["networks"][0]["id"]
    assert gw["network_id"] == ext_id and gw["enable_snat"] is True
    (fixed,) = gw["external_fixed_ips"]
    assert fixed["ip_address"].startswith("203.0.113.")
    assert 101 <= int(fixed["ip_address"].rsplit(".", 1)[1]) <= 200
    # the interface took the subnet's gateway address; its port is the router's
    ports = net(cloud, a["token"], "GET", f"/ports?device_id={router['id']}").json()["ports"]
    owners = sorted(p["device_owner"] for p in ports)
    assert owners == ["network:router_interface"]  # the gateway port has no project: the admin sees it
    assert ports[0]["fixed_ips"] == [{"subnet_id": a["subnet"]["id"], "ip_address": "192.168.1.1"}]
    admin_ports = net(cloud, cloud.token(), "GET", f"/ports?device_id={router['id']}").json()["ports"]
    assert sorted(p["device_owner"] for p in admin_ports) == ["network:router_gateway", "network:router_interface"]
    # the CLI's port list by router works too
    listed = cloud.os_json("port", "list", "--router", "router1", env=a["env"])
    assert [p["ID"] for p in listed] == [ports[0]["id"]]
    # a router port cannot be deleted through the port API
    resp = net(cloud, a["token"], "DELETE", f"/ports/{ports[0]['id']}")
    assert resp.status_code == 409, resp.text
    # nor can the router while it has interfaces
    resp = net(cloud, a["token"], "DELETE", f"/routers/{router['id']}")
    assert resp.status_code == 409 and err_type(resp) == "RouterInUse"


def test_interface_errors(cloud, env):
    a = env["rt-alpha"]
    router = call(cloud, a["token"], "GET", "/routers?name=router1", expect=200)["routers"][0]
    path = f"/routers/{router['id']}"
    # the same subnet again, an overlapping subnet of another network
    resp = net(cloud, a["token"], "PUT", f"{path}/add_router_interface", json={"subnet_id": a["subnet"]["id"]})
    assert resp.status_code == 400 and err_type(resp) == "BadRequest", resp.text
    _, overlap = _net_and_subnet(cloud, a["token"], "overlap", "192.168.1.0/25")
    resp = net(cloud, a["token"], "PUT", f"{path}/add_router_interface", json={"subnet_id": overlap["id"]})
    assert resp.status_code == 400 and "overlaps" in resp.json()["NeutronError"]["message"]
    # a subnet without a gateway, no body at all, both ids, an unknown subnet
    _, nogw = _net_and_subnet(cloud, a["token"], "nogw", "10.50.0.0/24", gateway_ip=None)
    resp = net(cloud, a["token"], "PUT", f"{path}/add_router_interface", json={"subnet_id": nogw["id"]})
    assert resp.status_code == 400 and "gateway IP" in resp.json()["NeutronError"]["message"]
    resp = net(cloud, a["token"], "PUT", f"{path}/add_router_interface", json={})
    assert resp.status_code == 400
    resp = net(cloud, a["token"], "PUT", f"{path}/add_router_interface",
               json={"subnet_id": nogw["id"], "port_id": nogw["id"]})
    assert resp.status_code == 400
    missing = "3f7c4a40-0000-4000-8000-000000000000"
    resp = net(cloud, a["token"], "PUT", f"{path}/add_router_interface", json={"subnet_id": missing})
    assert resp.status_code == 404 and err_type(resp) == "SubnetNotFound"
    resp = net(cloud, a["token"], "PUT", f"{path}/remove_router_interface", json={"subnet_id": nogw["id"]})
    assert resp.status_code == 404 and err_type(resp) == "RouterInterfaceNotFoundForSubnet"
    resp = net(cloud, a["token"], "PUT", f"{path}/remove_router_interface", json={"port_id": missing})
    assert resp.status_code == 404 and err_type(resp) == "RouterInterfaceNotFound"
    # nothing changed
    ports = net(cloud, a["token"], "GET", f"/ports?device_id={router['id']}").json()["ports"]
    assert len(ports) == 1


def test_interface_by_port_and_response_body(cloud, env):
    a = env["rt-alpha"]
    router = call(cloud, a["token"], "POST", "/routers", {"router": {"name": "router-port"}}, 201)["router"]
    pnet, sub = _net_and_subnet(cloud, a["token"], "pnet", "10.60.0.0/24")
    port = call(cloud, a["token"], "POST", "/ports", {"port": {"network_id": pnet["id"], "name": "iface"}},
                201)["port"]
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}/add_router_interface", json={"port_id": port["id"]})
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert info == {"id": router["id"], "tenant_id": a["pid"], "project_id": a["pid"], "port_id": port["id"],
                    "network_id": port["network_id"], "subnet_id": sub["id"], "subnet_ids": [sub["id"]]}
    shown = call(cloud, a["token"], "GET", f"/ports/{port['id']}", expect=200)["port"]
    assert shown["device_owner"] == "network:router_interface" and shown["device_id"] == router["id"]
    # a port already attached elsewhere is in use
    other = call(cloud, a["token"], "POST", "/routers", {"router": {"name": "router-other"}}, 201)["router"]
    resp = net(cloud, a["token"], "PUT", f"/routers/{other['id']}/add_router_interface", json={"port_id": port["id"]})
    assert resp.status_code == 409 and err_type(resp) == "PortInUse"
    # removing by port returns the same body and deletes the port
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}/remove_router_interface",
               json={"port_id": port["id"]})
    assert resp.status_code == 200 and resp.json()["port_id"] == port["id"]
    assert net(cloud, a["token"], "GET", f"/ports/{port['id']}").status_code == 404
    for rid in (router["id"], other["id"]):
        call(cloud, a["token"], "DELETE", f"/routers/{rid}", expect=204)


def test_extra_routes(cloud, env):
    a = env["rt-alpha"]
    router = call(cloud, a["token"], "GET", "/routers?name=router1", expect=200)["routers"][0]
    cloud.openstack("router", "set", "router1", "--route", "destination=10.9.0.0/24,gateway=192.168.1.5",
                    env=a["env"])
    shown = call(cloud, a["token"], "GET", f"/routers/{router['id']}", expect=200)["router"]
    assert shown["routes"] == [{"destination": "10.9.0.0/24", "nexthop": "192.168.1.5"}]
    # extraroute-atomic
    cloud.openstack("router", "add", "route", "router1", "--route", "destination=10.8.0.0/24,gateway=192.168.1.6",
                    env=a["env"])
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}/add_extraroutes", json={"router": {"routes": [
        {"destination": "10.8.0.0/24", "nexthop": "192.168.1.6"}]}})  # idempotent
    assert resp.status_code == 200 and len(resp.json()["router"]["routes"]) == 2
    # a next hop the router cannot reach, a malformed route
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}", json={"router": {"routes": [
        {"destination": "10.7.0.0/24", "nexthop": "172.16.0.1"}]}})
    assert resp.status_code == 400 and err_type(resp) == "InvalidRoutes"
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}", json={"router": {"routes": [
        {"destination": "not-a-cidr", "nexthop": "192.168.1.5"}]}})
    assert resp.status_code == 400
    # the interface the routes go through cannot be removed while they exist
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}/remove_router_interface",
               json={"subnet_id": a["subnet"]["id"]})
    assert resp.status_code == 409 and err_type(resp) == "RouterInterfaceInUseByRoute"
    cloud.openstack("router", "remove", "route", "router1", "--route",
                    "destination=10.8.0.0/24,gateway=192.168.1.6", env=a["env"])
    left = call(cloud, a["token"], "GET", f"/routers/{router['id']}", expect=200)["router"]["routes"]
    assert left == [{"destination": "10.9.0.0/24", "nexthop": "192.168.1.5"}]
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}", json={"router": {"routes": None}})
    assert resp.status_code == 200 and resp.json()["router"]["routes"] == []


def test_gateway_errors_and_admin_flags(cloud, env):
    a = env["rt-alpha"]
    router = call(cloud, a["token"], "GET", "/routers?name=router1", expect=200)["routers"][0]
    priv_id = a["subnet"]["network_id"]
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}",
               json={"router": {"external_gateway_info": {"network_id": priv_id}}})
    assert resp.status_code == 400 and "not an external network" in resp.json()["NeutronError"]["message"]
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}",
               json={"router": {"external_gateway_info": {"network_id": "3f7c4a40-0000-4000-8000-000000000000"}}})
    assert resp.status_code == 404 and err_type(resp) == "NetworkNotFound"
    # enable_snat and explicit external IPs are admin-only; distributed/ha too
    ext_id = call(cloud, a["token"], "GET", "/networks?name=ext-net", expect=200)["networks"][0]["id"]
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}",
               json={"router": {"external_gateway_info": {"network_id": ext_id, "enable_snat": False}}})
    assert resp.status_code == 403
    cloud.openstack_fails("router", "create", "--distributed", "dvr", env=a["env"])
    admin = cloud.os_json("router", "create", "--ha", "--centralized", "--project", "rt-alpha", "ha-router")
    assert admin["ha"] is True and admin["distributed"] is False
    cloud.openstack("router", "set", "ha-router", "--external-gateway", "ext-net", "--disable-snat",
                    "--fixed-ip", "ip-address=203.0.113.150")
    gw = call(cloud, cloud.token(), "GET", f"/routers/{admin['id']}", expect=200)["router"]["external_gateway_info"]
    assert gw["enable_snat"] is False and gw["external_fixed_ips"][0]["ip_address"] == "203.0.113.150"
    # the address is taken now
    resp = net(cloud, cloud.token(), "POST", "/routers", json={"router": {"name": "clash", "external_gateway_info": {
        "network_id": ext_id, "external_fixed_ips": [{"ip_address": "203.0.113.150"}]}}})
    assert resp.status_code == 409, resp.text
    cloud.openstack("router", "unset", "--external-gateway", "ha-router")
    assert call(cloud, cloud.token(), "GET", f"/routers/{admin['id']}",
                expect=200)["router"]["external_gateway_info"] is None
    call(cloud, cloud.token(), "DELETE", f"/routers/{admin['id']}", expect=204)
    assert net(cloud, cloud.token(), "GET", "/routers?name=clash").json()["routers"] == []


def test_projects_never_see_each_other(cloud, env):
    a, b = env["rt-alpha"], env["rt-beta"]
    router = call(cloud, a["token"], "GET", "/routers?name=router1", expect=200)["routers"][0]
    assert cloud.os_json("router", "list", env=b["env"]) == []
    for method, path, body in [("GET", f"/routers/{router['id']}", None),
                               ("PUT", f"/routers/{router['id']}", {"router": {"name": "x"}}),
                               ("DELETE", f"/routers/{router['id']}", None),
                               ("PUT", f"/routers/{router['id']}/add_router_interface",
                                {"subnet_id": a["subnet"]["id"]})]:
        resp = net(cloud, b["token"], method, path, json=body)
        assert resp.status_code == 404 and err_type(resp) == "RouterNotFound", (method, path, resp.text)
    # B's router cannot take A's subnet
    mine = net(cloud, b["token"], "POST", "/routers", json={"router": {"name": "b-router"}}).json()["router"]
    resp = net(cloud, b["token"], "PUT", f"/routers/{mine['id']}/add_router_interface",
               json={"subnet_id": a["subnet"]["id"]})
    assert resp.status_code == 404 and err_type(resp) == "SubnetNotFound"
    assert net(cloud, b["token"], "DELETE", f"/routers/{mine['id']}").status_code == 204


def test_update_router_and_if_match(cloud, env):
    a = env["rt-alpha"]
    router = call(cloud, a["token"], "GET", "/routers?name=router1", expect=200)["routers"][0]
    cloud.openstack("router", "set", "--disable", "--description", "edge", "router1", env=a["env"])
    shown = call(cloud, a["token"], "GET", f"/routers/{router['id']}", expect=200)["router"]
    assert shown["admin_state_up"] is False and shown["description"] == "edge"
    assert shown["revision_number"] > router["revision_number"]
    resp = httpx.put(f"{cloud.url}/network/v2.0/routers/{router['id']}", json={"router": {"name": "x"}},
                     headers={"X-Auth-Token": a["token"], "If-Match": "revision_number=1"})
    assert resp.status_code == 412
    resp = net(cloud, a["token"], "PUT", f"/routers/{router['id']}", json={"router": {"status": "DOWN"}})
    assert resp.status_code == 400
    # standard-attr-tag on routers
    assert net(cloud, a["token"], "PUT", f"/routers/{router['id']}/tags/edge").status_code == 201
    assert call(cloud, a["token"], "GET", "/routers?tags=edge", expect=200)["routers"][0]["tags"] == ["edge"]
    assert net(cloud, env["rt-beta"]["token"], "PUT", f"/routers/{router['id']}/tags/x").status_code == 404


def test_availability_zones_and_agents(cloud, env):
    a = env["rt-alpha"]
    zones = cloud.os_json("availability", "zone", "list", "--network")
    assert sorted((z["Zone Name"], z["Zone Status"]) for z in zones) == [("nova", "available")] * 2
    agents = cloud.os_json("network", "agent", "list")
    assert sorted(x["Agent Type"] for x in agents) == ["DHCP agent", "L3 agent", "Metadata agent"]
    assert all(x["Alive"] in (True, ":-)") and x["State"] in (True, "UP") for x in agents)
    assert net(cloud, a["token"], "GET", "/agents").json() == {"agents": []}
    agent_id = agents[0]["ID"]
    cloud.openstack("network", "agent", "set", "--disable", agent_id)
    assert call(cloud, cloud.token(), "GET", f"/agents/{agent_id}", expect=200)["agent"]["admin_state_up"] is False
    resp = net(cloud, a["token"], "PUT", f"/agents/{agent_id}", json={"agent": {"admin_state_up": True}})
    assert resp.status_code == 404
    # which agent hosts what (read only: one host serves everything)
    hosting = cloud.os_json("network", "agent", "list", "--router", "router1")
    assert [x["Agent Type"] for x in hosting] == ["L3 agent"]
    hosting = cloud.os_json("network", "agent", "list", "--network", a["subnet"]["network_id"])
    assert [x["Agent Type"] for x in hosting] == ["DHCP agent"]
    dhcp_id = next(x["ID"] for x in agents if x["Agent Type"] == "DHCP agent")
    served = call(cloud, cloud.token(), "GET", f"/agents/{dhcp_id}/dhcp-networks", expect=200)["networks"]
    assert a["subnet"]["network_id"] in {n["id"] for n in served}
    # dhcp_agent_scheduler: unschedule and schedule again
    admin, net_id = cloud.token(), a["subnet"]["network_id"]
    call(cloud, admin, "DELETE", f"/agents/{dhcp_id}/dhcp-networks/{net_id}", expect=204)
    assert call(cloud, admin, "GET", f"/networks/{net_id}/dhcp-agents", expect=200)["agents"] == []
    resp = call(cloud, admin, "DELETE", f"/agents/{dhcp_id}/dhcp-networks/{net_id}")
    assert resp.status_code == 409 and err_type(resp) == "NetworkNotHostedByDhcpAgent"
    assert call(cloud, admin, "POST", f"/agents/{dhcp_id}/dhcp-networks", {"network_id": net_id}).status_code == 201
    resp = call(cloud, admin, "POST", f"/agents/{dhcp_id}/dhcp-networks", {"network_id": net_id})
    assert resp.status_code == 409 and err_type(resp) == "NetworkHostedByDHCPAgent"
    assert call(cloud, a["token"], "GET", f"/networks/{net_id}/dhcp-agents").status_code == 403
    exts = {e["alias"] for e in net(cloud, a["token"], "GET", "/extensions").json()["extensions"]}
    assert {"router", "ext-gw-mode", "extraroute", "extraroute-atomic", "router_availability_zone", "agent",
            "availability_zone", "security-group", "rbac-policies", "fip-port-details"} <= exts


def test_delete_router_with_gateway_frees_the_port(cloud, env):
    a = env["rt-alpha"]
    router = call(cloud, a["token"], "GET", "/routers?name=router1", expect=200)["routers"][0]
    gw_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    cloud.openstack("router", "remove", "subnet", "router1", "priv-sub", env=a["env"])
    call(cloud, a["token"], "DELETE", f"/routers/{router['id']}", expect=204)
    admin_ports = net(cloud, cloud.token(), "GET", f"/ports?device_id={router['id']}").json()["ports"]
    assert admin_ports == []
    ext_ports = net(cloud, cloud.token(), "GET", "/ports?fixed_ips=ip_address%3D" + gw_ip).json()["ports"]
    assert ext_ports == []
    types = {json.loads(x)["event_type"] for x in (cloud.state_dir / "logs" / "events.jsonl").read_text().splitlines()}
    assert {"network.router.created", "network.router.updated", "network.router.deleted",
            "network.router.interface.added", "network.router.interface.removed"} <= types
