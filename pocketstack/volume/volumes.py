"""Volumes: the state machine, quotas, the backend work, and the public Python interface.

Compute (attach/detach, boot from volume) and the dashboard call these functions with an
auth context (or `None` for the service itself); HTTP lives in `volume/api/`.

States follow Cinder: creating -> available | error; available <-> reserved/attaching ->
in-use -> detaching -> available; extending, retyping, uploading, deleting; `error*`
states can always be deleted. A volume is visible to its project and to admins only;
anyone else gets a 404 (never a 403 that would confirm it exists).
"""
from __future__ import annotations

import json
import logging
from typing import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import manager, quotas, scheduler, types
from pocketstack.volume import models as m
from pocketstack.volume.backends.base import BackendError

log = logging.getLogger("pocketstack.volume")

DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
STATUSES = ("creating", "available", "reserved", "attaching", "detaching", "in-use", "maintenance", "deleting",
            "awaiting-transfer", "error", "error_deleting", "backing-up", "restoring-backup", "error_backing-up",
            "error_restoring", "error_extending", "downloading", "uploading", "retyping", "extending")
MAX_META_KEY = MAX_META_VALUE = 255
UPLOAD_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx")
QEMU_FORMATS = {"qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx"}


class InvalidVolume(ApiError):
    code = 400


# ---------------------------------------------------------------------------- access
def is_admin(ctx: AuthContext | None) -> bool:
    return ctx is None or ctx.is_admin


def enforce(ctx: AuthContext | None, rule: str, project_id: str | None) -> None:
    if ctx is None:
        return
    target = {"project_id": project_id or ctx.project_id}
    if not current().enforcer.check(rule, target, ctx.policy_creds()):
        raise Forbidden(f"Policy doesn't allow {rule} to be performed.")


def not_found(volume_id: str) -> NotFound:
    return NotFound(f"Volume {volume_id} could not be found.")


def load(sess: Session, ctx: AuthContext | None, volume_id: str, rule: str = "volume:get") -> m.Volume:
    vol = sess.get(m.Volume, volume_id) if volume_id else None
    if vol is None or (ctx is not None and not ctx.is_admin and vol.project_id != ctx.project_id):
        raise not_found(volume_id)
    enforce(ctx, rule, vol.project_id)
    return vol


def emit(event: str, vol: m.Volume, ctx=None, **extra) -> None:
    events.emit(f"volume.{event}", {"volume_id": vol.id, "project_id": vol.project_id, "status": vol.status,
                                    "size": vol.size, **extra}, context=ctx)


def set_status(volume_id: str, status: str, **fields) -> None:
    with current().db.session() as sess:
        vol = sess.get(m.Volume, volume_id)
        if vol is None:
            return
        vol.status = status
        for key, value in fields.items():
            setattr(vol, key, value)
        vol.updated_at = utcnow()
        emit("update", vol)


# ---------------------------------------------------------------------------- metadata
def check_metadata(meta) -> dict[str, str]:
    if not isinstance(meta, dict):
        raise BadRequest("Invalid metadata: it must be an object.")
    out = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not key.strip():
            raise BadRequest("Metadata property key blank.")
        if len(key) > MAX_META_KEY:
            raise BadRequest("Metadata property key greater than 255 characters.")
        if value is None:
            value = ""
        if not isinstance(value, (str, int, float, bool)):
            raise BadRequest(f"Invalid metadata value for key '{key}'.")
        value = str(value)
        if len(value) > MAX_META_VALUE:
            raise BadRequest("Metadata property value greater than 255 characters.")
        out[key] = value
    return out


