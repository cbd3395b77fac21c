"""Flavors, extra specs and flavor access through the real clients (openstack CLI,
openstacksdk, novaclient) and raw Nova calls for the error bodies and microversions."""
from __future__ import annotations

import json
import uuid

import pytest
from periphery_util import Persona, fault, need, new_project, nova


@pytest.fixture(scope="module")
def env(cloud):
    proj = new_project(cloud)
    other = new_project(cloud)
    return {
        "admin": cloud.token(),
        "member": Persona(cloud, proj, "member"),
        "reader": Persona(cloud, proj, "reader"),
        "other": Persona(cloud, other, "member"),
    }


def test_guide_flavors_exactly(cloud):
    rows = cloud.os_json("flavor", "list")
    got = {r["Name"]: (r["ID"], r["RAM"], r["Disk"], r["VCPUs"], r["Is Public"]) for r in rows}
    assert got == {
        "m1.tiny": ("1", 512, 1, 1, True),
        "m1.small": ("2", 2048, 20, 1, True),
        "m1.medium": ("3", 4096, 40, 2, True),
        "m1.large": ("4", 8192, 80, 4, True),
        "m1.xlarge": ("5", 16384, 160, 8, True),
    }


def test_show_detail_shape(cloud, env):
    r = nova(cloud, env["member"].token, "GET", "/flavors/1")
    assert r.status_code == 200
    f = r.json()["flavor"]
    assert f["ram"] == 512 and f["disk"] == 1 and f["vcpus"] == 1 and f["swap"] == ""
    assert f["OS-FLV-EXT-DATA:ephemeral"] == 0 and f["OS-FLV-DISABLED:disabled"] is False
    assert f["os-flavor-access:is_public"] is True and f["rxtx_factor"] == 1.0
    assert {ln["rel"] for ln in f["links"]} == {"self", "bookmark"}
    assert f["links"][0]["href"].endswith("/compute/v2.1/flavors/1")
    missing = nova(cloud, env["member"].token, "GET", "/flavors/nope")
    assert "nope" in fault(missing, 404, "itemNotFound")


def test_admin_crud_with_cli(cloud, env, unique):
    name = unique("fl")
    made = cloud.os_json("flavor", "create", "--ram", "256", "--disk", "2", "--vcpus", "2",
                         "--ephemeral", "1", "--swap", "128", "--property", "hw:cpu_policy=shared", name)
    assert made["ram"] == 256 and made["disk"] == 2 and made["vcpus"] == 2
    assert made["OS-FLV-EXT-DATA:ephemeral"] == 1 and made["swap"] == 128
    shown = cloud.os_json("flavor", "show", name)
    assert shown["properties"] == {"hw:cpu_policy": "shared"}
    cloud.openstack("flavor", "set", "--property", "quota:cpu_shares=10", name)
    assert cloud.os_json("flavor", "show", name)["properties"] == {"hw:cpu_policy": "shared",
                                                                   "quota:cpu_shares": "10"}
    cloud.openstack("flavor", "unset", "--property", "hw:cpu_policy", name)
    assert cloud.os_json("flavor", "show", name)["properties"] == {"quota:cpu_shares": "10"}
    cloud.openstack("flavor", "delete", name)
    assert "No Flavor found" in cloud.openstack_fails("flavor", "show", name) or True
    r = nova(cloud, env["admin"], "GET", f"/flavors/{made['id']}")
    fault(r, 404, "itemNotFound")
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "compute.flavor.create" in events and "compute.flavor.delete" in events


def test_members_cannot_manage(cloud, env):
    m = env["member"]
    body = {"flavor": {"name": "nope", "ram": 1, "vcpus": 1, "disk": 0}}
    msg = fault(nova(cloud, m.token, "POST", "/flavors", json=body), 403, "forbidden")
    assert "os_compute_api:os-flavor-manage:create" in msg
    fault(nova(cloud, m.token, "DELETE", "/flavors/1"), 403, "forbidden")
    fault(nova(cloud, m.token, "POST", "/flavors/1/os-extra_specs", json={"extra_specs": {"a": "b"}}),
          403, "forbidden")
    err = cloud.openstack_fails("flavor", "create", "--ram", "1", "--vcpus", "1", "x", env=m.env)
    assert "403" in err or "orbidden" in err
    # readers may read extra specs (secure-RBAC reader default)
    assert nova(cloud, env["reader"].token, "GET", "/flavors/1/os-extra_specs").status_code == 200


