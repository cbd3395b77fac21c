"""Servers with real clients: the install guide's launch flow, listing filters and pages,
microversion differences, project isolation, admin-only fields and bad input."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import BIN
from servers_util import boot, fault, nova, start_cloud, upload_image, wait_status


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory, fake_hosts=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def image(cloud):
    return upload_image(cloud)


@pytest.fixture(scope="module")
def admin_token(cloud):
    return cloud.token()


@pytest.fixture(scope="module")
def member(cloud):
    """A member of a fresh project: (env, token, project_id)."""
    project = cloud.os_json("project", "create", "--domain", "default", "srv-proj")["id"]
    user, pw = cloud.make_user("srv-proj")
    env = cloud.env_for(user, pw, "srv-proj")
    # the guide's self-service network: the project's only network is what `auto` picks
    cloud.openstack("network", "create", "selfservice", env=env)
    cloud.openstack("subnet", "create", "--network", "selfservice", "--subnet-range", "172.16.1.0/24",
                    "selfservice", env=env)
    return env, cloud.token(user, pw, "srv-proj"), project


@pytest.fixture(scope="module")
def other(cloud):
    cloud.openstack("project", "create", "--domain", "default", "other-proj")
    user, pw = cloud.make_user("other-proj")
    return cloud.env_for(user, pw, "other-proj"), cloud.token(user, pw, "other-proj")


def test_guide_launch_flow(cloud, image, member):
    env, token, project = member
    cloud.openstack("keypair", "create", "mykey", env=env)
    assert "mykey" in cloud.openstack("keypair", "list", env=env)
    flavors = cloud.openstack("flavor", "list", env=env)
    assert "m1.tiny" in flavors
    server = cloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", "cirros", "--key-name", "mykey",
                           "--security-group", "default", "--wait", "provider-instance", env=env)
    assert server["status"] == "ACTIVE"
    assert server["key_name"] == "mykey"
    listed = cloud.os_json("server", "list", env=env)
    assert [s["Name"] for s in listed] == ["provider-instance"]
    assert listed[0]["Status"] == "ACTIVE"
    shown = cloud.os_json("server", "show", "provider-instance", env=env)
    assert shown["OS-EXT-STS:vm_state"] == "active"
    assert shown["OS-EXT-STS:power_state"] in ("Running", 1)
    assert shown["project_id"] == project
    assert shown["OS-SRV-USG:launched_at"]
    # members never see the admin-only attributes
    assert shown.get("OS-EXT-SRV-ATTR:host") is None
    log = cloud.openstack("console", "log", "show", "provider-instance", env=env)
    assert server["id"] in log and "provider-instance login:" in log
    # deterministic: the same output twice
    again = nova(cloud, token, "POST", f"/servers/{server['id']}/action", json={"os-getConsoleOutput": {}})
    assert again.json()["output"] == log.rstrip("\n") + "\n" or again.json()["output"].strip() == log.strip()
    cloud.openstack("server", "delete", "--wait", "provider-instance", env=env)
    assert cloud.os_json("server", "list", env=env) == []
    # the events journal recorded the life cycle, without secrets
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "compute.instance.create.start" in events and "compute.instance.delete.end" in events
    assert "adminPass" not in events


def test_admin_sees_host_attributes(cloud, image, admin_token):
    server = boot(cloud, admin_token, "adm-attrs", image)
    assert server["OS-EXT-SRV-ATTR:host"] in ("compute-1", "compute-2")
    assert server["OS-EXT-SRV-ATTR:instance_name"].startswith("instance-")
    r = nova(cloud, admin_token, "GET", f"/servers/{server['id']}", "2.16")
    assert r.json()["server"]["host_status"] == "UP"
    nova(cloud, admin_token, "DELETE", f"/servers/{server['id']}")
    wait_status(cloud, admin_token, server["id"], "DELETED")


def test_microversion_fields(cloud, image, member):
    env, token, _ = member
    created = nova(cloud, token, "POST", "/servers", "2.52", json={"server": {
        "name": "mv", "imageRef": image, "flavorRef": "1", "tags": ["a", "b"], "description": "d1",
        "networks": "none"}})
    assert created.status_code == 202, created.text
    assert created.json()["server"]["adminPass"]
    sid = created.json()["server"]["id"]
    wait_status(cloud, token, sid, "ACTIVE")
    old = nova(cloud, token, "GET", f"/servers/{sid}", "2.1").json()["server"]
    assert set(old["flavor"]) == {"id", "links"}
    for key in ("locked", "description", "tags", "locked_reason", "server_groups", "pinned_availability_zone"):
        assert key not in old
    new = nova(cloud, token, "GET", f"/servers/{sid}", "2.96").json()["server"]
    assert new["flavor"]["original_name"] == "m1.tiny" and new["flavor"]["ram"] == 512
    assert new["locked"] is False and new["locked_reason"] is None
    assert new["tags"] == ["a", "b"] and new["description"] == "d1"
    assert new["server_groups"] == [] and new["pinned_availability_zone"] is None
    assert new["OS-EXT-SRV-ATTR:hostname"] == "mv"  # 2.90: visible to the owner
    assert "OS-EXT-SRV-ATTR:host" not in new
    # update before 2.75: the short body; from 2.75: the full one
    short = nova(cloud, token, "PUT", f"/servers/{sid}", "2.19", json={"server": {"name": "mv2"}}).json()["server"]
    assert short["name"] == "mv2" and "OS-EXT-STS:vm_state" not in short
    full = nova(cloud, token, "PUT", f"/servers/{sid}", "2.75", json={"server": {"description": "x"}}).json()
    assert full["server"]["OS-EXT-STS:vm_state"] == "active" and full["server"]["description"] == "x"
    # an unsupported microversion
    r = nova(cloud, token, "GET", "/servers", "2.999")
    fault(r, 406, "notAcceptable")
    nova(cloud, token, "DELETE", f"/servers/{sid}")
    wait_status(cloud, token, sid, "DELETED")


def test_list_filters_sort_and_pages(cloud, image, member):
    env, token, _ = member
    ids = []
    for i in range(5):
        r = nova(cloud, token, "POST", "/servers", "2.52", json={"server": {
            "name": f"page-{i}", "imageRef": image, "flavorRef": "1" if i % 2 == 0 else "2",
            "tags": ["even"] if i % 2 == 0 else ["odd"], "networks": "none"}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["server"]["id"])
    for sid in ids:
        wait_status(cloud, token, sid, "ACTIVE")
    # regex name filter through the CLI
    names = [s["Name"] for s in cloud.os_json("server", "list", "--name", "^page-[13]$", env=env)]
    assert sorted(names) == ["page-1", "page-3"]
    assert len(cloud.os_json("server", "list", "--flavor", "m1.small", env=env)) == 2
    assert len(cloud.os_json("server", "list", "--status", "ACTIVE", "--name", "page", env=env)) == 5
    assert cloud.os_json("server", "list", "--status", "SHUTOFF", env=env) == []
    # tags (2.26)
    r = nova(cloud, token, "GET", "/servers?tags=odd", "2.26")
    assert sorted(s["name"] for s in r.json()["servers"]) == ["page-1", "page-3"]
    r = nova(cloud, token, "GET", "/servers?not-tags=odd&name=page", "2.26")
    assert len(r.json()["servers"]) == 3
    # sort + pagination with servers_links
    seen, url = [], "/servers?limit=2&sort_key=display_name&sort_dir=asc&name=page"
    while url:
        body = nova(cloud, token, "GET", url).json()
        seen += [s["name"] for s in body["servers"]]
        links = body.get("servers_links")
        url = links[0]["href"].split("/compute/v2.1", 1)[1] if links else None
    assert seen == [f"page-{i}" for i in range(5)]
    fault(nova(cloud, token, "GET", "/servers?marker=nope"), 400, "badRequest")
    fault(nova(cloud, token, "GET", "/servers?sort_key=bogus"), 400, "badRequest")
    # changes-since includes later deletions
    nova(cloud, token, "DELETE", f"/servers/{ids[0]}")
    wait_status(cloud, token, ids[0], "DELETED")
    r = nova(cloud, token, "GET", "/servers/detail?changes-since=2000-01-01T00:00:00Z")
    statuses = {s["id"]: s["status"] for s in r.json()["servers"]}
    assert statuses[ids[0]] == "DELETED"
    # status filter value validation (2.38+)
    fault(nova(cloud, token, "GET", "/servers?status=NOPE", "2.38"), 400, "badRequest")
    assert nova(cloud, token, "GET", "/servers?status=NOPE", "2.1").json() == {"servers": []}
    # openstacksdk and novaclient see the same servers
    import openstack  # noqa: F401

    for sid in ids[1:]:
        nova(cloud, token, "DELETE", f"/servers/{sid}")


def test_sdk_and_novaclient(cloud, image):
    conn = cloud.sdk()
    server = conn.compute.create_server(name="sdk-vm", image_id=image, flavor_id="1", networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.2)
    assert server.status == "ACTIVE"
    assert conn.compute.find_server("sdk-vm").id == server.id
    script = (
        "from keystoneauth1 import loading, session; from novaclient import client;"
        "import os, json;"
        "a = loading.get_plugin_loader('password').load_from_options(auth_url=os.environ['OS_AUTH_URL'],"
        " username='admin', password=os.environ['OS_PASSWORD'], project_name='admin',"
        " user_domain_name='Default', project_domain_name='Default');"
        "n = client.Client('2.1', session=session.Session(auth=a));"
        "print(json.dumps([(s.name, s.status) for s in n.servers.list()]))")
    env = cloud.admin_env()
    out = subprocess.run([str(BIN / "python"), "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert ["sdk-vm", "ACTIVE"] in json.loads(out.stdout)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=30, interval=0.2)


def test_cross_project_isolation(cloud, image, member, other):
    env, token, _ = member
    oenv, otoken = other
    server = boot(cloud, token, "mine", image)
    sid = server["id"]
    fault(nova(cloud, otoken, "GET", f"/servers/{sid}"), 404, "itemNotFound")
    fault(nova(cloud, otoken, "DELETE", f"/servers/{sid}"), 404, "itemNotFound")
    fault(nova(cloud, otoken, "POST", f"/servers/{sid}/action", json={"os-stop": None}), 404, "itemNotFound")
    assert nova(cloud, otoken, "GET", "/servers").json()["servers"] == []
    fault(nova(cloud, otoken, "GET", "/servers?all_tenants=1"), 403, "forbidden")
    err = cloud.openstack_fails("server", "show", sid, env=oenv)
    assert "No server with a name or ID" in err or "No Server found" in err
    # the admin sees it with --all-projects
    assert sid in [s["ID"] for s in cloud.os_json("server", "list", "--all-projects")]
    # a reader may look but not touch
    reader, pw = cloud.make_user("srv-proj", role="reader")
    rtoken = cloud.token(reader, pw, "srv-proj")
    assert nova(cloud, rtoken, "GET", f"/servers/{sid}").status_code == 200
    fault(nova(cloud, rtoken, "DELETE", f"/servers/{sid}"), 403, "forbidden")
    nova(cloud, token, "DELETE", f"/servers/{sid}")
    wait_status(cloud, token, sid, "DELETED")


def test_bad_input_gets_nova_errors(cloud, image, member):
    env, token, _ = member

    def create(server, version="2.1"):
        return nova(cloud, token, "POST", "/servers", version, json={"server": server})

    assert "could not be found" in fault(create({"name": "x", "imageRef": image, "flavorRef": "nope"}),
                                         400, "badRequest")
    fault(create({"name": "x", "imageRef": "8e1d2cf4-1a3f-4c5c-9b8c-2a8f8bb4c111", "flavorRef": "1"}),
          400, "badRequest")
    fault(create({"name": "x", "imageRef": "not-a-uuid", "flavorRef": "1"}), 400, "badRequest")
    fault(create({"imageRef": image, "flavorRef": "1"}), 400, "badRequest")
    fault(create({"name": "", "imageRef": image, "flavorRef": "1"}), 400, "badRequest")
    assert fault(create({"name": "x", "imageRef": image, "flavorRef": "1", "key_name": "nokey"}), 400,
                 "badRequest") == "Invalid key_name provided."
    fault(create({"name": "x", "imageRef": image, "flavorRef": "1", "min_count": 0}), 400, "badRequest")
    fault(create({"name": "x", "imageRef": image, "flavorRef": "1", "bogus": 1}), 400, "badRequest")
    fault(create({"name": "x", "imageRef": image, "flavorRef": "1"}, "2.37"), 400, "badRequest")
    fault(create({"name": "x", "imageRef": image, "flavorRef": "1", "user_data": "%%%"}), 400, "badRequest")
    fault(create({"name": "x", "imageRef": image, "flavorRef": "1", "availability_zone": "nowhere"}),
          400, "badRequest")
    fault(create({"name": "x", "imageRef": image, "flavorRef": "1",
                  "networks": [{"uuid": "8e1d2cf4-1a3f-4c5c-9b8c-2a8f8bb4c111"}]}, "2.37"), 400, "badRequest")
    r = nova(cloud, token, "POST", "/servers", content=b"{not json", headers={"Content-Type": "application/json"})
    fault(r, 400, "badRequest")
    fault(nova(cloud, token, "GET", "/servers/00000000-0000-0000-0000-000000000000"), 404, "itemNotFound")
    # nothing half-created
    assert nova(cloud, token, "GET", "/servers?name=^x$").json()["servers"] == []
    # quota: the project may have 10 instances; asking 11 at once is refused whole
    r = create({"name": "many", "imageRef": image, "flavorRef": "1", "min_count": 11})
    assert r.status_code == 403, r.text
    assert nova(cloud, token, "GET", "/servers?name=^many").json()["servers"] == []


def test_multi_create_and_reservation_id(cloud, image, member):
    env, token, _ = member
    r = nova(cloud, token, "POST", "/servers", json={"server": {
        "name": "multi", "imageRef": image, "flavorRef": "1", "min_count": 3, "return_reservation_id": True}})
    assert r.status_code == 202, r.text
    rid = r.json()["reservation_id"]
    body = nova(cloud, token, "GET", f"/servers/detail?reservation_id={rid}").json()["servers"]
    assert sorted(s["name"] for s in body) == ["multi-1", "multi-2", "multi-3"]
    for s in body:
        wait_status(cloud, token, s["id"], "ACTIVE")
        nova(cloud, token, "DELETE", f"/servers/{s['id']}")
    for s in body:
        wait_status(cloud, token, s["id"], "DELETED")


def test_metadata_tags_ips_and_actions_list(cloud, image, member):
    env, token, _ = member
    server = boot(cloud, token, "meta-vm", image, server={"metadata": {"a": "1"}})
    sid = server["id"]
    cloud.openstack("server", "set", "--property", "b=2", "meta-vm", env=env)
    r = nova(cloud, token, "DELETE", f"/servers/{sid}/metadata/a")
    assert r.status_code == 204
    assert nova(cloud, token, "GET", f"/servers/{sid}/metadata").json() == {"metadata": {"b": "2"}}
    fault(nova(cloud, token, "GET", f"/servers/{sid}/metadata/a"), 404, "itemNotFound")
    r = nova(cloud, token, "PUT", f"/servers/{sid}/metadata/c", json={"meta": {"c": "3"}})
    assert r.json() == {"meta": {"c": "3"}}
    fault(nova(cloud, token, "PUT", f"/servers/{sid}/metadata/c", json={"meta": {"d": "3"}}), 400, "badRequest")
    assert nova(cloud, token, "PUT", f"/servers/{sid}/tags", "2.26", json={"tags": ["blue"]}).json() == \
        {"tags": ["blue"]}
    assert nova(cloud, token, "GET", f"/servers/{sid}/tags/blue", "2.26").status_code == 204
    assert nova(cloud, token, "PUT", f"/servers/{sid}/tags/green", "2.26").status_code == 201
    assert nova(cloud, token, "PUT", f"/servers/{sid}/tags/green", "2.26").status_code == 204
    fault(nova(cloud, token, "GET", f"/servers/{sid}/tags/red", "2.26"), 404, "itemNotFound")
    assert nova(cloud, token, "DELETE", f"/servers/{sid}/tags", "2.26").status_code == 204
    fault(nova(cloud, token, "GET", f"/servers/{sid}/tags", "2.25"), 404, "itemNotFound")
    ips = nova(cloud, token, "GET", f"/servers/{sid}/ips").json()["addresses"]
    shown = nova(cloud, token, "GET", f"/servers/{sid}").json()["server"]["addresses"]
    assert ips and {k: [a["addr"] for a in v] for k, v in ips.items()} == \
        {k: [a["addr"] for a in v] for k, v in shown.items()}
    actions = cloud.os_json("server", "event", "list", "meta-vm", env=env)
    assert [a["Action"] for a in actions] == ["create"]
    nova(cloud, token, "DELETE", f"/servers/{sid}")
    wait_status(cloud, token, sid, "DELETED")


def test_server_with_network_port(cloud, image, member):
    env, token, _ = member
    net = cloud.os_json("network", "show", "selfservice", env=env)["id"]
    server = boot(cloud, token, "net-vm", image, "1", "2.37", server={"networks": [{"uuid": net}]})
    addrs = server["addresses"]["selfservice"]
    assert addrs[0]["addr"].startswith("172.16.1.")
    assert addrs[0]["OS-EXT-IPS:type"] == "fixed"
    ifaces = nova(cloud, token, "GET", f"/servers/{server['id']}/os-interface").json()["interfaceAttachments"]
    assert len(ifaces) == 1 and ifaces[0]["net_id"] == net
    ports = cloud.os_json("port", "list", "--device-id", server["id"], env=env)
    assert [p["ID"] for p in ports] == [ifaces[0]["port_id"]]
    nova(cloud, token, "DELETE", f"/servers/{server['id']}")
    wait_status(cloud, token, server["id"], "DELETED")
    assert cloud.os_json("port", "list", "--device-id", server["id"], env=env) == []