def metadata_of(sess: Session, volume_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {v: {} for v in volume_ids}
    if volume_ids:
        for row in sess.execute(select(m.VolumeMetadata).where(m.VolumeMetadata.volume_id.in_(volume_ids))).scalars():
            out[row.volume_id][row.key] = row.value
    return out


SHOWN_ADMIN_KEYS = ("readonly", "attached_mode")


def shown_metadata_of(sess: Session, volume_ids: list[str]) -> dict[str, dict[str, str]]:
    """The `metadata` of the volume view: user metadata plus the admin flags Cinder shows
    there (`readonly`, `attached_mode`), in two queries for any number of volumes."""
    out = metadata_of(sess, volume_ids)
    if volume_ids:
        for row in sess.execute(select(m.VolumeAdminMetadata).where(
                m.VolumeAdminMetadata.volume_id.in_(volume_ids),
                m.VolumeAdminMetadata.key.in_(SHOWN_ADMIN_KEYS))).scalars():
            out[row.volume_id][row.key] = row.value
    return out


def admin_metadata_of(sess: Session, volume_id: str) -> dict[str, str]:
    return {r.key: r.value for r in sess.execute(
        select(m.VolumeAdminMetadata).where(m.VolumeAdminMetadata.volume_id == volume_id)).scalars()}


def image_metadata_of(sess: Session, volume_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    if volume_ids:
        for row in sess.execute(select(m.VolumeImageMetadata)
                                .where(m.VolumeImageMetadata.volume_id.in_(volume_ids))).scalars():
            out.setdefault(row.volume_id, {})[row.key] = row.value
    return out


def attachments_of(sess: Session, volume_ids: list[str]) -> dict[str, list[m.Attachment]]:
    out: dict[str, list[m.Attachment]] = {v: [] for v in volume_ids}
    if volume_ids:
        for row in sess.execute(select(m.Attachment).where(m.Attachment.volume_id.in_(volume_ids))
                                .order_by(m.Attachment.created_at)).scalars():
            out[row.volume_id].append(row)
    return out


def replace_metadata(sess: Session, ctx, volume_id: str, meta, *, delete_others: bool) -> dict[str, str]:
    vol = load(sess, ctx, volume_id, "volume:update_volume_metadata")
    if vol.status == "maintenance":
        raise InvalidVolume("Invalid volume: Volume is in maintenance.")
    meta = check_metadata(meta)
    current_rows = {r.key: r for r in sess.execute(
        select(m.VolumeMetadata).where(m.VolumeMetadata.volume_id == vol.id)).scalars()}
    if delete_others:
        for key, row in current_rows.items():
            if key not in meta:
                sess.delete(row)
    for key, value in meta.items():
        if key in current_rows:
            current_rows[key].value = value
        else:
            sess.add(m.VolumeMetadata(volume_id=vol.id, key=key, value=value))
    vol.updated_at = utcnow()
    sess.flush()
    emit("update.metadata", vol, ctx)
    return metadata_of(sess, [vol.id])[vol.id]


def delete_metadata_key(sess: Session, ctx, volume_id: str, key: str) -> None:
    vol = load(sess, ctx, volume_id, "volume:delete_volume_metadata")
    row = sess.get(m.VolumeMetadata, (vol.id, key))
    if row is None:
        raise NotFound(f"Volume {vol.id} has no metadata with key {key}.")
    sess.delete(row)
    emit("update.metadata", vol, ctx)


# ---------------------------------------------------------------------------- create
def _int_size(value, name: str = "size") -> int:
    if isinstance(value, bool):
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}.")
    try:
        size = int(str(value).strip())
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                         f"'{value}' is not an integer.") from None
    if size <= 0:
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                         f"{value} is less than the minimum of 1")
    if size > 2 ** 31 - 1:
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                         f"{value} is greater than the maximum of 2147483647")
    return size


def _string(body: dict, key: str, limit: int = 255) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. {value!r} is not a string.")
    if len(value) > limit:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. It is too long "
                         f"(the maximum is {limit} characters).")
    return value


