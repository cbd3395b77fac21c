"""Ports through the `openstack` CLI, openstacksdk, neutronclient and raw HTTP: fixed IPs,
MACs, bindings (admin only, DOWN -> ACTIVE), allowed address pairs, extra DHCP options,
port security with security groups, filters (fixed_ips, substrings), visibility, and 50
concurrent creates on one subnet getting 50 distinct addresses."""
from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3
from neutronclient.v2_0 import client as neutron_client

from .netlib import NeutronHTTP, error, new_project


@pytest.fixture(scope="module")
def admin(cloud):
    return NeutronHTTP(cloud, cloud.token())


@pytest.fixture(scope="module")
def alice(cloud):
    return new_project(cloud)


@pytest.fixture(scope="module")
def alice_net(cloud, alice):
    api = NeutronHTTP(cloud, alice["token"])
    net = api.create("network", {"name": "alice-net"})
    sub = api.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "192.168.10.0/24"})
    return net, sub


def test_port_create_cli_with_fixed_ip_and_mac(cloud, alice, alice_net):
    net, sub = alice_net
    port = cloud.os_json("port", "create", "--network", net["id"], "--fixed-ip",
                         f"subnet={sub['id']},ip-address=192.168.10.50", "--mac-address", "fa:16:3e:00:00:50",
                         "cli-port", env=alice["env"])
    assert port["mac_address"] == "fa:16:3e:00:00:50"
    assert "192.168.10.50" in str(port["fixed_ips"])
    assert port["status"] == "DOWN" and port["device_owner"] == ""
    api = NeutronHTTP(cloud, alice["token"])
    got = api.get(f"/ports/{port['id']}", expect=200).json()["port"]
    # binding details are admin-only
    assert "binding:host_id" not in got and "binding:vif_type" not in got and "binding:profile" not in got
    assert got["binding:vnic_type"] == "normal"
    assert len(got["security_groups"]) == 1  # the project's default group
    err = error(api("POST", "/ports", json={"port": {"network_id": net["id"], "mac_address": "fa:16:3e:00:00:50"}},
                    expect=409))
    assert err["type"] == "MacAddressInUse"
    err = error(api("POST", "/ports", json={"port": {"network_id": net["id"],
                                                     "fixed_ips": [{"ip_address": "192.168.10.50"}]}}, expect=409))
    assert err["type"] == "IpAddressAlreadyAllocated"
    assert error(api("POST", "/ports", json={"port": {"network_id": net["id"], "mac_address": "zz:16"}}, expect=400))
    cloud.openstack("port", "delete", "cli-port", env=alice["env"])


def test_binding_is_admin_only_and_activates(cloud, admin, alice, alice_net):
    net, _ = alice_net
    api = NeutronHTTP(cloud, alice["token"])
    err = error(api("POST", "/ports", json={"port": {"network_id": net["id"], "binding:host_id": "h1"}}, expect=403))
    assert err["type"] == "PolicyNotAuthorized" and "binding:host_id" in err["message"]
    port = api.create("port", {"network_id": net["id"], "device_id": "vm-x", "device_owner": "compute:nova"})
    assert port["status"] == "DOWN"
    bound = admin("PUT", f"/ports/{port['id']}", json={"port": {"binding:host_id": "compute-1"}},
                  expect=200).json()["port"]
    assert bound["status"] == "ACTIVE" and bound["binding:host_id"] == "compute-1"
    assert bound["binding:vif_type"] not in ("unbound", "binding_failed")
    unbound = admin("PUT", f"/ports/{port['id']}", json={"port": {"binding:host_id": ""}}, expect=200).json()["port"]
    assert unbound["status"] == "DOWN" and unbound["binding:vif_type"] == "unbound"
    admin("PUT", f"/ports/{port['id']}", json={"port": {"binding:host_id": "compute-2"}}, expect=200)
    sdk_port = cloud.sdk().network.get_port(port["id"])
    assert sdk_port.binding_host_id == "compute-2" and sdk_port.status == "ACTIVE"
    api("DELETE", f"/ports/{port['id']}", expect=204)


def test_address_pairs_dhcp_opts_and_port_security(cloud, alice, alice_net):
    net, _ = alice_net
    api = NeutronHTTP(cloud, alice["token"])
    port = cloud.os_json("port", "create", "--network", net["id"], "--allowed-address",
                         "ip-address=10.1.1.0/24", "--extra-dhcp-option", "name=tftp-server,value=10.0.0.9",
                         "pairs", env=alice["env"])
    got = api.get(f"/ports/{port['id']}", expect=200).json()["port"]
    assert got["allowed_address_pairs"] == [{"ip_address": "10.1.1.0/24", "mac_address": got["mac_address"]}]
    assert got["extra_dhcp_opts"] == [{"opt_name": "tftp-server", "opt_value": "10.0.0.9", "ip_version": 4}]
    # without port security: no groups, no pairs
    err = error(api("PUT", f"/ports/{port['id']}", json={"port": {"port_security_enabled": False}}, expect=409))
    assert err["type"] in ("PortSecurityAndIPRequiredForSecurityGroups", "AddressPairAndPortSecurityRequired")
    cloud.openstack("port", "set", "--no-security-group", "--no-allowed-address", "--disable-port-security",
                    port["id"], env=alice["env"])
    got = api.get(f"/ports/{port['id']}", expect=200).json()["port"]
    assert got["port_security_enabled"] is False and got["security_groups"] == [] and \
        got["allowed_address_pairs"] == []
    err = error(api("POST", "/ports", json={"port": {"network_id": net["id"], "port_security_enabled": False,
                                                     "allowed_address_pairs": [{"ip_address": "10.0.0.1"}]}},
                    expect=409))
    assert err["type"] == "AddressPairAndPortSecurityRequired"
    assert error(api("POST", "/ports", json={"port": {"network_id": net["id"],
                                                      "allowed_address_pairs": [{"ip_address": "nope"}]}},
                     expect=400))
    api("DELETE", f"/ports/{port['id']}", expect=204)


