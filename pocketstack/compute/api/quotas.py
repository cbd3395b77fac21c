"""os-quota-sets, os-quota-class-sets and /limits.

Which resources a body shows depends on the microversion: network resources (proxied to
Neutron) disappear at 2.36 from quota sets and limits (2.50 for quota classes), file
injection at 2.57; quota classes only show the server-group resources from 2.50; /limits
drops maxImageMeta at 2.39. Rate limits are always empty, as in Nova since Newton.
"""
from __future__ import annotations

import re

from pocketstack.common.errors import BadRequest
from pocketstack.compute import quotas
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

QS = "os_compute_api:os-quota-sets:"
QC = "os_compute_api:os-quota-class-sets:"


def _shown(req, classes: bool = False) -> list[str]:
    hidden: set = set()
    if at_least(req, "2.50" if classes else "2.36"):
        hidden |= set(quotas.NETWORK_RESOURCES)
    if at_least(req, "2.57"):
        hidden |= set(quotas.INJECTION_RESOURCES)
    if classes and not at_least(req, "2.50"):
        hidden |= {"server_groups", "server_group_members"}
    return [r for r in quotas.RESOURCES if r not in hidden]


def _user_id(req) -> str | None:
    values = req.query.getlist("user_id")
    return values[0] if values else None


def _limits_of(body_obj: dict, shown: list[str], allow_force: bool) -> tuple[dict, bool]:
    allowed = tuple(shown) + (("force",) if allow_force else ())
    p.check_keys(body_obj, "quota_set" if allow_force else "quota_class_set", allowed)
    force = False
    values = {}
    for key, raw in body_obj.items():
        if key == "force":
            force = p.boolean(raw, "force")
            continue
        if isinstance(raw, str) and not re.fullmatch(r"-?[0-9]+", raw.strip()):
            raise p.invalid(key, raw, f"'{raw}' does not match '^-?[0-9]+$'")
        values[key] = p.integer(raw, key, -1, quotas.MAX_LIMIT)
    return values, force


# ---------------------------------------------------------------------------- quota sets
def _quota_set(req, project_id: str, user_id: str | None, with_id: bool = True) -> dict:
    limits = quotas.project_limits(project_id, user_id)
    out = {"id": project_id} if with_id else {}
    for res in _shown(req):
        out[res] = limits[res]
    return {"quota_set": out}


@api.route("/v2.1/os-quota-sets/{project_id}", "GET")
def show_quota_set(req):
    project_id = req.path_params["project_id"]
    p.strict_query(req, ("user_id",))
    p.authorize(req, QS + "show", {"project_id": project_id})
    p.verify_project(project_id)
    return _quota_set(req, project_id, _user_id(req))


@api.route("/v2.1/os-quota-sets/{project_id}/detail", "GET")
def show_quota_detail(req):
    project_id = req.path_params["project_id"]
    p.strict_query(req, ("user_id",))
    p.authorize(req, QS + "detail", {"project_id": project_id})
    p.verify_project(project_id)
    user_id = _user_id(req)
    limits = quotas.project_limits(project_id, user_id)
    used = quotas.usage(project_id, user_id)
    out: dict = {"id": project_id}
    for res in _shown(req):
        out[res] = {"limit": limits[res], "in_use": used.get(res, 0), "reserved": 0}
    return {"quota_set": out}


@api.route("/v2.1/os-quota-sets/{project_id}/defaults", "GET")
def show_quota_defaults(req):
    project_id = req.path_params["project_id"]
    p.authorize(req, QS + "defaults", {"project_id": project_id})
    p.verify_project(project_id)
    defaults = quotas.class_limits("default")
    return {"quota_set": {"id": project_id, **{r: defaults[r] for r in _shown(req)}}}


@api.route("/v2.1/os-quota-sets/{project_id}", "PUT")
def update_quota_set(req):
    project_id = req.path_params["project_id"]
    p.strict_query(req, ("user_id",))
    p.authorize(req, QS + "update", {"project_id": project_id})
    data = p.body(req, "quota_set")
    values, force = _limits_of(data, _shown(req), allow_force=True)
    p.verify_project(project_id)
    user_id = _user_id(req)
    quotas.set_limits(req.context, project_id, values, user_id=user_id, force=force)
    return _quota_set(req, project_id, user_id, with_id=False)


@api.route("/v2.1/os-quota-sets/{project_id}", "DELETE")
def delete_quota_set(req):
    project_id = req.path_params["project_id"]
    p.strict_query(req, ("user_id",))
    p.authorize(req, QS + "delete", {"project_id": project_id})
    quotas.delete_limits(req.context, project_id, _user_id(req))
    return 202, None


# ---------------------------------------------------------------------------- quota classes
def _class_set(req, name: str, with_id: bool = True) -> dict:
    limits = quotas.class_limits(name)
    out = {"id": name} if with_id else {}
    for res in _shown(req, classes=True):
        out[res] = limits[res]
    return {"quota_class_set": out}


@api.route("/v2.1/os-quota-class-sets/{name}", "GET")
def show_quota_class(req):
    p.authorize(req, QC + "show", {})
    p.strict_query(req, (), "2.102")
    return _class_set(req, req.path_params["name"])


@api.route("/v2.1/os-quota-class-sets/{name}", "PUT")
def update_quota_class(req):
    p.authorize(req, QC + "update", {})
    name = req.path_params["name"]
    if not 1 <= len(name) <= 255:
        raise BadRequest("quota_class_name has a length outside 1..255.")
    data = p.body(req, "quota_class_set")
    values, _ = _limits_of(data, _shown(req, classes=True), allow_force=False)
    quotas.set_class_limits(req.context, name, values)
    return _class_set(req, name, with_id=False)


# ---------------------------------------------------------------------------- limits
LIMIT_FIELDS = {  # absolute limit name -> quota resource (to filter by microversion)
    "maxTotalRAMSize": "ram", "maxTotalInstances": "instances", "maxTotalCores": "cores",
    "maxTotalKeypairs": "key_pairs", "maxTotalFloatingIps": "floating_ips",
    "maxServerMeta": "metadata_items", "maxImageMeta": "metadata_items",
    "maxPersonality": "injected_files", "maxPersonalitySize": "injected_file_content_bytes",
    "maxSecurityGroups": "security_groups", "maxSecurityGroupRules": "security_group_rules",
    "maxServerGroups": "server_groups", "maxServerGroupMembers": "server_group_members",
    "totalRAMUsed": "ram", "totalCoresUsed": "cores", "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips", "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}


@api.route("/v2.1/limits", "GET")
def show_limits(req):
    p.strict_query(req, ("tenant_id",))
    ctx = p.authorize(req, "os_compute_api:limits", {})
    project_id = ctx.project_id
    if "tenant_id" in req.query:
        project_id = req.query.get("tenant_id")
        p.authorize(req, "os_compute_api:limits:other_project", {"project_id": project_id})
    values = quotas.limits(ctx, project_id or "")
    hidden: set = set()
    if at_least(req, "2.36"):
        hidden |= {"floating_ips", "security_groups", "security_group_rules"}
    if at_least(req, "2.57"):
        hidden |= {"injected_files", "injected_file_content_bytes"}
    absolute = {k: v for k, v in values.items() if LIMIT_FIELDS.get(k) not in hidden}
    if at_least(req, "2.39"):
        absolute.pop("maxImageMeta", None)
    return {"limits": {"rate": [], "absolute": absolute}}
