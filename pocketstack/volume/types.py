"""Volume types: named sets of extra specs the scheduler matches against backends.

A `__DEFAULT__` type always exists (Cinder's behaviour since Train) and is the default
unless `[DEFAULT] default_volume_type` names another. Private types are visible to
admins and to the projects in their access list; extra specs and the QoS spec id are
shown to admins only (Cinder's `access_types_extra_specs` / `access_types_qos_specs_id`).
"""
from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import models as m

DEFAULT_TYPE = "__DEFAULT__"
MAX_SPEC = 255


def is_admin(ctx: AuthContext | None) -> bool:
    return ctx is None or ctx.is_admin


def _visible(sess: Session, ctx: AuthContext | None, vt: m.VolumeType) -> bool:
    if vt.is_public or is_admin(ctx):
        return True
    return sess.get(m.VolumeTypeAccess, (vt.id, ctx.project_id)) is not None


def type_not_found(ident: str) -> NotFound:
    return NotFound(f"Volume type {ident} could not be found.")


def get_type(sess: Session, ctx: AuthContext | None, ident: str) -> m.VolumeType:
    """By id, else by name (as Cinder resolves `volume_type` on create)."""
    vt = sess.get(m.VolumeType, ident) if ident else None
    if vt is None and ident:
        vt = sess.execute(select(m.VolumeType).where(m.VolumeType.name == ident)).scalars().first()
    if vt is None or not _visible(sess, ctx, vt):
        raise type_not_found(ident)
    return vt


def default_type(sess: Session, project_id: str | None = None) -> m.VolumeType:
    """The project's own default (3.62 `/default-types`), else `[DEFAULT] default_volume_type`."""
    own = sess.get(m.ProjectDefaultType, project_id) if project_id else None
    if own is not None and sess.get(m.VolumeType, own.volume_type_id) is not None:
        return sess.get(m.VolumeType, own.volume_type_id)
    name = current().config.get("DEFAULT", "default_volume_type", "") or DEFAULT_TYPE
    vt = sess.execute(select(m.VolumeType).where(m.VolumeType.name == name)).scalars().first()
    if vt is None:
        vt = sess.execute(select(m.VolumeType).where(m.VolumeType.name == DEFAULT_TYPE)).scalars().first()
    if vt is None:
        raise NotFound("The default volume type could not be found.")
    return vt


def ensure_default(sess: Session) -> None:
    if sess.execute(select(m.VolumeType).where(m.VolumeType.name == DEFAULT_TYPE)).scalars().first() is None:
        sess.add(m.VolumeType(id=str(uuid.uuid4()), name=DEFAULT_TYPE, description="Default Volume Type",
                              is_public=True))


def specs_of(sess: Session, type_id: str) -> dict[str, str]:
    return {s.key: s.value for s in sess.execute(
        select(m.VolumeTypeExtraSpec).where(m.VolumeTypeExtraSpec.type_id == type_id)).scalars()}


def render(sess: Session, ctx: AuthContext | None, vt: m.VolumeType, manage: str | None = None) -> dict:
    """Show/list view; `manage` ("create" / "update") is the types_manage answer, which as
    Cinder's always has the extra specs and never the QoS id; only create (like show and
    list) carries the type-access extension's `os-volume-type-access:is_public`."""
    body = {"id": vt.id, "name": vt.name, "description": vt.description, "is_public": vt.is_public}
    if manage != "update":
        body["os-volume-type-access:is_public"] = vt.is_public
    if is_admin(ctx) or manage:
        body["extra_specs"] = specs_of(sess, vt.id)
    if is_admin(ctx) and not manage:
        body["qos_specs_id"] = vt.qos_specs_id
    return body


def _check_name(name, required: bool) -> str | None:
    if name is None and not required:
        return None
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest("Volume type name can not be empty and must be a string of at most 255 characters.")
    return name.strip()


def _check_specs(specs) -> dict[str, str]:
    if not isinstance(specs, dict):
        raise BadRequest("extra_specs must be an object.")
    out = {}
    for key, value in specs.items():
        if not isinstance(key, str) or not key or len(key) > MAX_SPEC:
            raise BadRequest("Extra spec keys must be strings of 1 to 255 characters.")
        if isinstance(value, bool):
            value = str(value)
        if not isinstance(value, (str, int, float)) or len(str(value)) > MAX_SPEC:
            raise BadRequest(f"Value for extra spec '{key}' must be a string of at most 255 characters.")
        out[key] = str(value)
    return out


def create(sess: Session, ctx, body: dict) -> m.VolumeType:
    name = _check_name(body.get("name"), True)
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 255):
        raise BadRequest("Volume type description must be a string of at most 255 characters.")
    is_public = body.get("os-volume-type-access:is_public", body.get("is_public", True))
    from pocketstack.volume.api.common import bool_param

    is_public = bool_param(is_public, "is_public")
    specs = _check_specs(body.get("extra_specs") or {})
    if sess.execute(select(m.VolumeType).where(m.VolumeType.name == name)).scalars().first():
        raise Conflict(f"Volume Type {name} already exists.")
    vt = m.VolumeType(id=str(uuid.uuid4()), name=name, description=description, is_public=is_public)
    sess.add(vt)
    sess.flush()
    for key, value in specs.items():
        sess.add(m.VolumeTypeExtraSpec(type_id=vt.id, key=key, value=value))
    events.emit("volume_type.create", {"volume_type_id": vt.id, "name": name}, context=ctx)
    return vt


