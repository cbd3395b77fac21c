"""The legacy os-security-groups / os-security-group-rules proxy (≤2.35) and a server's
security groups: raw Nova calls (no maintained client speaks the proxy any more), checked
against the network service through the openstack CLI."""
from __future__ import annotations

import time
import uuid

import pytest
from periphery_util import Persona, fault, make_image, new_project, nova


@pytest.fixture(scope="module")
def env(cloud):
    proj = new_project(cloud)
    admin = cloud.token()
    return {"admin": admin, "member": Persona(cloud, proj, "member"), "reader": Persona(cloud, proj, "reader"),
            "other": Persona(cloud, new_project(cloud), "member"), "image": make_image(cloud, admin)}


def test_group_crud_through_proxy(cloud, env):
    m = env["member"]
    r = nova(cloud, m.token, "POST", "/os-security-groups", "2.1",
             json={"security_group": {"name": "web", "description": "web servers"}})
    assert r.status_code == 200, r.text
    g = r.json()["security_group"]
    assert g["name"] == "web" and g["description"] == "web servers" and g["tenant_id"] == m.project_id
    assert g["rules"] == []  # egress rules are not shown by Nova
    # the network service has it (with its egress rules)
    neutron = cloud.os_json("security", "group", "show", g["id"], env=m.env)
    assert neutron["name"] == "web"
    listed = nova(cloud, m.token, "GET", "/os-security-groups", "2.35").json()["security_groups"]
    assert [x["name"] for x in listed] == ["default", "web"]
    default = listed[0]
    assert {(r["ip_protocol"], r["group"]["name"]) for r in default["rules"]} == {(None, "default")}
    upd = nova(cloud, m.token, "PUT", f"/os-security-groups/{g['id']}",
               json={"security_group": {"name": "web2", "description": "renamed"}})
    assert upd.json()["security_group"]["name"] == "web2"
    shown = nova(cloud, m.token, "GET", f"/os-security-groups/{g['id']}").json()["security_group"]
    assert shown["description"] == "renamed"
    # isolation
    fault(nova(cloud, env["other"].token, "GET", f"/os-security-groups/{g['id']}"), 404, "itemNotFound")
    assert g["id"] not in [x["id"] for x in nova(cloud, env["other"].token, "GET", "/os-security-groups")
                           .json()["security_groups"]]
    fault(nova(cloud, env["reader"].token, "POST", "/os-security-groups",
               json={"security_group": {"name": "x", "description": ""}}), 403, "forbidden")
    assert nova(cloud, m.token, "DELETE", f"/os-security-groups/{g['id']}").status_code == 202
    fault(nova(cloud, m.token, "GET", f"/os-security-groups/{g['id']}"), 404, "itemNotFound")


def test_gone_at_236(cloud, env):
    m = env["member"]
    for method, path in [("GET", "/os-security-groups"), ("POST", "/os-security-groups"),
                         ("GET", f"/os-security-groups/{uuid.uuid4()}"),
                         ("POST", "/os-security-group-rules"),
                         ("DELETE", f"/os-security-group-rules/{uuid.uuid4()}")]:
        fault(nova(cloud, m.token, method, path, "2.36", json={}), 404, "itemNotFound")


def test_group_bad_input(cloud, env):
    t = env["member"].token
    fault(nova(cloud, t, "GET", "/os-security-groups/not-a-uuid"), 400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-security-groups", json={"security_group": {"name": "x"}}), 400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-security-groups", json={"security_group": {"name": 5, "description": ""}}),
          400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-security-groups", json={"security_group": {"name": "default",
                                                                                 "description": ""}}),
          400, "badRequest")
    fault(nova(cloud, t, "DELETE", f"/os-security-groups/{uuid.uuid4()}"), 404, "itemNotFound")


