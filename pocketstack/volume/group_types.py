"""Group types (3.11+): named sets of group specs that generic volume groups are made from.

Admin-managed, like volume types: public ones are listed for everybody, private ones for
admins only (Cinder has no group-type access API); group specs are shown to admins
(`group:access_group_types_specs`). `[DEFAULT] default_group_type` names the type
`GET /group_types/default` answers (404 when unset, as Cinder). A type a group uses
cannot be deleted.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import models as m
from pocketstack.volume import types
from pocketstack.volume.volumes import enforce, sort_order


def not_found(ident: str) -> NotFound:
    return NotFound(f"Group type {ident} could not be found.")


def get(sess: Session, ctx, ident: str) -> m.GroupType:
    """By id, else by name; private types only for admins."""
    gt = sess.get(m.GroupType, ident) if ident else None
    if gt is None and ident:
        gt = sess.execute(select(m.GroupType).where(m.GroupType.name == ident)).scalars().first()
    if gt is None or not (gt.is_public or types.is_admin(ctx)):
        raise not_found(ident)
    return gt


def specs_of(sess: Session, type_id: str) -> dict[str, str]:
    return {s.key: s.value for s in sess.execute(
        select(m.GroupTypeSpec).where(m.GroupTypeSpec.group_type_id == type_id)).scalars()}


def render(sess: Session, ctx, gt: m.GroupType) -> dict:
    body = {"id": gt.id, "name": gt.name, "description": gt.description, "is_public": gt.is_public}
    if ctx is None or _allowed(ctx, "group:access_group_types_specs"):
        body["group_specs"] = specs_of(sess, gt.id)
    return body


def _allowed(ctx, rule: str) -> bool:
    return current().enforcer.check(rule, {"project_id": ctx.project_id}, ctx.policy_creds())


def default(sess: Session, ctx) -> m.GroupType:
    name = current().config.get("DEFAULT", "default_group_type", "") or ""
    gt = sess.execute(select(m.GroupType).where(m.GroupType.name == name)).scalars().first() if name else None
    if gt is None:
        raise NotFound("Default group type can not be found.")
    return gt


def list_types(sess: Session, ctx, query: dict) -> list[m.GroupType]:
    q = select(m.GroupType)
    raw = query.get("is_public")
    if not types.is_admin(ctx):
        q = q.where(m.GroupType.is_public.is_(True))
    elif raw is None:
        q = q.where(m.GroupType.is_public.is_(True))  # Cinder's default: public types only
    elif raw.strip().lower() != "none":
        from pocketstack.volume.api.common import bool_param

        q = q.where(m.GroupType.is_public.is_(bool_param(raw, "is_public")))
    order = sort_order(query, m.GroupType, {"id", "name", "description", "is_public", "created_at"})
    return list(sess.execute(q.order_by(*order)).scalars())


def _name(value, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise BadRequest("Group type name can not be empty and must be a string of at most 255 characters.")
    return value.strip()


def _description(value) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 255):
        raise BadRequest("Group type description must be a string of at most 255 characters.")
    return value


def check_specs(specs) -> dict[str, str]:
    if not isinstance(specs, dict):
        raise BadRequest("Invalid input for field/attribute group_specs: it must be an object.")
    return types._check_specs(specs)


def create(sess: Session, ctx, body: dict) -> m.GroupType:
    enforce(ctx, "group:group_types:create", ctx.project_id)
    from pocketstack.volume.api.common import bool_param

    name = _name(body.get("name"), True)
    description = _description(body.get("description"))
    is_public = bool_param(body.get("is_public", True), "is_public")
    specs = check_specs(body.get("group_specs") or {})
    if sess.execute(select(m.GroupType).where(m.GroupType.name == name)).scalars().first():
        raise Conflict(f"Group Type {name} already exists.")
    gt = m.GroupType(id=str(uuid.uuid4()), name=name, description=description, is_public=is_public)
    sess.add(gt)
    sess.flush()
    for key, value in specs.items():
        sess.add(m.GroupTypeSpec(group_type_id=gt.id, key=key, value=value))
    sess.flush()
    events.emit("group_type.create", {"group_type_id": gt.id, "name": name}, context=ctx)
    return gt


def update(sess: Session, ctx, type_id: str, body: dict) -> m.GroupType:
    enforce(ctx, "group:group_types:update", ctx.project_id)
    gt = get(sess, ctx, type_id)
    if not body or not ({"name", "description", "is_public"} & set(body)):
        raise BadRequest("Specify group type name, description or a combination thereof.")
    if "name" in body:
        name = _name(body["name"], True)
        if sess.execute(select(m.GroupType).where(m.GroupType.name == name, m.GroupType.id != gt.id)).first():
            raise Conflict(f"Group Type {name} already exists.")
        gt.name = name
    if "description" in body:
        gt.description = _description(body["description"])
    if "is_public" in body:
        from pocketstack.volume.api.common import bool_param

        gt.is_public = bool_param(body["is_public"], "is_public")
    events.emit("group_type.update", {"group_type_id": gt.id}, context=ctx)
    return gt


def delete(sess: Session, ctx, type_id: str) -> None:
    enforce(ctx, "group:group_types:delete", ctx.project_id)
    gt = get(sess, ctx, type_id)
    if sess.execute(select(m.Group.id).where(m.Group.group_type_id == gt.id)).first():
        raise BadRequest(f"Target group type {gt.id} is still in use.")
    sess.delete(gt)
    events.emit("group_type.delete", {"group_type_id": gt.id}, context=ctx)


def set_specs(sess: Session, ctx, type_id: str, specs) -> dict[str, str]:
    enforce(ctx, "group:group_types_specs:create", ctx.project_id)
    gt = get(sess, ctx, type_id)
    specs = check_specs(specs)
    for key, value in specs.items():
        row = sess.get(m.GroupTypeSpec, (gt.id, key))
        if row is None:
            sess.add(m.GroupTypeSpec(group_type_id=gt.id, key=key, value=value))
        else:
            row.value = value
    return specs


def delete_spec(sess: Session, ctx, type_id: str, key: str) -> None:
    enforce(ctx, "group:group_types_specs:delete", ctx.project_id)
    gt = get(sess, ctx, type_id)
    row = sess.get(m.GroupTypeSpec, (gt.id, key))
    if row is None:
        raise NotFound(f"Group Type {gt.id} has no specs with key {key}.")
    sess.delete(row)