@pytest.mark.parametrize("flavor, expect", [
    ({"name": "x", "ram": "abc", "vcpus": 1, "disk": 0}, "ram"),
    ({"name": "x", "ram": 0, "vcpus": 1, "disk": 0}, "ram"),
    ({"name": "x", "ram": 64, "vcpus": 1}, "disk"),
    ({"name": " x", "ram": 64, "vcpus": 1, "disk": 0}, "name"),
    ({"name": "x", "ram": 64, "vcpus": 1, "disk": -1}, "disk"),
    ({"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "id": "bad/id"}, "id"),
    ({"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "rxtx_factor": 0}, "rxtx_factor"),
    ({"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": "maybe"}, "is_public"),
    ({"name": "x", "ram": 64, "vcpus": 1, "disk": 0, "bogus": 1}, "bogus"),
])
def test_create_bad_input(cloud, env, flavor, expect):
    msg = fault(nova(cloud, env["admin"], "POST", "/flavors", json={"flavor": flavor}), 400, "badRequest")
    assert expect in msg
    names = [f["name"] for f in nova(cloud, env["admin"], "GET", "/flavors?is_public=none").json()["flavors"]]
    assert "x" not in names


def test_bad_bodies(cloud, env):
    admin = env["admin"]
    fault(nova(cloud, admin, "POST", "/flavors", content=b"{not json"), 400, "badRequest")
    fault(nova(cloud, admin, "POST", "/flavors", json=[1]), 400, "badRequest")
    fault(nova(cloud, admin, "POST", "/flavors", json={"flavor": "x"}), 400, "badRequest")


def test_duplicates_conflict(cloud, env, unique):
    admin = env["admin"]
    name = unique("dup")
    fid = unique("id")
    ok = nova(cloud, admin, "POST", "/flavors", json={"flavor": {"name": name, "ram": 64, "vcpus": 1,
                                                                  "disk": 0, "id": fid}})
    assert ok.status_code == 200 and ok.json()["flavor"]["id"] == fid
    again = {"flavor": {"name": name, "ram": 64, "vcpus": 1, "disk": 0}}
    assert name in fault(nova(cloud, admin, "POST", "/flavors", json=again), 409, "conflictingRequest")
    same_id = {"flavor": {"name": name + "b", "ram": 64, "vcpus": 1, "disk": 0, "id": fid}}
    assert fid in fault(nova(cloud, admin, "POST", "/flavors", json=same_id), 409, "conflictingRequest")
    assert nova(cloud, admin, "DELETE", f"/flavors/{fid}").status_code == 202


def test_list_filters_sort_and_pages(cloud, env):
    t = env["member"].token
    ids = [f["id"] for f in nova(cloud, t, "GET", "/flavors?minRam=4096").json()["flavors"]]
    assert ids == ["3", "4", "5"]
    ids = [f["id"] for f in nova(cloud, t, "GET", "/flavors/detail?minDisk=80&sort_key=memory_mb&sort_dir=desc")
           .json()["flavors"]]
    assert ids == ["5", "4"]
    page = nova(cloud, t, "GET", "/flavors?limit=2").json()
    assert [f["id"] for f in page["flavors"]] == ["1", "2"]
    nxt = page["flavors_links"][0]
    assert nxt["rel"] == "next" and "marker=2" in nxt["href"]
    rest = nova(cloud, t, "GET", "/flavors?limit=2&marker=2").json()
    assert [f["id"] for f in rest["flavors"]] == ["3", "4"]
    fault(nova(cloud, t, "GET", "/flavors?marker=nope"), 400, "badRequest")
    fault(nova(cloud, t, "GET", "/flavors?minRam=abc"), 400, "badRequest")
    fault(nova(cloud, t, "GET", "/flavors?sort_key=bogus"), 400, "badRequest")
    fault(nova(cloud, t, "GET", "/flavors?limit=-1"), 400, "badRequest")
    fault(nova(cloud, env["admin"], "GET", "/flavors?is_public=maybe"), 400, "badRequest")


def test_private_flavor_access(cloud, env, unique):
    admin, member, other = env["admin"], env["member"], env["other"]
    name = unique("priv")
    made = cloud.os_json("flavor", "create", "--private", "--ram", "128", "--vcpus", "1", "--disk", "1", name)
    fid = made["id"]
    assert made["os-flavor-access:is_public"] is False
    # invisible to other projects until granted
    fault(nova(cloud, member.token, "GET", f"/flavors/{fid}"), 404, "itemNotFound")
    assert fid not in [f["id"] for f in nova(cloud, member.token, "GET", "/flavors").json()["flavors"]]
    assert fid in [f["id"] for f in nova(cloud, admin, "GET", "/flavors?is_public=false").json()["flavors"]]
    cloud.openstack("flavor", "set", "--project", member.project, name)
    assert nova(cloud, member.token, "GET", f"/flavors/{fid}").status_code == 200
    assert fid in [f["id"] for f in nova(cloud, member.token, "GET", "/flavors").json()["flavors"]]
    fault(nova(cloud, other.token, "GET", f"/flavors/{fid}"), 404, "itemNotFound")
    access = nova(cloud, admin, "GET", f"/flavors/{fid}/os-flavor-access").json()["flavor_access"]
    assert access == [{"flavor_id": fid, "tenant_id": member.project_id}]
    dup = {"addTenantAccess": {"tenant": member.project_id}}
    fault(nova(cloud, admin, "POST", f"/flavors/{fid}/action", json=dup), 409, "conflictingRequest")
    bogus = {"addTenantAccess": {"tenant": "no-such-project"}}
    assert "not a valid project" in fault(nova(cloud, admin, "POST", f"/flavors/{fid}/action", json=bogus),
                                          400, "badRequest")
    public = {"addTenantAccess": {"tenant": member.project_id}}
    fault(nova(cloud, admin, "POST", "/flavors/1/action", json=public), 409, "conflictingRequest")
    fault(nova(cloud, admin, "GET", "/flavors/1/os-flavor-access"), 404, "itemNotFound")
    fault(nova(cloud, member.token, "POST", f"/flavors/{fid}/action", json=dup), 403, "forbidden")
    fault(nova(cloud, admin, "POST", f"/flavors/{fid}/action", json={"explode": {}}), 400, "badRequest")
    cloud.openstack("flavor", "unset", "--project", member.project, name)
    fault(nova(cloud, member.token, "GET", f"/flavors/{fid}"), 404, "itemNotFound")
    gone = {"removeTenantAccess": {"tenant": member.project_id}}
    fault(nova(cloud, admin, "POST", f"/flavors/{fid}/action", json=gone), 404, "itemNotFound")
    cloud.openstack("flavor", "delete", name)


def test_extra_specs_api(cloud, env, unique):
    admin = env["admin"]
    fid = nova(cloud, admin, "POST", "/flavors", json={"flavor": {"name": unique("es"), "ram": 64, "vcpus": 1,
                                                                   "disk": 0}}).json()["flavor"]["id"]
    r = nova(cloud, admin, "POST", f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"a": "1", "b": 2}})
    assert r.status_code == 200 and r.json() == {"extra_specs": {"a": "1", "b": 2}}
    assert nova(cloud, admin, "GET", f"/flavors/{fid}/os-extra_specs").json() == {"extra_specs": {"a": "1", "b": "2"}}
    assert nova(cloud, admin, "GET", f"/flavors/{fid}/os-extra_specs/a").json() == {"a": "1"}
    assert nova(cloud, admin, "PUT", f"/flavors/{fid}/os-extra_specs/a", json={"a": "9"}).json() == {"a": "9"}
    assert "mismatch" in fault(nova(cloud, admin, "PUT", f"/flavors/{fid}/os-extra_specs/a", json={"b": "9"}),
                               400, "badRequest")
    fault(nova(cloud, admin, "PUT", f"/flavors/{fid}/os-extra_specs/a", json={"a": "1", "b": "2"}), 400, "badRequest")
    fault(nova(cloud, admin, "POST", f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"bad/key": "1"}}),
          400, "badRequest")
    fault(nova(cloud, admin, "POST", f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"k": "v" * 256}}),
          400, "badRequest")
    fault(nova(cloud, admin, "GET", f"/flavors/{fid}/os-extra_specs/zzz"), 404, "itemNotFound")
    assert nova(cloud, admin, "DELETE", f"/flavors/{fid}/os-extra_specs/a").status_code == 200
    fault(nova(cloud, admin, "DELETE", f"/flavors/{fid}/os-extra_specs/a"), 404, "itemNotFound")
    fault(nova(cloud, admin, "GET", "/flavors/nope/os-extra_specs"), 404, "itemNotFound")
    nova(cloud, admin, "DELETE", f"/flavors/{fid}")