def test_rules(cloud, env):
    m = env["member"]
    g = nova(cloud, m.token, "POST", "/os-security-groups",
             json={"security_group": {"name": "rules", "description": ""}}).json()["security_group"]
    src = nova(cloud, m.token, "POST", "/os-security-groups",
               json={"security_group": {"name": "src", "description": ""}}).json()["security_group"]
    ssh = nova(cloud, m.token, "POST", "/os-security-group-rules",
               json={"security_group_rule": {"parent_group_id": g["id"], "ip_protocol": "tcp", "from_port": 22,
                                             "to_port": 22, "cidr": "10.0.0.0/8"}})
    assert ssh.status_code == 200, ssh.text
    rule = ssh.json()["security_group_rule"]
    assert rule == {"id": rule["id"], "parent_group_id": g["id"], "ip_protocol": "tcp", "from_port": 22,
                    "to_port": 22, "group": {}, "ip_range": {"cidr": "10.0.0.0/8"}}
    icmp = nova(cloud, m.token, "POST", "/os-security-group-rules",
                json={"security_group_rule": {"parent_group_id": g["id"], "ip_protocol": "icmp",
                                              "from_port": -1, "to_port": -1}}).json()["security_group_rule"]
    assert icmp["from_port"] == -1 and icmp["ip_range"] == {"cidr": "0.0.0.0/0"}
    by_group = nova(cloud, m.token, "POST", "/os-security-group-rules",
                    json={"security_group_rule": {"parent_group_id": g["id"], "ip_protocol": "udp",
                                                  "group_id": src["id"]}}).json()["security_group_rule"]
    assert by_group["group"] == {"name": "src", "tenant_id": m.project_id}
    assert (by_group["from_port"], by_group["to_port"]) == (1, 65535)
    shown = nova(cloud, m.token, "GET", f"/os-security-groups/{g['id']}").json()["security_group"]
    assert sorted(r["ip_protocol"] for r in shown["rules"]) == ["icmp", "tcp", "udp"]
    # the network service sees the same rules
    neutron = cloud.os_json("security", "group", "rule", "list", g["id"], env=m.env)
    assert {rule["id"], icmp["id"], by_group["id"]} <= {r["ID"] for r in neutron}
    base = {"parent_group_id": g["id"], "ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"}
    for bad in ({**base, "from_port": 30, "to_port": 20}, {**base, "from_port": 0}, {**base, "ip_protocol": "gre"},
                {**base, "from_port": "x"}, {**base, "cidr": "not-a-cidr"}, {**base, "cidr": "10.0.0.1/0"},
                {"parent_group_id": g["id"], "cidr": "10.0.0.0/8"}, {**base, "ip_protocol": "icmp", "from_port": 300},
                {**base, "parent_group_id": "nope"}, base):
        fault(nova(cloud, m.token, "POST", "/os-security-group-rules", json={"security_group_rule": bad}),
              400, "badRequest")
    fault(nova(cloud, m.token, "POST", "/os-security-group-rules",
               json={"security_group_rule": {**base, "parent_group_id": str(uuid.uuid4())}}), 404, "itemNotFound")
    fault(nova(cloud, env["other"].token, "POST", "/os-security-group-rules",
               json={"security_group_rule": {**base, "from_port": 80, "to_port": 80}}), 404, "itemNotFound")
    fault(nova(cloud, env["other"].token, "DELETE", f"/os-security-group-rules/{rule['id']}"), 404, "itemNotFound")
    assert nova(cloud, m.token, "DELETE", f"/os-security-group-rules/{rule['id']}").status_code == 202
    fault(nova(cloud, m.token, "DELETE", f"/os-security-group-rules/{rule['id']}"), 404, "itemNotFound")
    fault(nova(cloud, m.token, "DELETE", "/os-security-group-rules/xyz"), 400, "badRequest")
    for gid in (g["id"], src["id"]):
        nova(cloud, m.token, "DELETE", f"/os-security-groups/{gid}")


