"""Regions, services, endpoints, endpoint groups (OS-EP-FILTER) and the legacy policy blobs."""
from __future__ import annotations

from sqlalchemy import delete, select
from starlette.responses import Response

from pocketstack.common.db import new_id
from pocketstack.common.errors import BadRequest
from pocketstack.identity import catalog, core
from pocketstack.identity import models as m
from pocketstack.identity.api.common import (
    no_content,
    api,
    apply_filters,
    body_of,
    enforce,
    fmt_project,
    listing,
    require,
    session,
    v3_url,
)




def fmt_region(req, r: m.Region) -> dict:
    return {**(r.extra or {}), "id": r.id, "description": r.description or "",
            "parent_region_id": r.parent_region_id, "links": {"self": v3_url(req, f"regions/{r.id}")}}


def fmt_service(req, s: m.Service) -> dict:
    return {"description": "", **(s.extra or {}), "id": s.id, "type": s.type, "enabled": s.enabled,
            "links": {"self": v3_url(req, f"services/{s.id}")}}


def fmt_endpoint(req, e: m.Endpoint) -> dict:
    return {**(e.extra or {}), "id": e.id, "interface": e.interface, "region": e.region_id,
            "region_id": e.region_id, "service_id": e.service_id, "url": e.url, "enabled": e.enabled,
            "links": {"self": v3_url(req, f"endpoints/{e.id}")}}


# ---------------------------------------------------------------------------- regions
@api.route("/v3/regions", "GET")
def list_regions(req):
    enforce(req, "identity:list_regions")
    with session() as sess:
        items = [fmt_region(req, r) for r in sess.execute(select(m.Region).order_by(m.Region.id)).scalars()]
    return listing(req, "regions", apply_filters(req, items, {"parent_region_id", "id"}))


@api.route("/v3/regions", "POST")
def create_region(req):
    enforce(req, "identity:create_region")
    data = body_of(req, "region")
    with session() as sess:
        return 201, {"region": fmt_region(req, catalog.create_region(sess, data, req.context))}


@api.route("/v3/regions/{region_id}", "PUT")
def put_region(req):
    enforce(req, "identity:create_region")
    data = body_of(req, "region")
    if data.get("id") not in (None, req.path_params["region_id"]):
        raise BadRequest("The region id in the body does not match the URL.")
    with session() as sess:
        region = catalog.create_region(sess, data, req.context, region_id=req.path_params["region_id"])
        return 201, {"region": fmt_region(req, region)}


@api.route("/v3/regions/{region_id}", "GET")
def get_region(req):
    enforce(req, "identity:get_region")
    with session() as sess:
        return {"region": fmt_region(req, catalog.get_region(sess, req.path_params["region_id"]))}


@api.route("/v3/regions/{region_id}", "PATCH")
def update_region(req):
    enforce(req, "identity:update_region")
    data = body_of(req, "region")
    with session() as sess:
        return {"region": fmt_region(req, catalog.update_region(sess, req.path_params["region_id"], data,
                                                                req.context))}


@api.route("/v3/regions/{region_id}", "DELETE")
def delete_region(req):
    enforce(req, "identity:delete_region")
    with session() as sess:
        catalog.delete_region(sess, req.path_params["region_id"], req.context)
    return no_content()


# ---------------------------------------------------------------------------- services
@api.route("/v3/services", "GET")
def list_services(req):
    enforce(req, "identity:list_services")
    with session() as sess:
        items = [fmt_service(req, s) for s in sess.execute(select(m.Service)).scalars()]
    return listing(req, "services", apply_filters(req, items, {"type", "name", "enabled", "id"}))


@api.route("/v3/services", "POST")
def create_service(req):
    enforce(req, "identity:create_service")
    data = body_of(req, "service")
    with session() as sess:
        return 201, {"service": fmt_service(req, catalog.create_service(sess, data, req.context))}


@api.route("/v3/services/{service_id}", "GET")
def get_service(req):
    enforce(req, "identity:get_service")
    with session() as sess:
        return {"service": fmt_service(req, catalog.get_service(sess, req.path_params["service_id"]))}


@api.route("/v3/services/{service_id}", "PATCH")
def update_service(req):
    enforce(req, "identity:update_service")
    data = body_of(req, "service")
    with session() as sess:
        return {"service": fmt_service(req, catalog.update_service(sess, req.path_params["service_id"], data,
                                                                   req.context))}


