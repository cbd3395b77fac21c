"""Neutron's API conventions on a running cloud: extensions, filters, fields, sorting,
pagination with links, tags (API + CLI filters), revision numbers and If-Match, project_id /
tenant_id, error bodies and quotas, through raw HTTP, the `openstack` CLI, openstacksdk and
the neutronclient library."""
from __future__ import annotations

import uuid

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3
from neutronclient.v2_0 import client as neutron_client
from .netlib import NeutronHTTP, error, new_project


@pytest.fixture(scope="module")
def admin(cloud):
    return NeutronHTTP(cloud, cloud.token())


@pytest.fixture(scope="module")
def nets(admin):
    """Three networks named with one run-specific prefix (so filters see only these)."""
    prefix = "conv-" + uuid.uuid4().hex[:6]
    out = [admin.create("network", {"name": f"{prefix}-{x}"}) for x in ("b", "a", "c")]
    return prefix, out


def test_extensions_list_and_show(admin):
    aliases = {e["alias"] for e in admin.get("/extensions", expect=200).json()["extensions"]}
    for alias in ("standard-attr-description", "standard-attr-tag", "standard-attr-timestamp",
                  "standard-attr-revisions", "revision-if-match", "project-id", "provider", "external-net",
                  "binding", "port-security", "allowed-address-pairs", "extra_dhcp_opt", "subnet_allocation",
                  "default-subnetpools", "net-mtu", "network-ip-availability", "quotas", "quota_details",
                  "sorting", "pagination", "filter-validation", "ip-substring-filtering"):
        assert alias in aliases, alias
    ext = admin.get("/extensions/quotas", expect=200).json()["extension"]
    assert ext["alias"] == "quotas" and set(ext) >= {"name", "description", "updated", "links"}
    err = error(admin.get("/extensions/no-such-thing", expect=404))
    assert "no-such-thing" in err["message"]


def test_filters_or_within_attribute_and_across(admin, nets):
    prefix, made = nets
    names = {n["name"] for n in admin.get(f"/networks?name={prefix}-a&name={prefix}-b", expect=200).json()["networks"]}
    assert names == {f"{prefix}-a", f"{prefix}-b"}
    got = admin.get(f"/networks?name={prefix}-a&admin_state_up=False", expect=200).json()["networks"]
    assert got == []
    got = admin.get(f"/networks?name={prefix}-a&admin_state_up=True", expect=200).json()["networks"]
    assert [n["id"] for n in got] == [made[1]["id"]]
    err = error(admin.get("/networks?bogus_attr=1", expect=400))
    assert "bogus_attr" in err["message"]


def test_fields_selection(admin, nets):
    prefix, made = nets
    got = admin.get(f"/networks/{made[0]['id']}?fields=id&fields=name", expect=200).json()["network"]
    assert got == {"id": made[0]["id"], "name": made[0]["name"]}
    items = admin.get(f"/networks?name={prefix}-a&fields=status", expect=200).json()["networks"]
    assert items == [{"status": "ACTIVE"}]


def test_sorting_and_pagination_with_links(admin, nets):
    prefix, made = nets
    q = f"name={prefix}-a&name={prefix}-b&name={prefix}-c"
    names = [n["name"] for n in admin.get(f"/networks?{q}&sort_key=name&sort_dir=desc", expect=200).json()["networks"]]
    assert names == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]
    names = [n["name"] for n in admin.get(f"/networks?{q}&sort_key=status&sort_dir=asc&sort_key=name&sort_dir=asc",
                                          expect=200).json()["networks"]]
    assert names == sorted(names)
    error(admin.get(f"/networks?{q}&sort_key=name&sort_dir=sideways", expect=400))
    error(admin.get(f"/networks?sort_key=no_such_key", expect=400))
    page = admin.get(f"/networks?{q}&sort_key=name&limit=2", expect=200).json()
    assert [n["name"] for n in page["networks"]] == [f"{prefix}-a", f"{prefix}-b"]
    nxt = [link for link in page["networks_links"] if link["rel"] == "next"]
    assert nxt and "marker=" in nxt[0]["href"]
    import httpx
    page2 = httpx.get(nxt[0]["href"], headers={"X-Auth-Token": admin.token}).json()
    assert [n["name"] for n in page2["networks"]] == [f"{prefix}-c"]
    assert any(link["rel"] == "previous" for link in page2["networks_links"])
    assert not any(link["rel"] == "next" for link in page2["networks_links"])
    marker = page2["networks"][0]["id"]
    back = admin.get(f"/networks?{q}&sort_key=name&limit=1&marker={marker}&page_reverse=True", expect=200).json()
    assert [n["name"] for n in back["networks"]] == [f"{prefix}-b"]
    rels = {link["rel"]: link["href"] for link in back["networks_links"]}
    assert set(rels) == {"next", "previous"}  # a (before b) remains; c follows
    before = httpx.get(rels["previous"], headers={"X-Auth-Token": admin.token}).json()
    assert [n["name"] for n in before["networks"]] == [f"{prefix}-a"]
    assert [link["rel"] for link in before["networks_links"]] == ["next"]


