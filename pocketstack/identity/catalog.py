"""The service catalog: regions, services, endpoints, endpoint groups and project filters.

The catalog is the only place URLs are decided: `sync_catalog()` writes one service
and its public/internal/admin endpoints per enabled pocketstack service on every start,
from the configured public URL, so clients always find the mounted prefixes.
"""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack.common.db import new_id
from pocketstack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.identity import models as m
from pocketstack.identity.core import _extra, _get, check_bool, check_str, emit

INTERFACES = ("public", "internal", "admin")

# service name -> (catalog types, mount prefix, path suffix of the endpoint)
SERVICES = {
    "identity": (("identity",), "", "/v3"),
    "image": (("image",), "/image", ""),
    "compute": (("compute",), "/compute", "/v2.1"),
    "network": (("network",), "/network", ""),
    "volume": (("block-storage", "volumev3"), "/volume", "/v3/$(project_id)s"),
    "object": (("object-store",), "/object", "/v1/AUTH_$(project_id)s"),
    "orchestration": (("orchestration",), "/orchestration", "/v1/$(project_id)s"),
    "metering": (("metering",), "/metering", ""),
    "dashboard": ((), "/dashboard", ""),
}
UPSTREAM_NAMES = {"identity": "keystone", "image": "glance", "compute": "nova", "network": "neutron",
                  "block-storage": "cinder", "volumev3": "cinderv3", "object-store": "swift",
                  "orchestration": "heat", "metering": "ceilometer"}


def sync_catalog(sess: Session, public_url: str, region: str, enabled: list[str]) -> None:
    """Make the catalog match the enabled services (idempotent; run on every start)."""
    if sess.get(m.Region, region) is None:
        sess.add(m.Region(id=region, description="", extra={}))
    for service in enabled:
        types, prefix, suffix = SERVICES.get(service, ((), "", ""))
        for stype in types:
            name = UPSTREAM_NAMES.get(stype, stype)
            svc = sess.execute(select(m.Service).where(m.Service.type == stype)).scalars().first()
            if svc is None:
                svc = m.Service(id=new_id(), type=stype, enabled=True,
                                extra={"name": name, "description": f"pocketstack {service} service"})
                sess.add(svc)
                sess.flush()
            url = public_url + prefix + suffix
            for interface in INTERFACES:
                ep = sess.execute(select(m.Endpoint).where(m.Endpoint.service_id == svc.id,
                                                           m.Endpoint.interface == interface,
                                                           m.Endpoint.region_id == region)).scalars().first()
                if ep is None:
                    sess.add(m.Endpoint(id=new_id(), service_id=svc.id, interface=interface, url=url,
                                        region_id=region, enabled=True, extra={}))
                elif ep.url != url:
                    ep.url = url
    # Services that are no longer enabled lose the endpoints we made for them (identified by
    # our URL prefix, so operators' own entries are left alone) and then the service itself.
    for service, (types, prefix, suffix) in SERVICES.items():
        if service in enabled or not types:
            continue
        ours = public_url + prefix + suffix
        for svc in sess.execute(select(m.Service).where(m.Service.type.in_(types))).scalars():
            eps = list(sess.execute(select(m.Endpoint).where(m.Endpoint.service_id == svc.id)).scalars())
            for ep in eps:
                if ep.url == ours:
                    sess.delete(ep)
            if eps and all(ep.url == ours for ep in eps):
                sess.delete(svc)


# ---------------------------------------------------------------------------- regions
def get_region(sess: Session, region_id: str) -> m.Region:
    return _get(sess, m.Region, region_id, "region")


def create_region(sess: Session, data: dict, ctx=None, region_id: str | None = None) -> m.Region:
    rid = region_id or data.get("id") or new_id()
    check_str(rid, "id", nullable=False, max_len=255)
    if sess.get(m.Region, rid) is not None:
        raise Conflict(f"Conflict occurred attempting to store region - Duplicate ID, {rid}.")
    parent = check_str(data.get("parent_region_id"), "parent_region_id")
    if parent:
        get_region(sess, parent)
    region = m.Region(id=rid, description=check_str(data.get("description", ""), "description") or "",
                      parent_region_id=parent,
                      extra=_extra(data, {"id", "description", "parent_region_id"}))
    sess.add(region)
    sess.flush()
    emit("region.created", rid, ctx)
    return region