@api.route("/v3/services/{service_id}", "DELETE")
def delete_service(req):
    enforce(req, "identity:delete_service")
    with session() as sess:
        catalog.delete_service(sess, req.path_params["service_id"], req.context)
    return no_content()


# ---------------------------------------------------------------------------- endpoints
@api.route("/v3/endpoints", "GET")
def list_endpoints(req):
    enforce(req, "identity:list_endpoints")
    with session() as sess:
        items = [fmt_endpoint(req, e) for e in sess.execute(select(m.Endpoint)).scalars()]
    return listing(req, "endpoints", apply_filters(req, items, {"interface", "service_id", "region_id",
                                                                "enabled", "id"}))


@api.route("/v3/endpoints", "POST")
def create_endpoint(req):
    enforce(req, "identity:create_endpoint")
    data = body_of(req, "endpoint")
    with session() as sess:
        return 201, {"endpoint": fmt_endpoint(req, catalog.create_endpoint(sess, data, req.context))}


@api.route("/v3/endpoints/{endpoint_id}", "GET")
def get_endpoint(req):
    enforce(req, "identity:get_endpoint")
    with session() as sess:
        return {"endpoint": fmt_endpoint(req, catalog.get_endpoint(sess, req.path_params["endpoint_id"]))}


@api.route("/v3/endpoints/{endpoint_id}", "PATCH")
def update_endpoint(req):
    enforce(req, "identity:update_endpoint")
    data = body_of(req, "endpoint")
    with session() as sess:
        return {"endpoint": fmt_endpoint(req, catalog.update_endpoint(sess, req.path_params["endpoint_id"], data,
                                                                      req.context))}


@api.route("/v3/endpoints/{endpoint_id}", "DELETE")
def delete_endpoint(req):
    enforce(req, "identity:delete_endpoint")
    with session() as sess:
        catalog.delete_endpoint(sess, req.path_params["endpoint_id"], req.context)
    return no_content()


# ---------------------------------------------------------------------------- OS-EP-FILTER
def fmt_endpoint_group(req, g: m.EndpointGroup) -> dict:
    return {"id": g.id, "name": g.name, "description": g.description or "", "filters": g.filters,
            "links": {"self": v3_url(req, f"OS-EP-FILTER/endpoint_groups/{g.id}")}}


def _check_filters(filters) -> dict:
    if not isinstance(filters, dict) or not filters:
        raise BadRequest("Invalid input for field 'filters': a non-empty object.")
    for key in filters:
        if key not in ("interface", "service_id", "region_id"):
            raise BadRequest(f"Invalid endpoint group filter {key!r}.")
    return filters


@api.route("/v3/OS-EP-FILTER/endpoint_groups", "GET")
def list_endpoint_groups(req):
    enforce(req, "identity:endpoint_groups")
    with session() as sess:
        items = [fmt_endpoint_group(req, g) for g in sess.execute(select(m.EndpointGroup)).scalars()]
    return listing(req, "endpoint_groups", apply_filters(req, items, {"name"}))


@api.route("/v3/OS-EP-FILTER/endpoint_groups", "POST")
def create_endpoint_group(req):
    enforce(req, "identity:manage_endpoint_groups")
    data = body_of(req, "endpoint_group")
    require(data, "name", "filters")
    with session() as sess:
        g = m.EndpointGroup(id=new_id(), name=core.check_name(data["name"]),
                            description=core.check_str(data.get("description"), "description"),
                            filters=_check_filters(data["filters"]))
        sess.add(g)
        sess.flush()
        core.emit("endpoint_group.created", g.id, req.context)
        return 201, {"endpoint_group": fmt_endpoint_group(req, g)}


