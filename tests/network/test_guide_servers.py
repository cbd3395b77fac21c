"""The guide's networking use cases with real servers, through the `openstack` CLI: a single
flat shared provider network (30.0.0.0/24) and a project's private network, servers booted
on them get their ports (device_owner compute:nova, ACTIVE, default security group), a
port the user made is bound and later given back, interfaces attach and detach, and
deleting a server releases its addresses."""
from __future__ import annotations

import pytest

from .netlib import NeutronHTTP, new_project


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "tiny.raw"
    path.write_bytes(b"\0" * 65536)
    cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--public",
                    "--file", str(path), "cirros")
    return "cirros"


@pytest.fixture(scope="module")
def provider(cloud):
    cloud.openstack("network", "create", "--share", "--provider-physical-network", "provider",
                    "--provider-network-type", "flat", "provider")
    return cloud.os_json("subnet", "create", "--network", "provider", "--subnet-range", "30.0.0.0/24",
                         "--allocation-pool", "start=30.0.0.100,end=30.0.0.200", "--dns-nameserver", "8.8.4.4",
                         "--gateway", "30.0.0.1", "provider")


def _ports(admin, server_id):
    return admin.get(f"/ports?device_id={server_id}", expect=200).json()["ports"]


def test_server_on_shared_provider_network(cloud, image, provider):
    admin = NeutronHTTP(cloud, cloud.token())
    demo = new_project(cloud)
    server = cloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", image, "--network", "provider",
                           "--wait", "vm-provider", env=demo["env"])
    addr = server["addresses"]
    assert "30.0.0.101" in str(addr)  # .100 is the DHCP port's
    ports = _ports(admin, server["id"])
    assert len(ports) == 1
    port = ports[0]
    assert port["device_owner"] == "compute:nova" and port["status"] == "ACTIVE"
    assert port["project_id"] == demo["id"] and port["binding:host_id"]
    assert len(port["security_groups"]) == 1
    listed = cloud.os_json("port", "list", "--server", "vm-provider", env=demo["env"])
    assert [p["ID"] for p in listed] == [port["id"]]
    cloud.openstack("server", "delete", "--wait", "vm-provider", env=demo["env"])
    assert _ports(admin, server["id"]) == []
    # the address went back to the pool
    again = admin.create("port", {"network_id": provider["network_id"]})
    assert again["fixed_ips"][0]["ip_address"] == "30.0.0.101"
    admin("DELETE", f"/ports/{again['id']}", expect=204)


def test_private_network_user_port_and_interfaces(cloud, image, provider):
    demo = new_project(cloud)
    env = demo["env"]
    api = NeutronHTTP(cloud, demo["token"])
    cloud.openstack("network", "create", "selfservice", env=env)
    cloud.openstack("subnet", "create", "--network", "selfservice", "--dns-nameserver", "8.8.4.4", "--gateway",
                    "172.16.1.1", "--subnet-range", "172.16.1.0/24", "selfservice", env=env)
    mine = cloud.os_json("port", "create", "--network", "selfservice", "--fixed-ip", "ip-address=172.16.1.50",
                         "my-port", env=env)
    server = cloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", image, "--port", mine["id"],
                           "--wait", "vm-private", env=env)
    assert "172.16.1.50" in str(server["addresses"])
    bound = api.get(f"/ports/{mine['id']}", expect=200).json()["port"]
    assert bound["device_id"] == server["id"] and bound["status"] == "ACTIVE"
    # attach an interface on the shared provider network, then detach it
    cloud.openstack("server", "add", "network", "vm-private", "provider", env=env)
    ports = api.get(f"/ports?device_id={server['id']}", expect=200).json()["ports"]
    assert len(ports) == 2
    extra = next(p for p in ports if p["id"] != mine["id"])
    assert extra["fixed_ips"][0]["ip_address"].startswith("30.0.0.")
    shown = cloud.os_json("server", "show", "vm-private", env=env)
    assert "provider" in str(shown["addresses"]) and "selfservice" in str(shown["addresses"])
    cloud.openstack("server", "remove", "port", "vm-private", extra["id"], env=env)
    assert [p["id"] for p in api.get(f"/ports?device_id={server['id']}", expect=200).json()["ports"]] == \
        [mine["id"]]
    # a port in use by a server cannot boot another one
    failed = cloud.openstack_fails("server", "create", "--flavor", "m1.tiny", "--image", image, "--port",
                                   mine["id"], "vm-dup", env=env)
    assert "in use" in failed.lower() or "409" in failed
    cloud.openstack("server", "delete", "--wait", "vm-private", env=env)
    # the user's own port survives, unbound
    kept = api.get(f"/ports/{mine['id']}", expect=200).json()["port"]
    assert kept["device_id"] == "" and kept["status"] == "DOWN"
    assert kept["fixed_ips"][0]["ip_address"] == "172.16.1.50"


