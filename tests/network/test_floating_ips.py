"""Floating IPs, the install guide's flow with the real `openstack` CLI: an external network
`ext-net` with a subnet, a tenant network + router + gateway + interface, a floating IP
associated with a port; then upstream's checks and errors over raw HTTP."""
from __future__ import annotations

import pytest

from tests.network.l3_util import call, err_type, member


@pytest.fixture(scope="module")
def env(cloud):
    admin = cloud.token()
    ext = call(cloud, admin, "POST", "/networks", {"network": {"name": "ext-net", "router:external": True}}, 201)
    ext_sub = call(cloud, admin, "POST", "/subnets", {"subnet": {
        "network_id": ext["network"]["id"], "cidr": "203.0.113.0/24", "ip_version": 4, "enable_dhcp": False,
        "allocation_pools": [{"start": "203.0.113.101", "end": "203.0.113.200"}], "gateway_ip": "203.0.113.1",
        "name": "ext-sub"}}, 201)["subnet"]
    a, b = member(cloud, "fip-alpha"), member(cloud, "fip-beta")
    return {"ext": ext["network"], "ext_sub": ext_sub, "a": a, "b": b, "admin": admin}


def _private(cloud, who: dict, name: str, cidr: str, *, router: bool = True) -> dict:
    """A network + subnet (+ router with a gateway on ext-net and an interface) for `who`."""
    t = who["token"]
    network = call(cloud, t, "POST", "/networks", {"network": {"name": name}}, 201)["network"]
    subnet = call(cloud, t, "POST", "/subnets", {"subnet": {"network_id": network["id"], "cidr": cidr,
                                                            "ip_version": 4, "name": name + "-sub"}}, 201)["subnet"]
    out = {"network": network, "subnet": subnet}
    if router:
        ext_id = call(cloud, t, "GET", "/networks?name=ext-net", expect=200)["networks"][0]["id"]
        out["router"] = call(cloud, t, "POST", "/routers", {"router": {
            "name": name + "-router", "external_gateway_info": {"network_id": ext_id}}}, 201)["router"]
        call(cloud, t, "PUT", f"/routers/{out['router']['id']}/add_router_interface",
             {"subnet_id": subnet["id"]}, 200)
    return out