def update_region(sess: Session, region_id: str, data: dict, ctx=None) -> m.Region:
    region = get_region(sess, region_id)
    if "description" in data:
        region.description = check_str(data["description"], "description") or ""
    if "parent_region_id" in data:
        parent = check_str(data["parent_region_id"], "parent_region_id")
        if parent:
            get_region(sess, parent)
            cur, seen = parent, set()
            while cur:
                if cur == region.id:
                    raise BadRequest("Circular reference in the region hierarchy.")
                seen.add(cur)
                nxt = sess.get(m.Region, cur)
                cur = nxt.parent_region_id if nxt and nxt.parent_region_id not in seen else None
        region.parent_region_id = parent
    region.extra = {**region.extra, **_extra(data, {"id", "description", "parent_region_id"})}
    emit("region.updated", region.id, ctx)
    return region


def delete_region(sess: Session, region_id: str, ctx=None) -> None:
    """As Keystone: the child regions go too, unless the region or a descendant has endpoints."""
    region = get_region(sess, region_id)
    tree, todo = [region.id], [region.id]
    while todo:
        kids = [k for k in sess.execute(select(m.Region.id).where(m.Region.parent_region_id.in_(todo))).scalars()
                if k not in tree]
        tree += kids
        todo = kids
    if sess.execute(select(m.Endpoint.id).where(m.Endpoint.region_id.in_(tree))).first():
        raise Forbidden("Unable to delete region %s because it or its child regions have associated "
                        "endpoints." % region.id)
    for rid in reversed(tree):
        sess.delete(sess.get(m.Region, rid))
        emit("region.deleted", rid, ctx)


# ---------------------------------------------------------------------------- services
def get_service(sess: Session, service_id: str) -> m.Service:
    return _get(sess, m.Service, service_id, "service")


def create_service(sess: Session, data: dict, ctx=None) -> m.Service:
    stype = check_str(data.get("type"), "type", nullable=False, max_len=255)
    if not stype:
        raise BadRequest("Invalid input for field 'type'.")
    svc = m.Service(id=new_id(), type=stype, enabled=check_bool(data.get("enabled", True), "enabled"),
                    extra=_extra(data, {"id", "type", "enabled"}))
    if "name" in data:
        check_str(data["name"], "name", max_len=255)
    sess.add(svc)
    sess.flush()
    emit("service.created", svc.id, ctx)
    return svc


def update_service(sess: Session, service_id: str, data: dict, ctx=None) -> m.Service:
    svc = get_service(sess, service_id)
    if "type" in data:
        svc.type = check_str(data["type"], "type", nullable=False, max_len=255)
    if "enabled" in data:
        svc.enabled = check_bool(data["enabled"], "enabled")
    svc.extra = {**svc.extra, **_extra(data, {"id", "type", "enabled"})}
    emit("service.updated", svc.id, ctx)
    return svc


def delete_service(sess: Session, service_id: str, ctx=None) -> None:
    svc = get_service(sess, service_id)
    sess.execute(delete(m.Endpoint).where(m.Endpoint.service_id == svc.id))
    sess.delete(svc)
    emit("service.deleted", service_id, ctx)


# ---------------------------------------------------------------------------- endpoints
def get_endpoint(sess: Session, endpoint_id: str) -> m.Endpoint:
    return _get(sess, m.Endpoint, endpoint_id, "endpoint")


def _check_endpoint(sess: Session, data: dict, partial: bool) -> dict:
    out = {}
    if "interface" in data or not partial:
        if data.get("interface") not in INTERFACES:
            raise BadRequest("Invalid input for field 'interface': must be public, internal or admin.")
        out["interface"] = data["interface"]
    if "url" in data or not partial:
        url = check_str(data.get("url"), "url", nullable=False)
        if not url or not (url.startswith("http://") or url.startswith("https://") or "://" in url):
            raise BadRequest("Invalid input for field 'url': it must be a URL.")
        out["url"] = url
    if "service_id" in data or not partial:
        get_service(sess, check_str(data.get("service_id"), "service_id", nullable=False))
        out["service_id"] = data["service_id"]
    region = data.get("region_id", data.get("region")) if ("region_id" in data or "region" in data) else None
    if region:
        check_str(region, "region_id")
        if sess.get(m.Region, region) is None:
            if data.get("region_id") is not None:
                raise BadRequest(f"Region {region} does not exist.")
            # The legacy `region` field (v2-style clients) creates the region, as Keystone does.
            create_region(sess, {}, region_id=region)
        out["region_id"] = region
    elif "region_id" in data or "region" in data:
        out["region_id"] = None
    if "enabled" in data:
        out["enabled"] = check_bool(data["enabled"], "enabled")
    return out


