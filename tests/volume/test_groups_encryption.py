"""Generic volume groups: group types (`openstack volume group type`), groups and group
snapshots (`openstack volume group`, `openstack volume group snapshot`), volumes joining
and leaving through openstacksdk, a group made from a group snapshot with the data
checked on disk, refusals, microversion gating, policy and isolation (raw HTTP); volume
type encryption specs through `openstack volume type create --encryption-provider`."""
from __future__ import annotations

import hashlib
import time

import pytest

from tests.conftest import Cloud
from tests.volume.test_volumes import Api, project_user

V = ["--os-volume-api-version", "3.14"]


@pytest.fixture(scope="module")
def gcloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("groups"), config={("pocketstack", "enabled_services"): "identity,volume"})
    c.start()
    yield c
    c.stop()


def wait(api, path: str, key: str, status: str, version="3.14", timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while True:
        r = api("GET", path, version=version)
        body = r.json().get(key) if r.status_code == 200 else None
        if status == "gone" and r.status_code == 404:
            return {}
        if body and body["status"] == status:
            return body
        assert time.monotonic() < end, f"{path}: {r.status_code} {body and body['status']} != {status}"
        time.sleep(0.1)


def digest(cloud, volume_id: str) -> str:
    return hashlib.sha256((cloud.state_dir / "volume" / "file" / f"volume-{volume_id}").read_bytes()).hexdigest()


def test_group_types_cli(gcloud):
    gt = gcloud.os_json(*V, "volume", "group", "type", "create", "--description", "gold tier", "gold-gt")
    assert gt["Name"] == "gold-gt" and gt["Is Public"] is True and gt["Description"] == "gold tier"
    gcloud.openstack(*V, "volume", "group", "type", "set", "--property",
                     "consistent_group_snapshot_enabled=<is> False", gt["ID"])
    specs = gcloud.os_json(*V, "volume", "group", "type", "show", gt["ID"])["Properties"]
    assert specs == {"consistent_group_snapshot_enabled": "<is> False"}
    gcloud.os_json(*V, "volume", "group", "type", "create", "--private", "hidden-gt")
    names = [t["Name"] for t in gcloud.os_json(*V, "volume", "group", "type", "list")]
    assert "gold-gt" in names and "hidden-gt" not in names  # Cinder lists public types by default
    gcloud.openstack(*V, "volume", "group", "type", "set", "--name", "gold2-gt", "--property", "k=v", gt["ID"])
    shown = gcloud.os_json(*V, "volume", "group", "type", "show", gt["ID"])
    assert shown["Name"] == "gold2-gt" and shown["Properties"]["k"] == "v"
    gcloud.openstack(*V, "volume", "group", "type", "set", "--no-property", gt["ID"])
    assert gcloud.os_json(*V, "volume", "group", "type", "show", gt["ID"])["Properties"] == {}
    gcloud.openstack(*V, "volume", "group", "type", "delete", "hidden-gt")
    api = Api(gcloud)
    assert api("GET", "/group_types/hidden-gt", version="3.11").status_code == 404
    assert api("GET", "/group_types", version="3.10").status_code == 404  # 3.11+
    assert api("GET", "/group_types/default", version="3.11").status_code == 404  # none configured
    r = api("POST", "/group_types", {"group_type": {"name": "gold2-gt"}}, version="3.11")  # taken
    assert r.status_code == 409 and "conflictingRequest" in r.json()


def test_group_lifecycle_snapshots_and_clone(gcloud):
    api = Api(gcloud)
    gcloud.openstack("volume", "type", "create", "grp-vt")
    gcloud.openstack("volume", "type", "create", "other-vt")
    gcloud.os_json(*V, "volume", "group", "type", "create", "grp-gt")
    grp = gcloud.os_json(*V, "volume", "group", "create", "--volume-group-type", "grp-gt",
                         "--volume-type", "grp-vt", "--description", "two disks", "--name", "grp1")
    assert grp["Name"] == "grp1" and grp["Group Type"]
    grp = wait(api, f"/groups/{grp['ID']}", "group", "available")
    vt_id = gcloud.os_json("volume", "type", "show", "grp-vt")["id"]
    assert grp["volume_types"] == [vt_id] and grp["description"] == "two disks"

    conn = gcloud.sdk(block_storage_api_version="3.14")
    vols = [conn.block_storage.create_volume(size=1, name=f"member{i}", volume_type="grp-vt", group_id=grp["id"])
            for i in range(2)]
    for vol in vols:
        conn.block_storage.wait_for_status(vol, "available", wait=30)
        with open(gcloud.state_dir / "volume" / "file" / f"volume-{vol.id}", "r+b") as fh:
            fh.write(vol.id.encode() * 100)
    before = {v.id: digest(gcloud, v.id) for v in vols}
    listed = api("GET", f"/volumes/detail?group_id={grp['id']}", version="3.13").json()["volumes"]
    assert sorted(v["id"] for v in listed) == sorted(before) and all(v["group_id"] == grp["id"] for v in listed)

    # a volume of another type cannot join; a member cannot be deleted on its own
    r = api("POST", "/volumes", {"volume": {"size": 1, "volume_type": "other-vt", "group_id": grp["id"]}},
            version="3.13")
    assert r.status_code == 400 and "badRequest" in r.json()
    r = api("DELETE", f"/volumes/{vols[0].id}")
    assert r.status_code == 400 and "group" in r.json()["badRequest"]["message"]

    # leave and join again (sdk update_group), then the view with the volume list (3.25)
    api("PUT", f"/groups/{grp['id']}", {"group": {"remove_volumes": vols[1].id, "name": "grp1b"}}, version="3.13")
    wait(api, f"/groups/{grp['id']}", "group", "available")
    assert api("GET", f"/volumes/{vols[1].id}", version="3.13").json()["volume"]["group_id"] is None
    conn.block_storage.update_group(grp["id"], add_volumes=vols[1].id)
    wait(api, f"/groups/{grp['id']}", "group", "available")
    shown = api("GET", f"/groups/{grp['id']}?list_volume=true", version="3.25").json()["group"]
    assert shown["name"] == "grp1b" and sorted(shown["volumes"]) == sorted(before)

    # group snapshot through the CLI: one snapshot per member, then a group made from it
    gs = gcloud.os_json(*V, "volume", "group", "snapshot", "create", "--name", "gs1", grp["id"])
    assert gs["Name"] == "gs1" and gs["Group"] == grp["id"]
    gs = wait(api, f"/group_snapshots/{gs['ID']}", "group_snapshot", "available")
    snaps = api("GET", "/snapshots/detail", version="3.14").json()["snapshots"]
    members = [s for s in snaps if s["group_snapshot_id"] == gs["id"]]
    assert sorted(s["volume_id"] for s in members) == sorted(before)
    assert all(s["status"] == "available" for s in members)
    r = api("DELETE", f"/snapshots/{members[0]['id']}")
    assert r.status_code == 400  # it belongs to the group snapshot
    clone = gcloud.os_json(*V, "volume", "group", "create", "--group-snapshot", gs["id"], "--name", "from-gs")
    clone = wait(api, f"/groups/{clone['ID']}", "group", "available")
    assert clone["group_snapshot_id"] == gs["id"] and clone["name"] == "from-gs"
    copies = api("GET", f"/volumes/detail?group_id={clone['id']}", version="3.13").json()["volumes"]
    assert sorted(digest(gcloud, v["id"]) for v in copies) == sorted(before.values())
    assert {v["snapshot_id"] for v in copies} == {s["id"] for s in members}
    r = api("DELETE", f"/group_snapshots/{gs['id']}", version="3.14")
    assert r.status_code == 202
    wait(api, f"/group_snapshots/{gs['id']}", "group_snapshot", "gone")
    assert not [s for s in api("GET", "/snapshots").json()["snapshots"] if s["id"] in {m["id"] for m in members}]

    # delete: refused while it has volumes unless delete-volumes (the CLI's --force)
    r = api("POST", f"/groups/{grp['id']}/action", {"delete": {"delete-volumes": False}}, version="3.13")
    assert r.status_code == 400 and "volumes" in r.json()["badRequest"]["message"]
    gcloud.openstack(*V, "volume", "group", "delete", "--force", grp["id"])
    gcloud.openstack(*V, "volume", "group", "delete", "--force", clone["id"])
    wait(api, f"/groups/{grp['id']}", "group", "gone")
    wait(api, f"/groups/{clone['id']}", "group", "gone")
    for vid in list(before) + [v["id"] for v in copies]:
        assert api("GET", f"/volumes/{vid}").status_code == 404
        assert not (gcloud.state_dir / "volume" / "file" / f"volume-{vid}").exists()
    # the group type is free again
    gcloud.openstack(*V, "volume", "group", "type", "delete", "grp-gt")


def test_group_errors_status_policy_isolation(gcloud):
    api = Api(gcloud)
    gcloud.openstack("volume", "type", "create", "iso-vt")
    gt = {"id": gcloud.os_json(*V, "volume", "group", "type", "create", "iso-gt")["ID"]}
    body = {"group": {"group_type": gt["id"], "volume_types": ["iso-vt"], "name": "iso"}}
    assert api("POST", "/groups", body, version="3.12").status_code == 404  # 3.13+
    for bad in ({"volume_types": ["iso-vt"]}, {"group_type": gt["id"]},
                {"group_type": "nope", "volume_types": ["iso-vt"]},
                {"group_type": gt["id"], "volume_types": ["nope"]}):
        r = api("POST", "/groups", {"group": bad}, version="3.13")
        assert r.status_code in (400, 404) and next(iter(r.json())) in ("badRequest", "itemNotFound"), r.text
    r = api("POST", "/groups", body, version="3.13")
    assert r.status_code == 202 and set(r.json()["group"]) == {"id", "name"}
    gid = r.json()["group"]["id"]
    wait(api, f"/groups/{gid}", "group", "available")
    old = api("GET", f"/groups/{gid}", version="3.13").json()["group"]
    assert "group_snapshot_id" not in old and "project_id" not in old
    assert "project_id" in api("GET", f"/groups/{gid}", version="3.58").json()["group"]

    # reset status (3.20, admin) and the group snapshot of an empty group
    assert api("POST", f"/groups/{gid}/action", {"reset_status": {"status": "error"}}, version="3.19"
               ).status_code == 400
    assert api("POST", f"/groups/{gid}/action", {"reset_status": {"status": "error"}}, version="3.20"
               ).status_code == 202
    r = api("POST", "/group_snapshots", {"group_snapshot": {"group_id": gid}}, version="3.14")
    assert r.status_code == 400  # the group is in error
    api("POST", f"/groups/{gid}/action", {"reset_status": {"status": "available"}}, version="3.20")

    # another project: 404 for the group; a member cannot manage group types nor reset status
    user, pw = project_user(gcloud, "grp-other")
    other = Api(gcloud, user, pw, "grp-other")
    assert other("GET", f"/groups/{gid}", version="3.13").status_code == 404
    assert other("GET", "/groups", version="3.13").json()["groups"] == []
    assert other("POST", "/group_types", {"group_type": {"name": "x"}}, version="3.11").status_code == 403
    assert "group_specs" not in other("GET", f"/group_types/{gt['id']}", version="3.11").json()["group_type"]
    r = other("POST", "/groups", {"group": {"group_type": gt["id"], "volume_types": ["iso-vt"]}}, version="3.13")
    assert r.status_code == 202
    ogid = r.json()["group"]["id"]
    wait(other, f"/groups/{ogid}", "group", "available")
    assert other("POST", f"/groups/{ogid}/action", {"reset_status": {"status": "error"}}, version="3.20"
                 ).status_code == 403
    assert api("GET", f"/groups?all_tenants=1", version="3.13").json()["groups"]
    assert api("DELETE", f"/group_types/{gt['id']}", version="3.11").status_code == 400  # in use
    other("POST", f"/groups/{ogid}/action", {"delete": {}}, version="3.13")
    api("POST", f"/groups/{gid}/action", {"delete": {"delete-volumes": True}}, version="3.13")
    wait(api, f"/groups/{gid}", "group", "gone")
    wait(other, f"/groups/{ogid}", "group", "gone")
    assert api("DELETE", f"/group_types/{gt['id']}", version="3.11").status_code == 202


def test_encryption_types_cli_and_refusals(gcloud):
    api = Api(gcloud)
    gcloud.openstack("volume", "type", "create", "--encryption-provider", "luks", "--encryption-cipher",
                     "aes-xts-plain64", "--encryption-key-size", "256", "--encryption-control-location",
                     "front-end", "enc-vt")
    shown = gcloud.os_json("volume", "type", "show", "--encryption-type", "enc-vt")
    enc = shown["encryption"]
    assert enc["provider"] == "luks" and enc["cipher"] == "aes-xts-plain64" and enc["key_size"] == 256
    assert enc["control_location"] == "front-end" and enc["encryption_id"]
    gcloud.openstack("volume", "type", "set", "--encryption-key-size", "512", "--encryption-control-location",
                     "back-end", "enc-vt")
    type_id = shown["id"]
    raw = api("GET", f"/types/{type_id}/encryption").json()
    assert raw["key_size"] == 512 and raw["control_location"] == "back-end" and raw["volume_type_id"] == type_id
    assert api("GET", f"/types/{type_id}/encryption/cipher").json() == {"cipher": "aes-xts-plain64"}
    assert api("GET", f"/types/{type_id}/encryption/nope").status_code == 404
    types_listed = gcloud.os_json("volume", "type", "list", "--encryption-type")
    row = next(t for t in types_listed if t["Name"] == "enc-vt")
    assert "luks" in str(row["Encryption"])

    # a second spec, bad input, non-admins: refused
    r = api("POST", f"/types/{type_id}/encryption", {"encryption": {"provider": "luks",
                                                                    "control_location": "front-end"}})
    assert r.status_code == 400 and "already exists" in r.json()["badRequest"]["message"]
    gcloud.openstack("volume", "type", "create", "plain-vt")
    plain = gcloud.os_json("volume", "type", "show", "plain-vt")["id"]
    for bad in ({"provider": "luks"}, {"provider": "luks", "control_location": "sideways"},
                {"provider": "luks", "control_location": "front-end", "key_size": -1}):
        r = api("POST", f"/types/{plain}/encryption", {"encryption": bad})
        assert r.status_code == 400 and "badRequest" in r.json(), (bad, r.text)
    user, pw = project_user(gcloud, "enc-member")
    member = Api(gcloud, user, pw, "enc-member")
    assert member("GET", f"/types/{type_id}/encryption").status_code == 403

    # no key manager in this cloud: a volume of the encrypted type is refused with the reason
    err = gcloud.openstack_fails("volume", "create", "--size", "1", "--type", "enc-vt", "secret")
    assert "key manager" in err
    vol = gcloud.os_json("volume", "create", "--size", "1", "--type", "plain-vt", "plainvol")
    wait(api, f"/volumes/{vol['id']}", "volume", "available", version=None)
    r = api("POST", f"/volumes/{vol['id']}/action", {"os-retype": {"new_type": "enc-vt"}})
    assert r.status_code == 400 and "key manager" in r.json()["badRequest"]["message"]
    # in use: the plain type's encryption cannot be created now
    r = api("POST", f"/types/{plain}/encryption", {"encryption": {"provider": "luks",
                                                                  "control_location": "front-end"}})
    assert r.status_code == 400 and "in use" in r.json()["badRequest"]["message"]

    gcloud.openstack("volume", "type", "unset", "--encryption-type", "enc-vt")
    assert api("GET", f"/types/{type_id}/encryption").json() == {}
    assert gcloud.os_json("volume", "create", "--size", "1", "--type", "enc-vt", "now-plain")["id"]
