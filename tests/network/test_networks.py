"""Networks through the `openstack` CLI, openstacksdk and raw HTTP: the guide's provider and
self-service networks, provider attributes (admin only, validated, free VLAN/VNI allocation
from the configured ranges), shared and external flags, visibility between projects, MTU,
port security, NetworkInUse, IP availability."""
from __future__ import annotations

import uuid

import pytest

from conftest import Cloud

from .netlib import NeutronHTTP, error, new_project


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("netcloud"), config={
        ("ml2_type_vlan", "network_vlan_ranges"): "physnet1:100:101",
        ("ml2_type_flat", "flat_networks"): "provider,physnet2",
        ("ml2_type_vxlan", "vni_ranges"): "500:502",
    })
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def admin(cloud):
    return NeutronHTTP(cloud, cloud.token())


@pytest.fixture(scope="module")
def alice(cloud):
    return new_project(cloud)


@pytest.fixture(scope="module")
def bob(cloud):
    return new_project(cloud)


def test_guide_provider_network_cli(cloud):
    net = cloud.os_json("network", "create", "--share", "--external", "--provider-physical-network", "provider",
                        "--provider-network-type", "flat", "provider")
    assert net["shared"] is True and net["router:external"] == "External" or net["router:external"] is True
    assert net["provider:network_type"] == "flat" and net["provider:physical_network"] == "provider"
    assert net["provider:segmentation_id"] is None and net["mtu"] == 1500
    # one flat network per physical network
    err = cloud.openstack_fails("network", "create", "--provider-physical-network", "provider",
                                "--provider-network-type", "flat", "provider2")
    assert "in use" in err.lower()
    shown = cloud.os_json("network", "show", "provider")
    assert shown["id"] == net["id"] and shown["status"] == "ACTIVE"


def test_self_service_network_gets_vxlan_segment(cloud, alice):
    net = cloud.os_json("network", "create", "selfservice", env=alice["env"])
    assert net["project_id"] == alice["id"]
    assert "provider:network_type" not in net or net["provider:network_type"] is None  # hidden from members
    seen = cloud.os_json("network", "show", net["id"])  # admin sees the segment
    assert seen["provider:network_type"] == "vxlan" and 500 <= seen["provider:segmentation_id"] <= 502
    assert seen["mtu"] == 1450


def test_provider_attributes_admin_only(cloud, alice):
    alice_api = NeutronHTTP(cloud, alice["token"])
    err = error(alice_api("POST", "/networks", json={"network": {"provider:network_type": "vlan"}}, expect=403))
    assert err["type"] == "PolicyNotAuthorized"
    assert "provider:network_type" in err["message"]
    for flag in ("shared", "router:external"):
        assert error(alice_api("POST", "/networks", json={"network": {flag: True}}, expect=403))


