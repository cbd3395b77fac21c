"""Port listings answered from columns (paged, or `fields=` of plain columns) must equal the
general path (every row rendered, filtered and sorted as dicts): same items, same order
(ties broken by id), same links, for admins and for a project member."""
from __future__ import annotations

import uuid
from urllib.parse import urlencode

import httpx
import pytest

from .netlib import NeutronHTTP, error, new_project


@pytest.fixture(scope="module")
def env(cloud):
    admin = NeutronHTTP(cloud, cloud.token())
    member = new_project(cloud)
    mine = NeutronHTTP(cloud, member["token"])
    tag = "lp-" + uuid.uuid4().hex[:6]
    net = admin.create("network", {"name": tag, "shared": True})
    admin.create("subnet", {"network_id": net["id"], "cidr": "10.77.0.0/24", "ip_version": 4, "enable_dhcp": False})
    names = ["b", "a", "c", "a", "b", "d", "a", "e", "c", "b", "a", "f", "b"]
    r = admin("POST", "/ports", json={"ports": [
        {"network_id": net["id"], "name": f"{tag}-{n}", "device_owner": "compute:nova" if i % 3 else "",
         "device_id": f"{tag}-dev{i % 2}", "admin_state_up": i % 4 != 0} for i, n in enumerate(names)]})
    assert r.status_code == 201, r.text
    for i in range(3):
        mine.create("port", {"network_id": net["id"], "name": f"{tag}-m{i}"})
    return {"admin": admin, "member": mine, "tag": tag, "net": net}


def walk(client: NeutronHTTP, params: list[tuple[str, str]], reverse: bool = False) -> tuple[list[dict], int]:
    """Follow `next` links (or `previous` from a reverse first page) to the end."""
    url = client.base + "/ports?" + urlencode(params + ([("page_reverse", "True")] if reverse else []))
    out, pages = [], 0
    while url:
        r = httpx.get(url, headers={"X-Auth-Token": client.token}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        page = body["ports"]
        out = page + out if reverse else out + page
        pages += 1
        rel = "previous" if reverse else "next"
        url = next((link["href"] for link in body["ports_links"] if link["rel"] == rel), None)
        assert pages < 100
    return out, pages


SORTS = [
    [],                                          # by id: the keyset query
    [("sort_key", "id"), ("sort_dir", "desc")],
    [("sort_key", "name")],
    [("sort_key", "name"), ("sort_dir", "desc")],
    [("sort_key", "name"), ("sort_dir", "asc"), ("sort_key", "device_owner"), ("sort_dir", "desc")],
    [("sort_key", "admin_state_up"), ("sort_key", "created_at")],
    [("sort_key", "mac_address"), ("sort_dir", "desc")],
]


@pytest.mark.parametrize("sort", SORTS, ids=lambda s: ",".join(v for _, v in s) or "default")
@pytest.mark.parametrize("who", ["admin", "member"])
def test_paged_and_column_listings_equal_the_general_one(env, sort, who):
    client = env[who]
    filters = [("network_id", env["net"]["id"])]
    general = client.get("/ports?" + urlencode(filters + sort), expect=200).json()["ports"]
    assert len(general) == (16 if who == "admin" else 3)  # 13 + 3, no DHCP port
    for limit in (1, 4, 100):
        paged, pages = walk(client, filters + sort + [("limit", str(limit))])
        assert paged == general
        assert pages == max(1, -(-len(general) // limit))
        back, _ = walk(client, filters + sort + [("limit", str(limit))], reverse=True)
        assert back == general
    light = client.get("/ports?" + urlencode(filters + sort + [("fields", "id"), ("fields", "name")]),
                       expect=200).json()["ports"]
    assert light == [{"id": p["id"], "name": p["name"]} for p in general]


@pytest.mark.parametrize("extra", [
    [("device_id", "{tag}-dev1")],
    [("device_owner", ""), ("device_owner", "compute:nova")],
    [("name", "{tag}-a"), ("name", "{tag}-b")],
    [("admin_state_up", "False")],               # not a SQL filter: general path
    [("fixed_ips", "ip_address_substr=10.77")],  # a hook: general path
])
def test_filters_page_like_the_general_list(env, extra):
    tag = env["tag"]
    admin = env["admin"]
    params = [("network_id", env["net"]["id"])] + [(k, v.format(tag=tag)) for k, v in extra]
    for sort in ([("sort_key", "name"), ("sort_dir", "desc")], []):
        general = admin.get("/ports?" + urlencode(params + sort), expect=200).json()["ports"]
        assert general
        for reverse in (False, True):
            paged, _ = walk(admin, params + sort + [("limit", "2")], reverse=reverse)
            assert paged == general
        ids = admin.get("/ports?" + urlencode(params + sort + [("fields", "id")]), expect=200).json()["ports"]
        assert ids == [{"id": p["id"]} for p in general]


def test_marker_links_and_errors(env):
    admin = env["admin"]
    net = env["net"]["id"]
    first = admin.get(f"/ports?network_id={net}&limit=2&sort_key=name", expect=200).json()
    assert [link["rel"] for link in first["ports_links"]] == ["next"]
    nxt = first["ports_links"][0]["href"]
    assert f"marker={first['ports'][-1]['id']}" in nxt and "limit=2" in nxt and "sort_key=name" in nxt
    middle = httpx.get(nxt, headers={"X-Auth-Token": admin.token}).json()
    assert [link["rel"] for link in middle["ports_links"]] == ["next", "previous"]
    err = error(admin.get(f"/ports?limit=2&marker={uuid.uuid4()}", expect=404))
    assert "could not be found" in err["message"]
    assert "limit" in error(admin.get("/ports?limit=-1", expect=400))["message"]
    assert "sort_key" in error(admin.get("/ports?limit=2&sort_key=bogus", expect=400))["message"]
    # a member cannot page past a marker it may not see
    other = admin.get(f"/ports?network_id={net}&name={env['tag']}-a&limit=1", expect=200).json()["ports"][0]
    error(env["member"].get(f"/ports?limit=1&marker={other['id']}", expect=404))
    # hidden attributes stay hidden on the paged path
    page = env["member"].get(f"/ports?network_id={net}&limit=2", expect=200).json()["ports"]
    assert page and all("binding:host_id" not in p for p in page)
    page = admin.get(f"/ports?network_id={net}&limit=2", expect=200).json()["ports"]
    assert all("binding:host_id" in p for p in page)
