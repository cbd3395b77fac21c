"""Security groups, routers, floating IPs and RBAC on PostgreSQL: the guide's flow, the
savepoint-guarded duplicates, and a race-free `default` group under truly concurrent
first uses (PostgreSQL runs transactions in parallel where SQLite serialises writers)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.network.l3_util import call, err_type, member

pytestmark = pytest.mark.postgresql


def test_concurrent_first_use_makes_one_default_group(pg_cloud):
    who = member(pg_cloud, "pg-race")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(pg_cloud, who["token"], "GET", "/security-groups"), range(8)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
    ids = {g["id"] for r in results for g in r.json()["security_groups"]}
    assert len(ids) == 1


def test_guide_flow_and_conflicts(pg_cloud):
    admin = pg_cloud.token()
    who = member(pg_cloud, "pg-alpha")
    t = who["token"]
    ext = call(pg_cloud, admin, "POST", "/networks", {"network": {"name": "ext", "router:external": True}},
               201)["network"]
    call(pg_cloud, admin, "POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                                          "ip_version": 4, "enable_dhcp": False}}, 201)
    network = call(pg_cloud, t, "POST", "/networks", {"network": {"name": "priv"}}, 201)["network"]
    subnet = call(pg_cloud, t, "POST", "/subnets", {"subnet": {"network_id": network["id"], "cidr": "10.0.0.0/24",
                                                               "ip_version": 4}}, 201)["subnet"]
    router = call(pg_cloud, t, "POST", "/routers", {"router": {
        "name": "r", "external_gateway_info": {"network_id": ext["id"]}}}, 201)["router"]
    call(pg_cloud, t, "PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}, 200)
    resp = call(pg_cloud, t, "PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
    assert resp.status_code == 400
    port = call(pg_cloud, t, "POST", "/ports", {"port": {"network_id": network["id"]}}, 201)["port"]
    fip = call(pg_cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                                   "port_id": port["id"]}}, 201)["floatingip"]
    assert fip["status"] == "ACTIVE" and fip["router_id"] == router["id"]
    group = call(pg_cloud, t, "POST", "/security-groups", {"security_group": {"name": "web"}}, 201)["security_group"]
    rule = {"security_group_rule": {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
                                    "port_range_min": 80, "port_range_max": 80}}
    call(pg_cloud, t, "POST", "/security-group-rules", rule, 201)
    resp = call(pg_cloud, t, "POST", "/security-group-rules", rule)
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupRuleExists"
    other = member(pg_cloud, "pg-beta")
    policy = {"rbac_policy": {"object_type": "network", "object_id": network["id"], "action": "access_as_shared",
                              "target_tenant": other["pid"]}}
    call(pg_cloud, t, "POST", "/rbac-policies", policy, 201)
    resp = call(pg_cloud, t, "POST", "/rbac-policies", policy)
    assert resp.status_code == 409 and err_type(resp) == "DuplicateRbacPolicy"
    # the transaction that hit the duplicate left nothing behind and the API still works
    assert len(call(pg_cloud, t, "GET", "/rbac-policies", expect=200)["rbac_policies"]) == 1
    call(pg_cloud, t, "DELETE", f"/ports/{port['id']}", expect=204)
    assert call(pg_cloud, t, "GET", f"/floatingips/{fip['id']}", expect=200)["floatingip"]["port_id"] is None
    call(pg_cloud, t, "DELETE", f"/floatingips/{fip['id']}", expect=204)
    call(pg_cloud, t, "PUT", f"/routers/{router['id']}/remove_router_interface", {"subnet_id": subnet["id"]}, 200)
    call(pg_cloud, t, "DELETE", f"/routers/{router['id']}", expect=204)
