"""Metadata definitions (Glance's "metadefs"): namespaces of property definitions,
objects, tags, and the resource types (images, volumes, flavors...) they apply to.

Everyone may read public namespaces (and their own project's private ones); only
admins write, as Glance's defaults (`metadef_admin`). The standard resource types are
there from the start so that namespaces can be associated with them.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.image import core
from pocketstack.image import models as m

RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor", "OS::Nova::Aggregate",
                  "OS::Nova::Server", "OS::Trove::Instance", "OS::Cinder::Snapshot", "OS::Cinder::Volumetype",
                  "OS::Glance::Metadef", "OS::Ironic::Node", "OS::Sahara::NodeGroupTemplate")
PROPERTY_KEYS = ("title", "description", "operators", "type", "readonly", "default", "maximum", "minimum",
                 "maxLength", "minLength", "pattern", "enum", "items", "maxItems", "minItems", "uniqueItems",
                 "additionalItems")
PROPERTY_TYPES = ("array", "boolean", "integer", "number", "object", "string", None)


def _time(value) -> str:
    return core.fmt_time(value)


def _str(body: dict, key: str, max_len: int, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"Provided object does not match schema: '{key}' is a required property")
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > max_len:
        raise BadRequest(f"Invalid value for '{key}': it must be a string of at most {max_len} characters.")
    return value


# ---------------------------------------------------------------------------- resource types
def ensure_resource_types(sess: Session) -> None:
    have = set(sess.execute(select(m.MetadefResourceType.name)).scalars())
    now = utcnow()
    for name in RESOURCE_TYPES:
        if name not in have:
            sess.add(m.MetadefResourceType(name=name, protected=True, created_at=now, updated_at=now))
    sess.flush()


def list_resource_types(sess: Session, ctx) -> list[dict]:
    core.enforce(ctx, "list_metadef_resource_types", {"project_id": ctx.project_id})
    ensure_resource_types(sess)
    rows = sess.execute(select(m.MetadefResourceType).order_by(m.MetadefResourceType.name)).scalars()
    return [{"name": r.name, "created_at": _time(r.created_at), "updated_at": _time(r.updated_at)} for r in rows]


# ---------------------------------------------------------------------------- namespaces
def _visible(ctx, ns: m.MetadefNamespace) -> bool:
    return ns.visibility == "public" or core.is_admin(ctx) or (ctx.project_id and ns.owner == ctx.project_id)


def get_namespace(sess: Session, ctx, name: str) -> m.MetadefNamespace:
    ns = sess.execute(select(m.MetadefNamespace).where(m.MetadefNamespace.namespace == name)).scalar()
    if ns is None or not _visible(ctx, ns):
        raise NotFound(f"Metadata definition namespace={name} was not found.")
    return ns


def _target(ctx, ns: m.MetadefNamespace | None = None) -> dict:
    return {"project_id": ns.owner if ns is not None else ctx.project_id,
            "visibility": ns.visibility if ns is not None else None}


def _check_namespace_fields(body: dict, partial: bool = False) -> dict:
    out: dict[str, Any] = {}
    out["namespace"] = _str(body, "namespace", 80, required=True)
    for key, max_len in (("display_name", 80), ("description", 500), ("owner", 255)):
        if key in body:
            out[key] = _str(body, key, max_len)
    if "visibility" in body:
        if body["visibility"] not in ("public", "private"):
            raise BadRequest("Invalid value for 'visibility': it must be 'public' or 'private'.")
        out["visibility"] = body["visibility"]
    if "protected" in body:
        if not isinstance(body["protected"], bool):
            raise BadRequest("Invalid value for 'protected': it must be a boolean.")
        out["protected"] = body["protected"]
    return out


def render_namespace(sess: Session, ns: m.MetadefNamespace, *, detail: bool = True) -> dict:
    out = {"namespace": ns.namespace, "visibility": ns.visibility, "protected": ns.protected,
           "owner": ns.owner, "created_at": _time(ns.created_at), "updated_at": _time(ns.updated_at),
           "schema": "/v2/schemas/metadefs/namespace", "self": f"/v2/metadefs/namespaces/{ns.namespace}"}
    if ns.display_name is not None:
        out["display_name"] = ns.display_name
    if ns.description is not None:
        out["description"] = ns.description
    assocs = list_associations(sess, ns)
    if assocs:
        out["resource_type_associations"] = assocs
    if detail:
        props = {p.name: _render_property_schema(p) for p in _rows(sess, m.MetadefProperty, ns)}
        if props:
            out["properties"] = props
        objects = [render_object(ns, o) for o in _rows(sess, m.MetadefObject, ns)]
        if objects:
            out["objects"] = objects
        tags = [{"name": t.name} for t in _rows(sess, m.MetadefTag, ns)]
        if tags:
            out["tags"] = tags
    return out


def _rows(sess: Session, model, ns: m.MetadefNamespace):
    return list(sess.execute(select(model).where(model.namespace_id == ns.id).order_by(model.name)).scalars())


def list_namespaces(sess: Session, ctx, query) -> list[dict]:
    core.enforce(ctx, "get_metadef_namespaces", {"project_id": ctx.project_id})
    stmt = select(m.MetadefNamespace).order_by(m.MetadefNamespace.namespace)
    if not core.is_admin(ctx):
        stmt = stmt.where(or_(m.MetadefNamespace.visibility == "public", m.MetadefNamespace.owner == ctx.project_id))
    visibility = query.get("visibility")
    if visibility:
        stmt = stmt.where(m.MetadefNamespace.visibility == visibility)
    rows = list(sess.execute(stmt).scalars())
    wanted = query.get("resource_types")
    if wanted:
        names = set(wanted.split(","))
        rows = [ns for ns in rows if names & {a["name"] for a in list_associations(sess, ns)}]
    return [render_namespace(sess, ns, detail=False) for ns in rows]


def create_namespace(sess: Session, ctx, body: Any) -> m.MetadefNamespace:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    core.enforce(ctx, "add_metadef_namespace", _target(ctx))
    fields = _check_namespace_fields(body)
    if sess.execute(select(m.MetadefNamespace).where(m.MetadefNamespace.namespace == fields["namespace"])).scalar():
        raise Conflict(f"Metadata definition namespace={fields['namespace']} already exists.")
    now = utcnow()
    ns = m.MetadefNamespace(namespace=fields["namespace"], display_name=fields.get("display_name"),
                            description=fields.get("description"),
                            visibility=fields.get("visibility", "private"),
                            protected=fields.get("protected", False),
                            owner=fields.get("owner") or ctx.project_id, created_at=now, updated_at=now)
    sess.add(ns)
    sess.flush()
    for assoc in body.get("resource_type_associations") or []:
        add_association(sess, ctx, ns, assoc, enforce=False)
    for name, definition in (body.get("properties") or {}).items():
        _add_property(sess, ns, {**definition, "name": name})
    for obj in body.get("objects") or []:
        _add_object(sess, ns, obj)
    for tag in body.get("tags") or []:
        _add_tag(sess, ns, tag.get("name") if isinstance(tag, dict) else None)
    sess.flush()
    return ns


def update_namespace(sess: Session, ctx, name: str, body: Any) -> m.MetadefNamespace:
    ns = get_namespace(sess, ctx, name)
    core.enforce(ctx, "modify_metadef_namespace", _target(ctx, ns))
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    fields = _check_namespace_fields(body)
    if fields["namespace"] != ns.namespace and sess.execute(
            select(m.MetadefNamespace).where(m.MetadefNamespace.namespace == fields["namespace"])).scalar():
        raise Conflict(f"Metadata definition namespace={fields['namespace']} already exists.")
    for key, value in fields.items():
        setattr(ns, key, value)
    ns.updated_at = utcnow()
    sess.flush()
    return ns


def delete_namespace(sess: Session, ctx, name: str) -> None:
    ns = get_namespace(sess, ctx, name)
    core.enforce(ctx, "delete_metadef_namespace", _target(ctx, ns))
    if ns.protected:
        raise Forbidden(f"Metadata definition namespace {name} is protected and cannot be deleted.")
    for model in (m.MetadefObject, m.MetadefProperty, m.MetadefTag, m.MetadefResourceTypeAssociation):
        sess.execute(delete(model).where(model.namespace_id == ns.id))
    sess.delete(ns)


def delete_children(sess: Session, ctx, name: str, model, action: str) -> None:
    ns = get_namespace(sess, ctx, name)
    core.enforce(ctx, action, _target(ctx, ns))
    if ns.protected:
        raise Forbidden(f"Metadata definition namespace {name} is protected and cannot be modified.")
    sess.execute(delete(model).where(model.namespace_id == ns.id))


# ---------------------------------------------------------------------------- associations
def list_associations(sess: Session, ns: m.MetadefNamespace) -> list[dict]:
    rows = sess.execute(select(m.MetadefResourceTypeAssociation, m.MetadefResourceType)
                        .join(m.MetadefResourceType,
                              m.MetadefResourceType.id == m.MetadefResourceTypeAssociation.resource_type_id)
                        .where(m.MetadefResourceTypeAssociation.namespace_id == ns.id)
                        .order_by(m.MetadefResourceType.name)).all()
    return [_render_association(a, rt) for a, rt in rows]


def _render_association(a, rt) -> dict:
    out = {"name": rt.name, "created_at": _time(a.created_at), "updated_at": _time(a.updated_at)}
    if a.prefix is not None:
        out["prefix"] = a.prefix
    if a.properties_target is not None:
        out["properties_target"] = a.properties_target
    return out


def add_association(sess: Session, ctx, ns: m.MetadefNamespace, body: Any, enforce: bool = True) -> dict:
    if enforce:
        core.enforce(ctx, "add_metadef_resource_type_association", _target(ctx, ns))
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    name = _str(body, "name", 80, required=True)
    ensure_resource_types(sess)
    rt = sess.execute(select(m.MetadefResourceType).where(m.MetadefResourceType.name == name)).scalar()
    if rt is None:
        now = utcnow()
        rt = m.MetadefResourceType(name=name, protected=False, created_at=now, updated_at=now)
        sess.add(rt)
        sess.flush()
    if sess.get(m.MetadefResourceTypeAssociation, (ns.id, rt.id)) is not None:
        raise Conflict(f"The metadata definition resource-type association of resource-type={name} to "
                       f"namespace={ns.namespace}, already exists.")
    now = utcnow()
    a = m.MetadefResourceTypeAssociation(namespace_id=ns.id, resource_type_id=rt.id,
                                         prefix=_str(body, "prefix", 80),
                                         properties_target=_str(body, "properties_target", 80),
                                         created_at=now, updated_at=now)
    sess.add(a)
    sess.flush()
    return _render_association(a, rt)


def remove_association(sess: Session, ctx, name: str, rt_name: str) -> None:
    ns = get_namespace(sess, ctx, name)
    core.enforce(ctx, "remove_metadef_resource_type_association", _target(ctx, ns))
    rt = sess.execute(select(m.MetadefResourceType).where(m.MetadefResourceType.name == rt_name)).scalar()
    a = sess.get(m.MetadefResourceTypeAssociation, (ns.id, rt.id)) if rt is not None else None
    if a is None:
        raise NotFound(f"The metadata definition resource-type association of resource-type={rt_name} to "
                       f"namespace={name}, was not found.")
    sess.delete(a)


# ---------------------------------------------------------------------------- properties
def _check_property(body: Any) -> tuple[str, dict]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    name = _str(body, "name", 255, required=True)
    _str(body, "title", 255, required=True)
    if body.get("type") not in PROPERTY_TYPES or "type" not in body:
        raise BadRequest(f"Invalid value for 'type': it must be one of {list(PROPERTY_TYPES)}.")
    unknown = set(body) - set(PROPERTY_KEYS) - {"name"}
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(unknown))} were unexpected)")
    return name, {k: v for k, v in body.items() if k in PROPERTY_KEYS}


def _render_property_schema(p: m.MetadefProperty) -> dict:
    return dict(p.schema or {})


def render_property(p: m.MetadefProperty) -> dict:
    return {"name": p.name, **_render_property_schema(p)}


def _add_property(sess: Session, ns, body) -> m.MetadefProperty:
    name, schema = _check_property(body)
    if _child(sess, m.MetadefProperty, ns, name) is not None:
        raise Conflict(f"A metadata definition property with name={name} already exists in namespace="
                       f"{ns.namespace}.")
    now = utcnow()
    p = m.MetadefProperty(namespace_id=ns.id, name=name, schema=schema, created_at=now, updated_at=now)
    sess.add(p)
    sess.flush()
    return p


def _child(sess: Session, model, ns, name: str):
    return sess.execute(select(model).where(model.namespace_id == ns.id, model.name == name)).scalar()


def get_child(sess: Session, ctx, ns_name: str, model, name: str, what: str):
    ns = get_namespace(sess, ctx, ns_name)
    row = _child(sess, model, ns, name)
    if row is None:
        raise NotFound(f"The metadata definition {what} with name={name} was not found in namespace={ns_name}.")
    return ns, row


def create_property(sess: Session, ctx, ns_name: str, body) -> m.MetadefProperty:
    ns = get_namespace(sess, ctx, ns_name)
    core.enforce(ctx, "add_metadef_property", _target(ctx, ns))
    return _add_property(sess, ns, body)


def update_property(sess: Session, ctx, ns_name: str, name: str, body) -> m.MetadefProperty:
    ns, p = get_child(sess, ctx, ns_name, m.MetadefProperty, name, "property")
    core.enforce(ctx, "modify_metadef_property", _target(ctx, ns))
    new_name, schema = _check_property(body)
    if new_name != p.name and _child(sess, m.MetadefProperty, ns, new_name) is not None:
        raise Conflict(f"A metadata definition property with name={new_name} already exists.")
    p.name, p.schema, p.updated_at = new_name, schema, utcnow()
    sess.flush()
    return p


# ---------------------------------------------------------------------------- objects
def render_object(ns, o: m.MetadefObject) -> dict:
    out = {"name": o.name, "required": list(o.required or []), "properties": dict(o.properties or {}),
           "created_at": _time(o.created_at), "updated_at": _time(o.updated_at),
           "schema": "/v2/schemas/metadefs/object",
           "self": f"/v2/metadefs/namespaces/{ns.namespace}/objects/{o.name}"}
    if o.description is not None:
        out["description"] = o.description
    return out


def _check_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    out = {"name": _str(body, "name", 80, required=True), "description": _str(body, "description", 65535)}
    required = body.get("required", [])
    if not isinstance(required, list) or not all(isinstance(x, str) for x in required):
        raise BadRequest("Invalid value for 'required': it must be a list of property names.")
    props = body.get("properties", {})
    if not isinstance(props, dict):
        raise BadRequest("Invalid value for 'properties': it must be an object.")
    checked = {}
    for name, definition in props.items():
        _, checked[name] = _check_property({**(definition if isinstance(definition, dict) else {}), "name": name})
    out["required"], out["properties"] = required, checked
    return out


def _add_object(sess: Session, ns, body) -> m.MetadefObject:
    fields = _check_object(body)
    if _child(sess, m.MetadefObject, ns, fields["name"]) is not None:
        raise Conflict(f"A metadata definition object with name={fields['name']} already exists in "
                       f"namespace={ns.namespace}.")
    now = utcnow()
    o = m.MetadefObject(namespace_id=ns.id, created_at=now, updated_at=now, **fields)
    sess.add(o)
    sess.flush()
    return o


def create_object(sess: Session, ctx, ns_name: str, body) -> tuple:
    ns = get_namespace(sess, ctx, ns_name)
    core.enforce(ctx, "add_metadef_object", _target(ctx, ns))
    return ns, _add_object(sess, ns, body)


def update_object(sess: Session, ctx, ns_name: str, name: str, body) -> tuple:
    ns, o = get_child(sess, ctx, ns_name, m.MetadefObject, name, "object")
    core.enforce(ctx, "modify_metadef_object", _target(ctx, ns))
    fields = _check_object(body)
    if fields["name"] != o.name and _child(sess, m.MetadefObject, ns, fields["name"]) is not None:
        raise Conflict(f"A metadata definition object with name={fields['name']} already exists.")
    for key, value in fields.items():
        setattr(o, key, value)
    o.updated_at = utcnow()
    sess.flush()
    return ns, o


# ---------------------------------------------------------------------------- tags
def render_tag(t: m.MetadefTag) -> dict:
    return {"name": t.name, "created_at": _time(t.created_at), "updated_at": _time(t.updated_at)}


def _add_tag(sess: Session, ns, name: Any) -> m.MetadefTag:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise BadRequest("Invalid tag name: it must be a string of 1 to 255 characters.")
    if _child(sess, m.MetadefTag, ns, name) is not None:
        raise Conflict(f"A metadata tag with name={name} already exists in namespace={ns.namespace}.")
    now = utcnow()
    t = m.MetadefTag(namespace_id=ns.id, name=name, created_at=now, updated_at=now)
    sess.add(t)
    sess.flush()
    return t


def create_tag(sess: Session, ctx, ns_name: str, name: str) -> m.MetadefTag:
    ns = get_namespace(sess, ctx, ns_name)
    core.enforce(ctx, "add_metadef_tag", _target(ctx, ns))
    return _add_tag(sess, ns, name)


def create_tags(sess: Session, ctx, ns_name: str, body: Any, append: bool) -> list[m.MetadefTag]:
    ns = get_namespace(sess, ctx, ns_name)
    core.enforce(ctx, "add_metadef_tags", _target(ctx, ns))
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise BadRequest("The request body must be {\"tags\": [{\"name\": ...}, ...]}.")
    names = [t.get("name") if isinstance(t, dict) else None for t in body["tags"]]
    if len(set(names)) != len(names):
        raise Conflict("Duplicate tag names in the request.")
    if not append:
        sess.execute(delete(m.MetadefTag).where(m.MetadefTag.namespace_id == ns.id))
        sess.flush()
    return [_add_tag(sess, ns, n) for n in names]


def update_tag(sess: Session, ctx, ns_name: str, name: str, body: Any) -> m.MetadefTag:
    ns, t = get_child(sess, ctx, ns_name, m.MetadefTag, name, "tag")
    core.enforce(ctx, "modify_metadef_tag", _target(ctx, ns))
    new = body.get("name") if isinstance(body, dict) else None
    if not isinstance(new, str) or not new or len(new) > 255:
        raise BadRequest("Invalid tag name: it must be a string of 1 to 255 characters.")
    if new != t.name and _child(sess, m.MetadefTag, ns, new) is not None:
        raise Conflict(f"A metadata tag with name={new} already exists in namespace={ns.namespace}.")
    t.name, t.updated_at = new, utcnow()
    sess.flush()
    return t


def delete_child(sess: Session, ctx, ns_name: str, model, name: str, what: str, action: str) -> None:
    ns, row = get_child(sess, ctx, ns_name, model, name, what)
    core.enforce(ctx, action, _target(ctx, ns))
    if ns.protected:
        raise Forbidden(f"Metadata definition namespace {ns_name} is protected and cannot be modified.")
    sess.delete(row)
