"""RBAC policies with the real `openstack network rbac` CLI and raw HTTP: sharing a network
with one project, wildcards (admin only), access_as_external, in-use checks, isolation."""
from __future__ import annotations

import pytest

from tests.network.l3_util import call, err_type, member


@pytest.fixture(scope="module")
def env(cloud):
    a, b, c = member(cloud, "rbac-owner"), member(cloud, "rbac-guest"), member(cloud, "rbac-other")
    network = call(cloud, a["token"], "POST", "/networks", {"network": {"name": "owned"}}, 201)["network"]
    call(cloud, a["token"], "POST", "/subnets", {"subnet": {"network_id": network["id"], "cidr": "10.70.0.0/24",
                                                            "ip_version": 4}}, 201)
    return {"a": a, "b": b, "c": c, "net": network, "admin": cloud.token()}


def test_share_with_one_project(cloud, env):
    a, b, c, network = env["a"], env["b"], env["c"], env["net"]
    assert call(cloud, b["token"], "GET", f"/networks/{network['id']}").status_code == 404
    policy = cloud.os_json("network", "rbac", "create", "--target-project", b["pid"], "--action", "access_as_shared",
                           "--type", "network", network["id"], env=a["env"])
    assert policy["target_project_id"] == b["pid"] and policy["object_id"] == network["id"]
    assert policy["project_id"] == a["pid"] and policy["action"] == "access_as_shared"
    # the guest sees the network and may put a port on it; a third project still may not
    assert call(cloud, b["token"], "GET", f"/networks/{network['id']}", expect=200)
    port = call(cloud, b["token"], "POST", "/ports", {"port": {"network_id": network["id"]}}, 201)["port"]
    assert call(cloud, c["token"], "GET", f"/networks/{network['id']}").status_code == 404
    # the guest's port depends on the grant
    resp = call(cloud, a["token"], "DELETE", f"/rbac-policies/{policy['id']}")
    assert resp.status_code == 409 and err_type(resp) == "RbacPolicyInUse"
    resp = call(cloud, a["token"], "PUT", f"/rbac-policies/{policy['id']}",
                {"rbac_policy": {"target_tenant": c["pid"]}})
    assert resp.status_code == 409 and err_type(resp) == "RbacPolicyInUse"
    # the guest sees neither the policy nor may it re-share the network
    assert call(cloud, b["token"], "GET", "/rbac-policies", expect=200)["rbac_policies"] == []
    assert call(cloud, b["token"], "GET", f"/rbac-policies/{policy['id']}").status_code == 404
    resp = call(cloud, b["token"], "POST", "/rbac-policies", {"rbac_policy": {
        "object_type": "network", "object_id": network["id"], "action": "access_as_shared",
        "target_tenant": c["pid"]}})
    assert resp.status_code == 400 and err_type(resp) == "InvalidInput"
    listed = cloud.os_json("network", "rbac", "list", env=a["env"])
    assert [x["ID"] for x in listed] == [policy["id"]]
    call(cloud, b["token"], "DELETE", f"/ports/{port['id']}", expect=204)
    cloud.openstack("network", "rbac", "delete", policy["id"], env=a["env"])
    assert call(cloud, b["token"], "GET", f"/networks/{network['id']}").status_code == 404