def create(ctx: AuthContext, body: dict, group_statuses: tuple[str, ...] = ("available",),
           later: list | None = None) -> str:
    """Validate, check quotas, add the row (status `creating`) and start the backend work.
    `group_statuses`: the states the group named by `group_id` may be in (a group being made
    from a source is still `creating` when its volumes are added). With `later`, the backend
    work is appended to it as a callable instead of being submitted (the caller runs it)."""
    project_id = ctx.project_id
    enforce(ctx, "volume:create", project_id)
    allowed = {"size", "name", "description", "display_name", "display_description", "volume_type",
               "availability_zone", "snapshot_id", "source_volid", "imageRef", "image_id", "metadata",
               "multiattach", "consistencygroup_id", "group_id", "backup_id", "scheduler_hints",
               "source_replica", "os-scheduler-hints"}
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(repr(u) for u in sorted(unknown))} "
                         f"{'was' if len(unknown) == 1 else 'were'} unexpected)")
    name = _string(body, "name") if "name" in body else _string(body, "display_name")
    description = _string(body, "description") if "description" in body else _string(body, "display_description")
    metadata = check_metadata(body.get("metadata") or {})
    snapshot_id, source_volid = body.get("snapshot_id"), body.get("source_volid")
    image_ref = body.get("imageRef") or body.get("image_id")
    backup_id = body.get("backup_id")
    sources = [s for s in (snapshot_id, source_volid, image_ref, backup_id) if s]
    if len(sources) > 1:
        raise BadRequest("Invalid input received: only one of snapshot_id, source_volid, imageRef or "
                         "backup_id may be given.")
    size = body.get("size")
    if size is not None:
        size = _int_size(size)
    az = body.get("availability_zone")
    if az is not None and az != manager.availability_zone():
        raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")
    multiattach = body.get("multiattach", False)
    if not isinstance(multiattach, bool):
        from pocketstack.volume.api.common import bool_param

        multiattach = bool_param(multiattach, "multiattach")

    image_meta: dict[str, str] = {}
    image = None
    with current().db.session() as sess:
        source_size, source_type_id = None, None
        if snapshot_id:
            snap = sess.get(m.Snapshot, snapshot_id)
            if snap is None or (not ctx.is_admin and snap.project_id != project_id):
                raise NotFound(f"Snapshot {snapshot_id} could not be found.")
            if snap.status != "available":
                raise BadRequest(f"Invalid snapshot: Originating snapshot status must be 'available'. "
                                 f"Snapshot {snapshot_id} status is {snap.status}.")
            source_size, source_type_id = snap.size, snap.volume_type_id
        elif source_volid:
            src = sess.get(m.Volume, source_volid)
            if src is None or (not ctx.is_admin and src.project_id != project_id):
                raise not_found(source_volid)
            if src.status not in ("available", "in-use"):
                raise BadRequest(f"Invalid volume: Unable to clone volumes that are in {src.status} state.")
            source_size, source_type_id = src.size, src.volume_type_id
            image_meta = image_metadata_of(sess, [src.id]).get(src.id, {})
        elif backup_id:
            raise BadRequest("Invalid input received: creating a volume from a backup is done by restoring "
                             "the backup (POST /backups/{id}/restore).")
        if image_ref:
            from pocketstack.image import core as image_core

            try:
                image = image_core.get_image(str(image_ref), ctx)
            except NotFound:
                raise BadRequest(f"Invalid image identifier or unable to access requested image.") from None
            if image.get("status") != "active":
                raise BadRequest(f"Invalid input received: Image {image_ref} is not active.")
            image_gb = max(1, -(-int(image.get("size") or 0) // (1 << 30)), int(image.get("min_disk") or 0))
            source_size = image_gb
            image_meta = _image_properties(image)
        if size is None:
            if source_size is None:
                raise BadRequest("Invalid input for field/attribute size. Value: None. None is not of type "
                                 "'integer', 'string'")
            size = source_size
        elif source_size is not None and size < source_size:
            what = "image" if image_ref else ("snapshot" if snapshot_id else "source volume")
            raise BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be smaller than the "
                             f"{what} size {source_size}GB. They must be >= original {what} size.")
        type_ref = body.get("volume_type")
        if type_ref:
            vtype = types.get_type(sess, ctx, str(type_ref))
        elif source_type_id and sess.get(m.VolumeType, source_type_id) is not None:
            vtype = sess.get(m.VolumeType, source_type_id)
        else:
            vtype = types.default_type(sess, project_id)
        from pocketstack.volume import encryption

        encryption.refuse_encrypted(sess, vtype.id)
        specs = types.specs_of(sess, vtype.id)
        schedulable, no_host = scheduler.backend_passes(specs, manager.backend().capabilities())
        if multiattach is False and specs.get("multiattach", "").lower() in ("<is> true", "true"):
            multiattach = True
        type_id, type_name = vtype.id, vtype.name
        group_id = body.get("group_id")
        if group_id:
            _check_group(sess, ctx, str(group_id), type_id, group_statuses)

    volume_id = manager.new_id()
    with current().db.session() as sess:
        quotas.lock_project(sess, project_id)
        quotas.check(sess, project_id, {"volumes": 1, "gigabytes": size}, type_name)
        vol = m.Volume(id=volume_id, project_id=project_id, user_id=ctx.user_id, name=name,
                       description=description, size=size, status="creating", attach_status="detached",
                       availability_zone=manager.availability_zone(), host=manager.pool_host(),
                       volume_type_id=type_id, snapshot_id=snapshot_id, source_volid=source_volid,
                       image_id=image["id"] if image else None, bootable=bool(image) or bool(
                           source_volid and sess.get(m.Volume, source_volid).bootable),
                       multiattach=multiattach, group_id=group_id or None, created_at=utcnow())
        sess.add(vol)
        sess.flush()
        for key, value in metadata.items():
            sess.add(m.VolumeMetadata(volume_id=volume_id, key=key, value=value))
        for key, value in image_meta.items():
            sess.add(m.VolumeImageMetadata(volume_id=volume_id, key=key, value=value))
        emit("create.start", vol, ctx)
    if not schedulable:  # Cinder's scheduler: no valid backend -> error and a user message
        current().tasks.submit("volume.create", _no_valid_host, volume_id, no_host)
        return volume_id
    build = (volume_id, size, snapshot_id, source_volid, image["id"] if image else None, ctx)
    if later is not None:
        later.append(lambda: _build(*build))
    else:
        current().tasks.submit("volume.create", _build, *build)
    return volume_id


def _check_group(sess: Session, ctx, group_id: str, type_id: str, statuses: tuple[str, ...]) -> None:
    grp = sess.get(m.Group, group_id)
    if grp is None or (not is_admin(ctx) and grp.project_id != ctx.project_id):
        raise NotFound(f"Group {group_id} could not be found.")
    if grp.status not in statuses:
        raise BadRequest(f"Invalid Group: Group status must be available, but current status is: {grp.status}.")
    allowed = sess.execute(select(m.GroupVolumeType.volume_type_id).where(m.GroupVolumeType.group_id == grp.id)
                           ).scalars().all()
    if type_id not in allowed:
        raise BadRequest(f"Invalid input received: Invalid volume_type provided: {type_id}. It is not one of the "
                         f"volume types of group {grp.id}.")


def _no_valid_host(volume_id: str, reason: str) -> None:
    from pocketstack.volume import messages

    log.info("no valid backend for volume %s: %s", volume_id, reason)
    set_status(volume_id, "error")
    messages.record(volume_id, "VOLUME", "VOLUME_001_001", f"No valid backend was found. {reason}")


def _image_properties(image: dict) -> dict[str, str]:
    skip = {"locations", "file", "schema", "self", "tags", "direct_url", "os_hash_value", "os_hash_algo"}
    out = {}
    for key in ("id", "name", "disk_format", "container_format", "checksum", "min_disk", "min_ram", "size"):
        if image.get(key) is not None:
            out["image_id" if key == "id" else ("image_name" if key == "name" else key)] = str(image[key])
    for key, value in image.items():
        if key in skip or key in ("id", "name", "status", "visibility", "owner", "created_at", "updated_at",
                                  "protected", "os_hidden", "virtual_size", "stores"):
            continue
        if isinstance(value, str) and key not in out:
            out[key] = value
    return out


def _build(volume_id: str, size: int, snapshot_id: str | None, source_volid: str | None,
           image_id: str | None, ctx) -> None:
    be = manager.backend()
    try:
        if snapshot_id:
            location = be.volume_from_snapshot(volume_id, snapshot_id, size)
        elif source_volid:
            location = be.clone_volume(volume_id, source_volid, size)
        elif image_id:
            set_status(volume_id, "downloading")
            location = _copy_image(volume_id, image_id, size)
        else:
            location = be.create_volume(volume_id, size)
    except Exception as exc:  # any failure: error state, no data file left behind
        log.exception("creating volume %s failed", volume_id)
        try:
            be.delete_volume(volume_id)
        except BackendError:
            pass
        set_status(volume_id, "error")
        from pocketstack.volume import messages

        messages.record(volume_id, "VOLUME", "VOLUME_001_002" if image_id else "VOLUME_001_001",
                        f"create volume failed: {type(exc).__name__}")
        return
    set_status(volume_id, "available", provider_location=location, launched_at=utcnow())
    with current().db.session() as sess:
        vol = sess.get(m.Volume, volume_id)
        if vol is not None:
            emit("create.end", vol, ctx)


def _copy_image(volume_id: str, image_id: str, size: int) -> str:
    """Image data into the volume: raw as is; other formats converted with qemu-img."""
    from pocketstack.image import core as image_core

    meta, chunks = image_core.open_image_data(image_id)
    be = manager.backend()
    disk_format = meta.get("disk_format") or "raw"
    if disk_format in ("raw", "iso", None) or not hasattr(be, "path"):
        be.write_volume(volume_id, chunks, size)
    else:
        _convert_into(be, volume_id, chunks, disk_format, size)
    return str(getattr(be, "path", lambda v: v)(volume_id))


def _convert_into(be, volume_id: str, chunks: Iterable[bytes], disk_format: str, size: int) -> None:
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("qemu-img"):
        raise BackendError(f"qemu-img is needed to copy a {disk_format} image into a volume")
    be.create_volume(volume_id, size)
    with tempfile.NamedTemporaryFile(dir=be.root, prefix=".image-", delete=True) as tmp:
        for chunk in chunks:
            tmp.write(chunk)
        tmp.flush()
        fmt = {"qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx"}.get(disk_format)
        if fmt is None:
            raise BackendError(f"cannot convert a {disk_format} image")
        subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", "-n", tmp.name, str(be.path(volume_id))],
                       check=True, capture_output=True)