def create_endpoint(sess: Session, data: dict, ctx=None) -> m.Endpoint:
    fields = _check_endpoint(sess, data, partial=False)
    ep = m.Endpoint(id=new_id(), enabled=fields.pop("enabled", True), **fields,
                    extra=_extra(data, {"id", "interface", "url", "service_id", "region_id", "region",
                                        "enabled"}))
    sess.add(ep)
    sess.flush()
    emit("endpoint.created", ep.id, ctx)
    return ep


def update_endpoint(sess: Session, endpoint_id: str, data: dict, ctx=None) -> m.Endpoint:
    ep = get_endpoint(sess, endpoint_id)
    for k, v in _check_endpoint(sess, data, partial=True).items():
        setattr(ep, k, v)
    ep.extra = {**ep.extra, **_extra(data, {"id", "interface", "url", "service_id", "region_id", "region",
                                            "enabled"})}
    emit("endpoint.updated", ep.id, ctx)
    return ep


def delete_endpoint(sess: Session, endpoint_id: str, ctx=None) -> None:
    ep = get_endpoint(sess, endpoint_id)
    sess.execute(delete(m.ProjectEndpoint).where(m.ProjectEndpoint.endpoint_id == ep.id))
    sess.delete(ep)
    emit("endpoint.deleted", endpoint_id, ctx)


# ---------------------------------------------------------------------------- the catalog
def endpoint_in_group(sess: Session, ep: m.Endpoint, group: m.EndpointGroup) -> bool:
    for key, value in (group.filters or {}).items():
        if key == "region_id" and ep.region_id != value:
            return False
        if key == "interface" and ep.interface != value:
            return False
        if key == "service_id" and ep.service_id != value:
            return False
    return True


def project_endpoint_ids(sess: Session, project_id: str) -> set[str] | None:
    """Endpoints a project is limited to (OS-EP-FILTER), or None when it has no filter."""
    direct = set(sess.execute(select(m.ProjectEndpoint.endpoint_id)
                              .where(m.ProjectEndpoint.project_id == project_id)).scalars())
    group_ids = list(sess.execute(select(m.ProjectEndpointGroup.endpoint_group_id)
                                  .where(m.ProjectEndpointGroup.project_id == project_id)).scalars())
    if not direct and not group_ids:
        return None
    if group_ids:
        groups = [g for g in (sess.get(m.EndpointGroup, gid) for gid in group_ids) if g]
        for ep in sess.execute(select(m.Endpoint)).scalars():
            if any(endpoint_in_group(sess, ep, g) for g in groups):
                direct.add(ep.id)
    return direct


def build_catalog(sess: Session, project_id: str | None = None) -> list[dict]:
    only = project_endpoint_ids(sess, project_id) if project_id else None
    services = {s.id: s for s in sess.execute(select(m.Service).where(m.Service.enabled.is_(True))).scalars()}
    by_service: dict[str, list[dict]] = {}
    for ep in sess.execute(select(m.Endpoint).where(m.Endpoint.enabled.is_(True))
                           .order_by(m.Endpoint.service_id, m.Endpoint.interface)).scalars():
        if ep.service_id not in services or (only is not None and ep.id not in only):
            continue
        url = ep.url.replace("$(project_id)s", project_id or "$(project_id)s") \
            .replace("$(tenant_id)s", project_id or "$(tenant_id)s")
        if project_id is None and "$(" in url:
            continue  # unscoped tokens cannot use project-templated endpoints
        by_service.setdefault(ep.service_id, []).append(
            {"id": ep.id, "interface": ep.interface, "region": ep.region_id, "region_id": ep.region_id,
             "url": url})
    return [{"endpoints": eps, "id": sid, "type": services[sid].type, "name": services[sid].extra.get("name", "")}
            for sid, eps in by_service.items()]


def check_project_endpoint_parts(sess: Session, project_id: str, endpoint_id: str) -> None:
    from pocketstack.identity.core import get_project

    get_project(sess, project_id)
    get_endpoint(sess, endpoint_id)


def ensure_not_found(row, what: str, ident: str):
    if row is None:
        raise NotFound(f"Could not find {what}: {ident}.")
    return row