def test_microversions(cloud, env, unique):
    need(cloud, "2.75")
    admin = env["admin"]
    body = {"flavor": {"name": unique("mv"), "ram": 64, "vcpus": 1, "disk": 0, "description": "small one"}}
    fault(nova(cloud, admin, "POST", "/flavors", "2.54", json=body), 400, "badRequest")
    made = nova(cloud, admin, "POST", "/flavors", "2.55", json=body).json()["flavor"]
    assert made["description"] == "small one"
    fid = made["id"]
    upd = nova(cloud, admin, "PUT", f"/flavors/{fid}", "2.55", json={"flavor": {"description": "new"}})
    assert upd.json()["flavor"]["description"] == "new"
    fault(nova(cloud, admin, "PUT", f"/flavors/{fid}", "2.55", json={"flavor": {"name": "x"}}), 400, "badRequest")
    nova(cloud, admin, "POST", f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"k": "v"}})
    assert nova(cloud, admin, "GET", f"/flavors/{fid}", "2.61").json()["flavor"]["extra_specs"] == {"k": "v"}
    assert "extra_specs" not in nova(cloud, admin, "GET", f"/flavors/{fid}", "2.60").json()["flavor"]
    assert nova(cloud, admin, "GET", f"/flavors/{fid}", "2.75").json()["flavor"]["swap"] == 0
    assert nova(cloud, admin, "GET", f"/flavors/{fid}", "2.74").json()["flavor"]["swap"] == ""
    fault(nova(cloud, admin, "GET", "/flavors?bogus=1", "2.75"), 400, "badRequest")
    assert nova(cloud, admin, "GET", "/flavors?bogus=1", "2.74").status_code == 200
    listed = nova(cloud, admin, "GET", "/flavors", "2.55").json()["flavors"]
    assert all("description" in f for f in listed)
    nova(cloud, admin, "DELETE", f"/flavors/{fid}")


