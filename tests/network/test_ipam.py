"""IP address management on a running cloud: gateway and DHCP addresses never handed out,
exhaustion (IpAddressGenerationFailure), addresses returning to the pool, specific and
out-of-pool addresses, EUI-64 SLAAC addresses from the MAC, fixed_ips updates, and the
concurrency guarantee on PostgreSQL too (50 concurrent creates, 50 distinct addresses)."""
from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pocketstack.network import ipam

from .netlib import NeutronHTTP, error


@pytest.fixture(scope="module")
def admin(cloud):
    return NeutronHTTP(cloud, cloud.token())


def test_eui64_unit():
    assert ipam.eui64("2001:db8::/64", "fa:16:3e:11:22:33") == "2001:db8::f816:3eff:fe11:2233"
    assert ipam.default_pools("10.0.0.0/29", "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.6"}]
    assert ipam.default_pools("10.0.0.0/30", None) == [{"start": "10.0.0.1", "end": "10.0.0.2"}]
    assert ipam.random_mac().startswith("fa:16:3e:")


def test_exhaustion_and_return_to_pool(admin):
    net = admin.create("network", {"name": "tiny"})
    sub = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.1.0.0/29"})
    # .1 gateway, .2 DHCP; .3-.6 for ports
    ports = [admin.create("port", {"network_id": net["id"]}) for _ in range(4)]
    addrs = sorted(p["fixed_ips"][0]["ip_address"] for p in ports)
    assert addrs == ["10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    before = len(admin.get(f"/ports?network_id={net['id']}", expect=200).json()["ports"])
    err = error(admin("POST", "/ports", json={"port": {"network_id": net["id"]}}, expect=409))
    assert err == {"type": "IpAddressGenerationFailure", "detail": "",
                   "message": f"No more IP addresses available on network {net['id']}."}
    assert len(admin.get(f"/ports?network_id={net['id']}", expect=200).json()["ports"]) == before
    freed = ports[1]["fixed_ips"][0]["ip_address"]
    admin("DELETE", f"/ports/{ports[1]['id']}", expect=204)
    again = admin.create("port", {"network_id": net["id"]})
    assert again["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": freed}]


def test_specific_addresses(admin):
    net = admin.create("network", {"name": "specific"})
    sub = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.2.0.0/24",
                                  "allocation_pools": [{"start": "10.2.0.100", "end": "10.2.0.110"}]})
    outside_pool = admin.create("port", {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.2.0.20"}]})
    assert outside_pool["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.2.0.20"}]
    cases = [
        ([{"ip_address": "10.2.0.1"}], 409, "IpAddressAlreadyAllocated"),   # the gateway
        ([{"ip_address": "10.2.0.20"}], 409, "IpAddressAlreadyAllocated"),  # taken
        ([{"ip_address": "10.2.0.255"}], 400, "InvalidIpForSubnet"),         # broadcast
        ([{"ip_address": "10.3.0.5"}], 400, "InvalidIpForNetwork"),
        ([{"subnet_id": sub["id"], "ip_address": "10.3.0.5"}], 400, "InvalidIpForSubnet"),
        ([{"ip_address": "banana"}], 400, "HTTPBadRequest"),
        ([{"subnet_id": "c0ffee00-0000-4000-8000-000000000000"}], 404, "SubnetNotFound"),
    ]
    for fixed, status, etype in cases:
        got = error(admin("POST", "/ports", json={"port": {"network_id": net["id"], "fixed_ips": fixed}},
                          expect=status))
        assert got["type"] == etype, (fixed, got)
    other = admin.create("network", {"name": "other"})
    other_sub = admin.create("subnet", {"network_id": other["id"], "ip_version": 4, "cidr": "10.4.0.0/24"})
    got = error(admin("POST", "/ports", json={"port": {"network_id": net["id"],
                                                       "fixed_ips": [{"subnet_id": other_sub["id"]}]}}, expect=400))
    assert got["type"] == "InvalidInput"
    # two subnets asked for at once
    sub2 = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.5.0.0/24"})
    both = admin.create("port", {"network_id": net["id"], "fixed_ips": [{"subnet_id": sub["id"]},
                                                                        {"subnet_id": sub2["id"]}]})
    assert {f["subnet_id"] for f in both["fixed_ips"]} == {sub["id"], sub2["id"]}
    # update: drop one, add a specific one
    upd = admin("PUT", f"/ports/{both['id']}", json={"port": {"fixed_ips": [
        {"subnet_id": sub2["id"], "ip_address": "10.5.0.200"}]}}, expect=200).json()["port"]
    assert upd["fixed_ips"] == [{"subnet_id": sub2["id"], "ip_address": "10.5.0.200"}]


def test_ipv6_slaac_eui64_and_stateful(admin):
    net = admin.create("network", {"name": "v6"})
    v4 = admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.6.0.0/24"})
    slaac = admin.create("subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "2001:db8:6::/64",
                                    "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
    port = admin.create("port", {"network_id": net["id"]})
    by_subnet = {f["subnet_id"]: f["ip_address"] for f in port["fixed_ips"]}
    assert by_subnet[slaac["id"]] == ipam.eui64("2001:db8:6::/64", port["mac_address"])
    assert ipaddress.ip_address(by_subnet[v4["id"]]) in ipaddress.ip_network("10.6.0.0/24")
    err = error(admin("POST", "/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
        {"subnet_id": slaac["id"], "ip_address": "2001:db8:6::55"}]}}, expect=400))
    assert err["type"] == "InvalidInput"
    stateful = admin.create("subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "2001:db8:7::/64",
                                       "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"})
    p2 = admin.create("port", {"network_id": net["id"], "fixed_ips": [{"subnet_id": stateful["id"]}]})
    addr = p2["fixed_ips"][0]["ip_address"]
    assert ipaddress.ip_address(addr) in ipaddress.ip_network("2001:db8:7::/64") and addr != "2001:db8:7::1"


def _race(cloud, admin):
    net = admin.create("network", {"name": "race"})
    admin.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.8.0.0/26"})

    def create(i):
        r = httpx.post(admin.base + "/ports", headers={"X-Auth-Token": admin.token}, timeout=120,
                       json={"port": {"network_id": net["id"], "name": f"r{i}"}})
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(create, range(50)))
    assert all(code == 201 for code, _ in results), [r for r in results if r[0] != 201][:3]
    addrs = {body["port"]["fixed_ips"][0]["ip_address"] for _, body in results}
    assert len(addrs) == 50 and "10.8.0.1" not in addrs
    avail = admin.get(f"/network-ip-availabilities/{net['id']}", expect=200).json()["network_ip_availability"]
    assert avail["used_ips"] == 51 and avail["total_ips"] == 61
    # delete them all concurrently: every address returns
    with ThreadPoolExecutor(max_workers=25) as pool:
        codes = list(pool.map(lambda b: admin("DELETE", f"/ports/{b[1]['port']['id']}").status_code, results))
    assert set(codes) == {204}
    avail = admin.get(f"/network-ip-availabilities/{net['id']}", expect=200).json()["network_ip_availability"]
    assert avail["used_ips"] == 1


def test_concurrent_creates_postgresql(pg_cloud):
    _race(pg_cloud, NeutronHTTP(pg_cloud, pg_cloud.token()))