def test_per_tenant_router_floating_ip_and_security_group_on_a_server(cloud, image, provider):
    """The guide's per-tenant router case: ext-net (external), a project network behind the
    project's router with its gateway on ext-net, a server on it, a floating IP associated
    with its port and shown in the server's addresses, a security group added to the server
    landing on its port, and everything released when the server goes."""
    admin = NeutronHTTP(cloud, cloud.token())
    cloud.openstack("network", "create", "--external", "--provider-physical-network", "extnet",
                    "--provider-network-type", "flat", "ext-net")
    cloud.openstack("subnet", "create", "--network", "ext-net", "--subnet-range", "192.168.1.0/24",
                    "--allocation-pool", "start=192.168.1.100,end=192.168.1.200", "--gateway", "192.168.1.1",
                    "--no-dhcp", "ext-subnet")
    demo = new_project(cloud)
    env = demo["env"]
    cloud.openstack("network", "create", "demo-net", env=env)
    cloud.openstack("subnet", "create", "--network", "demo-net", "--subnet-range", "10.5.5.0/24",
                    "--gateway", "10.5.5.1", "demo-subnet", env=env)
    cloud.openstack("router", "create", "demo-router", env=env)
    cloud.openstack("router", "add", "subnet", "demo-router", "demo-subnet", env=env)
    cloud.openstack("router", "set", "--external-gateway", "ext-net", "demo-router", env=env)
    server = cloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", image, "--network", "demo-net",
                           "--wait", "vm-fip", env=env)
    fip = cloud.os_json("floating", "ip", "create", "ext-net", env=env)
    assert fip["floating_ip_address"].startswith("192.168.1.")
    cloud.openstack("server", "add", "floating", "ip", "vm-fip", fip["floating_ip_address"], env=env)
    raw = NeutronHTTP(cloud, demo["token"])
    shown = cloud.token(demo["user"], demo["password"], demo["name"])
    import httpx

    nova = httpx.get(f"{cloud.url}/compute/v2.1/servers/{server['id']}", headers={"X-Auth-Token": shown}).json()
    addrs = nova["server"]["addresses"]["demo-net"]
    kinds = {a["OS-EXT-IPS:type"]: a["addr"] for a in addrs}
    assert kinds["floating"] == fip["floating_ip_address"] and kinds["fixed"].startswith("10.5.5.")
    assert all(a["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e") for a in addrs)
    assoc = raw.get(f"/floatingips/{fip['id']}", expect=200).json()["floatingip"]
    assert assoc["status"] == "ACTIVE" and assoc["fixed_ip_address"] == kinds["fixed"]
    # a security group added to the server lands on its port
    cloud.openstack("security", "group", "create", "web", env=env)
    cloud.openstack("server", "add", "security", "group", "vm-fip", "web", env=env)
    port = _ports(admin, server["id"])[0]
    names = {raw.get(f"/security-groups/{g}", expect=200).json()["security_group"]["name"]
             for g in port["security_groups"]}
    assert names == {"default", "web"}
    cloud.openstack("server", "delete", "--wait", "vm-fip", env=env)
    assert _ports(admin, server["id"]) == []
    released = raw.get(f"/floatingips/{fip['id']}", expect=200).json()["floatingip"]
    assert released["port_id"] is None and released["status"] == "DOWN"