# ---------------------------------------------------------------------------- list, update
SORT_KEYS = {"created_at", "updated_at", "id", "name", "size", "status", "availability_zone", "bootable",
             "display_name", "project_id", "volume_type_id"}


def list_volumes(sess: Session, ctx: AuthContext, query: dict) -> list[m.Volume]:
    enforce(ctx, "volume:get_all", ctx.project_id)
    q = select(m.Volume)
    all_tenants = str(query.get("all_tenants", "")).lower() in ("1", "true", "yes", "on", "t")
    project = query.get("project_id")
    if not (ctx.is_admin and all_tenants):
        q = q.where(m.Volume.project_id == (project if ctx.is_admin and project else ctx.project_id))
    elif project:
        q = q.where(m.Volume.project_id == project)
    for key in ("status", "availability_zone", "bootable", "name", "display_name", "size", "volume_type",
                "group_id", "host"):
        if key not in query:
            continue
        value = query[key]
        if key in ("name", "display_name"):
            if value.startswith("~") or "~" in key:
                q = q.where(m.Volume.name.like(f"%{value.lstrip('~')}%"))
            else:
                q = q.where(m.Volume.name == value)
        elif key == "bootable":
            from pocketstack.volume.api.common import bool_param

            q = q.where(m.Volume.bootable.is_(bool_param(value, "bootable")))
        elif key == "size":
            try:
                q = q.where(m.Volume.size == int(value))
            except ValueError:
                raise BadRequest(f"Invalid filter size: {value}") from None
        elif key == "volume_type":
            vt = sess.execute(select(m.VolumeType).where(or_(m.VolumeType.id == value,
                                                             m.VolumeType.name == value))).scalars().first()
            q = q.where(m.Volume.volume_type_id == (vt.id if vt else "-"))
        elif key == "host":
            if ctx.is_admin:
                q = q.where(m.Volume.host == value)
        else:
            q = q.where(getattr(m.Volume, key) == value)
    for key in ("name~", "display_name~"):
        if key in query:
            q = q.where(m.Volume.name.like(f"%{query[key]}%"))
    meta = query.get("metadata")
    if meta:
        import ast
        import json

        try:
            wanted = json.loads(meta)
        except ValueError:
            try:
                wanted = ast.literal_eval(meta)
            except (ValueError, SyntaxError):
                raise BadRequest(f"Invalid metadata filter: {meta}") from None
        if not isinstance(wanted, dict):
            raise BadRequest(f"Invalid metadata filter: {meta}")
        for key, value in wanted.items():
            sub = select(m.VolumeMetadata.volume_id).where(m.VolumeMetadata.key == str(key),
                                                           m.VolumeMetadata.value == str(value))
            q = q.where(m.Volume.id.in_(sub))
    return list(sess.execute(q.order_by(*sort_order(query, m.Volume, SORT_KEYS))).scalars())


