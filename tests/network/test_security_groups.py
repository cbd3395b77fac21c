"""Security groups and rules through the real `openstack` CLI, openstacksdk and raw HTTP
(Neutron's error bodies), on one running cloud for the module."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Cloud, CommandFailed
from tests.network.l3_util import member


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("sg"), config={("quotas", "quota_security_group"): "4"})
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def projects(cloud):
    """Two projects with a member each: (env, token, project_id) per project."""
    out = {}
    for name in ("sg-alpha", "sg-beta"):
        who = member(cloud, name)
        out[name] = (who["env"], who["token"], who["pid"])
    return out


def net(cloud, token, method, path, **kw):
    return httpx.request(method, f"{cloud.url}/network/v2.0{path}", headers={"X-Auth-Token": token}, **kw)


def err_type(resp) -> str:
    return resp.json()["NeutronError"]["type"]


def test_default_group_created_on_first_use_with_upstream_rules(cloud, projects):
    env, _, pid = projects["sg-alpha"]
    groups = cloud.os_json("security", "group", "list", env=env)
    assert [g["Name"] for g in groups] == ["default"]
    default_id = groups[0]["ID"]
    rules = cloud.os_json("security", "group", "rule", "list", default_id, "--long", env=env)
    seen = sorted((r["Direction"], r["Ethertype"], r["Remote Security Group"] == default_id) for r in rules)
    assert seen == [("egress", "IPv4", False), ("egress", "IPv6", False),
                    ("ingress", "IPv4", True), ("ingress", "IPv6", True)]
    # listing again does not create a second one
    assert len(cloud.os_json("security", "group", "list", env=env)) == 1


def test_create_group_rules_and_delete(cloud, projects):
    env, token, pid = projects["sg-alpha"]
    group = cloud.os_json("security", "group", "create", "web", "--description", "web tier", env=env)
    assert group["name"] == "web" and group["description"] == "web tier" and group["stateful"] is True
    assert sorted(r["direction"] + r["ethertype"] for r in group["rules"]) == ["egressIPv4", "egressIPv6"]
    ssh = cloud.os_json("security", "group", "rule", "create", "web", "--protocol", "tcp", "--dst-port", "22",
                        "--remote-ip", "10.0.0.5/24", env=env)
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"]) == ("tcp", 22, 22)
    assert ssh["remote_ip_prefix"] == "10.0.0.5/24"
    icmp = cloud.os_json("security", "group", "rule", "create", "web", "--protocol", "icmp", "--icmp-type", "8",
                         "--icmp-code", "0", env=env)
    assert (icmp["port_range_min"], icmp["port_range_max"]) == (8, 0)
    numbered = cloud.os_json("security", "group", "rule", "create", "web", "--protocol", "17", "--dst-port",
                             "53:54", "--egress", env=env)
    assert numbered["protocol"] == "17" and numbered["direction"] == "egress"
    remote = cloud.os_json("security", "group", "rule", "create", "web", "--remote-group", "web",
                           "--protocol", "tcp", "--dst-port", "1:65535", env=env)
    assert remote["remote_group_id"] == group["id"]
    assert remote["port_range_min"] is None  # the whole range is stored as "any port", as upstream
    # the raw API shows normalized_cidr, belongs_to_default_sg, the project under both names
    body = net(cloud, token, "GET", f"/security-group-rules/{ssh['id']}").json()["security_group_rule"]
    assert body["normalized_cidr"] == "10.0.0.0/24" and body["belongs_to_default_sg"] is False
    assert body["project_id"] == body["tenant_id"] == pid
    shown = cloud.os_json("security", "group", "show", "web", env=env)
    assert len(shown["rules"]) == 6 and shown["revision_number"] >= 4

    # duplicates: 409 SecurityGroupRuleExists naming the existing rule
    err = cloud.openstack_fails("security", "group", "rule", "create", "web", "--protocol", "tcp", "--dst-port",
                                "22", "--remote-ip", "10.0.0.5/24", env=env)
    assert "Security group rule already exists" in err and ssh["id"] in err
    resp = net(cloud, token, "POST", "/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "6", "port_range_min": 22,
        "port_range_max": 22, "remote_ip_prefix": "10.0.0.5/24"}})
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupRuleExists"

    # rename, then delete a rule and the group
    cloud.openstack("security", "group", "set", "web", "--name", "web2", env=env)
    cloud.openstack("security", "group", "rule", "delete", ssh["id"], env=env)
    assert net(cloud, token, "GET", f"/security-group-rules/{ssh['id']}").status_code == 404
    cloud.openstack("security", "group", "delete", "web2", env=env)
    resp = net(cloud, token, "GET", f"/security-groups/{group['id']}")
    assert resp.status_code == 404 and err_type(resp) == "SecurityGroupNotFound"
    # the rules went with it
    assert net(cloud, token, "GET", f"/security-group-rules/{icmp['id']}").status_code == 404


BAD_RULES = [
    ({"protocol": "bogus"}, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": 256}, "SecurityGroupRuleInvalidProtocol"),
    ({"ethertype": "IPv5"}, "SecurityGroupRuleInvalidEtherType"),
    ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 79}, "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 10}, "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 70000, "port_range_max": 70000}, "SecurityGroupInvalidPortValue"),
    ({"port_range_min": 80, "port_range_max": 80}, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "icmp", "port_range_min": 256}, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_max": 3}, "SecurityGroupMissingIcmpType"),
    ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2}, "SecurityGroupInvalidProtocolForPort"),
    ({"remote_ip_prefix": "10.0.0.0/33"}, "InvalidCIDR"),
    ({"remote_ip_prefix": "::/0"}, "SecurityGroupRuleParameterConflict"),
    ({"protocol": "ipv6-icmp"}, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"direction": "sideways"}, "HTTPBadRequest"),
]


def test_bad_rules_get_neutron_errors_and_change_nothing(cloud, projects):
    env, token, pid = projects["sg-alpha"]
    group = net(cloud, token, "POST", "/security-groups", json={"security_group": {"name": "bad"}}).json()
    gid = group["security_group"]["id"]
    for extra, etype in BAD_RULES:
        rule = {"security_group_id": gid, "direction": "ingress", **extra}
        resp = net(cloud, token, "POST", "/security-group-rules", json={"security_group_rule": rule})
        assert resp.status_code == 400, (extra, resp.text)
        assert err_type(resp) in (etype, "BadRequest", "HTTPBadRequest") if etype == "HTTPBadRequest" \
            else err_type(resp) == etype, (extra, resp.text)
        assert set(resp.json()["NeutronError"]) == {"type", "message", "detail"}
    missing = "9b3a3f8c-0000-4000-8000-000000000000"
    resp = net(cloud, token, "POST", "/security-group-rules", json={"security_group_rule": {
        "security_group_id": gid, "direction": "ingress", "remote_group_id": missing}})
    assert resp.status_code == 404 and err_type(resp) == "SecurityGroupNotFound"
    resp = net(cloud, token, "POST", "/security-group-rules", json={"security_group_rule": {
        "security_group_id": missing, "direction": "ingress"}})
    assert resp.status_code == 404 and err_type(resp) == "SecurityGroupNotFound"
    # bulk create is all or nothing
    good = {"security_group_id": gid, "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
            "port_range_max": 22}
    resp = net(cloud, token, "POST", "/security-group-rules", json={"security_group_rules": [
        good, {**good, "protocol": "bogus"}]})
    assert resp.status_code == 400 and err_type(resp) == "SecurityGroupRuleInvalidProtocol"
    rules = net(cloud, token, "GET", f"/security-group-rules?security_group_id={gid}").json()
    assert len(rules["security_group_rules"]) == 2  # only the egress pair it was born with
    made = net(cloud, token, "POST", "/security-group-rules", json={"security_group_rules": [
        good, {**good, "port_range_min": 23, "port_range_max": 23}]})
    assert made.status_code == 201 and len(made.json()["security_group_rules"]) == 2


def test_default_group_rules(cloud, projects):
    env, token, pid = projects["sg-alpha"]
    resp = net(cloud, token, "POST", "/security-groups", json={"security_group": {"name": "default"}})
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupDefaultAlreadyExists"
    default = net(cloud, token, "GET", "/security-groups?name=default").json()["security_groups"][0]
    resp = net(cloud, token, "PUT", f"/security-groups/{default['id']}", json={"security_group": {"name": "x"}})
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupCannotUpdateDefault"
    resp = net(cloud, token, "DELETE", f"/security-groups/{default['id']}")
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupCannotRemoveDefault"
    # the description of the default group may change
    resp = net(cloud, token, "PUT", f"/security-groups/{default['id']}",
               json={"security_group": {"description": "mine"}})
    assert resp.status_code == 200 and resp.json()["security_group"]["description"] == "mine"
    assert all(r["belongs_to_default_sg"] for r in resp.json()["security_group"]["security_group_rules"])


def test_projects_never_see_each_other(cloud, projects):
    a_env, a_token, a_pid = projects["sg-alpha"]
    b_env, b_token, b_pid = projects["sg-beta"]
    a_group = net(cloud, a_token, "POST", "/security-groups",
                  json={"security_group": {"name": "private-a"}}).json()["security_group"]
    b_groups = cloud.os_json("security", "group", "list", env=b_env)
    assert [g["Name"] for g in b_groups] == ["default"] and all(g["Project"] == b_pid for g in b_groups)
    for method, path, body in [("GET", f"/security-groups/{a_group['id']}", None),
                               ("PUT", f"/security-groups/{a_group['id']}", {"security_group": {"name": "x"}}),
                               ("DELETE", f"/security-groups/{a_group['id']}", None),
                               ("POST", "/security-group-rules", {"security_group_rule": {
                                   "security_group_id": a_group["id"], "direction": "ingress"}})]:
        resp = net(cloud, b_token, method, path, json=body)
        assert resp.status_code == 404 and err_type(resp) == "SecurityGroupNotFound", (method, path, resp.text)
    rule_ids = [r["id"] for r in a_group["security_group_rules"]]
    b_rules = net(cloud, b_token, "GET", "/security-group-rules").json()["security_group_rules"]
    assert not set(rule_ids) & {r["id"] for r in b_rules}
    resp = net(cloud, b_token, "DELETE", f"/security-group-rules/{rule_ids[0]}")
    assert resp.status_code == 404 and err_type(resp) == "SecurityGroupRuleNotFound"
    # a member may not create a group in another project
    resp = net(cloud, b_token, "POST", "/security-groups",
               json={"security_group": {"name": "sneaky", "project_id": a_pid}})
    assert resp.status_code == 403
    # tags: the owner may tag, the other project cannot even see the group
    assert net(cloud, a_token, "PUT", f"/security-groups/{a_group['id']}/tags/blue").status_code == 201
    assert net(cloud, b_token, "PUT", f"/security-groups/{a_group['id']}/tags/red").status_code == 404
    tagged = net(cloud, a_token, "GET", "/security-groups?tags=blue").json()["security_groups"]
    assert [g["id"] for g in tagged] == [a_group["id"]] and tagged[0]["tags"] == ["blue"]
    # the admin sees both projects' groups and may filter by project
    admin = cloud.token()
    listed = net(cloud, admin, "GET", f"/security-groups?project_id={a_pid}").json()["security_groups"]
    assert {g["name"] for g in listed} >= {"default", "private-a"}


def test_quota_and_stateless_group_via_sdk(cloud, projects):
    env, token, pid = projects["sg-beta"]
    user = env["OS_USERNAME"]
    conn = cloud.sdk(username=user, password=env["OS_PASSWORD"], project_name="sg-beta")
    stateless = conn.network.create_security_group(name="stateless", stateful=False)
    assert stateless.stateful is False
    conn.network.create_security_group_rule(security_group_id=stateless.id, direction="ingress",
                                            protocol="udp", port_range_min=5000, port_range_max=5001)
    names = {g.name for g in conn.network.security_groups()}
    assert names == {"default", "stateless"}
    # quota 4 groups (the default counts): two more fit, the next is OverQuota
    conn.network.create_security_group(name="q1")
    conn.network.create_security_group(name="q2")
    resp = net(cloud, token, "POST", "/security-groups", json={"security_group": {"name": "q3"}})
    assert resp.status_code == 409 and err_type(resp) == "OverQuota"
    assert {g.name for g in conn.network.security_groups()} == {"default", "stateless", "q1", "q2"}
    # filters, fields, sorting and pagination follow the Neutron conventions
    page = net(cloud, token, "GET", "/security-groups?limit=2&sort_key=name&sort_dir=asc&fields=name").json()
    assert [g["name"] for g in page["security_groups"]] == ["default", "q1"]
    assert page["security_groups_links"][0]["rel"] == "next"
    conn.network.delete_security_group(stateless.id)


def test_events_are_emitted(cloud):
    lines = (cloud.state_dir / "logs" / "events.jsonl").read_text().splitlines()
    types = {json.loads(line)["event_type"] for line in lines}
    assert {"network.security_group.created", "network.security_group.updated", "network.security_group.deleted",
            "network.security_group_rule.created", "network.security_group_rule.deleted"} <= types


def test_unauthenticated_is_401(cloud):
    resp = httpx.get(f"{cloud.url}/network/v2.0/security-groups")
    assert resp.status_code == 401


def test_cli_errors_are_readable(cloud, projects):
    env, _, _ = projects["sg-alpha"]
    with pytest.raises(CommandFailed):
        cloud.openstack("security", "group", "show", "no-such-group", env=env)


def test_group_in_use_by_a_port(cloud, projects):
    env, token, pid = projects["sg-alpha"]
    network = net(cloud, token, "POST", "/networks", json={"network": {"name": "sgnet"}}).json()["network"]
    net(cloud, token, "POST", "/subnets", json={"subnet": {"network_id": network["id"], "cidr": "10.1.0.0/24",
                                                           "ip_version": 4}})
    group = net(cloud, token, "POST", "/security-groups", json={"security_group": {"name": "used"}}).json()
    gid = group["security_group"]["id"]
    port = cloud.os_json("port", "create", "--network", "sgnet", "--security-group", "used", "p1", env=env)
    assert port["security_group_ids"] == [gid]
    resp = net(cloud, token, "DELETE", f"/security-groups/{gid}")
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupInUse"
    resp = net(cloud, token, "PUT", f"/security-groups/{gid}", json={"security_group": {"stateful": False}})
    assert resp.status_code == 409 and err_type(resp) == "SecurityGroupInUse"
    # another project's group cannot be put on a port
    b_token = projects["sg-beta"][1]
    b_default = net(cloud, b_token, "GET", "/security-groups?name=default").json()["security_groups"][0]["id"]
    resp = net(cloud, token, "PUT", f"/ports/{port['id']}", json={"port": {"security_groups": [b_default]}})
    assert resp.status_code == 404 and err_type(resp) == "SecurityGroupNotFound"
    assert net(cloud, token, "DELETE", f"/ports/{port['id']}").status_code == 204
    assert net(cloud, token, "DELETE", f"/security-groups/{gid}").status_code == 204