def update(sess: Session, ctx, type_id: str, body: dict) -> m.VolumeType:
    vt = get_type(sess, ctx, type_id)
    if not body or not ({"name", "description", "is_public"} & set(body)):
        raise BadRequest("Specify volume type name, description, is_public or a combination thereof.")
    if "name" in body:
        name = _check_name(body["name"], True)
        if vt.name == DEFAULT_TYPE and name != vt.name:
            raise BadRequest("The __DEFAULT__ volume type cannot be renamed.")
        clash = sess.execute(select(m.VolumeType).where(m.VolumeType.name == name,
                                                        m.VolumeType.id != vt.id)).scalars().first()
        if clash:
            raise Conflict(f"Volume Type {name} already exists.")
        vt.name = name
    if "description" in body:
        if body["description"] is not None and not isinstance(body["description"], str):
            raise BadRequest("Volume type description must be a string.")
        vt.description = body["description"]
    if "is_public" in body:
        from pocketstack.volume.api.common import bool_param

        vt.is_public = bool_param(body["is_public"], "is_public")
    vt.updated_at = utcnow()
    events.emit("volume_type.update", {"volume_type_id": vt.id}, context=ctx)
    return vt


def delete_type(sess: Session, ctx, type_id: str) -> None:
    vt = get_type(sess, ctx, type_id)
    if vt.name == DEFAULT_TYPE or vt.id == default_type(sess).id or sess.execute(
            select(m.ProjectDefaultType.project_id).where(m.ProjectDefaultType.volume_type_id == vt.id)).first():
        raise BadRequest("Default volume type can not be deleted.")
    in_use = sess.execute(select(m.Volume.id).where(m.Volume.volume_type_id == vt.id)).first()
    if in_use:
        raise BadRequest(f"Target volume type {vt.id} is still in use.")
    sess.delete(vt)
    events.emit("volume_type.delete", {"volume_type_id": vt.id}, context=ctx)


def list_types(sess: Session, ctx, is_public: str | None = None) -> list[m.VolumeType]:
    q = select(m.VolumeType).order_by(m.VolumeType.created_at, m.VolumeType.id)
    if not is_admin(ctx):
        accessible = select(m.VolumeTypeAccess.type_id).where(m.VolumeTypeAccess.project_id == ctx.project_id)
        q = q.where(or_(m.VolumeType.is_public.is_(True), m.VolumeType.id.in_(accessible)))
    elif is_public is not None and is_public.strip().lower() not in ("none", ""):
        from pocketstack.volume.api.common import bool_param

        q = q.where(m.VolumeType.is_public.is_(bool_param(is_public, "is_public")))
    return list(sess.execute(q).scalars())


def set_specs(sess: Session, ctx, type_id: str, specs) -> dict[str, str]:
    vt = get_type(sess, ctx, type_id)
    specs = _check_specs(specs)
    for key, value in specs.items():
        row = sess.get(m.VolumeTypeExtraSpec, (vt.id, key))
        if row is None:
            sess.add(m.VolumeTypeExtraSpec(type_id=vt.id, key=key, value=value))
        else:
            row.value = value
    events.emit("volume_type_extra_specs.create", {"volume_type_id": vt.id, "keys": sorted(specs)}, context=ctx)
    return specs


def delete_spec(sess: Session, ctx, type_id: str, key: str) -> None:
    vt = get_type(sess, ctx, type_id)
    row = sess.get(m.VolumeTypeExtraSpec, (vt.id, key))
    if row is None:
        raise NotFound(f"Volume Type {vt.id} has no extra specs with key {key}.")
    sess.delete(row)
    events.emit("volume_type_extra_specs.delete", {"volume_type_id": vt.id, "key": key}, context=ctx)


def add_access(sess: Session, ctx, type_id: str, project_id) -> None:
    vt = get_type(sess, ctx, type_id)
    if vt.is_public:
        raise BadRequest("Invalid volume type: Type access modification is not applicable to public volume type.")
    if not isinstance(project_id, str) or not project_id:
        raise BadRequest("Missing required element 'project' in request body.")
    if sess.get(m.VolumeTypeAccess, (vt.id, project_id)) is not None:
        raise Conflict(f"Volume type access for {vt.id} / {project_id} combination already exists.")
    sess.add(m.VolumeTypeAccess(type_id=vt.id, project_id=project_id))


def remove_access(sess: Session, ctx, type_id: str, project_id) -> None:
    vt = get_type(sess, ctx, type_id)
    if vt.is_public:
        raise BadRequest("Invalid volume type: Type access modification is not applicable to public volume type.")
    row = sess.get(m.VolumeTypeAccess, (vt.id, project_id))
    if row is None:
        raise NotFound(f"Volume type access not found for {vt.id} / {project_id} combination.")
    sess.delete(row)


def access_list(sess: Session, ctx, type_id: str) -> list[dict]:
    vt = get_type(sess, ctx, type_id)
    if vt.is_public:
        raise NotFound("Access list not available for public volume types.")
    return [{"volume_type_id": vt.id, "project_id": r.project_id} for r in sess.execute(
        select(m.VolumeTypeAccess).where(m.VolumeTypeAccess.type_id == vt.id)).scalars()]


