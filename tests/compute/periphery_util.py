"""Helpers for the compute periphery tests: raw Nova calls at a chosen microversion, the
served maximum, and per-role users in fresh projects."""
from __future__ import annotations

import uuid

import httpx
import pytest


def nova(cloud, token: str, method: str, path: str, version: str | None = None, **kwargs) -> httpx.Response:
    headers = {"X-Auth-Token": token, **kwargs.pop("headers", {})}
    if version:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return httpx.request(method, f"{cloud.url}/compute/v2.1{path}", headers=headers, timeout=60, **kwargs)


def max_version(cloud) -> tuple[int, int]:
    body = httpx.get(f"{cloud.url}/compute/v2.1/", timeout=30).json()
    major, minor = body["version"]["version"].split(".")
    return int(major), int(minor)


def need(cloud, version: str) -> None:
    """Skip unless the cloud serves `version` (the servers work raises the maximum)."""
    want = tuple(int(x) for x in version.split("."))
    if max_version(cloud) < want:
        pytest.skip(f"compute microversion {version} not served yet")


def fault(resp: httpx.Response, status: int, name: str) -> str:
    """Assert Nova's error body `{name: {code, message}}` with `status`; return the message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    return body[name]["message"]


class Persona:
    """A user with one role on one project, with a token and CLI env."""

    def __init__(self, cloud, project: str, role: str):
        self.project = project
        self.name, self.password = cloud.make_user(project, role)
        self.token = cloud.token(self.name, self.password, project)
        self.env = cloud.env_for(self.name, self.password, project)
        self.user_id = httpx.get(f"{cloud.auth_url}/auth/tokens", headers={
            "X-Auth-Token": self.token, "X-Subject-Token": self.token}).json()["token"]["user"]["id"]
        self.project_id = httpx.get(f"{cloud.auth_url}/auth/tokens", headers={
            "X-Auth-Token": self.token, "X-Subject-Token": self.token}).json()["token"]["project"]["id"]


def new_project(cloud) -> str:
    name = "p-" + uuid.uuid4().hex[:8]
    cloud.openstack("project", "create", "--domain", "default", name)
    return name


def make_image(cloud, token: str, name: str = "tiny-img") -> str:
    r = httpx.post(f"{cloud.url}/image/v2/images", headers={"X-Auth-Token": token},
                   json={"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    up = httpx.put(f"{cloud.url}/image/v2/images/{image_id}/file", content=b"\0" * 1024,
                   headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
    assert up.status_code == 204, up.text
    return image_id


def boot(cloud, token: str, name: str, image: str, flavor: str = "1", wait: bool = True, **extra) -> dict:
    import time

    body = {"server": {"name": name, "imageRef": image, "flavorRef": flavor, "networks": "none", **extra}}
    r = nova(cloud, token, "POST", "/servers", "2.37", json=body)
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    deadline = time.monotonic() + 60
    while wait and time.monotonic() < deadline:
        s = nova(cloud, token, "GET", f"/servers/{server_id}").json()["server"]
        if s["status"] in ("ACTIVE", "ERROR"):
            return s
        time.sleep(0.1)
    return nova(cloud, token, "GET", f"/servers/{server_id}").json()["server"]


def delete_server(cloud, token: str, server_id: str) -> None:
    import time

    nova(cloud, token, "DELETE", f"/servers/{server_id}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if nova(cloud, token, "GET", f"/servers/{server_id}").status_code == 404:
            return
        time.sleep(0.1)
