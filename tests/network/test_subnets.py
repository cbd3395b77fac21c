"""Subnets through the `openstack` CLI and raw HTTP: the guide's provider subnet, gateway
default/explicit/none, allocation pools computed and validated, overlapping CIDRs, DNS and
host routes, IPv6 modes, DHCP toggling, subnet pools (`--subnet-pool`, default pools,
prefix bounds), SubnetInUse, and a foreign project's network."""
from __future__ import annotations

import pytest

from .netlib import NeutronHTTP, error, new_project


@pytest.fixture(scope="module")
def admin(cloud):
    return NeutronHTTP(cloud, cloud.token())


@pytest.fixture(scope="module")
def net(admin):
    return admin.create("network", {"name": "subnets-net"})


def test_guide_provider_subnet_cli(cloud):
    cloud.openstack("network", "create", "--share", "--provider-physical-network", "provider",
                    "--provider-network-type", "flat", "guide-provider")
    sub = cloud.os_json("subnet", "create", "--network", "guide-provider", "--allocation-pool",
                        "start=30.0.0.100,end=30.0.0.200", "--dns-nameserver", "8.8.4.4", "--gateway", "30.0.0.1",
                        "--subnet-range", "30.0.0.0/24", "provider")
    assert sub["cidr"] == "30.0.0.0/24" and sub["gateway_ip"] == "30.0.0.1"
    pools = sub["allocation_pools"]
    assert pools in ("30.0.0.100-30.0.0.200", [{"start": "30.0.0.100", "end": "30.0.0.200"}])
    assert sub["dns_nameservers"] in ("8.8.4.4", ["8.8.4.4"])
    assert sub["enable_dhcp"] is True
    # the DHCP port holds the first pool address; a port gets the next one
    port = cloud.os_json("port", "create", "--network", "guide-provider", "p1")
    assert "30.0.0.101" in str(port["fixed_ips"])
    cloud.openstack("port", "delete", "p1")


def test_gateway_default_explicit_and_none(admin, net):
    a = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.20.0.0/24"})
    assert a["gateway_ip"] == "10.20.0.1"
    assert a["allocation_pools"] == [{"start": "10.20.0.2", "end": "10.20.0.254"}]
    b = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.21.0.0/24",
                                "gateway_ip": "10.21.0.254"})
    assert b["allocation_pools"] == [{"start": "10.21.0.1", "end": "10.21.0.253"}]
    c = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.22.0.0/24",
                                "gateway_ip": None, "enable_dhcp": False})
    assert c["gateway_ip"] is None
    assert c["allocation_pools"] == [{"start": "10.22.0.1", "end": "10.22.0.254"}]
    mid = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.23.0.0/24",
                                  "gateway_ip": "10.23.0.100"})
    assert mid["allocation_pools"] == [{"start": "10.23.0.1", "end": "10.23.0.99"},
                                       {"start": "10.23.0.101", "end": "10.23.0.254"}]
    # update: gateway off, pools changed
    upd = admin("PUT", f"/subnets/{c['id']}", json={"subnet": {"gateway_ip": "10.22.0.1", "allocation_pools": [
        {"start": "10.22.0.10", "end": "10.22.0.20"}]}}, expect=200).json()["subnet"]
    assert upd["gateway_ip"] == "10.22.0.1" and upd["allocation_pools"] == [{"start": "10.22.0.10",
                                                                           "end": "10.22.0.20"}]
    assert upd["revision_number"] == c["revision_number"] + 1


