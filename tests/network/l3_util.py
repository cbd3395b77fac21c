"""Small HTTP helpers for the security group / router / floating IP / RBAC tests: projects
and members made through Keystone's API (quicker than the CLI), Neutron calls with a token."""
from __future__ import annotations

import secrets
import uuid

import httpx


def call(cloud, token: str, method: str, path: str, body=None, expect: int | None = None) -> httpx.Response:
    """`method` `/network/v2.0<path>`; with `expect`, assert the status and return the JSON."""
    resp = httpx.request(method, f"{cloud.url}/network/v2.0{path}", headers={"X-Auth-Token": token}, json=body,
                         timeout=60)
    if expect is not None:
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None
    return resp


def err_type(resp: httpx.Response) -> str:
    body = resp.json()
    assert set(body["NeutronError"]) == {"type", "message", "detail"}, body
    return body["NeutronError"]["type"]


def member(cloud, project: str, role: str = "member") -> dict:
    """A new project (if needed) with a new user holding `role`: its env, token and ids."""
    admin = cloud.token()
    h = {"X-Auth-Token": admin}
    ks = cloud.auth_url
    found = httpx.get(f"{ks}/projects?name={project}", headers=h).json()["projects"]
    if found:
        pid = found[0]["id"]
    else:
        pid = httpx.post(f"{ks}/projects", headers=h, json={"project": {"name": project, "domain_id": "default"}}
                         ).json()["project"]["id"]
    name, password = "u-" + uuid.uuid4().hex[:10], "pw-" + secrets.token_hex(6)
    uid = httpx.post(f"{ks}/users", headers=h, json={"user": {"name": name, "password": password,
                                                              "domain_id": "default"}}).json()["user"]["id"]
    rid = httpx.get(f"{ks}/roles?name={role}", headers=h).json()["roles"][0]["id"]
    assert httpx.put(f"{ks}/projects/{pid}/users/{uid}/roles/{rid}", headers=h).status_code in (200, 204)
    return {"env": cloud.env_for(name, password, project), "token": cloud.token(name, password, project),
            "pid": pid, "user": name, "password": password}
