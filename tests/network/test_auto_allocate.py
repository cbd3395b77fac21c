"""Auto-allocated topology ("get me a network") with the real `openstack network auto
allocated topology` CLI: requirements (dry run), building once, per-project isolation, delete."""
from __future__ import annotations

import pytest

from tests.network.l3_util import call, err_type, member


@pytest.fixture(scope="module")
def env(cloud):
    return {"a": member(cloud, "auto-alpha"), "b": member(cloud, "auto-beta"), "admin": cloud.token()}


def test_requirements_missing_is_a_409(cloud, env):
    a = env["a"]
    resp = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}?fields=dry-run")
    assert resp.status_code == 409 and err_type(resp) == "AutoAllocationFailure"
    assert "No default router:external network" in resp.json()["NeutronError"]["message"]
    err = cloud.openstack_fails("network", "auto", "allocated", "topology", "create", "--check-resources",
                                env=a["env"])
    assert "No default router:external network" in err
    admin = env["admin"]
    ext = call(cloud, admin, "POST", "/networks", {"network": {"name": "public", "router:external": True,
                                                               "is_default": True}}, 201)["network"]
    call(cloud, admin, "POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                                       "ip_version": 4, "enable_dhcp": False}}, 201)
    resp = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}?fields=dry-run")
    assert resp.status_code == 409 and "No default subnetpools defined" in resp.json()["NeutronError"]["message"]
    # building fails the same way, leaving nothing behind
    resp = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}")
    assert resp.status_code == 409
    assert call(cloud, a["token"], "GET", "/routers", expect=200)["routers"] == []
    call(cloud, admin, "POST", "/subnetpools", {"subnetpool": {
        "name": "default-v4", "prefixes": ["10.100.0.0/16"], "default_prefixlen": 26, "is_default": True,
        "shared": True}}, 201)
    ok = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}?fields=dry-run", expect=200)
    assert ok["auto_allocated_topology"]["id"] == "dry-run=pass"


def test_build_once_and_reuse(cloud, env):
    a = env["a"]
    topo = cloud.os_json("network", "auto", "allocated", "topology", "create", env=a["env"])
    net_id = topo["id"]
    assert topo["project_id"] == a["pid"]
    again = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}", expect=200)
    assert again["auto_allocated_topology"] == {"id": net_id, "project_id": a["pid"], "tenant_id": a["pid"]}
    network = call(cloud, a["token"], "GET", f"/networks/{net_id}", expect=200)["network"]
    assert network["name"] == "auto_allocated_network" and network["project_id"] == a["pid"]
    (subnet_id,) = network["subnets"]
    subnet = call(cloud, a["token"], "GET", f"/subnets/{subnet_id}", expect=200)["subnet"]
    assert subnet["cidr"].startswith("10.100.") and subnet["cidr"].endswith("/26")
    (router,) = call(cloud, a["token"], "GET", "/routers", expect=200)["routers"]
    assert router["name"] == "auto_allocated_router"
    assert router["external_gateway_info"]["network_id"] == call(
        cloud, a["token"], "GET", "/networks?is_default=True", expect=200)["networks"][0]["id"]
    ports = call(cloud, a["token"], "GET", f"/ports?device_id={router['id']}", expect=200)["ports"]
    assert [p["fixed_ips"][0]["subnet_id"] for p in ports] == [subnet_id]
    # the literal project "None" means the caller's project, as upstream
    same = call(cloud, a["token"], "GET", "/auto-allocated-topology/None", expect=200)
    assert same["auto_allocated_topology"]["id"] == net_id


def test_other_projects(cloud, env):
    a, b, admin = env["a"], env["b"], env["admin"]
    resp = call(cloud, b["token"], "GET", f"/auto-allocated-topology/{a['pid']}")
    assert resp.status_code == 403
    resp = call(cloud, b["token"], "DELETE", f"/auto-allocated-topology/{a['pid']}")
    assert resp.status_code == 403
    # an admin may build one for another project; each project gets its own
    built = call(cloud, admin, "GET", f"/auto-allocated-topology/{b['pid']}", expect=200)["auto_allocated_topology"]
    a_net = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}",
                 expect=200)["auto_allocated_topology"]["id"]
    assert built["id"] != a_net and built["project_id"] == b["pid"]
    assert call(cloud, b["token"], "GET", f"/networks/{built['id']}", expect=200)["network"]["project_id"] == b["pid"]
    resp = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}?fields=bogus")
    assert resp.status_code == 400


def test_delete(cloud, env):
    a = env["a"]
    net_id = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}",
                  expect=200)["auto_allocated_topology"]["id"]
    cloud.openstack("network", "auto", "allocated", "topology", "delete", env=a["env"])
    assert call(cloud, a["token"], "GET", f"/networks/{net_id}").status_code == 404
    assert call(cloud, a["token"], "GET", "/routers", expect=200)["routers"] == []
    # deleting again is harmless; asking again builds a new one
    call(cloud, a["token"], "DELETE", f"/auto-allocated-topology/{a['pid']}", expect=204)
    fresh = call(cloud, a["token"], "GET", f"/auto-allocated-topology/{a['pid']}",
                 expect=200)["auto_allocated_topology"]["id"]
    assert fresh != net_id
    lines = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "network.auto_allocated_topology.created" in lines and "network.auto_allocated_topology.deleted" in lines
