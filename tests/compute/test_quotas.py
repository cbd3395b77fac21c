"""os-quota-sets, os-quota-class-sets and /limits through the CLI, novaclient and raw calls,
plus the race: many parallel server creates never exceed the instances quota."""
from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
from periphery_util import Persona, fault, need, new_project, nova

DEFAULTS = {"instances": 10, "cores": 20, "ram": 51200, "metadata_items": 128, "key_pairs": 100,
            "server_groups": 10, "server_group_members": 10, "injected_files": 5,
            "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255}
NETWORK = {"floating_ips", "fixed_ips", "security_groups", "security_group_rules"}


@pytest.fixture(scope="module")
def env(cloud):
    proj = new_project(cloud)
    other = new_project(cloud)
    return {"admin": cloud.token(), "member": Persona(cloud, proj, "member"),
            "reader": Persona(cloud, proj, "reader"), "other": Persona(cloud, other, "member")}


def test_defaults_and_show(cloud, env):
    m = env["member"]
    body = nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}/defaults").json()["quota_set"]
    assert body["id"] == m.project_id
    assert {k: body[k] for k in DEFAULTS} == DEFAULTS and NETWORK <= set(body)
    shown = nova(cloud, env["reader"].token, "GET", f"/os-quota-sets/{m.project_id}").json()["quota_set"]
    assert {k: shown[k] for k in DEFAULTS} == DEFAULTS
    cli = _quota_cli(cloud, "--default", m.project)
    assert cli["instances"] == 10 and cli["cores"] == 20
    # 2.36 drops the network resources, 2.57 the file injection ones
    v236 = nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}", "2.36").json()["quota_set"]
    assert not NETWORK & set(v236) and "injected_files" in v236
    v257 = nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}", "2.57").json()["quota_set"]
    assert "injected_files" not in v257 and v257["instances"] == 10
    fault(nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}?bogus=1", "2.75"), 400, "badRequest")


def test_update_by_cli_and_isolation(cloud, env):
    m, other = env["member"], env["other"]
    cloud.openstack("quota", "set", "--instances", "7", "--cores", "9", "--ram", "4096", m.project)
    shown = _quota_cli(cloud, m.project)
    assert shown["instances"] == 7 and shown["cores"] == 9 and shown["ram"] == 4096
    # members read their own project's quotas, never another's, and never update
    assert nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}").json()["quota_set"]["instances"] == 7
    fault(nova(cloud, other.token, "GET", f"/os-quota-sets/{m.project_id}"), 403, "forbidden")
    fault(nova(cloud, m.token, "PUT", f"/os-quota-sets/{m.project_id}", json={"quota_set": {"instances": 50}}),
          403, "forbidden")
    detail = nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}/detail").json()["quota_set"]
    assert detail["instances"] == {"limit": 7, "in_use": 0, "reserved": 0}
    r = nova(cloud, env["admin"], "DELETE", f"/os-quota-sets/{m.project_id}")
    assert r.status_code == 202
    assert _quota_cli(cloud, m.project)["instances"] == 10
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "compute.quota.update" in events and "compute.quota.delete" in events


def test_update_bad_input(cloud, env):
    admin, pid = env["admin"], env["member"].project_id
    path = f"/os-quota-sets/{pid}"
    for body in ({"quota_set": {"instances": -2}}, {"quota_set": {"instances": "many"}},
                 {"quota_set": {"bogus": 1}}, {"quota_set": {"instances": 2 ** 40}}, {"quota_set": []},
                 {"nope": {}}):
        fault(nova(cloud, admin, "PUT", path, json=body), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", path, "2.36", json={"quota_set": {"floating_ips": 3}}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-quota-sets/not-a-project", json={"quota_set": {"instances": 3}}),
          400, "badRequest")
    assert nova(cloud, admin, "GET", path).json()["quota_set"]["instances"] == 10
    # -1 = unlimited; strings of digits accepted as Nova does
    r = nova(cloud, admin, "PUT", path, json={"quota_set": {"instances": "-1", "cores": 30}})
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == -1 and "id" not in r.json()["quota_set"]
    nova(cloud, admin, "DELETE", path)