def test_server_security_groups(cloud, env, unique):
    m = env["member"]
    net = cloud.os_json("network", "create", unique("net"), env=m.env)
    cloud.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "192.168.77.0/24",
                    unique("sub"), env=m.env)
    web = nova(cloud, m.token, "POST", "/os-security-groups",
               json={"security_group": {"name": "websrv", "description": ""}}).json()["security_group"]
    body = {"server": {"name": "sg-vm", "imageRef": env["image"], "flavorRef": "1",
                       "networks": [{"uuid": net["id"]}], "security_groups": [{"name": "websrv"}]}}
    r = nova(cloud, m.token, "POST", "/servers", "2.37", json=body)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if nova(cloud, m.token, "GET", f"/servers/{sid}").json()["server"]["status"] in ("ACTIVE", "ERROR"):
            break
        time.sleep(0.2)
    groups = nova(cloud, m.token, "GET", f"/servers/{sid}/os-security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["websrv"] and groups[0]["id"] == web["id"]
    # also at new microversions, and only for the server's own project
    assert nova(cloud, m.token, "GET", f"/servers/{sid}/os-security-groups", "2.90").status_code == 200
    fault(nova(cloud, env["other"].token, "GET", f"/servers/{sid}/os-security-groups"), 404, "itemNotFound")
    fault(nova(cloud, m.token, "GET", f"/servers/{uuid.uuid4()}/os-security-groups"), 404, "itemNotFound")
    # in use: the proxy refuses to delete it
    fault(nova(cloud, m.token, "DELETE", f"/os-security-groups/{web['id']}"), 400, "badRequest")
    nova(cloud, m.token, "DELETE", f"/servers/{sid}")


def test_network_proxies(cloud, env, unique):
    m = env["member"]
    name = unique("pnet")
    net = cloud.os_json("network", "create", name, env=m.env)
    listed = nova(cloud, m.token, "GET", "/os-tenant-networks").json()["networks"]
    assert {"id": net["id"], "cidr": "None", "label": name} in listed
    shown = nova(cloud, m.token, "GET", f"/os-networks/{net['id']}", "2.35").json()["network"]
    assert shown["label"] == name and shown["cidr"] is None and "project_id" not in shown
    assert "project_id" in nova(cloud, env["admin"], "GET", f"/os-networks/{net['id']}").json()["network"]
    assert net["id"] in [n["id"] for n in nova(cloud, m.token, "GET", "/os-networks").json()["networks"]]
    assert nova(cloud, m.token, "GET", f"/os-tenant-networks/{net['id']}").json()["network"]["label"] == name
    fault(nova(cloud, env["other"].token, "GET", f"/os-networks/{net['id']}"), 404, "itemNotFound")
    assert net["id"] not in [n["id"] for n in nova(cloud, env["other"].token, "GET", "/os-tenant-networks")
                             .json()["networks"]]
    fault(nova(cloud, m.token, "GET", "/os-networks", "2.36"), 404, "itemNotFound")
    fault(nova(cloud, m.token, "GET", f"/os-tenant-networks/{net['id']}", "2.36"), 404, "itemNotFound")
    fault(nova(cloud, m.token, "POST", "/os-networks", json={"network": {"label": "x"}}), 410, "computeFault")
    fault(nova(cloud, m.token, "DELETE", f"/os-tenant-networks/{net['id']}"), 410, "computeFault")
    cloud.openstack("network", "delete", net["id"], env=m.env)


def test_floating_ip_proxy(cloud, env, unique):
    m, admin = env["member"], env["admin"]
    pool = unique("public")
    cloud.openstack("network", "create", "--external", pool)
    cloud.openstack("subnet", "create", "--network", pool, "--subnet-range", "203.0.113.0/24", "--no-dhcp",
                    unique("pubsub"))
    pools = nova(cloud, m.token, "GET", "/os-floating-ip-pools").json()["floating_ip_pools"]
    assert {"name": pool} in pools
    r = nova(cloud, m.token, "POST", "/os-floating-ips", json={"pool": pool})
    assert r.status_code == 200, r.text
    fip = r.json()["floating_ip"]
    assert fip["pool"] == pool and fip["ip"].startswith("203.0.113.") and fip["instance_id"] is None
    assert fip["fixed_ip"] is None
    # the network service has it
    assert cloud.os_json("floating", "ip", "show", fip["id"], env=m.env)["floating_ip_address"] == fip["ip"]
    assert [f["id"] for f in nova(cloud, m.token, "GET", "/os-floating-ips").json()["floating_ips"]] == [fip["id"]]
    assert nova(cloud, m.token, "GET", f"/os-floating-ips/{fip['id']}").json()["floating_ip"]["ip"] == fip["ip"]
    fault(nova(cloud, env["other"].token, "GET", f"/os-floating-ips/{fip['id']}"), 404, "itemNotFound")
    assert nova(cloud, env["other"].token, "GET", "/os-floating-ips").json()["floating_ips"] == []
    fault(nova(cloud, m.token, "POST", "/os-floating-ips", json={"pool": "no-such-pool"}), 404, "itemNotFound")
    fault(nova(cloud, m.token, "POST", "/os-floating-ips", json={"pool": 5}), 400, "badRequest")
    fault(nova(cloud, env["reader"].token, "POST", "/os-floating-ips", json={"pool": pool}), 403, "forbidden")
    fault(nova(cloud, m.token, "GET", "/os-floating-ips", "2.36"), 404, "itemNotFound")
    assert nova(cloud, m.token, "DELETE", f"/os-floating-ips/{fip['id']}").status_code == 202
    fault(nova(cloud, m.token, "GET", f"/os-floating-ips/{fip['id']}"), 404, "itemNotFound")
    fault(nova(cloud, m.token, "DELETE", f"/os-floating-ips/{fip['id']}"), 404, "itemNotFound")
    assert admin
