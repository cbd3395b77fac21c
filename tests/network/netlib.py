"""Helpers shared by the network tests: raw Neutron calls (for wire-format assertions) and
projects with members, on a module's running cloud."""
from __future__ import annotations

import uuid

import httpx


class NeutronHTTP:
    """Raw HTTP against `/network/v2.0` with one token (the wire format itself under test)."""

    def __init__(self, cloud, token: str):
        self.cloud = cloud
        self.token = token
        self.base = cloud.url + "/network/v2.0"

    def __call__(self, method: str, path: str, expect: int | None = None, **kw) -> httpx.Response:
        headers = {"X-Auth-Token": self.token, **kw.pop("headers", {})}
        r = httpx.request(method, self.base + path, headers=headers, timeout=60, **kw)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r

    def get(self, path, **kw):
        return self(method="GET", path=path, **kw)

    def create(self, kind: str, body: dict) -> dict:
        plural = kind + "s" if not kind.endswith("y") else kind[:-1] + "ies"
        r = self("POST", f"/{plural}", json={kind: body})
        assert r.status_code == 201, r.text
        return r.json()[kind]


def error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    assert set(body["NeutronError"]) == {"type", "message", "detail"}, body
    return body["NeutronError"]


def new_project(cloud, role: str = "member") -> dict:
    """A project with one user holding `role`; returns names, ids, env and token."""
    name = "p-" + uuid.uuid4().hex[:8]
    pid = cloud.os_json("project", "create", "--domain", "default", name)["id"]
    user, password = cloud.make_user(name, role)
    return {"name": name, "id": pid, "user": user, "password": password,
            "env": cloud.env_for(user, password, name), "token": cloud.token(user, password, name)}