def test_user_quotas(cloud, env):
    admin, m = env["admin"], env["member"]
    path = f"/os-quota-sets/{m.project_id}?user_id={m.user_id}"
    r = nova(cloud, admin, "PUT", path, json={"quota_set": {"instances": 3, "key_pairs": 2}})
    assert r.status_code == 200
    user = nova(cloud, admin, "GET", path).json()["quota_set"]
    assert user["instances"] == 3 and user["key_pairs"] == 2
    assert nova(cloud, admin, "GET", f"/os-quota-sets/{m.project_id}").json()["quota_set"]["instances"] == 10
    # a user's limit may not exceed the project's (unless forced)
    msg = fault(nova(cloud, admin, "PUT", path, json={"quota_set": {"instances": 11}}), 400, "badRequest")
    assert "less than or equal to 10" in msg
    assert nova(cloud, admin, "PUT", path, json={"quota_set": {"instances": 11, "force": True}}).status_code == 200
    # nor may the project's go under one of its users'
    fault(nova(cloud, admin, "PUT", f"/os-quota-sets/{m.project_id}", json={"quota_set": {"instances": 5}}),
          400, "badRequest")
    assert nova(cloud, admin, "DELETE", path).status_code == 202
    assert nova(cloud, admin, "GET", path).json()["quota_set"]["instances"] == 10


def test_quota_classes(cloud, env):
    admin = env["admin"]
    body = nova(cloud, admin, "GET", "/os-quota-class-sets/default").json()["quota_class_set"]
    assert body["id"] == "default" and body["instances"] == 10 and "server_groups" not in body
    assert "server_groups" in nova(cloud, admin, "GET", "/os-quota-class-sets/default", "2.50").json()["quota_class_set"]
    fault(nova(cloud, env["member"].token, "GET", "/os-quota-class-sets/default"), 403, "forbidden")
    r = nova(cloud, admin, "PUT", "/os-quota-class-sets/default", json={"quota_class_set": {"metadata_items": 64}})
    assert r.status_code == 200 and r.json()["quota_class_set"]["metadata_items"] == 64
    # projects without their own limit follow the default class
    pid = env["other"].project_id
    assert nova(cloud, admin, "GET", f"/os-quota-sets/{pid}").json()["quota_set"]["metadata_items"] == 64
    fault(nova(cloud, admin, "PUT", "/os-quota-class-sets/default", json={"quota_class_set": {"x": 1}}),
          400, "badRequest")
    nova(cloud, admin, "PUT", "/os-quota-class-sets/default", json={"quota_class_set": {"metadata_items": 128}})


def test_limits_by_microversion(cloud, env):
    m = env["member"]
    lim = nova(cloud, m.token, "GET", "/limits").json()["limits"]
    assert lim["rate"] == []
    a = lim["absolute"]
    assert a["maxTotalInstances"] == 10 and a["totalInstancesUsed"] == 0 and a["maxImageMeta"] == 128
    assert "maxSecurityGroups" in a and "maxTotalFloatingIps" in a and "maxPersonality" in a
    a236 = nova(cloud, m.token, "GET", "/limits", "2.36").json()["limits"]["absolute"]
    assert "maxSecurityGroups" not in a236 and "totalFloatingIpsUsed" not in a236 and "maxImageMeta" in a236
    assert "maxImageMeta" not in nova(cloud, m.token, "GET", "/limits", "2.39").json()["limits"]["absolute"]
    a257 = nova(cloud, m.token, "GET", "/limits", "2.57").json()["limits"]["absolute"]
    assert "maxPersonality" not in a257 and a257["maxServerGroups"] == 10
    fault(nova(cloud, m.token, "GET", f"/limits?tenant_id={env['other'].project_id}"), 403, "forbidden")
    other = nova(cloud, env["admin"], "GET", f"/limits?tenant_id={m.project_id}").json()["limits"]["absolute"]
    assert other["maxTotalInstances"] == 10
    cli = {r["Name"]: r["Value"] for r in cloud.os_json("limits", "show", "--absolute", env=m.env)}
    assert cli["max_total_cores"] == 20 and [v for k, v in cli.items() if "cores_used" in k] == [0]