def sort_order(query: dict, model, keys: set[str]) -> list:
    """`sort=k1:asc,k2` or `sort_key=k1,k2&sort_dir=asc,desc` (Cinder's two forms); newest
    first by default, with created_at and id as tie-breakers."""
    pairs = []
    if query.get("sort"):
        for part in query["sort"].split(","):
            key, _, direction = part.partition(":")
            pairs.append((key.strip(), (direction or "desc").strip()))
    elif query.get("sort_key"):
        sort_keys = query["sort_key"].split(",")
        dirs = (query.get("sort_dir") or "desc").split(",")
        pairs = [(k, dirs[i] if i < len(dirs) else dirs[-1]) for i, k in enumerate(sort_keys)]
    order = []
    for key, direction in pairs:
        key = "name" if key == "display_name" else key
        if key not in keys or direction.lower() not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort key or direction: {key}:{direction}")
        col = getattr(model, key)
        order.append(col.asc() if direction.lower() == "asc" else col.desc())
    return order + [model.created_at.desc(), model.id.desc()]


def update(sess: Session, ctx, volume_id: str, body: dict) -> m.Volume:
    vol = load(sess, ctx, volume_id, "volume:update")
    allowed = {"name", "description", "display_name", "display_description", "metadata"}
    if not body or set(body) - allowed:
        bad = sorted(set(body) - allowed) if body else []
        raise BadRequest(f"Invalid input: {', '.join(bad) or 'nothing to update'}.")
    if "name" in body or "display_name" in body:
        vol.name = _string(body, "name") if "name" in body else _string(body, "display_name")
    if "description" in body or "display_description" in body:
        vol.description = (_string(body, "description") if "description" in body
                           else _string(body, "display_description"))
    if "metadata" in body:
        replace_metadata(sess, ctx, vol.id, body["metadata"], delete_others=True)
    vol.updated_at = utcnow()
    emit("update", vol, ctx)
    return vol


def summary(sess: Session, ctx, all_tenants: bool) -> dict:
    q = select(func.count(), func.coalesce(func.sum(m.Volume.size), 0))
    if not (ctx.is_admin and all_tenants):
        q = q.where(m.Volume.project_id == ctx.project_id)
    count, total = sess.execute(q).one()
    return {"total_count": count, "total_size": int(total)}


# ---------------------------------------------------------------------------- delete
def delete(ctx, volume_id: str, *, cascade: bool = False, force: bool = False) -> None:
    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id, "volume:force_delete" if force else "volume:delete")
        attached = sess.execute(select(m.Attachment.id).where(m.Attachment.volume_id == vol.id)).first()
        if not force:
            if vol.status not in DELETABLE or attached or vol.migration_status not in (None, "", "success",
                                                                                        "error"):
                raise InvalidVolume("Invalid volume: Volume status must be available or error or error_restoring "
                                    "or error_extending or error_managing and must not be migrating, attached, "
                                    "belong to a group, have snapshots, awaiting a transfer, or be disassociated "
                                    "from snapshots after volume transfer.")
        if vol.group_id:
            raise InvalidVolume("Invalid volume: Volume status must be available or error or error_restoring "
                                "or error_extending or error_managing and must not be migrating, attached, "
                                "belong to a group, have snapshots, awaiting a transfer, or be disassociated "
                                "from snapshots after volume transfer.")
        snaps = list(sess.execute(select(m.Snapshot).where(m.Snapshot.volume_id == vol.id)).scalars())
        if snaps and not cascade:
            raise InvalidVolume("Invalid volume: Volume has snapshots; delete them first or use cascade.")
        if cascade and any(s.status not in ("available", "error") for s in snaps):
            raise InvalidVolume("Invalid volume: Snapshots must be available or error to cascade-delete.")
        vol.status = "deleting"
        vol.updated_at = utcnow()
        for snap in snaps:
            snap.status = "deleting"
        emit("delete.start", vol, ctx)
        snap_ids = [s.id for s in snaps]
    current().tasks.submit("volume.delete", _destroy, volume_id, snap_ids, ctx)