def test_vlan_allocation_and_validation(admin):
    a = admin.create("network", {"provider:network_type": "vlan", "provider:physical_network": "physnet1"})
    b = admin.create("network", {"provider:network_type": "vlan", "provider:physical_network": "physnet1"})
    assert {a["provider:segmentation_id"], b["provider:segmentation_id"]} == {100, 101}
    err = error(admin("POST", "/networks", json={"network": {"provider:network_type": "vlan",
                                                            "provider:physical_network": "physnet1"}}, expect=503))
    assert err["type"] == "NoNetworkAvailable"
    # explicit ids outside the tenant ranges are fine; a taken one is a conflict
    c = admin.create("network", {"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                                 "provider:segmentation_id": 300})
    assert c["provider:segmentation_id"] == 300
    err = error(admin("POST", "/networks", json={"network": {
        "provider:network_type": "vlan", "provider:physical_network": "physnet1",
        "provider:segmentation_id": 300}}, expect=409))
    assert err["type"] == "VlanIdInUse"
    for bad in ({"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                 "provider:segmentation_id": 5000},
                {"provider:network_type": "flat"},
                {"provider:network_type": "flat", "provider:physical_network": "physnet2",
                 "provider:segmentation_id": 3},
                {"provider:network_type": "warp"},
                {"provider:network_type": "vxlan", "provider:physical_network": "physnet1"}):
        assert error(admin("POST", "/networks", json={"network": bad}, expect=400))["type"] == "InvalidInput", bad
    # deleting frees the id for the next allocation
    admin("DELETE", f"/networks/{a['id']}", expect=204)
    d = admin.create("network", {"provider:network_type": "vlan", "provider:physical_network": "physnet1"})
    assert d["provider:segmentation_id"] == a["provider:segmentation_id"]
    for n in (b, c, d):
        admin("DELETE", f"/networks/{n['id']}", expect=204)


def test_visibility_between_projects(cloud, admin, alice, bob):
    alice_api, bob_api = NeutronHTTP(cloud, alice["token"]), NeutronHTTP(cloud, bob["token"])
    private = alice_api.create("network", {"name": "alice-private"})
    shared = admin.create("network", {"name": "everyone", "shared": True})
    ext = admin.create("network", {"name": "outside", "router:external": True})
    bob_ids = {n["id"] for n in bob_api.get("/networks", expect=200).json()["networks"]}
    assert private["id"] not in bob_ids and {shared["id"], ext["id"]} <= bob_ids
    assert error(bob_api.get(f"/networks/{private['id']}", expect=404))["type"] == "NetworkNotFound"
    assert error(bob_api("PUT", f"/networks/{private['id']}", json={"network": {"name": "x"}}, expect=404))
    assert error(bob_api("DELETE", f"/networks/{private['id']}", expect=404))
    # visible but not theirs: 403 on change
    err = error(bob_api("PUT", f"/networks/{shared['id']}", json={"network": {"name": "mine"}}, expect=403))
    assert err["type"] == "PolicyNotAuthorized"
    # a reader can read, not write
    reader, rpw = cloud.make_user(alice["name"], "reader")
    reader_api = NeutronHTTP(cloud, cloud.token(reader, rpw, alice["name"]))
    assert reader_api.get(f"/networks/{private['id']}", expect=200)
    assert error(reader_api("POST", "/networks", json={"network": {}}, expect=403))
    # openstacksdk as bob
    conn = cloud.sdk(bob["user"], bob["password"], bob["name"])
    assert private["id"] not in {n.id for n in conn.network.networks()}
    assert conn.network.find_network("everyone").id == shared["id"]


def test_update_shared_external_mtu_port_security(cloud, admin):
    net = admin.create("network", {"name": "upd"})
    cloud.openstack("network", "set", "--share", "--external", "--mtu", "1400", "--disable-port-security",
                    "--description", "changed", net["id"])
    got = cloud.os_json("network", "show", net["id"])
    assert got["shared"] is True and got["mtu"] == 1400 and got["port_security_enabled"] is False
    assert got["description"] == "changed" and got["revision_number"] >= 1
    assert error(admin("PUT", f"/networks/{net['id']}", json={"network": {"mtu": 9000}}, expect=400))
    assert error(admin("PUT", f"/networks/{net['id']}",
                       json={"network": {"provider:segmentation_id": 7}}, expect=400))
    port = admin.create("port", {"network_id": net["id"]})
    assert port["port_security_enabled"] is False and port["security_groups"] == []
    cloud.openstack("network", "set", "--disable", net["id"])
    assert cloud.os_json("network", "show", net["id"])["admin_state_up"] is False
    admin("DELETE", f"/ports/{port['id']}", expect=204)


def test_delete_network_in_use_then_free(cloud, admin):
    net = admin.create("network", {"name": "busy"})
    sub = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.9.0.0/24"})
    port = admin.create("port", {"network_id": net["id"], "device_id": "vm-1", "device_owner": "compute:nova"})
    err = error(admin("DELETE", f"/networks/{net['id']}", expect=409))
    assert err["type"] == "NetworkInUse"
    assert admin.get(f"/networks/{net['id']}", expect=200)
    assert admin.get(f"/subnets/{sub['id']}", expect=200)
    cloud.openstack("port", "delete", port["id"])
    cloud.openstack("network", "delete", net["id"])  # the DHCP port and subnet go with it
    assert error(admin.get(f"/subnets/{sub['id']}", expect=404))["type"] == "SubnetNotFound"
    assert admin.get(f"/ports?network_id={net['id']}", expect=200).json()["ports"] == []


def test_ip_availability(cloud, admin, alice):
    net = admin.create("network", {"name": "avail"})
    admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.10.0.0/28"})
    admin.create("port", {"network_id": net["id"]})
    got = cloud.os_json("ip", "availability", "show", net["id"])
    assert got["total_ips"] == 13 and got["used_ips"] == 2  # the DHCP port and ours
    listed = admin.get(f"/network-ip-availabilities?network_id={net['id']}", expect=200).json()
    entry = listed["network_ip_availabilities"][0]
    assert entry["subnet_ip_availability"][0]["cidr"] == "10.10.0.0/28"
    alice_api = NeutronHTTP(cloud, alice["token"])
    assert error(alice_api.get("/network-ip-availabilities", expect=403))


def test_bulk_create_and_quota_of_network(cloud, admin):
    r = admin("POST", "/networks", json={"networks": [{"name": "bulk-1"}, {"name": "bulk-2"}]}, expect=201)
    made = r.json()["networks"]
    assert [n["name"] for n in made] == ["bulk-1", "bulk-2"]
    # an invalid member makes the whole bulk fail, creating nothing
    name = "bulk-" + uuid.uuid4().hex[:6]
    admin("POST", "/networks", json={"networks": [{"name": name}, {"admin_state_up": "maybe"}]}, expect=400)
    assert admin.get(f"/networks?name={name}", expect=200).json()["networks"] == []