def _endpoint_group(sess, gid):
    return catalog.ensure_not_found(sess.get(m.EndpointGroup, gid), "endpoint group", gid)


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}", "GET")
def get_endpoint_group(req):
    enforce(req, "identity:endpoint_groups")
    with session() as sess:
        return {"endpoint_group": fmt_endpoint_group(req, _endpoint_group(sess, req.path_params["group_id"]))}


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}", "HEAD")
def check_endpoint_group(req):
    enforce(req, "identity:endpoint_groups")
    with session() as sess:
        _endpoint_group(sess, req.path_params["group_id"])
    return Response(status_code=200)


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}", "PATCH")
def update_endpoint_group(req):
    enforce(req, "identity:manage_endpoint_groups")
    data = body_of(req, "endpoint_group")
    with session() as sess:
        g = _endpoint_group(sess, req.path_params["group_id"])
        if "name" in data:
            g.name = core.check_name(data["name"])
        if "description" in data:
            g.description = core.check_str(data["description"], "description")
        if "filters" in data:
            g.filters = _check_filters(data["filters"])
        core.emit("endpoint_group.updated", g.id, req.context)
        return {"endpoint_group": fmt_endpoint_group(req, g)}


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}", "DELETE")
def delete_endpoint_group(req):
    enforce(req, "identity:manage_endpoint_groups")
    with session() as sess:
        g = _endpoint_group(sess, req.path_params["group_id"])
        sess.execute(delete(m.ProjectEndpointGroup).where(m.ProjectEndpointGroup.endpoint_group_id == g.id))
        sess.delete(g)
        core.emit("endpoint_group.deleted", g.id, req.context)
    return no_content()


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}/endpoints", "GET")
def list_endpoint_group_endpoints(req):
    enforce(req, "identity:endpoint_groups")
    with session() as sess:
        g = _endpoint_group(sess, req.path_params["group_id"])
        items = [fmt_endpoint(req, e) for e in sess.execute(select(m.Endpoint)).scalars()
                 if catalog.endpoint_in_group(sess, e, g)]
    return listing(req, "endpoints", items)


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}/projects", "GET")
def list_endpoint_group_projects(req):
    enforce(req, "identity:endpoint_groups")
    with session() as sess:
        g = _endpoint_group(sess, req.path_params["group_id"])
        pids = sess.execute(select(m.ProjectEndpointGroup.project_id)
                            .where(m.ProjectEndpointGroup.endpoint_group_id == g.id)).scalars()
        items = [fmt_project(req, p) for p in (sess.get(m.Project, i) for i in pids) if p]
    return listing(req, "projects", items)


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}/projects/{project_id}", "PUT")
def add_endpoint_group_project(req):
    enforce(req, "identity:manage_endpoint_groups")
    with session() as sess:
        g = _endpoint_group(sess, req.path_params["group_id"])
        proj = core.get_project(sess, req.path_params["project_id"])
        if sess.get(m.ProjectEndpointGroup, (g.id, proj.id)) is None:
            sess.add(m.ProjectEndpointGroup(endpoint_group_id=g.id, project_id=proj.id))
    return no_content()


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}/projects/{project_id}", "GET")
@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}/projects/{project_id}", "HEAD")
def get_endpoint_group_project(req):
    enforce(req, "identity:endpoint_groups")
    with session() as sess:
        g = _endpoint_group(sess, req.path_params["group_id"])
        proj = core.get_project(sess, req.path_params["project_id"])
        catalog.ensure_not_found(sess.get(m.ProjectEndpointGroup, (g.id, proj.id)), "project endpoint group",
                                 proj.id)
        return {"project": fmt_project(req, proj)}


@api.route("/v3/OS-EP-FILTER/endpoint_groups/{group_id}/projects/{project_id}", "DELETE")
def remove_endpoint_group_project(req):
    enforce(req, "identity:manage_endpoint_groups")
    with session() as sess:
        row = sess.get(m.ProjectEndpointGroup, (req.path_params["group_id"], req.path_params["project_id"]))
        catalog.ensure_not_found(row, "project endpoint group", req.path_params["project_id"])
        sess.delete(row)
    return no_content()


@api.route("/v3/OS-EP-FILTER/projects/{project_id}/endpoints", "GET")
def list_project_endpoints(req):
    enforce(req, "identity:project_endpoints")
    with session() as sess:
        core.get_project(sess, req.path_params["project_id"])
        ids = catalog.project_endpoint_ids(sess, req.path_params["project_id"]) or set()
        items = [fmt_endpoint(req, e) for e in (sess.get(m.Endpoint, i) for i in sorted(ids)) if e]
    return listing(req, "endpoints", items)


@api.route("/v3/OS-EP-FILTER/projects/{project_id}/endpoint_groups", "GET")
def list_project_endpoint_groups(req):
    enforce(req, "identity:project_endpoints")
    with session() as sess:
        core.get_project(sess, req.path_params["project_id"])
        gids = sess.execute(select(m.ProjectEndpointGroup.endpoint_group_id)
                            .where(m.ProjectEndpointGroup.project_id == req.path_params["project_id"])).scalars()
        items = [fmt_endpoint_group(req, g) for g in (sess.get(m.EndpointGroup, i) for i in gids) if g]
    return listing(req, "endpoint_groups", items)