def _destroy(volume_id: str, snapshot_ids: list[str], ctx) -> None:
    be = manager.backend()
    try:
        for sid in snapshot_ids:
            be.delete_snapshot(sid)
        be.delete_volume(volume_id)
    except Exception:
        log.exception("deleting volume %s failed", volume_id)
        set_status(volume_id, "error_deleting")
        return
    with current().db.session() as sess:
        for sid in snapshot_ids:
            snap = sess.get(m.Snapshot, sid)
            if snap is not None:
                sess.delete(snap)
        vol = sess.get(m.Volume, volume_id)
        if vol is not None:
            for att in sess.execute(select(m.Attachment).where(m.Attachment.volume_id == volume_id)).scalars():
                sess.delete(att)
            payload = {"volume_id": vol.id, "project_id": vol.project_id, "size": vol.size}
            sess.delete(vol)
            events.emit("volume.delete.end", payload, context=ctx)


# ---------------------------------------------------------------------------- actions
def extend(ctx, volume_id: str, new_size, *, attached_ok: bool) -> None:
    size = _int_size(new_size, "new_size")
    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id, "volume:extend")
        allowed = ("available", "in-use") if attached_ok else ("available",)
        if vol.status not in allowed:
            raise InvalidVolume(f"Invalid volume: Volume status must be {' or '.join(allowed)} to extend, "
                                f"but current status is: {vol.status}.")
        if vol.status == "in-use":
            enforce(ctx, "volume:extend_attached_volume", vol.project_id)
        if size <= vol.size:
            raise InvalidVolume(f"Invalid input received: New size for extend must be greater than current size. "
                                f"(current: {vol.size}, extended: {size}).")
        type_name = sess.get(m.VolumeType, vol.volume_type_id).name if vol.volume_type_id and sess.get(
            m.VolumeType, vol.volume_type_id) else None
        previous = vol.status
    with current().db.session() as sess:
        quotas.lock_project(sess, vol.project_id)
        quotas.check(sess, vol.project_id, {"gigabytes": size - vol.size}, type_name)
        vol = sess.get(m.Volume, volume_id)
        vol.status = "extending"
        emit("resize.start", vol, ctx)
    current().tasks.submit("volume.extend", _extend, volume_id, size, previous, ctx)


def _extend(volume_id: str, size: int, previous: str, ctx) -> None:
    try:
        manager.backend().extend_volume(volume_id, size)
    except Exception:
        log.exception("extending volume %s failed", volume_id)
        set_status(volume_id, "error_extending")
        return
    set_status(volume_id, previous, size=size)
    with current().db.session() as sess:
        vol = sess.get(m.Volume, volume_id)
        if vol is not None:
            emit("resize.end", vol, ctx)


def extend_completion(ctx, volume_id: str, error: bool) -> None:
    """`os-extend_volume_completion` (3.71): finish (or, with `error`, fail) an extend that a
    backend left in `extending` while it waits for the compute host's feedback. Such an
    extend records its target in the admin metadata `extend_new_size` and
    `extend_reservations` (a JSON list); without them there is nothing to complete. Our
    own backends finish online extends themselves and never wait, as most Cinder drivers."""
    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id, "volume_extension:volume_admin_actions:extend_volume_completion")
        if vol.status != "extending":
            raise InvalidVolume("Invalid volume: Volume is not being extended.")
        rows = {k: sess.get(m.VolumeAdminMetadata, (vol.id, k)) for k in ("extend_new_size", "extend_reservations")}
        try:
            new_size = int(rows["extend_new_size"].value)
            reservations = json.loads(rows["extend_reservations"].value)
        except (AttributeError, ValueError):
            raise InvalidVolume("Invalid volume: Required volume admin metadata is malformed or missing.") from None
        if new_size <= vol.size:
            raise InvalidVolume(f"Invalid volume: The target volume size provided in volume admin metadata "
                                f"{new_size} is smaller or equal to the current volume size.")
        if not isinstance(reservations, list):
            raise InvalidVolume("Invalid volume: The stored quota reservations for extending the volume must "
                                "be in a list format.")
        for row in rows.values():
            sess.delete(row)
        if error:
            vol.status, vol.updated_at = "error_extending", utcnow()
        else:
            attached = sess.execute(select(m.Attachment.id).where(m.Attachment.volume_id == vol.id)).first()
            vol.status, vol.size, vol.updated_at = ("in-use" if attached else "available"), new_size, utcnow()
            emit("resize.end", vol, ctx)
    if error:
        from pocketstack.volume import messages

        messages.record(volume_id, "VOLUME", "VOLUME_005_001", "the compute host reported an error")


