"""Helpers for the servers tests: a cloud with N fake hosts, a tiny image, raw Nova calls,
and waiting for a server's status through the API."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from conftest import Cloud


def start_cloud(tmp_path_factory, **config) -> Cloud:
    conf = {("compute", k): str(v) for k, v in config.items()}
    c = Cloud(tmp_path_factory.mktemp("servers"), config=conf)
    c.start()
    return c


def upload_image(cloud: Cloud, name: str = "cirros", env: dict | None = None, public: bool = True) -> str:
    img = Path(cloud.state_dir) / f"{name}.raw"
    img.write_bytes(b"\0" * 4096)
    args = ["image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(img)]
    if public:
        args.append("--public")
    return cloud.os_json(*args, name, env=env)["id"]


def nova(cloud: Cloud, token: str, method: str, path: str, version: str | None = None, **kw) -> httpx.Response:
    headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
    if version:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return httpx.request(method, f"{cloud.url}/compute/v2.1{path}", headers=headers, timeout=60, **kw)


def fault(resp: httpx.Response, status: int, name: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    return body[name]["message"]


def wait_status(cloud: Cloud, token: str, server_id: str, *statuses: str, timeout: float = 30,
                version: str = "2.1") -> dict:
    deadline = time.monotonic() + timeout
    body = {}
    while time.monotonic() < deadline:
        r = nova(cloud, token, "GET", f"/servers/{server_id}", version)
        if r.status_code == 404 and "DELETED" in statuses:
            return {}
        body = r.json().get("server", {})
        if body.get("status") in statuses and body.get("OS-EXT-STS:task_state") is None:
            return body
        time.sleep(0.1)
    raise AssertionError(f"server {server_id} never reached {statuses}: {body}")


def boot(cloud: Cloud, token: str, name: str | None = None, image: str = "", flavor: str = "1",
         version: str = "2.1", wait: bool = True, **extra) -> dict:
    body = {"server": {"name": name or "vm-" + uuid.uuid4().hex[:6], "imageRef": image, "flavorRef": flavor,
                       **extra.pop("server", {})}, **extra}
    if version >= "2.37" and "networks" not in body["server"]:
        body["server"]["networks"] = "none"
    r = nova(cloud, token, "POST", "/servers", version, json=body)
    assert r.status_code == 202, r.text
    server = r.json()["server"]
    if wait:
        return wait_status(cloud, token, server["id"], "ACTIVE", "ERROR")
    return server