def test_tags_api_and_filters(admin, cloud, nets):
    prefix, made = nets
    nid = made[0]["id"]
    assert admin("PUT", f"/networks/{nid}/tags", json={"tags": ["red", "blue"]}, expect=200).json()["tags"] == \
        ["blue", "red"]
    admin("PUT", f"/networks/{nid}/tags/green", expect=201)
    admin("GET", f"/networks/{nid}/tags/green", expect=204)
    assert error(admin("GET", f"/networks/{nid}/tags/purple", expect=404))["type"] == "TagNotFound"
    admin("DELETE", f"/networks/{nid}/tags/green", expect=204)
    assert admin.get(f"/networks/{nid}/tags", expect=200).json()["tags"] == ["blue", "red"]
    cloud.openstack("network", "set", "--tag", "yellow", made[1]["id"])
    q = f"name={prefix}-a&name={prefix}-b&name={prefix}-c"
    ids = lambda extra: {n["id"] for n in admin.get(f"/networks?{q}&{extra}", expect=200).json()["networks"]}
    assert ids("tags=red,blue") == {nid}
    assert ids("tags-any=red,yellow") == {nid, made[1]["id"]}
    assert ids("not-tags=red") == {made[1]["id"], made[2]["id"]}
    assert ids("not-tags-any=red,yellow") == {made[2]["id"]}
    listed = cloud.os_json("network", "list", "--tags", "yellow")
    assert [n["ID"] for n in listed] == [made[1]["id"]]
    listed = cloud.os_json("network", "list", "--any-tags", "red,yellow")
    assert {n["ID"] for n in listed} == {nid, made[1]["id"]}
    admin("DELETE", f"/networks/{nid}/tags", expect=204)
    assert admin.get(f"/networks/{nid}", expect=200).json()["network"]["tags"] == []
    sub = admin.create("subnet", {"network_id": made[2]["id"], "ip_version": 4, "cidr": "10.77.0.0/24"})
    admin("PUT", f"/subnets/{sub['id']}/tags/s1", expect=201)
    assert admin.get(f"/subnets?tags=s1", expect=200).json()["subnets"][0]["id"] == sub["id"]


def test_revision_number_and_if_match(admin, nets):
    _, made = nets
    nid = made[2]["id"]
    before = admin.get(f"/networks/{nid}", expect=200).json()["network"]
    assert before["created_at"].endswith("Z") and len(before["created_at"]) == 20
    after = admin("PUT", f"/networks/{nid}", json={"network": {"description": "d1"}}, expect=200).json()["network"]
    assert after["revision_number"] == before["revision_number"] + 1
    assert after["description"] == "d1"
    stale = admin("PUT", f"/networks/{nid}", json={"network": {"description": "d2"}},
                  headers={"If-Match": f"revision_number={before['revision_number']}"}, expect=412)
    assert error(stale)["type"] == "RevisionNumberConstraintFailed"
    assert admin.get(f"/networks/{nid}", expect=200).json()["network"]["description"] == "d1"
    admin("PUT", f"/networks/{nid}", json={"network": {"description": "d2"}},
          headers={"If-Match": f"revision_number={after['revision_number']}"}, expect=200)


def test_project_id_and_tenant_id(cloud, admin):
    proj = new_project(cloud)
    mine = NeutronHTTP(cloud, proj["token"])
    net = mine.create("network", {"name": "pt"})
    assert net["project_id"] == net["tenant_id"] == proj["id"]
    net2 = mine.create("network", {"name": "pt2", "tenant_id": proj["id"]})
    assert net2["project_id"] == proj["id"]
    assert error(mine("POST", "/networks", json={"network": {"project_id": proj["id"], "tenant_id": "other"}},
                      expect=400))
    # a member may not create for another project; an admin may
    err = error(mine("POST", "/networks", json={"network": {"project_id": uuid.uuid4().hex}}, expect=403))
    assert err["type"] == "PolicyNotAuthorized"
    other = admin.create("network", {"name": "for-proj", "project_id": proj["id"]})
    assert other["tenant_id"] == proj["id"]
    by_tenant = mine.get(f"/networks?tenant_id={proj['id']}", expect=200).json()["networks"]
    assert {n["id"] for n in by_tenant} == {net["id"], net2["id"], other["id"]}