def test_guide_flow_with_the_cli(cloud, env):
    a = env["a"]
    cloud.openstack("network", "create", "selfservice", env=a["env"])
    cloud.openstack("subnet", "create", "--network", "selfservice", "--subnet-range", "172.16.1.0/24",
                    "--dns-nameserver", "8.8.4.4", "selfservice-sub", env=a["env"])
    cloud.openstack("router", "create", "router", env=a["env"])
    cloud.openstack("router", "add", "subnet", "router", "selfservice-sub", env=a["env"])
    cloud.openstack("router", "set", "router", "--external-gateway", "ext-net", env=a["env"])
    port = cloud.os_json("port", "create", "--network", "selfservice", "vm-port", env=a["env"])
    fip = cloud.os_json("floating", "ip", "create", "ext-net", env=a["env"])
    assert fip["status"] == "DOWN" and fip["port_id"] is None and fip["router_id"] is None
    assert fip["floating_network_id"] == env["ext"]["id"] and fip["project_id"] == a["pid"]
    assert 101 <= int(fip["floating_ip_address"].rsplit(".", 1)[1]) <= 200
    cloud.openstack("floating", "ip", "set", "--port", "vm-port", fip["floating_ip_address"], env=a["env"])
    shown = cloud.os_json("floating", "ip", "show", fip["id"], env=a["env"])
    router = cloud.os_json("router", "show", "router", env=a["env"])
    assert shown["status"] == "ACTIVE" and shown["port_id"] == port["id"] and shown["router_id"] == router["id"]
    assert shown["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    details = call(cloud, a["token"], "GET", f"/floatingips/{fip['id']}", expect=200)["floatingip"]["port_details"]
    assert details["mac_address"] == port["mac_address"] and details["network_id"] == port["network_id"]
    assert details["device_owner"] == "" and details["name"] == "vm-port"
    listed = cloud.os_json("floating", "ip", "list", "--port", "vm-port", env=a["env"])
    assert [x["ID"] for x in listed] == [fip["id"]]
    cloud.openstack("floating", "ip", "unset", "--port", fip["id"], env=a["env"])
    shown = call(cloud, a["token"], "GET", f"/floatingips/{fip['id']}", expect=200)["floatingip"]
    assert shown["status"] == "DOWN" and shown["port_id"] is None and shown["port_details"] is None
    cloud.openstack("floating", "ip", "delete", fip["id"], env=a["env"])
    assert call(cloud, a["token"], "GET", f"/floatingips/{fip['id']}").status_code == 404


def test_association_rules(cloud, env):
    a, admin = env["a"], env["admin"]
    t = a["token"]
    top = _private(cloud, a, "assoc", "10.10.0.0/24")
    ip1, ip2 = "10.10.0.21", "10.10.0.22"
    port = call(cloud, t, "POST", "/ports", {"port": {"network_id": top["network"]["id"], "fixed_ips": [
        {"ip_address": ip1}, {"ip_address": ip2}]}}, 201)["port"]
    ext_id = env["ext"]["id"]
    # two IPv4 addresses: the fixed IP must be named
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": ext_id,
                                                                 "port_id": port["id"]}})
    assert resp.status_code == 400 and "multiple fixed IPv4" in resp.json()["NeutronError"]["message"]
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {
        "floating_network_id": ext_id, "port_id": port["id"], "fixed_ip_address": "10.10.0.99"}})
    assert resp.status_code == 400 and err_type(resp) == "BadRequest"
    fip = call(cloud, t, "POST", "/floatingips", {"floatingip": {
        "floating_network_id": ext_id, "port_id": port["id"], "fixed_ip_address": ip1}}, 201)["floatingip"]
    assert fip["fixed_ip_address"] == ip1 and fip["status"] == "ACTIVE"
    # move to the port's other address (upstream's multiple-address update)
    moved = call(cloud, t, "PUT", f"/floatingips/{fip['id']}", {"floatingip": {
        "port_id": port["id"], "fixed_ip_address": ip2}}, 200)["floatingip"]
    assert moved["fixed_ip_address"] == ip2 and moved["revision_number"] > fip["revision_number"]
    # one floating IP per fixed IP and external network
    other = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": ext_id}}, 201)["floatingip"]
    resp = call(cloud, t, "PUT", f"/floatingips/{other['id']}", {"floatingip": {
        "port_id": port["id"], "fixed_ip_address": ip2}})
    assert resp.status_code == 409 and err_type(resp) == "FloatingIPPortAlreadyAssociated"
    # the interface and the gateway the floating IP relies on cannot go
    resp = call(cloud, t, "PUT", f"/routers/{top['router']['id']}/remove_router_interface",
                {"subnet_id": top["subnet"]["id"]})
    assert resp.status_code == 409 and err_type(resp) == "RouterInterfaceInUseByFloatingIP"
    resp = call(cloud, t, "PUT", f"/routers/{top['router']['id']}", {"router": {"external_gateway_info": {}}})
    assert resp.status_code == 409 and err_type(resp) == "RouterExternalGatewayInUseByFloatingIp"
    # its own port cannot be deleted through the port API
    fip_port = call(cloud, admin, "GET", f"/ports?device_id={fip['id']}", expect=200)["ports"]
    assert [p["device_owner"] for p in fip_port] == ["network:floatingip"]
    resp = call(cloud, admin, "DELETE", f"/ports/{fip_port[0]['id']}")
    assert resp.status_code == 409
    # deleting the associated port disassociates
    call(cloud, t, "DELETE", f"/ports/{port['id']}", expect=204)
    after = call(cloud, t, "GET", f"/floatingips/{fip['id']}", expect=200)["floatingip"]
    assert after["port_id"] is None and after["fixed_ip_address"] is None and after["status"] == "DOWN"
    # deleting the floating IP frees its port and address
    call(cloud, t, "DELETE", f"/floatingips/{fip['id']}", expect=204)
    assert call(cloud, admin, "GET", f"/ports?device_id={fip['id']}", expect=200)["ports"] == []
    call(cloud, t, "DELETE", f"/floatingips/{other['id']}", expect=204)