@pytest.mark.parametrize("body,etype,status", [
    ({"cidr": "10.20.0.128/25"}, "InvalidInput", 400),  # overlaps 10.20.0.0/24
    ({"cidr": "10.30.0.0/24", "allocation_pools": [{"start": "10.31.0.2", "end": "10.31.0.9"}]},
     "OutOfBoundsAllocationPool", 400),
    ({"cidr": "10.30.0.0/24", "allocation_pools": [{"start": "10.30.0.9", "end": "10.30.0.2"}]},
     "InvalidAllocationPool", 400),
    ({"cidr": "10.30.0.0/24", "allocation_pools": [{"start": "10.30.0.2", "end": "10.30.0.9"},
                                                   {"start": "10.30.0.5", "end": "10.30.0.20"}]},
     "OverlappingAllocationPools", 400),
    ({"cidr": "10.30.0.0/24", "allocation_pools": [{"start": "10.30.0.1", "end": "10.30.0.9"}]},
     "GatewayConflictWithAllocationPools", 409),
    ({"cidr": "10.30.0.0/33"}, "HTTPBadRequest", 400),
    ({"cidr": "not-a-cidr"}, "HTTPBadRequest", 400),
    ({"cidr": "10.30.0.0/24", "ip_version": 6}, "InvalidInput", 400),
    ({"cidr": "10.30.0.0/24", "gateway_ip": "10.30.0.0"}, "InvalidInput", 400),
    ({"cidr": "10.30.0.0/24", "dns_nameservers": ["1.1.1.1", "1.1.1.1"]}, "HTTPBadRequest", 400),
    ({"cidr": "10.30.0.0/24", "dns_nameservers": [f"1.1.1.{i}" for i in range(6)]}, "DNSNameServersExhausted", 400),
    ({"cidr": "10.30.0.0/24", "host_routes": [{"destination": "x", "nexthop": "10.30.0.3"}]}, "HTTPBadRequest",
     400),
    ({"cidr": "10.30.0.0/24", "ipv6_address_mode": "slaac"}, "InvalidInput", 400),
    ({"cidr": "fd00:1::/64", "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"},
     "InvalidInput", 400),
    ({"cidr": "fd00:2::/80", "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"},
     "InvalidInput", 400),
    ({}, "HTTPBadRequest", 400),  # neither cidr nor subnet pool
])
def test_invalid_subnets_change_nothing(admin, net, body, etype, status):
    before = len(admin.get(f"/subnets?network_id={net['id']}", expect=200).json()["subnets"])
    full = {"network_id": net["id"], "ip_version": 4, **body}
    got = error(admin("POST", "/subnets", json={"subnet": full}, expect=status))
    assert got["type"] == etype, got
    assert len(admin.get(f"/subnets?network_id={net['id']}", expect=200).json()["subnets"]) == before


def test_dns_host_routes_and_read_only(cloud, admin, net):
    sub = cloud.os_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.40.0.0/24",
                        "--dns-nameserver", "10.40.0.53", "--host-route", "destination=10.99.0.0/16,gateway=10.40.0.5",
                        "routes")
    got = admin.get(f"/subnets/{sub['id']}", expect=200).json()["subnet"]
    assert got["dns_nameservers"] == ["10.40.0.53"]
    assert got["host_routes"] == [{"destination": "10.99.0.0/16", "nexthop": "10.40.0.5"}]
    cloud.openstack("subnet", "set", "--no-dns-nameservers", "--dns-nameserver", "1.0.0.1", sub["id"])
    assert admin.get(f"/subnets/{sub['id']}", expect=200).json()["subnet"]["dns_nameservers"] == ["1.0.0.1"]
    assert error(admin("PUT", f"/subnets/{sub['id']}", json={"subnet": {"cidr": "10.41.0.0/24"}}, expect=400))


def test_ipv6_slaac_subnet(admin, net):
    sub = admin.create("subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "2001:db8:1::/64",
                                  "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
    assert sub["gateway_ip"] == "2001:db8:1::1"
    assert sub["allocation_pools"] == [{"start": "2001:db8:1::2", "end": "2001:db8:1:0:ffff:ffff:ffff:ffff"}]
    assert sub["ipv6_ra_mode"] == sub["ipv6_address_mode"] == "slaac"


def test_dhcp_toggle_moves_the_dhcp_port(admin):
    n = admin.create("network", {"name": "dhcp-toggle"})
    sub = admin.create("subnet", {"network_id": n["id"], "ip_version": 4, "cidr": "10.50.0.0/24",
                                  "enable_dhcp": False})
    dhcp = lambda: admin.get(f"/ports?network_id={n['id']}&device_owner=network:dhcp", expect=200).json()["ports"]
    assert dhcp() == []
    admin("PUT", f"/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": True}}, expect=200)
    ports = dhcp()
    assert len(ports) == 1 and ports[0]["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.50.0.2"}]
    assert ports[0]["status"] == "ACTIVE"
    admin("PUT", f"/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": False}}, expect=200)
    assert dhcp() == []


def test_subnet_in_use(cloud, admin):
    n = admin.create("network", {"name": "inuse"})
    sub = admin.create("subnet", {"network_id": n["id"], "ip_version": 4, "cidr": "10.60.0.0/24"})
    port = admin.create("port", {"network_id": n["id"]})
    err = error(admin("DELETE", f"/subnets/{sub['id']}", expect=409))
    assert err["type"] == "SubnetInUse"
    admin("DELETE", f"/ports/{port['id']}", expect=204)
    cloud.openstack("subnet", "delete", sub["id"])  # only the DHCP port was left: removed with it
    assert admin.get(f"/ports?network_id={n['id']}", expect=200).json()["ports"] == []