def test_bad_requests(cloud, env):
    a, network = env["a"], env["net"]
    base = {"object_type": "network", "object_id": network["id"], "action": "access_as_shared",
            "target_tenant": env["b"]["pid"]}
    for change, status, etype in [
        ({"object_type": "router"}, 400, None),
        ({"action": "access_as_owner"}, 400, "InvalidInput"),
        ({"target_tenant": "not a project"}, 400, None),
        ({"object_id": "3f7c4a40-0000-4000-8000-000000000000"}, 404, "NetworkNotFound"),
        ({"target_tenant": "*"}, 403, None),  # only admins share with everybody
    ]:
        resp = call(cloud, a["token"], "POST", "/rbac-policies", {"rbac_policy": {**base, **change}})
        assert resp.status_code == status, (change, resp.text)
        if etype:
            assert err_type(resp) == etype
    first = call(cloud, a["token"], "POST", "/rbac-policies", {"rbac_policy": base}, 201)["rbac_policy"]
    resp = call(cloud, a["token"], "POST", "/rbac-policies", {"rbac_policy": base})
    assert resp.status_code == 409 and err_type(resp) == "DuplicateRbacPolicy"
    # the target may change (nobody uses the grant yet); target_project is accepted too
    moved = call(cloud, a["token"], "PUT", f"/rbac-policies/{first['id']}",
                 {"rbac_policy": {"target_project": env["c"]["pid"]}}, 200)["rbac_policy"]
    assert moved["target_tenant"] == env["c"]["pid"]
    resp = call(cloud, a["token"], "PUT", f"/rbac-policies/{first['id']}", {"rbac_policy": {"action": "x"}})
    assert resp.status_code == 400
    call(cloud, a["token"], "DELETE", f"/rbac-policies/{first['id']}", expect=204)


def test_wildcards_mirror_shared_and_external(cloud, env):
    admin, network, b = env["admin"], env["net"], env["b"]
    shared = call(cloud, admin, "POST", "/rbac-policies", {"rbac_policy": {
        "object_type": "network", "object_id": network["id"], "action": "access_as_shared",
        "target_tenant": "*"}}, 201)["rbac_policy"]
    assert call(cloud, b["token"], "GET", f"/networks/{network['id']}", expect=200)["network"]["shared"] is True
    call(cloud, admin, "DELETE", f"/rbac-policies/{shared['id']}", expect=204)
    assert call(cloud, admin, "GET", f"/networks/{network['id']}", expect=200)["network"]["shared"] is False
    external = call(cloud, admin, "POST", "/rbac-policies", {"rbac_policy": {
        "object_type": "network", "object_id": network["id"], "action": "access_as_external",
        "target_tenant": "*"}}, 201)["rbac_policy"]
    assert call(cloud, admin, "GET", f"/networks/{network['id']}", expect=200)["network"]["router:external"] is True
    call(cloud, admin, "DELETE", f"/rbac-policies/{external['id']}", expect=204)
    assert call(cloud, admin, "GET", f"/networks/{network['id']}", expect=200)["network"]["router:external"] is False


def test_access_as_external_for_one_project(cloud, env):
    admin, b, c = env["admin"], env["b"], env["c"]
    ext = call(cloud, admin, "POST", "/networks", {"network": {"name": "partner-ext"}}, 201)["network"]
    call(cloud, admin, "POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": "198.51.100.0/24",
                                                       "ip_version": 4, "enable_dhcp": False}}, 201)
    policy = cloud.os_json("network", "rbac", "create", "--target-project", b["pid"], "--action",
                           "access_as_external", "--type", "network", ext["id"])
    router = call(cloud, b["token"], "POST", "/routers", {"router": {
        "name": "uplink", "external_gateway_info": {"network_id": ext["id"]}}}, 201)["router"]
    assert router["external_gateway_info"]["network_id"] == ext["id"]
    fip = call(cloud, b["token"], "POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"]}},
               201)["floatingip"]
    # a project without the grant does not even see the network
    resp = call(cloud, c["token"], "POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"]}})
    assert resp.status_code == 404 and err_type(resp) == "NetworkNotFound"
    # the grant cannot go while the guest's gateway and floating IP use it
    resp = call(cloud, admin, "DELETE", f"/rbac-policies/{policy['id']}")
    assert resp.status_code == 409 and err_type(resp) == "RbacPolicyInUse"
    call(cloud, b["token"], "DELETE", f"/floatingips/{fip['id']}", expect=204)
    call(cloud, b["token"], "DELETE", f"/routers/{router['id']}", expect=204)
    call(cloud, admin, "DELETE", f"/rbac-policies/{policy['id']}", expect=204)
    lines = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "network.rbac_policy.created" in lines and "network.rbac_policy.deleted" in lines
