"""os-server-groups: CRUD with policies (pre-2.64) and policy+rules (2.64+), quotas on
groups and members, per-project isolation, and members as servers boot and go."""
from __future__ import annotations

import pytest
from periphery_util import Persona, delete_server, fault, make_image, new_project, nova


@pytest.fixture(scope="module")
def env(cloud):
    proj = new_project(cloud)
    admin = cloud.token()
    return {"admin": admin, "member": Persona(cloud, proj, "member"), "reader": Persona(cloud, proj, "reader"),
            "other": Persona(cloud, new_project(cloud), "member"), "image": make_image(cloud, admin)}


def test_cli_crud(cloud, env, unique):
    m = env["member"]
    name = unique("grp")
    made = cloud.os_json("server", "group", "create", "--policy", "soft-anti-affinity", name, env=m.env)
    assert made["name"] == name
    listed = cloud.os_json("server", "group", "list", env=m.env)
    assert [g["Name"] for g in listed] == [name]
    shown = cloud.os_json("server", "group", "show", name, env=m.env)
    assert shown["id"] == made["id"]
    # other projects see nothing, and may not touch it
    assert cloud.os_json("server", "group", "list", env=env["other"].env) == []
    fault(nova(cloud, env["other"].token, "GET", f"/os-server-groups/{made['id']}"), 403, "forbidden")
    fault(nova(cloud, env["other"].token, "DELETE", f"/os-server-groups/{made['id']}"), 403, "forbidden")
    # readers read but do not create or delete
    assert nova(cloud, env["reader"].token, "GET", f"/os-server-groups/{made['id']}").status_code == 200
    fault(nova(cloud, env["reader"].token, "DELETE", f"/os-server-groups/{made['id']}"), 403, "forbidden")
    body = {"server_group": {"name": "r", "policies": ["affinity"]}}
    fault(nova(cloud, env["reader"].token, "POST", "/os-server-groups", json=body), 403, "forbidden")
    cloud.openstack("server", "group", "delete", name, env=m.env)
    fault(nova(cloud, m.token, "GET", f"/os-server-groups/{made['id']}"), 404, "itemNotFound")
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "compute.server_group.create" in events and "compute.server_group.delete" in events