def test_subnet_on_foreign_network(cloud, admin):
    alice = new_project(cloud)
    alice_api = NeutronHTTP(cloud, alice["token"])
    private = admin.create("network", {"name": "admin-only"})
    err = error(alice_api("POST", "/subnets", json={"subnet": {"network_id": private["id"], "ip_version": 4,
                                                               "cidr": "10.70.0.0/24"}}, expect=404))
    assert err["type"] == "NetworkNotFound"
    shared = admin.create("network", {"name": "shared-x", "shared": True})
    err = error(alice_api("POST", "/subnets", json={"subnet": {"network_id": shared["id"], "ip_version": 4,
                                                               "cidr": "10.70.0.0/24"}}, expect=403))
    assert err["type"] == "PolicyNotAuthorized"
    mine = alice_api.create("network", {"name": "mine"})
    sub = alice_api.create("subnet", {"network_id": mine["id"], "ip_version": 4, "cidr": "10.70.0.0/24"})
    bob = new_project(cloud)
    assert error(NeutronHTTP(cloud, bob["token"]).get(f"/subnets/{sub['id']}", expect=404))["type"] == \
        "SubnetNotFound"


def test_subnet_pools(cloud, admin):
    pool = cloud.os_json("subnet", "pool", "create", "--pool-prefix", "172.16.0.0/16", "--default-prefix-length",
                         "26", "--min-prefix-length", "24", "--max-prefix-length", "28", "pool-a")
    assert pool["ip_version"] == 4 and pool["default_prefixlen"] == 26
    n = admin.create("network", {"name": "pooled"})
    s1 = cloud.os_json("subnet", "create", "--network", n["id"], "--subnet-pool", pool["id"], "from-pool-1")
    s2 = cloud.os_json("subnet", "create", "--network", n["id"], "--subnet-pool", pool["id"], "--prefix-length",
                       "28", "from-pool-2")
    assert s1["cidr"] == "172.16.0.0/26" and s1["subnetpool_id"] == pool["id"]
    assert s2["cidr"] == "172.16.0.64/28"
    explicit = admin.create("subnet", {"network_id": n["id"], "ip_version": 4, "subnetpool_id": pool["id"],
                                       "cidr": "172.16.1.0/24"})
    assert explicit["cidr"] == "172.16.1.0/24"
    for bad in ({"prefixlen": 20}, {"prefixlen": 30}, {"cidr": "10.0.0.0/24"}, {"cidr": "172.16.1.0/25"}):
        body = {"network_id": n["id"], "ip_version": 4, "subnetpool_id": pool["id"], **bad}
        assert error(admin("POST", "/subnets", json={"subnet": body}, expect=400))["type"] in (
            "SubnetAllocationError", "InvalidInput"), bad
    err = error(admin("DELETE", f"/subnetpools/{pool['id']}", expect=409))
    assert err["type"] == "SubnetPoolInUse"
    # prefixes may grow, never shrink
    admin("PUT", f"/subnetpools/{pool['id']}", json={"subnetpool": {"prefixes": ["172.16.0.0/16", "172.20.0.0/16"]}},
          expect=200)
    assert error(admin("PUT", f"/subnetpools/{pool['id']}", json={"subnetpool": {"prefixes": ["172.20.0.0/16"]}},
                       expect=400))
    # default pool: --use-default-subnet-pool
    default = admin.create("subnetpool", {"name": "default-v4", "prefixes": ["192.168.128.0/17"],
                                          "default_prefixlen": 24, "is_default": True, "shared": True})
    assert default["is_default"] is True
    assert error(admin("POST", "/subnetpools", json={"subnetpool": {"name": "second", "prefixes": ["10.128.0.0/9"],
                                                                    "is_default": True}}, expect=400))
    s3 = cloud.os_json("subnet", "create", "--network", n["id"], "--use-default-subnet-pool", "--ip-version", "4",
                       "from-default")
    assert s3["cidr"] == "192.168.128.0/24" and s3["subnetpool_id"] == default["id"]
    listed = {p["Name"] for p in cloud.os_json("subnet", "pool", "list")}
    assert {"pool-a", "default-v4"} <= listed
    for s in (s1, s2, explicit, s3):
        admin("DELETE", f"/subnets/{s['id']}", expect=204)
    cloud.openstack("subnet", "pool", "delete", pool["id"])