def test_port_filters_and_clients(cloud, admin, alice, alice_net):
    net, sub = alice_net
    api = NeutronHTTP(cloud, alice["token"])
    p1 = api.create("port", {"network_id": net["id"], "fixed_ips": [{"ip_address": "192.168.10.77"}],
                             "device_owner": "compute:nova", "device_id": "vm-77", "name": "f1"})
    p2 = api.create("port", {"network_id": net["id"], "fixed_ips": [{"subnet_id": sub["id"],
                                                                     "ip_address": "192.168.10.78"}], "name": "f2"})
    ids = lambda q: {p["id"] for p in api.get(f"/ports?{q}", expect=200).json()["ports"]}
    assert ids("fixed_ips=ip_address%3D192.168.10.77") == {p1["id"]}
    assert ids("fixed_ips=ip_address%3D192.168.10.77&fixed_ips=ip_address%3D192.168.10.78") == {p1["id"], p2["id"]}
    assert ids("fixed_ips=ip_address_substr%3D10.7") == {p1["id"], p2["id"]}
    assert ids(f"fixed_ips=subnet_id%3D{sub['id']}&device_owner=compute:nova") == {p1["id"]}
    assert ids("device_id=vm-77") == {p1["id"]}
    listed = cloud.os_json("port", "list", "--fixed-ip", "ip-address=192.168.10.78", env=alice["env"])
    assert [p["ID"] for p in listed] == [p2["id"]]
    listed = cloud.os_json("port", "list", "--device-owner", "compute:nova", env=alice["env"])
    assert [p["ID"] for p in listed] == [p1["id"]]
    auth = ks_v3.Password(auth_url=cloud.auth_url, username=alice["user"], password=alice["password"],
                          project_name=alice["name"], user_domain_name="Default", project_domain_name="Default")
    nc = neutron_client.Client(session=ks_session.Session(auth=auth))
    assert {p["id"] for p in nc.list_ports(device_id="vm-77")["ports"]} == {p1["id"]}
    nc.update_port(p2["id"], {"port": {"name": "renamed", "fixed_ips": [{"ip_address": "192.168.10.79"}]}})
    got = nc.show_port(p2["id"])["port"]
    assert got["name"] == "renamed" and got["fixed_ips"][0]["ip_address"] == "192.168.10.79"
    # the old address is free again
    p3 = api.create("port", {"network_id": net["id"], "fixed_ips": [{"ip_address": "192.168.10.78"}]})
    for p in (p1, p2, p3):
        nc.delete_port(p["id"])


def test_ports_invisible_across_projects(cloud, admin, alice, alice_net):
    net, _ = alice_net
    port = NeutronHTTP(cloud, alice["token"]).create("port", {"network_id": net["id"]})
    bob = new_project(cloud)
    bob_api = NeutronHTTP(cloud, bob["token"])
    assert port["id"] not in {p["id"] for p in bob_api.get("/ports", expect=200).json()["ports"]}
    assert error(bob_api.get(f"/ports/{port['id']}", expect=404))["type"] == "PortNotFound"
    assert error(bob_api("DELETE", f"/ports/{port['id']}", expect=404))
    # nor may bob put a port on alice's network
    assert error(bob_api("POST", "/ports", json={"port": {"network_id": net["id"]}}, expect=404))["type"] == \
        "NetworkNotFound"
    # an external network is visible to bob but not his to put ports on
    ext = admin.create("network", {"name": "ext-for-ports", "router:external": True})
    assert error(bob_api("POST", "/ports", json={"port": {"network_id": ext["id"]}}, expect=403))
    admin("DELETE", f"/networks/{ext['id']}", expect=204)
    # an admin sees it, with binding fields
    got = admin.get(f"/ports/{port['id']}", expect=200).json()["port"]
    assert got["binding:vif_type"] == "unbound" and got["binding:host_id"] == ""
    admin("DELETE", f"/ports/{port['id']}", expect=204)


def test_fifty_concurrent_creates_get_distinct_addresses(cloud, admin):
    net = admin.create("network", {"name": "race"})
    sub = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.200.0.0/26"})
    token = admin.token

    def create(i):
        r = httpx.post(admin.base + "/ports", headers={"X-Auth-Token": token}, timeout=120,
                       json={"port": {"network_id": net["id"], "name": f"race-{i}"}})
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(create, range(50)))
    assert all(code == 201 for code, _ in results), [r for r in results if r[0] != 201][:3]
    addrs = [body["port"]["fixed_ips"][0]["ip_address"] for _, body in results]
    macs = [body["port"]["mac_address"] for _, body in results]
    assert len(set(addrs)) == 50 and len(set(macs)) == 50
    dhcp = admin.get(f"/ports?network_id={net['id']}&device_owner=network:dhcp", expect=200).json()["ports"][0]
    taken = {dhcp["fixed_ips"][0]["ip_address"], sub["gateway_ip"]}
    assert not taken & set(addrs)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.200.0.0/26") for a in addrs)