def test_policies_by_microversion(cloud, env):
    t = env["member"].token
    old = nova(cloud, t, "POST", "/os-server-groups", "2.1",
               json={"server_group": {"name": "old", "policies": ["anti-affinity"]}}).json()["server_group"]
    assert old["policies"] == ["anti-affinity"] and old["metadata"] == {} and old["members"] == []
    assert "project_id" not in old
    fault(nova(cloud, t, "POST", "/os-server-groups", "2.14",
               json={"server_group": {"name": "x", "policies": ["soft-affinity"]}}), 400, "badRequest")
    soft = nova(cloud, t, "POST", "/os-server-groups", "2.15",
                json={"server_group": {"name": "soft", "policies": ["soft-affinity"]}}).json()["server_group"]
    assert soft["project_id"] == env["member"].project_id and soft["user_id"] == env["member"].user_id
    new = nova(cloud, t, "POST", "/os-server-groups", "2.64",
               json={"server_group": {"name": "new", "policy": "anti-affinity",
                                      "rules": {"max_server_per_host": 2}}}).json()["server_group"]
    assert new["policy"] == "anti-affinity" and new["rules"] == {"max_server_per_host": 2}
    assert "policies" not in new and "metadata" not in new
    shown_old = nova(cloud, t, "GET", f"/os-server-groups/{new['id']}", "2.63").json()["server_group"]
    assert shown_old["policies"] == ["anti-affinity"]
    for version, body in [
        ("2.64", {"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
        ("2.64", {"name": "x", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}),
        ("2.64", {"name": "x", "policy": "anti-affinity", "rules": {"other": 1}}),
        ("2.64", {"name": "x", "policies": ["affinity"]}),
        ("2.64", {"name": "x", "policy": "bogus"}),
        ("2.1", {"name": "x", "policies": ["affinity", "anti-affinity"]}),
        ("2.1", {"name": "x", "policies": []}),
        ("2.1", {"name": "x", "policy": "affinity"}),
        ("2.1", {"name": "", "policies": ["affinity"]}),
        ("2.1", {"policies": ["affinity"]}),
    ]:
        fault(nova(cloud, t, "POST", "/os-server-groups", version, json={"server_group": body}), 400, "badRequest")
    names = sorted(g["name"] for g in nova(cloud, t, "GET", "/os-server-groups").json()["server_groups"])
    assert names == ["new", "old", "soft"]
    for g in (old, soft, new):
        assert nova(cloud, t, "DELETE", f"/os-server-groups/{g['id']}").status_code == 204


def test_quota_and_all_projects(cloud, env):
    admin, other = env["admin"], env["other"]
    nova(cloud, admin, "PUT", f"/os-quota-sets/{other.project_id}", json={"quota_set": {"server_groups": 2}})
    made = []
    for i in range(2):
        r = nova(cloud, other.token, "POST", "/os-server-groups",
                 json={"server_group": {"name": f"q{i}", "policies": ["affinity"]}})
        assert r.status_code == 200
        made.append(r.json()["server_group"]["id"])
    msg = fault(nova(cloud, other.token, "POST", "/os-server-groups",
                     json={"server_group": {"name": "q3", "policies": ["affinity"]}}), 403, "forbidden")
    assert "too many server groups" in msg
    lim = nova(cloud, other.token, "GET", "/limits").json()["limits"]["absolute"]
    assert lim["totalServerGroupsUsed"] == 2 and lim["maxServerGroups"] == 2
    # admins list everything with all_projects; members only ever see their own
    everything = nova(cloud, admin, "GET", "/os-server-groups?all_projects=True", "2.13").json()["server_groups"]
    assert set(made) <= {g["id"] for g in everything}
    assert nova(cloud, admin, "GET", "/os-server-groups").json()["server_groups"] == []
    mine = nova(cloud, env["member"].token, "GET", "/os-server-groups?all_projects=True").json()["server_groups"]
    assert not set(made) & {g["id"] for g in mine}
    paged = nova(cloud, admin, "GET", "/os-server-groups?all_projects=True&limit=1&offset=1").json()["server_groups"]
    assert len(paged) == 1
    fault(nova(cloud, admin, "GET", "/os-server-groups?bogus=1", "2.75"), 400, "badRequest")
    # admins may delete any project's group
    for gid in made:
        assert nova(cloud, admin, "DELETE", f"/os-server-groups/{gid}").status_code == 204
    nova(cloud, admin, "DELETE", f"/os-quota-sets/{other.project_id}")


def test_members_follow_servers(cloud, env):
    m, admin = env["member"], env["admin"]
    group = nova(cloud, m.token, "POST", "/os-server-groups", "2.64",
                 json={"server_group": {"name": "members", "policy": "soft-anti-affinity"}}).json()["server_group"]
    nova(cloud, admin, "PUT", f"/os-quota-sets/{m.project_id}", json={"quota_set": {"server_group_members": 2}})
    body_hints = {"group": group["id"]}
    created = []
    for i in range(2):
        r = nova(cloud, m.token, "POST", "/servers", "2.37",
                 json={"server": {"name": f"member-{i}", "imageRef": env["image"], "flavorRef": "1",
                                  "networks": "none"}, "os:scheduler_hints": body_hints})
        assert r.status_code == 202, r.text
        created.append(r.json()["server"]["id"])
    shown = nova(cloud, m.token, "GET", f"/os-server-groups/{group['id']}", "2.64").json()["server_group"]
    assert sorted(shown["members"]) == sorted(created)
    over = nova(cloud, m.token, "POST", "/servers", "2.37",
                json={"server": {"name": "member-x", "imageRef": env["image"], "flavorRef": "1",
                                 "networks": "none"}, "os:scheduler_hints": body_hints})
    assert "too many servers in group" in fault(over, 403, "forbidden")
    delete_server(cloud, m.token, created[0])
    shown = nova(cloud, m.token, "GET", f"/os-server-groups/{group['id']}").json()["server_group"]
    assert shown["members"] == [created[1]]
    delete_server(cloud, m.token, created[1])
    assert nova(cloud, m.token, "DELETE", f"/os-server-groups/{group['id']}").status_code == 204
    nova(cloud, admin, "DELETE", f"/os-quota-sets/{m.project_id}")


def test_sdk_and_novaclient(cloud, env):
    m = env["member"]
    conn = cloud.sdk(m.name, m.password, m.project)
    g = conn.compute.create_server_group(name="sdk-grp", policies=["affinity"])
    assert conn.compute.get_server_group(g.id).name == "sdk-grp"
    conn.compute.delete_server_group(g)

    from keystoneauth1 import loading, session
    from novaclient import client as nclient

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=cloud.auth_url, username=m.name, password=m.password, project_name=m.project,
        user_domain_name="Default", project_domain_name="Default")
    nc = nclient.Client("2.64", session=session.Session(auth=auth))
    made = nc.server_groups.create(name="nc-grp", policy="anti-affinity", rules={"max_server_per_host": 3})
    assert made.policy == "anti-affinity" and made.rules == {"max_server_per_host": 3}
    assert [x.name for x in nc.server_groups.list()] == ["nc-grp"]
    nc.server_groups.delete(made.id)