@api.route("/v3/OS-EP-FILTER/endpoints/{endpoint_id}/projects", "GET")
def list_endpoint_projects(req):
    enforce(req, "identity:project_endpoints")
    with session() as sess:
        catalog.get_endpoint(sess, req.path_params["endpoint_id"])
        pids = sess.execute(select(m.ProjectEndpoint.project_id)
                            .where(m.ProjectEndpoint.endpoint_id == req.path_params["endpoint_id"])).scalars()
        items = [fmt_project(req, p) for p in (sess.get(m.Project, i) for i in pids) if p]
    return listing(req, "projects", items)


@api.route("/v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}", "PUT")
def add_project_endpoint(req):
    enforce(req, "identity:manage_project_endpoints")
    p = req.path_params
    with session() as sess:
        catalog.check_project_endpoint_parts(sess, p["project_id"], p["endpoint_id"])
        if sess.get(m.ProjectEndpoint, (p["endpoint_id"], p["project_id"])) is None:
            sess.add(m.ProjectEndpoint(endpoint_id=p["endpoint_id"], project_id=p["project_id"]))
    return no_content()


@api.route("/v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}", "GET")
@api.route("/v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}", "HEAD")
def check_project_endpoint(req):
    enforce(req, "identity:project_endpoints")
    p = req.path_params
    with session() as sess:
        catalog.check_project_endpoint_parts(sess, p["project_id"], p["endpoint_id"])
        catalog.ensure_not_found(sess.get(m.ProjectEndpoint, (p["endpoint_id"], p["project_id"])),
                                 "project endpoint", p["endpoint_id"])
    return no_content()


@api.route("/v3/OS-EP-FILTER/projects/{project_id}/endpoints/{endpoint_id}", "DELETE")
def remove_project_endpoint(req):
    enforce(req, "identity:manage_project_endpoints")
    p = req.path_params
    with session() as sess:
        row = catalog.ensure_not_found(sess.get(m.ProjectEndpoint, (p["endpoint_id"], p["project_id"])),
                                       "project endpoint", p["endpoint_id"])
        sess.delete(row)
    return no_content()


# ---------------------------------------------------------------------------- /v3/policies
def fmt_policy(req, p: m.Policy) -> dict:
    return {**(p.extra or {}), "id": p.id, "type": p.type, "blob": p.blob,
            "links": {"self": v3_url(req, f"policies/{p.id}")}}


def _policy(sess, pid):
    return catalog.ensure_not_found(sess.get(m.Policy, pid), "policy", pid)


@api.route("/v3/policies", "GET")
def list_policies(req):
    enforce(req, "identity:policies")
    with session() as sess:
        items = [fmt_policy(req, p) for p in sess.execute(select(m.Policy)).scalars()]
    return listing(req, "policies", apply_filters(req, items, {"type"}))


@api.route("/v3/policies", "POST")
def create_policy(req):
    enforce(req, "identity:manage_policies")
    data = body_of(req, "policy")
    require(data, "type", "blob")
    with session() as sess:
        p = m.Policy(id=new_id(), type=core.check_str(data["type"], "type", nullable=False, max_len=255),
                     blob=core.check_str(data["blob"], "blob", nullable=False),
                     extra={k: v for k, v in data.items() if k not in ("id", "type", "blob", "links")})
        sess.add(p)
        sess.flush()
        core.emit("policy.created", p.id, req.context)
        return 201, {"policy": fmt_policy(req, p)}


@api.route("/v3/policies/{policy_id}", "GET")
def get_policy(req):
    enforce(req, "identity:policies")
    with session() as sess:
        return {"policy": fmt_policy(req, _policy(sess, req.path_params["policy_id"]))}


@api.route("/v3/policies/{policy_id}", "PATCH")
def update_policy(req):
    enforce(req, "identity:manage_policies")
    data = body_of(req, "policy")
    with session() as sess:
        p = _policy(sess, req.path_params["policy_id"])
        if "type" in data:
            p.type = core.check_str(data["type"], "type", nullable=False, max_len=255)
        if "blob" in data:
            p.blob = core.check_str(data["blob"], "blob", nullable=False)
        p.extra = {**p.extra, **{k: v for k, v in data.items() if k not in ("id", "type", "blob", "links")}}
        core.emit("policy.updated", p.id, req.context)
        return {"policy": fmt_policy(req, p)}


@api.route("/v3/policies/{policy_id}", "DELETE")
def delete_policy(req):
    enforce(req, "identity:manage_policies")
    with session() as sess:
        sess.delete(_policy(sess, req.path_params["policy_id"]))
        core.emit("policy.deleted", req.path_params["policy_id"], req.context)
    return no_content()