def test_novaclient_quotas(cloud, env):
    from keystoneauth1 import loading, session
    from novaclient import client as nclient

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=cloud.auth_url, username="admin", password=cloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    nc = nclient.Client("2.1", session=session.Session(auth=auth))
    pid = env["other"].project_id
    assert nc.quotas.defaults(pid).instances == 10
    nc.quotas.update(pid, instances=4)
    assert nc.quotas.get(pid).instances == 4
    nc.quotas.delete(pid)
    assert nc.limits.get().absolute


def _quota_cli(cloud, *args, env=None) -> dict:
    rows = cloud.os_json("quota", "show", *args, env=env)
    return {r["Resource"]: r["Limit"] for r in rows} if isinstance(rows, list) else rows


def _image(cloud, token) -> str:
    r = httpx.post(f"{cloud.url}/image/v2/images", headers={"X-Auth-Token": token},
                   json={"name": "quota-img", "disk_format": "raw", "container_format": "bare",
                         "visibility": "public"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    up = httpx.put(f"{cloud.url}/image/v2/images/{image_id}/file", content=b"\0" * 1024,
                   headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    assert up.status_code == 204, up.text
    return image_id


def _race(cloud, admin: str, m: Persona) -> None:
    """Counting and inserting are serialised per project: 8 racing creates, quota 3."""
    image = _image(cloud, admin)
    nova(cloud, admin, "PUT", f"/os-quota-sets/{m.project_id}", json={"quota_set": {"instances": 3}})

    def boot(i):
        body = {"server": {"name": f"race-{i}", "imageRef": image, "flavorRef": "1", "networks": "none"}}
        return nova(cloud, m.token, "POST", "/servers", "2.37", json=body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(boot, range(8)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(202) == 3, [r.text for r in results]
    for r in results:
        if r.status_code != 202:
            assert "Quota exceeded for instances" in fault(r, 403, "forbidden")
    detail = nova(cloud, m.token, "GET", f"/os-quota-sets/{m.project_id}/detail").json()["quota_set"]
    assert detail["instances"]["in_use"] == 3 and detail["cores"]["in_use"] == 3
    lim = nova(cloud, m.token, "GET", "/limits").json()["limits"]["absolute"]
    assert lim["totalInstancesUsed"] == 3 and lim["totalRAMUsed"] == 3 * 512
    # the limit cannot drop below what is in use, unless forced
    fault(nova(cloud, admin, "PUT", f"/os-quota-sets/{m.project_id}", json={"quota_set": {"instances": 2}}),
          400, "badRequest")
    for s in nova(cloud, m.token, "GET", "/servers").json()["servers"]:
        nova(cloud, m.token, "DELETE", f"/servers/{s['id']}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and nova(cloud, m.token, "GET", "/servers").json()["servers"]:
        time.sleep(0.2)
    assert nova(cloud, m.token, "GET", "/limits").json()["limits"]["absolute"]["totalInstancesUsed"] == 0
    nova(cloud, admin, "DELETE", f"/os-quota-sets/{m.project_id}")


def test_parallel_creates_respect_instance_quota(cloud, env):
    need(cloud, "2.37")
    _race(cloud, env["admin"], env["member"])


@pytest.mark.postgresql
def test_parallel_creates_respect_instance_quota_postgresql(pg_cloud):
    """The same race on PostgreSQL, where the guard row's lock does the serialising."""
    need(pg_cloud, "2.37")
    _race(pg_cloud, pg_cloud.token(), Persona(pg_cloud, new_project(pg_cloud), "member"))
