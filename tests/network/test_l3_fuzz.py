"""Bad input to the security group, router, floating IP, RBAC, agent and auto-allocation
APIs: every attribute with values of every wrong type, bodies that are not objects. Whatever
the input, the answer is a Neutron error (4xx), never a 500."""
from __future__ import annotations

import itertools
import json

from tests.network.l3_util import call, member

VALUES = [None, -1, True, "x", [1], {"a": 1}, "3f7c4a40-0000-4000-8000-000000000000", "::/0", "a" * 300]
RULE_ATTRS = ["security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
              "remote_ip_prefix", "remote_group_id", "description"]
ROUTER_ATTRS = ["name", "admin_state_up", "external_gateway_info", "distributed", "ha", "routes",
                "availability_zone_hints", "flavor_id"]
FIP_ATTRS = ["floating_network_id", "subnet_id", "floating_ip_address", "port_id", "fixed_ip_address", "description",
             "project_id"]
RBAC_ATTRS = ["object_type", "object_id", "action", "target_tenant", "target_project", "project_id"]


def test_no_input_gives_a_500(cloud):
    admin = cloud.token()
    t = member(cloud, "fz")["token"]
    ext = call(cloud, admin, "POST", "/networks", {"network": {"name": "ext", "router:external": True}},
               201)["network"]
    call(cloud, admin, "POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                                       "ip_version": 4}}, 201)
    net = call(cloud, t, "POST", "/networks", {"network": {"name": "n"}}, 201)["network"]
    call(cloud, t, "POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.0.0.0/24", "ip_version": 4}},
         201)
    router = call(cloud, t, "POST", "/routers", {"router": {"name": "r"}}, 201)["router"]
    rpath = f"/routers/{router['id']}"
    sg = call(cloud, t, "POST", "/security-groups", {"security_group": {"name": "s"}}, 201)["security_group"]
    fip = call(cloud, t, "POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"]}},
               201)["floatingip"]
    bad = []

    def check(method, path, body, token=t):
        resp = call(cloud, token, method, path, body)
        if resp.status_code >= 500:
            bad.append((method, path, json.dumps(body)[:200], resp.status_code, resp.text[:200]))

    # bodies that are not what the resource expects
    for path in ["/security-groups", "/security-group-rules", "/routers", "/floatingips", "/rbac-policies"]:
        for body in [None, [], "x", 1, {"x": 1}]:
            check("POST", path, body)
    for path in [f"/security-groups/{sg['id']}", rpath, f"/floatingips/{fip['id']}",
                 f"{rpath}/add_router_interface", f"{rpath}/remove_router_interface",
                 f"{rpath}/add_extraroutes", f"{rpath}/remove_extraroutes"]:
        for body in [None, [], "x", 1, {"x": 1}, {"router": None}, {"router": {"routes": None}},
                     {"router": {"routes": [None]}}]:
            check("PUT", path, body)
    # each attribute with each wrong value
    for attr, v in itertools.product(RULE_ATTRS, VALUES):
        body = {"security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 1,
                "port_range_max": 2, attr: v}
        check("POST", "/security-group-rules", {"security_group_rule": body})
    for attr, v in itertools.product(["name", "description", "stateful"], VALUES):
        check("POST", "/security-groups", {"security_group": {attr: v}})
        check("PUT", f"/security-groups/{sg['id']}", {"security_group": {attr: v}})
    for attr, v in itertools.product(ROUTER_ATTRS, VALUES):
        check("POST", "/routers", {"router": {attr: v}}, admin)
        check("PUT", rpath, {"router": {attr: v}}, admin)
    for key, v in itertools.product(["network_id", "enable_snat", "external_fixed_ips"], VALUES):
        check("PUT", rpath, {"router": {"external_gateway_info": {"network_id": ext["id"], key: v}}}, admin)
        check("PUT", rpath, {"router": {"external_gateway_info": {"network_id": ext["id"],
                                                                  "external_fixed_ips": [{key: v}]}}}, admin)
    for key, v in itertools.product(["subnet_id", "port_id"], VALUES):
        check("PUT", f"{rpath}/add_router_interface", {key: v})
        check("PUT", f"{rpath}/remove_router_interface", {key: v})
    for v in VALUES:
        check("PUT", rpath, {"router": {"routes": [{"destination": v, "nexthop": v}]}})
        check("PUT", f"{rpath}/add_extraroutes", {"router": {"routes": [{"destination": v, "nexthop": "10.0.0.5"}]}})
        check("PUT", f"{rpath}/add_extraroutes", {"router": {"routes": v}})
    for attr, v in itertools.product(FIP_ATTRS, VALUES):
        check("POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"], attr: v}}, admin)
        check("PUT", f"/floatingips/{fip['id']}", {"floatingip": {attr: v}})
    for attr, v in itertools.product(RBAC_ATTRS, VALUES):
        body = {"object_type": "network", "object_id": net["id"], "action": "access_as_shared",
                "target_tenant": "*", attr: v}
        check("POST", "/rbac-policies", {"rbac_policy": body}, admin)
    for v in VALUES:
        check("GET", f"/auto-allocated-topology/{v}", None)
        check("PUT", f"/agents/{v}", {"agent": {"admin_state_up": v}}, admin)
        check("GET", f"/security-groups?limit={v}&marker={v}&sort_key={v}", None)
        check("GET", f"/routers?fields={v}&tags={v}", None)
    assert not bad, bad[:10]