def check_reimage(ctx, volume_id: str, image_id: str, reserved: bool) -> str:
    """Cinder's preconditions for `os-reimage`: one attachment at most (409), status available
    or error (or reserved with `reimage_reserved`), an active image that fits the volume."""
    from pocketstack.image import core as image_core

    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id)
        enforce(ctx, "volume:reimage_reserved" if vol.status == "reserved" else "volume:reimage", vol.project_id)
        if sess.execute(select(func.count()).select_from(m.Attachment).where(m.Attachment.volume_id == vol.id)
                        ).scalar() > 1:
            raise Conflict("Cannot re-image a volume which is attached to more than one server.")
        allowed = ("available", "error", "reserved") if reserved else ("available", "error")
        if vol.status not in allowed:
            raise InvalidVolume(f"Invalid volume: Volume {vol.id} status must be {' or '.join(allowed)}, but "
                                f"current status is {vol.status}.")
        size = vol.size
    try:
        image = image_core.get_image(image_id, ctx)
    except NotFound:
        raise NotFound(f"Image {image_id} could not be found.") from None
    if image.get("status") != "active":
        raise BadRequest(f"Invalid input received: Image {image_id} is not active.")
    image_gb = max(1, -(-int(image.get("size") or 0) // (1 << 30)), int(image.get("min_disk") or 0))
    if image_gb > size:
        raise BadRequest(f"Invalid input received: Size of specified image {image_gb}GB is larger than volume "
                         f"size {size}GB.")
    return image["id"]


def reset_status(sess: Session, ctx, volume_id: str, body: dict) -> None:
    vol = load(sess, ctx, volume_id, "volume_extension:volume_admin_actions:reset_status")
    if not body or not ({"status", "attach_status", "migration_status"} & set(body)):
        raise BadRequest("Must specify 'status', 'attach_status' or 'migration_status' for update.")
    status = body.get("status")
    if status is not None:
        if status not in STATUSES:
            raise BadRequest(f"Invalid input received: Must specify a valid status, not {status!r}.")
        vol.status = status
    attach = body.get("attach_status")
    if attach is not None:
        if attach not in ("attached", "detached"):
            raise BadRequest(f"Invalid input received: Must specify a valid attach status, not {attach!r}.")
        vol.attach_status = attach
        if attach == "detached":
            for att in sess.execute(select(m.Attachment).where(m.Attachment.volume_id == vol.id)).scalars():
                sess.delete(att)
    if "migration_status" in body:
        vol.migration_status = body["migration_status"]
    vol.updated_at = utcnow()
    emit("reset_status", vol, ctx)


def set_bootable(sess: Session, ctx, volume_id: str, value) -> None:
    from pocketstack.volume.api.common import bool_param

    vol = load(sess, ctx, volume_id, "volume:update")
    vol.bootable = bool_param(value, "bootable")
    vol.updated_at = utcnow()
    emit("update", vol, ctx)


def set_readonly(sess: Session, ctx, volume_id: str, value) -> None:
    from pocketstack.volume.api.common import bool_param

    vol = load(sess, ctx, volume_id, "volume:update_readonly_flag")
    if vol.status not in ("available", "in-use"):
        raise InvalidVolume(f"Invalid volume: Volume status must be available/in-use, but is {vol.status}.")
    readonly = bool_param(value, "readonly")
    row = sess.get(m.VolumeAdminMetadata, (vol.id, "readonly"))
    if row is None:
        sess.add(m.VolumeAdminMetadata(volume_id=vol.id, key="readonly", value=str(readonly)))
    else:
        row.value = str(readonly)
    vol.updated_at = utcnow()
    emit("update", vol, ctx)


def retype(ctx, volume_id: str, body: dict) -> None:
    new_type = body.get("new_type")
    policy = body.get("migration_policy", "never")
    if not new_type:
        raise BadRequest("New volume type must be specified.")
    if policy not in ("never", "on-demand"):
        raise BadRequest(f"Invalid migration policy {policy}.")
    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id, "volume:retype")
        if vol.status not in ("available", "in-use"):
            raise InvalidVolume(f"Invalid volume: Volume status must be available or in-use, but is {vol.status}.")
        vtype = types.get_type(sess, ctx, str(new_type))
        if vtype.id == vol.volume_type_id:
            raise BadRequest("Invalid input received: New volume type must be different from the current one.")
        if vol.group_id:
            raise InvalidVolume("Invalid volume: a volume in a group cannot be retyped; remove it from the group.")
        from pocketstack.volume import encryption

        encryption.refuse_encrypted(sess, vtype.id, "retype a volume to a type")
        old_type = sess.get(m.VolumeType, vol.volume_type_id) if vol.volume_type_id else None
    with current().db.session() as sess:
        quotas.lock_project(sess, vol.project_id)
        quotas.check(sess, vol.project_id, {f"volumes_{vtype.name}": 1, f"gigabytes_{vtype.name}": vol.size})
        vol = sess.get(m.Volume, volume_id)
        vol.volume_type_id = vtype.id
        multi = types.specs_of(sess, vtype.id).get("multiattach", "").lower() in ("<is> true", "true")
        vol.multiattach = multi
        vol.updated_at = utcnow()
        emit("retype", vol, ctx, old_volume_type=old_type.id if old_type else None, new_volume_type=vtype.id)


def revert_to_snapshot(ctx, volume_id: str, snapshot_id) -> None:
    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id, "volume:revert_to_snapshot")
        snap = sess.get(m.Snapshot, str(snapshot_id)) if snapshot_id else None
        if snap is None or snap.volume_id != vol.id:
            raise BadRequest(f"Invalid snapshot: snapshot {snapshot_id} does not belong to volume {vol.id}.")
        latest = sess.execute(select(m.Snapshot).where(m.Snapshot.volume_id == vol.id)
                              .order_by(m.Snapshot.created_at.desc())).scalars().first()
        if latest.id != snap.id:
            raise BadRequest("Invalid snapshot: Volume can only be reverted to its latest snapshot.")
        if vol.status != "available" or snap.status != "available":
            raise Conflict("Volume and snapshot must be available to revert.")
        if snap.size != vol.size:
            raise BadRequest("Invalid snapshot: the volume has been extended since the snapshot.")
        vol.status = "reverting"
        snap.status = "restoring"
    try:
        manager.backend().revert_to_snapshot(volume_id, snap.id)
        set_status(volume_id, "available")
    except Exception:
        log.exception("revert of %s failed", volume_id)
        set_status(volume_id, "error")
    with current().db.session() as sess:
        s = sess.get(m.Snapshot, snap.id)
        if s is not None:
            s.status = "available"