def test_unreachable_and_invalid_requests(cloud, env):
    a, admin = env["a"], env["admin"]
    t = a["token"]
    lonely = _private(cloud, a, "lonely", "10.20.0.0/24", router=False)
    port = call(cloud, t, "POST", "/ports", {"port": {"network_id": lonely["network"]["id"]}}, 201)["port"]
    ext_id = env["ext"]["id"]
    before = len(call(cloud, t, "GET", "/floatingips", expect=200)["floatingips"])
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": ext_id,
                                                                 "port_id": port["id"]}})
    assert resp.status_code == 404 and err_type(resp) == "ExternalGatewayForFloatingIPNotFound"
    assert "is not reachable from subnet" in resp.json()["NeutronError"]["message"]
    # a floating IP on a private network
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": lonely["network"]["id"]}})
    assert resp.status_code == 400 and err_type(resp) == "BadRequest"
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {
        "floating_network_id": "3f7c4a40-0000-4000-8000-000000000000"}})
    assert resp.status_code == 404 and err_type(resp) == "NetworkNotFound"
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {}})
    assert resp.status_code == 400
    # an explicit address is for admins (and project managers)
    resp = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": ext_id,
                                                                 "floating_ip_address": "203.0.113.190"}})
    assert resp.status_code == 403
    assert len(call(cloud, t, "GET", "/floatingips", expect=200)["floatingips"]) == before  # nothing half-made
    chosen = call(cloud, admin, "POST", "/floatingips", {"floatingip": {
        "floating_network_id": ext_id, "floating_ip_address": "203.0.113.190", "project_id": a["pid"]}},
        201)["floatingip"]
    assert chosen["floating_ip_address"] == "203.0.113.190" and chosen["project_id"] == a["pid"]
    resp = call(cloud, admin, "POST", "/floatingips", {"floatingip": {
        "floating_network_id": ext_id, "floating_ip_address": "203.0.113.190"}})
    assert resp.status_code == 409, resp.text
    call(cloud, t, "DELETE", f"/floatingips/{chosen['id']}", expect=204)


def test_update_to_a_port_behind_another_router(cloud, env):
    a = env["a"]
    t = a["token"]
    one, two = _private(cloud, a, "r-one", "10.30.0.0/24"), _private(cloud, a, "r-two", "10.31.0.0/24")
    p1 = call(cloud, t, "POST", "/ports", {"port": {"network_id": one["network"]["id"]}}, 201)["port"]
    p2 = call(cloud, t, "POST", "/ports", {"port": {"network_id": two["network"]["id"]}}, 201)["port"]
    fip = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": env["ext"]["id"],
                                                                "port_id": p1["id"]}}, 201)["floatingip"]
    assert fip["router_id"] == one["router"]["id"]
    moved = call(cloud, t, "PUT", f"/floatingips/{fip['id']}", {"floatingip": {"port_id": p2["id"]}},
                 200)["floatingip"]
    assert moved["router_id"] == two["router"]["id"] and moved["port_id"] == p2["id"]
    call(cloud, t, "DELETE", f"/floatingips/{fip['id']}", expect=204)


def test_projects_never_see_each_other(cloud, env):
    a, b = env["a"], env["b"]
    fip = call(cloud, a["token"], "POST", "/floatingips", {"floatingip": {
        "floating_network_id": env["ext"]["id"]}}, 201)["floatingip"]
    assert call(cloud, b["token"], "GET", "/floatingips", expect=200)["floatingips"] == []
    for method, body in [("GET", None), ("PUT", {"floatingip": {"port_id": None}}), ("DELETE", None)]:
        resp = call(cloud, b["token"], method, f"/floatingips/{fip['id']}", body)
        assert resp.status_code == 404 and err_type(resp) == "FloatingIPNotFound"
    # B may not attach A's floating IP to its port, nor A's port to its floating IP
    a_port = call(cloud, a["token"], "GET", "/ports?name=vm-port", expect=200)["ports"][0]
    b_fip = call(cloud, b["token"], "POST", "/floatingips", {"floatingip": {
        "floating_network_id": env["ext"]["id"]}}, 201)["floatingip"]
    resp = call(cloud, b["token"], "PUT", f"/floatingips/{b_fip['id']}", {"floatingip": {"port_id": a_port["id"]}})
    assert resp.status_code == 404 and err_type(resp) == "PortNotFound"
    # the admin sees both; the openstack CLI lists per project
    everything = call(cloud, env["admin"], "GET", "/floatingips", expect=200)["floatingips"]
    assert {fip["id"], b_fip["id"]} <= {x["id"] for x in everything}
    listed = cloud.os_json("floating", "ip", "list", env=b["env"])
    assert [x["ID"] for x in listed] == [b_fip["id"]]