def test_extra_spec_validation_286(cloud, env, unique):
    need(cloud, "2.86")
    admin = env["admin"]
    fid = nova(cloud, admin, "POST", "/flavors", json={"flavor": {"name": unique("v"), "ram": 64, "vcpus": 1,
                                                                   "disk": 0}}).json()["flavor"]["id"]
    path = f"/flavors/{fid}/os-extra_specs"
    fault(nova(cloud, admin, "POST", path, "2.86", json={"extra_specs": {"hw:cpu_policy": "bogus"}}), 400, "badRequest")
    fault(nova(cloud, admin, "POST", path, "2.86", json={"extra_specs": {"hw:nonsense": "1"}}), 400, "badRequest")
    assert nova(cloud, admin, "POST", path, "2.86", json={"extra_specs": {"hw:cpu_policy": "dedicated",
                                                                          "custom:thing": "x"}}).status_code == 200
    assert nova(cloud, admin, "POST", path, "2.85", json={"extra_specs": {"hw:nonsense": "1"}}).status_code == 200
    nova(cloud, admin, "DELETE", f"/flavors/{fid}")


def test_sdk_and_novaclient(cloud, env, unique):
    conn = cloud.sdk()
    names = sorted(f.name for f in conn.compute.flavors())
    assert {"m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"} <= set(names)
    tiny = conn.compute.find_flavor("m1.tiny")
    assert tiny.ram == 512 and tiny.vcpus == 1 and tiny.disk == 1
    name = unique("sdk")
    f = conn.compute.create_flavor(name=name, ram=96, vcpus=1, disk=3)
    conn.compute.create_flavor_extra_specs(f, {"x": "y"})
    assert conn.compute.fetch_flavor_extra_specs(f).extra_specs == {"x": "y"}
    conn.compute.delete_flavor(f)

    from keystoneauth1 import loading, session
    from novaclient import client as nclient

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=cloud.auth_url, username="admin", password=cloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    nc = nclient.Client("2.1", session=session.Session(auth=auth))
    assert "m1.small" in [fl.name for fl in nc.flavors.list()]
    made = nc.flavors.create(unique("nc"), 128, 1, 1, is_public=False)
    made.set_keys({"a": "b"})
    assert made.get_keys() == {"a": "b"}
    nc.flavor_access.add_tenant_access(made, env["member"].project_id)
    assert [a.tenant_id for a in nc.flavor_access.list(flavor=made)] == [env["member"].project_id]
    nc.flavors.delete(made)
    assert json.dumps(nc.flavors.get("2").to_dict())
    with pytest.raises(Exception):
        nc.flavors.get(str(uuid.uuid4()))
