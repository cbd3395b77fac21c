"""Large objects (DLO `X-Object-Manifest`, SLO `?multipart-manifest=`) driven by the real `swift`
CLI (`swift upload --segment-size`, with and without `--use-slo`), python-swiftclient and raw HTTP."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("locloud"),
              config={("pocketstack", "enabled_services"): "identity,object"})
    c.start()
    yield c
    c.stop()


def swift(cloud, *args, cwd=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
                          "--os-password", cloud.admin_password, "--os-project-name", "admin",
                          "--os-user-domain-name", "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=180, cwd=cwd, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


class Client:
    def __init__(self, cloud):
        token = cloud.token()
        r = httpx.get(cloud.auth_url + "/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
        self.account = "AUTH_" + r.json()["token"]["project"]["id"]
        self.token = token
        self.base = f"{cloud.url}/object/v1/{self.account}"
        self.http = httpx.Client(headers={"X-Auth-Token": token}, timeout=120)

    def __call__(self, method, path="", **kw):
        return self.http.request(method, self.base + path, **kw)


@pytest.fixture(scope="module")
def api(cloud):
    return Client(cloud)


def unique(prefix="lo"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def keystone_user(cloud, project: str, role: str = "member") -> tuple[tuple[str, str], str]:
    """A fresh user with `role` on `project` (created when missing), via Keystone's REST API
    (faster than the CLI); returns ((name, password), project_id)."""
    h = {"X-Auth-Token": cloud.token()}
    r = httpx.get(cloud.auth_url + "/projects", params={"name": project}, headers=h)
    found = r.json()["projects"]
    if found:
        pid = found[0]["id"]
    else:
        r = httpx.post(cloud.auth_url + "/projects", json={"project": {"name": project, "domain_id": "default"}},
                       headers=h)
        pid = r.json()["project"]["id"]
    name, password = f"u-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex[:12]}"
    r = httpx.post(cloud.auth_url + "/users", json={"user": {"name": name, "password": password,
                                                             "domain_id": "default"}}, headers=h)
    uid = r.json()["user"]["id"]
    rid = httpx.get(cloud.auth_url + "/roles", params={"name": role}, headers=h).json()["roles"][0]["id"]
    assert httpx.put(f"{cloud.auth_url}/projects/{pid}/users/{uid}/roles/{rid}", headers=h).status_code == 204
    return (name, password), pid


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_info_advertises_large_objects_and_bulk(cloud):
    info = httpx.get(cloud.url + "/object/info").json()
    assert info["slo"]["max_manifest_segments"] == 1000
    assert info["slo"]["min_segment_size"] == 1 and info["slo"]["max_manifest_size"] == 8 * MiB
    assert info["dlo"]["max_get_time"] == 86400
    assert info["bulk_delete"]["max_deletes_per_request"] == 10000
    assert "max_containers_per_extraction" in info["bulk_upload"]
    assert '"slo"' in swift(cloud, "capabilities", "--json").stdout


@pytest.mark.parametrize("use_slo", [True, False], ids=["slo", "dlo"])
def test_swift_cli_segmented_upload_download_delete(cloud, api, tmp_path, use_slo):
    data = os.urandom(3 * MiB + 12345)
    (tmp_path / "big.bin").write_bytes(data)
    c = unique()
    args = ["upload", c, "big.bin", "--segment-size", str(MiB), "--use-slo" if use_slo else "--use-dlo"]
    swift(cloud, *args, cwd=tmp_path)
    segments = swift(cloud, "list", c + "_segments").stdout.split()
    assert len(segments) == 4 and all(s.startswith("big.bin/") for s in segments)
    stat = swift(cloud, "stat", c, "big.bin").stdout
    assert f"Content Length: {len(data)}" in stat
    if use_slo:
        assert "X-Static-Large-Object: True" in stat
    else:
        assert f"Manifest: {c}_segments/big.bin/" in stat, stat.replace("\n", " | ")
    head = api("HEAD", f"/{c}/big.bin")
    assert head.headers["etag"].startswith('"') and int(head.headers["content-length"]) == len(data)
    out = tmp_path / "out"
    out.mkdir()
    swift(cloud, "download", c, "big.bin", cwd=out)
    assert (out / "big.bin").read_bytes() == data
    # a range across the first segment boundary
    r = api("GET", f"/{c}/big.bin", headers={"Range": f"bytes={MiB - 10}-{MiB + 9}"})
    assert r.status_code == 206 and r.content == data[MiB - 10:MiB + 10]
    assert r.headers["content-range"] == f"bytes {MiB - 10}-{MiB + 9}/{len(data)}"
    # an overwrite replaces the segments (swiftclient reads the old manifest to find them)
    data = os.urandom(2 * MiB + 1)
    (tmp_path / "big.bin").write_bytes(data)
    swift(cloud, *args, cwd=tmp_path)
    assert len(swift(cloud, "list", c + "_segments").stdout.split()) == 3
    assert api("GET", f"/{c}/big.bin").content == data
    swift(cloud, "delete", c, "big.bin")
    assert swift(cloud, "list", c + "_segments").stdout.split() == []
    assert api("GET", f"/{c}/big.bin").status_code == 404


def _segments(api, c, sizes, prefix="seg"):
    out = []
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        assert api("PUT", f"/{c}/{prefix}/{i:03d}", content=data).status_code == 201
        out.append(data)
    return out


def test_slo_put_get_head_ranges_conditionals(cloud, api):
    c = unique()
    assert api("PUT", f"/{c}").status_code == 201
    parts = _segments(api, c, [MiB, MiB, 1000])
    manifest = [{"path": f"/{c}/seg/{i:03d}", "etag": md5(d), "size_bytes": len(d)} for i, d in enumerate(parts)]
    r = api("PUT", f"/{c}/slo", params={"multipart-manifest": "put"}, content=json.dumps(manifest),
            headers={"X-Object-Meta-Color": "blue", "Content-Type": "application/x-big"})
    assert r.status_code == 201, r.text
    slo_etag = md5("".join(md5(d) for d in parts).encode())
    assert r.headers["etag"] == f'"{slo_etag}"' and r.headers["last-modified"]
    whole = b"".join(parts)
    head = api("HEAD", f"/{c}/slo")
    assert head.status_code == 200
    assert head.headers["x-static-large-object"] == "True"
    assert head.headers["etag"] == f'"{slo_etag}"' and int(head.headers["content-length"]) == len(whole)
    assert head.headers["content-type"] == "application/x-big" and head.headers["x-object-meta-color"] == "blue"
    assert not any(k.lower().startswith("x-object-sysmeta") for k in head.headers)
    get = api("GET", f"/{c}/slo")
    assert get.status_code == 200 and get.content == whole
    # ranges inside one segment, across segments, suffix, unsatisfiable
    for lo, hi in [(5, 50), (MiB - 3, MiB + 3), (MiB - 1, 2 * MiB + 5), (0, len(whole) - 1)]:
        r = api("GET", f"/{c}/slo", headers={"Range": f"bytes={lo}-{hi}"})
        assert r.status_code == 206 and r.content == whole[lo:hi + 1], (lo, hi)
    r = api("GET", f"/{c}/slo", headers={"Range": "bytes=-1500"})
    assert r.status_code == 206 and r.content == whole[-1500:]
    r = api("GET", f"/{c}/slo", headers={"Range": f"bytes={len(whole)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(whole)}"
    # conditionals on the whole object's ETag
    assert api("GET", f"/{c}/slo", headers={"If-Match": f'"{slo_etag}"'}).status_code == 200
    assert api("GET", f"/{c}/slo", headers={"If-Match": '"nope"'}).status_code == 412
    assert api("GET", f"/{c}/slo", headers={"If-None-Match": f'"{slo_etag}"'}).status_code == 304
    # the manifest itself, stored form and raw (PUT) form
    m = api("GET", f"/{c}/slo", params={"multipart-manifest": "get"})
    assert m.status_code == 200 and m.headers["content-type"].startswith("application/json")
    stored = m.json()
    assert [s["name"] for s in stored] == [f"/{c}/seg/{i:03d}" for i in range(3)]
    assert [s["bytes"] for s in stored] == [MiB, MiB, 1000] and stored[0]["hash"] == md5(parts[0])
    assert head.headers["x-manifest-etag"] == md5(m.content)
    raw = api("GET", f"/{c}/slo", params={"multipart-manifest": "get", "format": "raw"}).json()
    assert raw == [{"etag": md5(d), "path": f"/{c}/seg/{i:03d}", "size_bytes": len(d)} for i, d in enumerate(parts)]
    # the listing shows the manifest object
    listing = api("GET", f"/{c}", params={"format": "json", "prefix": "slo"}).json()
    assert [o["name"] for o in listing] == ["slo"]
    # POST keeps it a large object
    assert api("POST", f"/{c}/slo", headers={"X-Object-Meta-Color": "red"}).status_code == 202
    head = api("HEAD", f"/{c}/slo")
    assert head.headers["x-static-large-object"] == "True" and head.headers["x-object-meta-color"] == "red"
    assert head.headers["etag"] == f'"{slo_etag}"'


def test_slo_data_ranged_and_nested_segments(cloud, api):
    c = unique()
    api("PUT", f"/{c}")
    a, b = _segments(api, c, [4000, 3000])
    inner = [{"path": f"/{c}/seg/000", "range": "100-199"}, {"data": base64.b64encode(b"--inline--").decode()},
             {"path": f"/{c}/seg/001", "range": "-10"}]
    r = api("PUT", f"/{c}/inner", params={"multipart-manifest": "put"}, content=json.dumps(inner))
    assert r.status_code == 201, r.text
    inner_bytes = a[100:200] + b"--inline--" + b[-10:]
    expected_inner = md5((f"{md5(a)}:100-199;" + md5(b"--inline--") + f"{md5(b)}:2990-2999;").encode())
    assert r.headers["etag"] == f'"{expected_inner}"'
    assert api("GET", f"/{c}/inner").content == inner_bytes
    outer = [{"path": f"/{c}/inner", "etag": expected_inner, "size_bytes": len(inner_bytes)},
             {"path": f"/{c}/seg/001"}]
    r = api("PUT", f"/{c}/outer", params={"multipart-manifest": "put"}, content=json.dumps(outer))
    assert r.status_code == 201, r.text
    whole = inner_bytes + b
    g = api("GET", f"/{c}/outer")
    assert g.content == whole and int(g.headers["content-length"]) == len(whole)
    r = api("GET", f"/{c}/outer", headers={"Range": "bytes=95-125"})
    assert r.status_code == 206 and r.content == whole[95:126]
    assert api("GET", f"/{c}/outer", params={"multipart-manifest": "get"}).json()[0]["sub_slo"] is True
    # delete everything: nested manifest, its segments, the outer manifest
    d = api("DELETE", f"/{c}/outer", params={"multipart-manifest": "delete"}, headers={"Accept": "application/json"})
    assert d.status_code == 200, d.text
    body = d.json()
    assert body["Response Status"] == "200 OK" and body["Errors"] == []
    assert body["Number Deleted"] == 4  # seg/000, seg/001, inner, outer (seg/001 is listed twice)
    assert body["Number Not Found"] == 1
    assert api("GET", f"/{c}", params={"format": "json"}).json() == []


def test_slo_bad_manifests_are_400_and_write_nothing(cloud, api):
    c = unique()
    api("PUT", f"/{c}")
    (small,) = _segments(api, c, [10])
    bad = [
        ("not json", "Manifest must be valid JSON."),
        ('{"a": 1}', "Manifest must be a list."),
        (json.dumps([{"path": "nocontainer"}]), "Index 0: path does not refer to an object"),
        (json.dumps([{"path": f"/{c}/seg/000", "bogus": 1}]), 'Index 0: extraneous keys "bogus"'),
        (json.dumps([{"path": f"/{c}/seg/000", "range": "x-y"}]), "Index 0: invalid range"),
        (json.dumps([{"path": f"/{c}/seg/000", "size_bytes": 0}, {"path": f"/{c}/seg/000"}]),
         "Index 0: too small; each segment must be at least 1 byte."),
        (json.dumps([{"data": "!!notbase64"}]), "Index 0: data must be valid base64"),
        (json.dumps([{"path": f"/{c}/bad"}]), "Index 0: manifest must not include itself as a segment"),
        ('[{"path": "/%s/a\\ud800b"}]' % c, "Index 0: path does not refer to an object"),
        ('[{"path": "/%s/a\\u0000b"}]' % c, "Index 0: path does not refer to an object"),
        (json.dumps([{"path": f"/{c}/seg/000", "size_bytes": "big"}]), "Index 0: invalid size_bytes"),
        (json.dumps([{"path": f"/{c}/seg/000", "range": "1-2,5-6"}]), "Index 0: multiple ranges (only one allowed)"),
        (json.dumps([{"path": f"/{c}/seg/000", "size_bytes": 10, "range": "20-30"}]), "Index 0: unsatisfiable range"),
        (json.dumps([1]), "Index 0: not a JSON object"),
        (json.dumps([{"data": "aGk="}]), "Inline data segments require at least one object-backed segment."),
    ]
    for body, text in bad:
        r = api("PUT", f"/{c}/bad", params={"multipart-manifest": "put"}, content=body)
        assert r.status_code == 400 and text in r.text, (body, r.status_code, r.text)
    # problems found by looking at the segments: all listed, in upstream's "Errors:" body
    manifest = [{"path": f"/{c}/missing"}, {"path": f"/{c}/seg/000", "etag": "0" * 32},
                {"path": f"/{c}/seg/000", "size_bytes": 11}]
    r = api("PUT", f"/{c}/bad", params={"multipart-manifest": "put"}, content=json.dumps(manifest))
    assert r.status_code == 400
    assert r.text.splitlines() == ["Errors:", f"/{c}/missing, 404 Not Found", f"/{c}/seg/000, Etag Mismatch",
                                   f"/{c}/seg/000, Size Mismatch"]
    r = api("PUT", f"/{c}/bad", params={"multipart-manifest": "put"}, content=json.dumps(manifest),
            headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.json()["Errors"][0] == [f"/{c}/missing", "404 Not Found"]
    too_many = [{"path": f"/{c}/seg/000"}] * 1001
    r = api("PUT", f"/{c}/bad", params={"multipart-manifest": "put"}, content=json.dumps(too_many))
    assert r.status_code == 413 and "Number of object-backed segments must be <= 1000" in r.text
    ok = [{"path": f"/{c}/seg/000"}]
    r = api("PUT", f"/{c}/bad", params={"multipart-manifest": "put"}, content=json.dumps(ok),
            headers={"Etag": "0" * 32})
    assert r.status_code == 422
    r = api("PUT", f"/{c}/bad", content=b"x", headers={"X-Static-Large-Object": "True"})
    assert r.status_code == 400 and "reserved header" in r.text
    r = api("PUT", f"/{c}/bad", params={"multipart-manifest": "put"}, content=json.dumps(ok),
            headers={"X-Copy-From": f"{c}/seg/000"})
    assert r.status_code == 405
    assert api("HEAD", f"/{c}/bad").status_code == 404
    # a broken SLO: its first segment replaced -> 409 before any byte
    assert api("PUT", f"/{c}/good", params={"multipart-manifest": "put"}, content=json.dumps(ok)).status_code == 201
    assert api("GET", f"/{c}/good").content == small
    api("PUT", f"/{c}/seg/000", content=b"changed!!!")
    assert api("GET", f"/{c}/good").status_code == 409
    # deleting something that is not an SLO as one
    d = api("DELETE", f"/{c}/seg/000", params={"multipart-manifest": "delete"})
    assert d.status_code == 200 and "Response Status: 400 Bad Request" in d.text and "Not an SLO manifest" in d.text
    assert api("HEAD", f"/{c}/seg/000").status_code == 200


def test_dlo_api_as_tempest(cloud, api):
    c = unique()
    api("PUT", f"/{c}")
    parts = [f"data-{i}".encode() * 100 for i in range(5)]
    for i, p in enumerate(parts):
        assert api("PUT", f"/{c}/big/{i}", content=p).status_code == 201
    # manifest created empty, then made a manifest by POST (Tempest's flow)
    assert api("PUT", f"/{c}/big", content=b"").status_code == 201
    assert api("POST", f"/{c}/big", headers={"X-Object-Manifest": f"{c}/big/"}).status_code == 202
    head = api("HEAD", f"/{c}/big")
    whole = b"".join(parts)
    assert head.headers["x-object-manifest"] == f"{c}/big/"
    assert head.headers["etag"] == '"%s"' % md5("".join(md5(p) for p in parts).encode())
    assert int(head.headers["content-length"]) == len(whole)
    assert api("GET", f"/{c}/big").content == whole
    r = api("GET", f"/{c}/big", headers={"Range": "bytes=450-1050"})
    assert r.status_code == 206 and r.content == whole[450:1051]
    assert api("GET", f"/{c}/big", params={"multipart-manifest": "get"}).content == b""
    # the prefix may include the manifest itself (Tempest's `container/object_name`)
    assert api("PUT", f"/{c}/big", content=b"", headers={"X-Object-Manifest": f"{c}/big"}).status_code == 201
    assert api("GET", f"/{c}/big").content == whole
    # new segments show up at once
    api("PUT", f"/{c}/big/9", content=b"tail")
    assert api("GET", f"/{c}/big").content == whole + b"tail"
    # copies: content by default, the manifest with ?multipart-manifest=get
    r = api("PUT", f"/{c}/copy", headers={"X-Copy-From": f"{c}/big"})
    assert r.status_code == 201
    copy = api("GET", f"/{c}/copy")
    assert copy.content == whole + b"tail" and "x-object-manifest" not in copy.headers
    r = api("COPY", f"/{c}/big", params={"multipart-manifest": "get"}, headers={"Destination": f"{c}/mcopy"})
    assert r.status_code == 201
    assert api("HEAD", f"/{c}/mcopy").headers["x-object-manifest"] == f"{c}/big"
    assert api("GET", f"/{c}/mcopy").content == whole + b"tail"
    for value in ("nocontainer", f"{c}/", f"/{c}", f"{c}/x?y"):
        r = api("PUT", f"/{c}/bad", content=b"", headers={"X-Object-Manifest": value})
        assert r.status_code == 400 and "X-Object-Manifest must be in the format container/prefix" in r.text
    # a manifest whose segment container does not exist
    api("PUT", f"/{c}/orphan", content=b"", headers={"X-Object-Manifest": "no-such-container/x"})
    assert api("GET", f"/{c}/orphan").status_code == 404


def test_slo_copy_and_python_swiftclient(cloud, api):
    from swiftclient.client import Connection

    conn = Connection(preauthurl=api.base, preauthtoken=api.token)
    c = unique()
    conn.put_container(c)
    parts = [os.urandom(MiB), os.urandom(500)]
    for i, p in enumerate(parts):
        conn.put_object(c, f"s/{i}", p)
    manifest = [{"path": f"/{c}/s/{i}", "etag": md5(p), "size_bytes": len(p)} for i, p in enumerate(parts)]
    conn.put_object(c, "m", json.dumps(manifest), query_string="multipart-manifest=put")
    headers, body = conn.get_object(c, "m")
    assert body == b"".join(parts) and headers["x-static-large-object"] == "True"
    # a copy of an SLO is a plain object with the content; with ?multipart-manifest=get, a manifest
    conn.copy_object(c, "m", f"/{c}/plain")
    h = conn.head_object(c, "plain")
    assert "x-static-large-object" not in h and h["etag"] == md5(b"".join(parts))
    r = api("COPY", f"/{c}/m", params={"multipart-manifest": "get"}, headers={"Destination": f"{c}/m2"})
    assert r.status_code == 201
    assert conn.head_object(c, "m2")["x-static-large-object"] == "True"
    assert conn.get_object(c, "m2")[1] == b"".join(parts)
    conn.delete_object(c, "m", query_string="multipart-manifest=delete")
    assert sorted(o["name"] for o in conn.get_container(c)[1]) == ["m2", "plain"]


@pytest.mark.parametrize("use_slo", [True, False], ids=["slo", "dlo"])
def test_openstacksdk_segmented_create_object(cloud, api, tmp_path, use_slo):
    conn = cloud.sdk()
    c = unique()
    conn.object_store.create_container(c)
    data = os.urandom(2 * MiB + 777)
    (tmp_path / "f").write_bytes(data)
    conn.object_store.create_object(c, "sdk.bin", filename=str(tmp_path / "f"), segment_size=MiB,
                                    use_slo=use_slo)
    head = api("HEAD", f"/{c}/sdk.bin")
    assert ("x-static-large-object" in head.headers) == use_slo
    assert ("x-object-manifest" in head.headers) == (not use_slo)
    assert int(head.headers["content-length"]) == len(data)
    assert conn.object_store.download_object("sdk.bin", container=c) == data


def test_slo_heartbeat_and_part_number(cloud, api):
    c = unique()
    api("PUT", f"/{c}")
    parts = _segments(api, c, [1000, 2000, 300])
    manifest = [{"path": f"/{c}/seg/{i:03d}"} for i in range(3)]
    r = api("PUT", f"/{c}/hb", params={"multipart-manifest": "put", "heartbeat": "on"},
            content=json.dumps(manifest), headers={"Accept": "application/json"})
    assert r.status_code == 202
    result = json.loads(r.content)
    assert result["Response Status"] == "201 Created" and result["Errors"] == []
    assert result["Etag"] == '"%s"' % md5("".join(md5(p) for p in parts).encode())
    bad = manifest + [{"path": f"/{c}/nope"}]
    r = api("PUT", f"/{c}/hb2", params={"multipart-manifest": "put", "heartbeat": "on"}, content=json.dumps(bad))
    assert r.status_code == 202 and "Response Status: 400 Bad Request" in r.text
    assert f"/{c}/nope, 404 Not Found" in r.text and api("HEAD", f"/{c}/hb2").status_code == 404
    r = api("GET", f"/{c}/hb", params={"part-number": "2"})
    assert r.status_code == 206 and r.content == parts[1] and r.headers["x-parts-count"] == "3"
    assert r.headers["content-range"] == "bytes 1000-2999/3300"
    h = api("HEAD", f"/{c}/hb", params={"part-number": "3"})
    assert h.status_code == 206 and h.headers["content-length"] == "300"
    r = api("GET", f"/{c}/hb", params={"part-number": "4"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */3300"
    assert api("GET", f"/{c}/hb", params={"part-number": "zero"}).status_code == 400
    r = api("PUT", f"/{c}/hb", params={"multipart-manifest": "put"}, content=json.dumps(manifest),
            headers={"If-None-Match": "*"})
    assert r.status_code == 412


def test_no_server_errors_logged(cloud):
    assert "Traceback" not in (cloud.state_dir / "up.out").read_text()


def test_segments_are_read_with_the_callers_rights(cloud, api):
    """A manifest never reveals an object its reader could not GET directly (ACLs, anonymous)."""
    project = unique("p")
    (user, password), pid = keystone_user(cloud, project)
    tok = cloud.token(user, password, project)
    other = httpx.Client(headers={"X-Auth-Token": tok}, timeout=60)
    private, shared = unique("private"), unique("shared")
    api("PUT", f"/{private}")
    api("PUT", f"/{private}/secret", content=b"top secret")
    api("PUT", f"/{shared}", headers={"X-Container-Write": f"{pid}:*", "X-Container-Read": f"{pid}:*,.r:*"})
    api("PUT", f"/{shared}/seg", content=b"shared bytes")
    url = f"{api.base}/{shared}"
    # an SLO over a segment the writer cannot read: 400, the segment's 403 listed
    manifest = json.dumps([{"path": f"/{private}/secret"}])
    r = other.put(f"{url}/m", params={"multipart-manifest": "put"}, content=manifest)
    assert r.status_code == 400 and f"/{private}/secret, 403 Forbidden" in r.text
    ok = json.dumps([{"path": f"/{shared}/seg"}])
    assert other.put(f"{url}/m", params={"multipart-manifest": "put"}, content=ok).status_code == 201
    assert other.get(f"{url}/m").content == b"shared bytes"
    # a DLO pointing into the private container: the listing is refused
    assert other.put(f"{url}/d", content=b"", headers={"X-Object-Manifest": f"{private}/s"}).status_code == 201
    assert other.get(f"{url}/d").status_code == 403
    assert api("GET", f"/{shared}/d").content == b"top secret"  # the owner may read it
    # the owner's SLO in the public container over a private segment: anonymous readers get 409
    api("PUT", f"/{shared}/pub", params={"multipart-manifest": "put"}, content=manifest)
    assert httpx.get(f"{url}/pub").status_code == 409
    assert api("GET", f"/{shared}/pub").content == b"top secret"
    # and a multipart-manifest=delete by the writer cannot delete the private segment
    api("PUT", f"/{shared}/pub2", params={"multipart-manifest": "put"}, content=manifest)
    r = other.delete(f"{url}/pub2", params={"multipart-manifest": "delete"}, headers={"Accept": "application/json"})
    assert r.json()["Errors"] == [[f"/{private}/secret", "403 Forbidden"]]
    assert api("HEAD", f"/{private}/secret").status_code == 200


def test_unit_segment_ranges_and_etags():
    from pocketstack.object import slo

    assert slo._parse_seg_range("1-2") == (1, 2) and slo._parse_seg_range("-5") == (None, 5)
    assert slo._parse_seg_range("7-") == (7, None) and slo._parse_seg_range("1-2,3-4") == "multi"
    for bad in ("", "-", "a-b", "5-1", "1-2,x", 12):
        assert slo._parse_seg_range(bad) is None, bad
    assert slo._resolve_range((None, 5), 3) == (0, 3) and slo._resolve_range((2, None), 10) == (2, 10)
    assert slo._resolve_range((10, 20), 10) is None and slo._resolve_range((None, 0), 10) is None
    segs = [{"hash": "a" * 32}, {"hash": "b" * 32, "range": "0-1"}, {"data": base64.b64encode(b"hi").decode()}]
    assert slo._etag_of(segs) == md5(("a" * 32 + "b" * 32 + ":0-1;" + md5(b"hi")).encode())
    assert [n for _, n in slo._annotated([{"bytes": 9}, {"bytes": 9, "range": "2-4"}, segs[2]])] == [9, 3, 2]


def test_tempurl_reads_a_large_object(cloud, api):
    from swiftclient.utils import generate_temp_url

    c = unique()
    api("PUT", f"/{c}")
    parts = _segments(api, c, [2000, 10])
    api("PUT", f"/{c}/slo", params={"multipart-manifest": "put"},
        content=json.dumps([{"path": f"/{c}/seg/000"}, {"path": f"/{c}/seg/001"}]))
    api("PUT", f"/{c}/dlo", content=b"", headers={"X-Object-Manifest": f"{c}/seg/"})
    assert api("POST", "", headers={"X-Account-Meta-Temp-URL-Key": "lo-key"}).status_code == 204
    for name in ("slo", "dlo"):
        path = generate_temp_url(f"/object/v1/{api.account}/{c}/{name}", 300, "lo-key", "GET")
        r = httpx.get(cloud.url + path)
        assert r.status_code == 200 and r.content == b"".join(parts), (name, r.status_code, r.text[:200])


def test_fuzzed_manifests_never_500(cloud, api):
    import random

    rng = random.Random(7)
    c = unique()
    api("PUT", f"/{c}")
    api("PUT", f"/{c}/s", content=b"0123456789")
    values = [None, 0, -1, 1, 10, 11, "10", "x", 1.5, True, [], {}, "", "/", f"/{c}/s", f"{c}/s", "/nope/x",
              "0-5", "-3", "5-", "9-2", "1-2,3-4", "a" * 2000, "\ud800", "%00", "aGk=", "@@"]
    keys = ["path", "etag", "size_bytes", "range", "data", "bogus"]
    for _ in range(60):
        manifest = [{k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 3))}
                    for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.7:
            manifest.append({"path": f"/{c}/s"})
        r = api("PUT", f"/{c}/m", params={"multipart-manifest": "put"}, content=json.dumps(manifest))
        assert r.status_code in (201, 400, 413), (manifest, r.status_code, r.text)
        if r.status_code == 201:
            g = api("GET", f"/{c}/m")
            assert g.status_code == 200 and len(g.content) == int(g.headers["content-length"]), manifest