def test_sdk_and_events(cloud, env):
    a = env["a"]
    conn = cloud.sdk(username=a["user"], password=a["password"], project_name="fip-alpha")
    fip = conn.network.create_ip(floating_network_id=env["ext"]["id"], description="sdk")
    assert fip.description == "sdk" and fip.status == "DOWN"
    port = conn.network.find_port("vm-port")
    fip = conn.network.update_ip(fip, port_id=port.id)
    assert fip.port_id == port.id and fip.status == "ACTIVE"
    assert fip.port_details["mac_address"] == port.mac_address
    conn.network.delete_ip(fip)
    lines = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    for event in ("network.floatingip.created", "network.floatingip.updated", "network.floatingip.deleted"):
        assert event in lines


def test_neutronclient_library(cloud, env):
    """The `neutronclient` Python library, unchanged: routers, interfaces, floating IPs,
    security groups and RBAC through its own calls."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    from neutronclient.common import exceptions as nexc
    from neutronclient.v2_0 import client as nclient

    a = env["a"]
    auth = v3.Password(auth_url=cloud.auth_url, username=a["user"], password=a["password"],
                       project_name="fip-alpha", user_domain_id="default", project_domain_id="default")
    neutron = nclient.Client(session=ks_session.Session(auth=auth), region_name="RegionOne")
    network = neutron.create_network({"network": {"name": "nc-net"}})["network"]
    subnet = neutron.create_subnet({"subnet": {"network_id": network["id"], "cidr": "10.40.0.0/24",
                                               "ip_version": 4}})["subnet"]
    router = neutron.create_router({"router": {"name": "nc-router"}})["router"]
    neutron.add_gateway_router(router["id"], {"network_id": env["ext"]["id"]})
    info = neutron.add_interface_router(router["id"], {"subnet_id": subnet["id"]})
    assert info["subnet_id"] == subnet["id"] and info["id"] == router["id"]
    port = neutron.create_port({"port": {"network_id": network["id"]}})["port"]
    fip = neutron.create_floatingip({"floatingip": {"floating_network_id": env["ext"]["id"],
                                                    "port_id": port["id"]}})["floatingip"]
    assert fip["router_id"] == router["id"] and fip["status"] == "ACTIVE"
    assert [f["id"] for f in neutron.list_floatingips(port_id=port["id"])["floatingips"]] == [fip["id"]]
    with pytest.raises(nexc.NotFound):
        neutron.remove_interface_router(router["id"], {"subnet_id": "3f7c4a40-0000-4000-8000-000000000000"})
    with pytest.raises(nexc.Conflict):
        neutron.delete_router(router["id"])
    group = neutron.create_security_group({"security_group": {"name": "nc-sg"}})["security_group"]
    neutron.create_security_group_rule({"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 443,
        "port_range_max": 443}})
    with pytest.raises(nexc.Conflict):
        neutron.create_security_group_rule({"security_group_rule": {
            "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 443,
            "port_range_max": 443}})
    neutron.delete_floatingip(fip["id"])
    neutron.delete_port(port["id"])
    neutron.remove_interface_router(router["id"], {"subnet_id": subnet["id"]})
    neutron.remove_gateway_router(router["id"])
    neutron.delete_router(router["id"])
    neutron.delete_security_group(group["id"])
    neutron.delete_network(network["id"])
