"""TempURL: `swift tempurl` output used with curl (sha256 by default, sha1, sha512 in its
`sha512:<base64>` form, ISO 8601 expiry, prefix URLs), container keys, PUT through a TempURL,
and the 401s for expired, tampered or mismatched URLs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
OBJECT_CONFIG = {("pocketstack", "enabled_services"): "identity,object"}
KEY = "tempurl-secret-" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("objtempurl"), config=OBJECT_CONFIG)
    c.start()
    yield c
    c.stop()


def swift(cloud, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
                          "--os-password", cloud.admin_password, "--os-project-name", "admin",
                          "--os-user-domain-name", "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, f"swift {args}: {res.stderr}"
    return res.stdout.strip()


def curl(*args):
    res = subprocess.run(["curl", "-s", "-D", "-", *args], capture_output=True, timeout=60)
    head, _, body = res.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def setup(cloud):
    token = cloud.token()
    body = httpx.post(cloud.auth_url + "/auth/tokens", json={"auth": {"identity": {"methods": ["token"],
                      "token": {"id": token}}, "scope": {"project": {"name": "admin",
                                                                       "domain": {"id": "default"}}}}})
    account = "AUTH_" + body.json()["token"]["project"]["id"]
    base = f"{cloud.url}/object"
    c = "tu-" + uuid.uuid4().hex[:6]
    h = {"X-Auth-Token": token}
    assert httpx.put(f"{base}/v1/{account}/{c}", headers=h).status_code == 201
    for name, data in (("file.txt", b"temp url data"), ("pre/a.txt", b"A"), ("pre/b.txt", b"B"),
                       ("other.txt", b"O")):
        assert httpx.put(f"{base}/v1/{account}/{c}/{name}", headers=h, content=data).status_code == 201
    swift(cloud, "post", "-m", f"Temp-URL-Key:{KEY}")
    return {"base": base, "account": account, "c": c, "token": token}


def test_swift_tempurl_get_with_curl(cloud, setup):
    path = f"/v1/{setup['account']}/{setup['c']}/file.txt"
    url = swift(cloud, "tempurl", "GET", "60", path, KEY)
    assert "temp_url_sig=" in url and "temp_url_expires=" in url
    code, headers, body = curl(setup["base"] + url)
    assert (code, body) == (200, b"temp url data")
    assert headers["content-disposition"].startswith('attachment; filename="file.txt"')
    assert "expires" in headers
    # HEAD is allowed by a GET signature; PUT and DELETE are not
    assert curl("-I", setup["base"] + url)[0] == 200
    assert curl("-X", "PUT", "-d", "x", setup["base"] + url)[0] == 401
    assert curl("-X", "DELETE", setup["base"] + url)[0] == 401
    # the URL is bound to its path
    other = url.replace("file.txt", "other.txt")
    code, _, body = curl(setup["base"] + other)
    assert code == 401 and b"Temp URL invalid" in body


def test_digests_sha1_sha512_and_iso8601(cloud, setup):
    path = f"/v1/{setup['account']}/{setup['c']}/file.txt"
    for digest in ("sha1", "sha512"):
        url = swift(cloud, "tempurl", "--digest", digest, "GET", "60", path, KEY)
        if digest == "sha512":
            assert "temp_url_sig=sha512:" in url or "temp_url_sig=sha512%3A" in url
        assert curl(setup["base"] + url)[0] == 200, digest
    url = swift(cloud, "tempurl", "--iso8601", "GET", "60", path, KEY)
    assert "Z" in url.split("temp_url_expires=")[1]
    assert curl(setup["base"] + url)[0] == 200
    # hand-made sha512 hex and url-safe base64 forms
    expires = int(time.time()) + 60
    mac = hmac.new(KEY.encode(), f"GET\n{expires}\n{path}".encode(), hashlib.sha512)
    for sig in (mac.hexdigest(), "sha512:" + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")):
        code, _, body = curl(f"{setup['base']}{path}?temp_url_sig={sig}&temp_url_expires={expires}")
        assert (code, body) == (200, b"temp url data")
    # an unsupported algorithm name, garbage or a truncated signature: 401
    for sig in ("md5:" + base64.b64encode(b"x" * 16).decode(), "zz", mac.hexdigest()[:-2]):
        assert curl(f"{setup['base']}{path}?temp_url_sig={sig}&temp_url_expires={expires}")[0] == 401


def test_expired_and_missing_parts(cloud, setup):
    path = f"/v1/{setup['account']}/{setup['c']}/file.txt"
    past = int(time.time()) - 10
    url = swift(cloud, "tempurl", "--absolute", "GET", str(past), path, KEY)
    code, _, body = curl(setup["base"] + url)
    assert code == 401 and body == b"401 Unauthorized: Temp URL invalid\n"
    good = swift(cloud, "tempurl", "GET", "60", path, KEY)
    sig_only = good.split("&temp_url_expires")[0]
    assert curl(setup["base"] + sig_only)[0] == 401
    assert curl(f"{setup['base']}{path}?temp_url_expires={int(time.time()) + 60}")[0] == 401


def test_prefix_based(cloud, setup):
    prefix_path = f"/v1/{setup['account']}/{setup['c']}/pre/"
    url = swift(cloud, "tempurl", "--prefix-based", "GET", "60", prefix_path, KEY)
    query = url.split("?", 1)[1]
    assert "temp_url_prefix=pre" in query
    obj_base = f"{setup['base']}/v1/{setup['account']}/{setup['c']}"
    assert curl(f"{obj_base}/pre/a.txt?{query}")[2] == b"A"
    assert curl(f"{obj_base}/pre/b.txt?{query}")[2] == b"B"
    assert curl(f"{obj_base}/other.txt?{query}")[0] == 401


def test_put_with_tempurl_and_container_key(cloud, setup):
    c, account = setup["c"], setup["account"]
    h = {"X-Auth-Token": setup["token"]}
    path = f"/v1/{account}/{c}/uploaded.bin"
    url = swift(cloud, "tempurl", "PUT", "60", path, KEY)
    code, headers, _ = curl("-X", "PUT", "--data-binary", "uploaded via tempurl", setup["base"] + url)
    assert code == 201
    assert httpx.get(f"{setup['base']}{path}", headers=h).content == b"uploaded via tempurl"
    # symlinks may not be made through a TempURL
    code, _, body = curl("-X", "PUT", "-H", "X-Symlink-Target: x/y", "--data-binary", "", setup["base"] + url)
    assert code == 400
    # a container key grants its container only
    c2 = "tu2-" + uuid.uuid4().hex[:6]
    assert httpx.put(f"{setup['base']}/v1/{account}/{c2}", headers={**h, "X-Container-Meta-Temp-URL-Key": "ckey"}
                     ).status_code == 201
    httpx.put(f"{setup['base']}/v1/{account}/{c2}/o", headers=h, content=b"cont")
    url = swift(cloud, "tempurl", "GET", "60", f"/v1/{account}/{c2}/o", "ckey")
    assert curl(setup["base"] + url)[2] == b"cont"
    url = swift(cloud, "tempurl", "GET", "60", f"/v1/{account}/{c}/file.txt", "ckey")
    assert curl(setup["base"] + url)[0] == 401
    # the key is privileged: the owner sees it
    assert httpx.head(f"{setup['base']}/v1/{account}/{c2}", headers=h).headers[
        "x-container-meta-temp-url-key"] == "ckey"


def test_filename_inline_and_private_metadata(cloud, setup):
    c, account = setup["c"], setup["account"]
    h = {"X-Auth-Token": setup["token"]}
    httpx.post(f"{setup['base']}/v1/{account}/{c}/file.txt",
               headers={**h, "X-Object-Meta-Secret": "s", "X-Object-Meta-Public-Color": "blue"})
    url = setup["base"] + swift(cloud, "tempurl", "GET", "60", f"/v1/{account}/{c}/file.txt", KEY)
    _, headers, _ = curl(url + "&filename=My%20Report.pdf")
    assert headers["content-disposition"] == \
        "attachment; filename=\"My Report.pdf\"; filename*=UTF-8''My%20Report.pdf"
    _, headers, _ = curl(url + "&inline")
    assert headers["content-disposition"] == "inline"
    assert "x-object-meta-secret" not in headers and headers["x-object-meta-public-color"] == "blue"
    info = httpx.get(setup["base"] + "/info").json()["tempurl"]
    assert set(info["methods"]) == {"GET", "HEAD", "PUT", "POST", "DELETE"}
    assert set(info["allowed_digests"]) >= {"sha256", "sha512"}


def test_signature_parsing_unit():
    from pocketstack.object.tempurl import parse_expires, split_signature

    assert split_signature("a" * 40) == ("sha1", "a" * 40)
    assert split_signature("B" * 64) == ("sha256", "b" * 64)
    assert split_signature("sha512:" + base64.b64encode(b"\xff" * 64).decode()) == ("sha512", "ff" * 64)
    assert split_signature("sha256:" + base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")) == \
        ("sha256", "fb" * 32)
    for bad in ("a" * 41, "zz" * 20, "sha1:%%%"):
        with pytest.raises(ValueError):
            split_signature(bad)
    future = int(time.time()) + 100
    assert parse_expires(str(future)) == future
    assert parse_expires(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(future))) == future
    assert parse_expires("2001-01-01T00:00:00Z") == 0 and parse_expires("soon") == 0 and parse_expires(None) == 0


def test_formpost_upload(cloud, setup):
    """A browser-style multipart upload signed with the account's Temp-URL key (formpost)."""
    c, account = setup["c"], setup["account"]
    path = f"/v1/{account}/{c}/uploads/"
    url = f"{setup['base']}{path}"

    def form(expires_in=600, max_size=1024, max_count=2, redirect="", key=KEY, digest="sha256"):
        expires = int(time.time()) + expires_in
        body = f"{path}\n{redirect}\n{max_size}\n{max_count}\n{expires}"
        return {"redirect": redirect, "max_file_size": str(max_size), "max_file_count": str(max_count),
                "expires": str(expires), "signature": hmac.new(key.encode(), body.encode(), digest).hexdigest()}

    r = httpx.post(url, data=form(), files={"file1": ("one.txt", b"first file", "text/plain"),
                                            "file2": ("two.bin", b"second")})
    assert (r.status_code, r.text) == (201, "201 Created")
    h = {"X-Auth-Token": setup["token"]}
    got = httpx.get(f"{url}one.txt", headers=h)
    assert got.content == b"first file" and got.headers["content-type"] == "text/plain"
    assert httpx.get(f"{url}two.bin", headers=h).content == b"second"
    r = httpx.post(url, data=form(redirect="https://app.example.com/done"), files={"f": ("r.txt", b"r")},
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "https://app.example.com/done?status=201&message="
    r = httpx.post(url, data=form(expires_in=-5), files={"f": ("late.txt", b"x")})
    assert (r.status_code, r.text) == (401, "FormPost: Form Expired")
    r = httpx.post(url, data=form(key="wrong"), files={"f": ("bad.txt", b"x")})
    assert (r.status_code, r.text) == (401, "FormPost: Invalid Signature")
    r = httpx.post(url, data=form(max_size=4), files={"f": ("big.txt", b"too big")})
    assert (r.status_code, r.text) == (400, "FormPost: max_file_size exceeded")
    assert httpx.get(f"{url}big.txt", headers=h).status_code == 404
    r = httpx.post(url, data=form(max_count=1), files={"a": ("a.txt", b"a"), "b": ("b.txt", b"b")})
    assert r.status_code == 400 and "Max File Count Exceeded" in r.text
    assert "formpost" in httpx.get(setup["base"] + "/info").json()
