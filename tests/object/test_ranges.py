"""Object GETs with `Range`: one range, several (206 multipart/byteranges), unsatisfiable and
egregious sets (416), ignored headers, If-Range; for plain objects and large objects (DLO/SLO).

Driven by python-swiftclient (`Connection.get_object(headers={'Range': ...})`), the `swift` CLI
(`download --header Range:...`) and raw HTTP (httpx); every multipart body is parsed by the
standard library's MIME parser, not by our own code.
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from swiftclient import client as swiftclient

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
BODY = bytes(range(256)) * 4  # 1024 bytes, every offset recognisable


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("ranges"), config={("pocketstack", "enabled_services"): "identity,object"})
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def conn(cloud):
    return swiftclient.Connection(authurl=cloud.auth_url, user="admin", key=cloud.admin_password, auth_version="3",
                                  os_options={"project_name": "admin", "user_domain_name": "Default",
                                              "project_domain_name": "Default"})


@pytest.fixture(scope="module")
def obj(conn):
    """(container, name, etag, url, token) of a 1024-byte object of type text/x-test."""
    c = f"rng-{uuid.uuid4().hex[:6]}"
    conn.put_container(c)
    etag = conn.put_object(c, "o", BODY, content_type="text/x-test")
    url, token = conn.get_auth()
    return c, "o", etag, f"{url}/{c}/o", token


def parts_of(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """(Content-Type, Content-Range, payload) of each part, parsed by the email package."""
    msg = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
                                   policy=email.policy.HTTP)
    assert msg.is_multipart(), content_type
    return [(p["Content-Type"], p["Content-Range"], p.get_payload(decode=True)) for p in msg.iter_parts()]


def get(obj, rng=None, method="GET", **headers):
    _, _, _, url, token = obj
    if rng is not None:
        headers["Range"] = rng
    return httpx.request(method, url, headers={"X-Auth-Token": token, **headers}, timeout=30)


def test_multi_range_with_swiftclient(conn, obj):
    c, name, _, _, _ = obj
    headers, body = conn.get_object(c, name, headers={"Range": "bytes=0-9,20-29"})
    assert headers["content-type"].startswith("multipart/byteranges;boundary=")
    assert int(headers["content-length"]) == len(body)
    assert parts_of(headers["content-type"], body) == [
        ("text/x-test", "bytes 0-9/1024", BODY[0:10]), ("text/x-test", "bytes 20-29/1024", BODY[20:30])]
    # The exact framing, as swob writes it: --B CRLF headers CRLF CRLF data CRLF ... --B--
    boundary = headers["content-type"].split("boundary=", 1)[1]
    assert body == (f"--{boundary}\r\nContent-Type: text/x-test\r\nContent-Range: bytes 0-9/1024\r\n\r\n".encode()
                    + BODY[0:10] + f"\r\n--{boundary}\r\nContent-Type: text/x-test\r\nContent-Range: bytes "
                    f"20-29/1024\r\n\r\n".encode() + BODY[20:30] + f"\r\n--{boundary}--".encode())
    # A single range stays a plain 206.
    headers, body = conn.get_object(c, name, headers={"Range": "bytes=100-199"})
    assert body == BODY[100:200] and headers["content-range"] == "bytes 100-199/1024"
    assert headers["content-type"] == "text/x-test"


@pytest.mark.parametrize("rng, expected", [
    ("bytes=10-15,-5", [(10, 16), (1019, 1024)]),  # the api-ref's examples
    ("bytes=1-3,2-5", [(1, 4), (2, 6)]),  # overlapping: served as asked, not coalesced
    ("bytes = 0-0, 1023-", [(0, 1), (1023, 1024)]),  # spaces are ignored
    ("bytes=0-1,5000-6000,-2000", [(0, 2), (0, 1024)]),  # a suffix past the start is the whole
    ("bytes=5-1,0-1", None),  # any bad spec: the header is ignored
    ("bytes=0-1,x-3", None),
    ("bytes=0-1,-", None),
    ("bytes=7", None),
    ("items=0-1,3-4", None),
    ("bytes=0-1,5000-6000", [(0, 2)]),  # unsatisfiable specs are dropped: one part left
    ("bytes=-0,4-4", [(4, 5)]),
    ("bytes=2000-,5000-6000", []),  # none satisfiable
    ("bytes=0-9,1-9,2-9", []),  # 3 overlapping pairs (more than 2)
    ("bytes=0-9,1-9", [(0, 10), (1, 10)]),
    (",".join(f"{i}-{i}" for i in range(8, 0, -1)).join(["bytes=", ""]), []),  # 8 not ascending
    (",".join(f"{i}-{i}" for i in range(7, 0, -1)).join(["bytes=", ""]), [(i, i + 1) for i in range(7, 0, -1)]),
    (",".join(f"{2 * i}-{2 * i}" for i in range(51)).join(["bytes=", ""]), []),  # more than 50
    (",".join(f"{2 * i}-{2 * i}" for i in range(50)).join(["bytes=", ""]), [(2 * i, 2 * i + 1) for i in range(50)]),
])
def test_range_rules(obj, rng, expected):
    r = get(obj, rng)
    assert int(r.headers["content-length"]) == len(r.content)
    if expected is None:
        assert r.status_code == 200 and r.content == BODY and "content-range" not in r.headers
    elif expected == []:
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */1024"
        assert r.text == "<html><h1>Requested Range Not Satisfiable</h1><p>The Range requested is not available.</p></html>"
    elif len(expected) == 1:
        (start, stop), = expected
        assert r.status_code == 206 and r.content == BODY[start:stop]
        assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/1024"
    else:
        assert r.status_code == 206 and "content-range" not in r.headers
        assert parts_of(r.headers["content-type"], r.content) == [
            ("text/x-test", f"bytes {start}-{stop - 1}/1024", BODY[start:stop]) for start, stop in expected]


def test_head_and_conditionals_with_ranges(obj):
    _, _, etag, _, _ = obj
    head = get(obj, "bytes=0-9,20-29", method="HEAD")  # swob answers HEAD before looking at Range
    assert head.status_code == 200 and head.headers["content-length"] == "1024"
    assert head.headers["content-type"] == "text/x-test"
    last_modified = head.headers["last-modified"]
    assert get(obj, "bytes=0-9,20-29", **{"If-None-Match": etag}).status_code == 304
    assert get(obj, "bytes=0-9,20-29", **{"If-Match": "nope"}).status_code == 412
    # If-Range: the current ETag (quoted or not) or Last-Modified keeps the range; else the whole object.
    for value in (etag, f'"{etag}"', last_modified):
        r = get(obj, "bytes=0-9,20-29", **{"If-Range": value})
        assert r.status_code == 206 and len(parts_of(r.headers["content-type"], r.content)) == 2, value
    for value in ("0" * 32, f'W/"{etag}"', "Mon, 01 Jan 2001 00:00:00 GMT"):
        r = get(obj, "bytes=0-9", **{"If-Range": value})
        assert r.status_code == 200 and r.content == BODY, value


def test_empty_object_ranges(conn, obj):
    c = obj[0]
    conn.put_object(c, "empty", b"")
    url, token = conn.get_auth()
    r = httpx.get(f"{url}/{c}/empty", headers={"X-Auth-Token": token, "Range": "bytes=0-1,3-4"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */0"
    r = httpx.get(f"{url}/{c}/empty", headers={"X-Auth-Token": token, "Range": "bytes=-5"})
    assert r.status_code == 200 and r.content == b""  # a suffix of nothing: the (empty) whole, as swob


def test_swift_cli_download_with_ranges(cloud, obj, tmp_path):
    c, name, _, _, _ = obj
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    base = [SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
            "--os-password", cloud.admin_password, "--os-project-name", "admin",
            "--os-user-domain-name", "Default", "--os-project-domain-name", "Default"]
    out = tmp_path / "one"
    res = subprocess.run([*base, "download", c, name, "-o", str(out), "--header", "Range:bytes=-24"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == BODY[-24:]
    out = tmp_path / "multi"
    res = subprocess.run([*base, "download", c, name, "-o", str(out), "--header", "Range:bytes=0-3,8-11",
                          "--ignore-checksum"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    parts = email.message_from_bytes(out.read_bytes().join([b"Content-Type: multipart/byteranges;boundary=" +
                                                            out.read_bytes()[2:34] + b"\r\n\r\n", b""]),
                                     policy=email.policy.HTTP)
    assert [p.get_payload(decode=True) for p in parts.iter_parts()] == [BODY[0:4], BODY[8:12]]


def test_large_objects_multi_range(conn, obj):
    c = obj[0]
    segs = [os.urandom(1000) for _ in range(3)]
    for i, seg in enumerate(segs):
        conn.put_object(c, f"seg/{i:02d}", seg)
    whole = b"".join(segs)
    conn.put_object(c, "dlo", b"", headers={"X-Object-Manifest": f"{c}/seg/"}, content_type="video/x-dlo")
    manifest = [{"path": f"/{c}/seg/{i:02d}", "etag": hashlib.md5(s).hexdigest(), "size_bytes": 1000}
                for i, s in enumerate(segs)]
    conn.put_object(c, "slo", json.dumps(manifest), query_string="multipart-manifest=put",
                    content_type="video/x-slo")
    for name, ctype in (("dlo", "video/x-dlo"), ("slo", "video/x-slo")):
        headers, body = conn.get_object(c, name, headers={"Range": "bytes=990-1009,2995-,-2"})
        assert int(headers["content-length"]) == len(body)
        assert parts_of(headers["content-type"], body) == [
            (ctype, "bytes 990-1009/3000", whole[990:1010]), (ctype, "bytes 2995-2999/3000", whole[2995:]),
            (ctype, "bytes 2998-2999/3000", whole[2998:])], name
        headers, body = conn.get_object(c, name, headers={"Range": "bytes=1500-1501"})
        assert body == whole[1500:1502] and headers["content-range"] == "bytes 1500-1501/3000"
        r = httpx.get(f"{obj[3].rsplit('/', 1)[0]}/{name}", headers={"X-Auth-Token": obj[4], "Range": "bytes=4000-,5000-"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */3000"