def upload_to_image(ctx, volume_id: str, body: dict) -> dict:
    """`os-volume_upload_image`: a new image (queued) filled from the volume's bytes."""
    from pocketstack.image import core as image_core

    name = body.get("image_name")
    if not isinstance(name, str) or not name:
        raise BadRequest("No image_name was specified in request.")
    force = body.get("force", False)
    from pocketstack.volume.api.common import bool_param

    force = bool_param(force, "force")
    disk_format = body.get("disk_format", "raw")
    if disk_format not in UPLOAD_FORMATS:
        raise BadRequest(f"Invalid disk-format '{disk_format}' is specified. Allowed disk-formats are "
                         f"{', '.join(UPLOAD_FORMATS)}.")
    container_format = body.get("container_format", "bare")
    visibility = body.get("visibility", "private")
    if visibility not in ("private", "public", "shared", "community"):
        raise BadRequest(f"Invalid visibility {visibility}.")
    if visibility == "public":
        enforce(ctx, "volume_extension:volume_actions:upload_public", ctx.project_id)
    protected = bool_param(body.get("protected", False), "protected")
    with current().db.session() as sess:
        vol = load(sess, ctx, volume_id, "volume_extension:volume_actions:upload_image")
        if vol.status != "available" and not (force and vol.status == "in-use"):
            raise InvalidVolume(f"Invalid volume: Volume {vol.id} status must be available or in-use with force, "
                                f"but current status is: {vol.status}.")
        previous = vol.status
        vol.status = "uploading"
        props = image_metadata_of(sess, [vol.id]).get(vol.id, {})
        size = vol.size
    meta = {"name": name, "disk_format": disk_format, "container_format": container_format,
            "visibility": visibility, "protected": protected}
    for key in ("kernel_id", "ramdisk_id", "architecture", "os_type", "hw_disk_bus", "hw_video_model"):
        if key in props:
            meta[key] = props[key]
    try:
        image = image_core.create_image(ctx, meta)
    except ApiError:
        set_status(volume_id, previous)
        raise
    current().tasks.submit("volume.upload", _upload, volume_id, image["id"], previous, ctx, disk_format)
    return {"id": vol.id, "updated_at": utcnow(), "status": "uploading", "display_description": vol.description,
            "size": size, "volume_type": None, "image_id": image["id"], "container_format": container_format,
            "disk_format": disk_format, "image_name": name, "protected": protected, "visibility": visibility}


def _upload(volume_id: str, image_id: str, previous: str, ctx, disk_format: str = "raw") -> None:
    from pocketstack.image import core as image_core

    try:
        if disk_format == "raw":
            image_core.upload_image(None, image_id, manager.backend().read_volume(volume_id))
        else:
            _upload_converted(volume_id, image_id, disk_format)
    except Exception:
        log.exception("uploading volume %s to image %s failed", volume_id, image_id)
    set_status(volume_id, previous)


def _upload_converted(volume_id: str, image_id: str, disk_format: str) -> None:
    """Non-raw uploads: `qemu-img convert` of the volume's bytes into a temporary file in
    the requested format, streamed into the image service."""
    import shutil
    import subprocess
    import tempfile

    from pocketstack.image import core as image_core

    if not shutil.which("qemu-img"):
        raise BackendError(f"qemu-img is needed to upload a volume as {disk_format}")
    be = manager.backend()
    workdir = getattr(be, "root", None)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".upload-") as tmp:
        src = f"{tmp}/volume.raw"
        with open(src, "wb") as fh:
            for chunk in be.read_volume(volume_id):
                fh.write(chunk)
        dst = f"{tmp}/image.{disk_format}"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", QEMU_FORMATS[disk_format], src, dst],
                       check=True, capture_output=True)

        def chunks():
            with open(dst, "rb") as fh:
                while block := fh.read(1 << 20):
                    yield block

        image_core.upload_image(None, image_id, chunks())