def test_error_bodies(admin):
    missing = uuid.uuid4()
    err = error(admin.get(f"/networks/{missing}", expect=404))
    assert err == {"type": "NetworkNotFound", "message": f"Network {missing} could not be found.", "detail": ""}
    err = error(admin("POST", "/networks", json={"network": {"admin_state_up": "abc"}}, expect=400))
    assert err["message"] == "Invalid input for admin_state_up. Reason: 'abc' cannot be converted to boolean."
    err = error(admin("POST", "/networks", json={"net": {}}, expect=400))
    assert err["message"] == "Unable to find 'network' in request body"
    err = error(admin("POST", "/networks", json={"network": {"bogus": 1, "other": 2}}, expect=400))
    assert err["message"] == "Unrecognized attribute(s) 'bogus, other'"
    err = error(admin("PUT", f"/networks/{missing}", json={"network": {"id": "x"}}, expect=400))
    assert "read-only" in err["message"]
    assert error(admin("POST", "/networks", content=b"{nope", expect=400))
    r = admin.get("/networks", headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401


def test_quotas_cli_sdk_and_enforcement(cloud, admin):
    proj = new_project(cloud)
    mine = NeutronHTTP(cloud, proj["token"])
    defaults = admin.get(f"/quotas/{proj['id']}/default", expect=200).json()["quota"]
    assert defaults["network"] == 100 and defaults["port"] == 500 and defaults["subnet"] == 100
    cloud.openstack("quota", "set", "--networks", "2", "--ports", "7", proj["id"])
    shown = admin.get(f"/quotas/{proj['id']}", expect=200).json()["quota"]
    assert shown["network"] == 2 and shown["port"] == 7
    mine.create("network", {"name": "q1"})
    mine.create("network", {"name": "q2"})
    err = error(mine("POST", "/networks", json={"network": {"name": "q3"}}, expect=409))
    assert err["type"] == "OverQuota" and "network" in err["message"]
    conn = cloud.sdk()
    details = conn.network.get_quota(proj["id"], details=True)
    assert details.networks["used"] == 2 and details.networks["limit"] == 2
    # a member reads its own quota, may not change it, never sees another project's
    assert mine.get(f"/quotas/{proj['id']}", expect=200).json()["quota"]["network"] == 2
    assert error(mine("PUT", f"/quotas/{proj['id']}", json={"quota": {"network": 50}}, expect=403))
    assert error(mine.get(f"/quotas/{uuid.uuid4().hex}", expect=403))
    assert error(admin("PUT", f"/quotas/{proj['id']}", json={"quota": {"bogus": 1}}, expect=400))
    assert error(admin("PUT", f"/quotas/{proj['id']}", json={"quota": {"network": -5}}, expect=400))
    assert error(admin("PUT", f"/quotas/{proj['id']}", json={"quota": {"port": 10 ** 30}}, expect=400))
    listed = admin.get("/quotas", expect=200).json()["quotas"]
    assert any(q["project_id"] == proj["id"] and q["network"] == 2 for q in listed)
    admin("DELETE", f"/quotas/{proj['id']}", expect=204)
    assert admin.get(f"/quotas/{proj['id']}", expect=200).json()["quota"]["network"] == 100
    mine.create("network", {"name": "q3"})


def test_neutronclient_library(cloud, nets):
    prefix, made = nets
    auth = ks_v3.Password(auth_url=cloud.auth_url, username="admin", password=cloud.admin_password,
                          project_name="admin", user_domain_name="Default", project_domain_name="Default")
    nc = neutron_client.Client(session=ks_session.Session(auth=auth))
    got = nc.list_networks(name=f"{prefix}-a")["networks"]
    assert [n["id"] for n in got] == [made[1]["id"]]
    assert any(e["alias"] == "quotas" for e in nc.list_extensions()["extensions"])
    net = nc.create_network({"network": {"name": f"{prefix}-nc"}})["network"]
    nc.update_network(net["id"], {"network": {"name": f"{prefix}-nc2"}})
    assert nc.show_network(net["id"])["network"]["name"] == f"{prefix}-nc2"
    nc.delete_network(net["id"])
    from neutronclient.common import exceptions as nexc
    with pytest.raises(nexc.NetworkNotFoundClient):
        nc.show_network(net["id"])


def test_events_emitted(cloud, admin):
    net = admin.create("network", {"name": "ev"})
    admin("PUT", f"/networks/{net['id']}", json={"network": {"name": "ev2"}}, expect=200)
    admin("DELETE", f"/networks/{net['id']}", expect=204)
    journal = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    for action in ("created", "updated", "deleted"):
        assert f'"event_type":"network.network.{action}"' in journal and net["id"] in journal
