"""Volume backups (cinder-backup): full and incremental copies of a volume's bytes kept
outside the volume backend, restores to a new or an existing volume, and records that
can be exported and imported.

States follow Cinder: a backup is `creating` -> `available` | `error`, `restoring` while a
restore reads it, `deleting` -> gone | `error_deleting`. The source volume is
`backing-up` meanwhile (an in-use volume, backed up with `force`, stays `in-use`: its
attachments own that status) and a snapshot source is `backing-up`; a restore target is
`restoring-backup` -> `available` | `error_restoring`. A crash leaves transient states
that `manager.repair_interrupted()` settles on the next start.

Where the bytes go is a backup driver (`backup_drivers/`): `swift` (objects in the object
service) when that service is enabled, `posix` (a directory) otherwise, or as set by
`[backup] driver`. Each backup remembers its driver in its manifest, so changing the
setting never strands older backups.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import ApiError, BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import manager, quotas, snapshots, types, volumes
from pocketstack.volume import models as m
from pocketstack.volume.backup_drivers.base import CHUNK_SIZE, BackupDriver

log = logging.getLogger("pocketstack.volume")

DEFAULT_CONTAINER = "volumebackups"
STATUSES = ("creating", "available", "deleting", "error", "error_deleting", "restoring")
RESET_STATUSES = ("available", "error")
SORT_KEYS = {"created_at", "updated_at", "id", "name", "size", "status", "volume_id", "project_id",
             "data_timestamp", "container"}
_drivers: dict[str, BackupDriver] = {}


class InvalidBackup(ApiError):
    code = 400


# ---------------------------------------------------------------------------- drivers
def default_driver_name() -> str:
    cfg = current().config
    configured = cfg.get("backup", "driver", "") or ""
    if configured:
        return configured
    return "swift" if "object" in cfg.enabled_services else "posix"


def driver(name: str | None = None) -> BackupDriver:
    name = name or default_driver_name()
    if name not in _drivers:
        if name == "posix":
            from pocketstack.volume.backup_drivers.posix import PosixBackupDriver

            root = current().config.get("backup", "backup_posix_path", "") or str(
                current().config.state_dir / "backup")
            _drivers[name] = PosixBackupDriver(root)
        elif name == "swift":
            from pocketstack.volume.backup_drivers.swift import SwiftBackupDriver

            _drivers[name] = SwiftBackupDriver()
        else:
            raise BadRequest(f"Unsupported backup driver {name!r} (available: posix, swift).")
    return _drivers[name]


def reset_drivers() -> None:
    """Drivers are rebuilt from the runtime's configuration (service setup)."""
    _drivers.clear()


def _driver_by_service(service: str) -> BackupDriver:
    for name in ("posix", "swift"):
        if service in (name, f"cinder.backup.drivers.{name}", f"pocketstack.volume.backup_drivers.{name}"):
            return driver(name)
    raise BadRequest(f"Invalid input received: Unsupported backup service {service!r}.")


# ---------------------------------------------------------------------------- access
def not_found(backup_id: str) -> NotFound:
    return NotFound(f"Backup {backup_id} could not be found.")


def load(sess: Session, ctx, backup_id: str, rule: str = "backup:get") -> m.Backup:
    backup = sess.get(m.Backup, backup_id) if backup_id else None
    if backup is None or (ctx is not None and not ctx.is_admin and backup.project_id != ctx.project_id):
        raise not_found(backup_id)
    volumes.enforce(ctx, rule, backup.project_id)
    return backup


def emit(event: str, backup: m.Backup, ctx=None, **extra) -> None:
    events.emit(f"backup.{event}", {"backup_id": backup.id, "volume_id": backup.volume_id,
                                    "project_id": backup.project_id, "status": backup.status,
                                    "size": backup.size, **extra}, context=ctx)


def dependents(sess: Session, backup_ids: list[str]) -> set[str]:
    """Which of these backups are the parent of an incremental backup."""
    if not backup_ids:
        return set()
    return set(sess.execute(select(m.Backup.parent_id).where(m.Backup.parent_id.in_(backup_ids))).scalars())


def _set(backup_id: str, status: str, **fields) -> m.Backup | None:
    with current().db.session() as sess:
        backup = sess.get(m.Backup, backup_id)
        if backup is None:
            return None
        backup.status = status
        for key, value in fields.items():
            setattr(backup, key, value)
        backup.updated_at = utcnow()
        emit("update", backup)
        return backup


# ---------------------------------------------------------------------------- create
def create(ctx, body: dict, *, metadata_allowed: bool = True, az_allowed: bool = True) -> str:
    from pocketstack.volume.api.common import bool_param

    allowed = {"volume_id", "container", "description", "incremental", "force", "name", "snapshot_id",
               "metadata", "availability_zone", "display_name", "display_description"}
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(repr(u) for u in sorted(unknown))} "
                         f"{'was' if len(unknown) == 1 else 'were'} unexpected)")
    volume_id = body.get("volume_id")
    if not isinstance(volume_id, str) or not volume_id:
        raise BadRequest("Invalid input for field/attribute volume_id. Value: None. 'volume_id' is a required "
                         "property")
    name = volumes._string(body, "name") if "name" in body else volumes._string(body, "display_name")
    description = (volumes._string(body, "description") if "description" in body
                   else volumes._string(body, "display_description"))
    container = volumes._string(body, "container")
    if container is not None and (not container or "/" in container or container in (".", "..")):
        raise BadRequest(f"Invalid input for field/attribute container. Value: {container}.")
    incremental = bool_param(body.get("incremental", False), "incremental")
    force = bool_param(body.get("force", False), "force")
    metadata = volumes.check_metadata(body.get("metadata") or {}) if metadata_allowed else {}
    az = body.get("availability_zone") if az_allowed else None
    if az is not None and az != manager.availability_zone():
        raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")
    snapshot_id = body.get("snapshot_id")
    volumes.enforce(ctx, "backup:create", ctx.project_id)
    drv = driver()
    with current().db.session() as sess:
        vol = volumes.load(sess, ctx, volume_id)
        snap = None
        if snapshot_id:
            snap = sess.get(m.Snapshot, str(snapshot_id))
            if snap is None or snap.volume_id != vol.id:
                raise NotFound(f"Snapshot {snapshot_id} could not be found.")
            if snap.status != "available":
                raise InvalidBackup(f"Invalid snapshot: Snapshot to be backed up must be available, but the "
                                    f"current status is \"{snap.status}\".")
        elif vol.status == "in-use" and not force:
            raise InvalidBackup(f"Invalid volume: Backing up an in-use volume must use the force flag.")
        elif vol.status not in ("available", "in-use"):
            raise InvalidBackup(f"Invalid volume: Volume to be backed up must be available or in-use, but the "
                                f"current status is \"{vol.status}\".")
        parent = None
        if incremental:
            candidates = [b for b in sess.execute(
                select(m.Backup).where(m.Backup.volume_id == vol.id, m.Backup.status == "available",
                                       m.Backup.project_id == ctx.project_id)).scalars()
                          if (b.service_metadata or {}).get("driver") == drv.name]
            if not candidates:
                raise InvalidBackup("Invalid backup: No backups available to do an incremental backup.")
            parent = max(candidates, key=lambda b: (b.data_timestamp or b.created_at, b.created_at))
            container = container or parent.container  # another container may hold the new chunks
        container = container or DEFAULT_CONTAINER
        size, owner = vol.size, ctx.project_id
        # Cinder backs up the volume's metadata with its data: a restore brings it back.
        saved = {"metadata": volumes.metadata_of(sess, [vol.id])[vol.id],
                 "image_metadata": volumes.image_metadata_of(sess, [vol.id]).get(vol.id, {}),
                 "bootable": vol.bootable}
        data_timestamp = snap.created_at if snap is not None else utcnow()
        parent_id = parent.id if parent else None
        parent_manifest = dict(parent.service_metadata) if parent else None
    backup_id = manager.new_id()
    with current().db.session() as sess:
        quotas.lock_project(sess, owner)
        quotas.check(sess, owner, {"backups": 1, "backup_gigabytes": size})
        vol = sess.get(m.Volume, volume_id)
        previous = vol.status if vol is not None else None
        if vol is None or (snapshot_id is None and vol.status not in ("available", "in-use")):
            raise InvalidBackup("Invalid volume: the volume changed state; try again.")
        if parent_id:
            parent_row = sess.get(m.Backup, parent_id)
            if parent_row is None or parent_row.status != "available":
                raise InvalidBackup("Invalid backup: the parent backup changed state; try again.")
            parent_row.updated_at = utcnow()  # a write: a concurrent delete of the parent conflicts
        if snapshot_id:
            snap = sess.get(m.Snapshot, str(snapshot_id))
            if snap is None or snap.status != "available":
                raise InvalidBackup("Invalid snapshot: the snapshot changed state; try again.")
            snap.status = "backing-up"
            snapshots.emit("update", snap, ctx)
        elif vol.status == "available":
            vol.status = "backing-up"
            vol.updated_at = utcnow()
            volumes.emit("update", vol, ctx)
        backup = m.Backup(id=backup_id, volume_id=volume_id, snapshot_id=snapshot_id, project_id=owner,
                          user_id=ctx.user_id, name=name, description=description, size=size, object_count=0,
                          status="creating", availability_zone=manager.availability_zone(), container=container,
                          parent_id=parent_id, is_incremental=bool(parent_id), data_timestamp=data_timestamp,
                          service_metadata={"driver": drv.name, "volume": saved}, metadata_=metadata,
                          created_at=utcnow())
        sess.add(backup)
        sess.flush()
        emit("create.start", backup, ctx)
    current().tasks.submit("backup.create", _run_backup, backup_id, volume_id, snapshot_id, previous, drv.name,
                           owner, container, parent_manifest, saved, ctx)
    return backup_id


def _run_backup(backup_id: str, volume_id: str, snapshot_id: str | None, previous: str | None, driver_name: str,
                owner: str, container: str, parent_manifest: dict | None, saved: dict, ctx) -> None:
    be = manager.backend()
    drv = driver(driver_name)
    manifest = None
    try:
        data = be.read_chunks(volume_id, snapshot_id, CHUNK_SIZE)
        manifest = drv.backup(backup_id, owner, container, data, parent_manifest)
        manifest["driver"] = drv.name
        manifest["volume"] = saved
    except Exception as exc:
        log.exception("backup %s of volume %s failed", backup_id, volume_id)
        _cleanup_data(drv, backup_id, owner, container)
        _set(backup_id, "error", fail_reason=f"{type(exc).__name__}: {exc}"[:255])
        from pocketstack.volume import messages

        messages.record(backup_id, "VOLUME_BACKUP", "VOLUME_008_001", type(exc).__name__)
    finally:
        _release_source(volume_id, snapshot_id, previous)
    if manifest is None:
        return
    with current().db.session() as sess:
        backup = sess.get(m.Backup, backup_id)
        if backup is not None:
            backup.status = "available"
            backup.service_metadata = manifest
            backup.object_count = manifest["stored"]
            backup.updated_at = utcnow()
            emit("create.end", backup, ctx)
            return
    _cleanup_data(drv, backup_id, owner, container)  # force-deleted while it ran


def _release_source(volume_id: str, snapshot_id: str | None, previous: str | None) -> None:
    with current().db.session() as sess:
        if snapshot_id:
            snap = sess.get(m.Snapshot, snapshot_id)
            if snap is not None and snap.status == "backing-up":
                snap.status = "available"
                snapshots.emit("update", snap)
            return
        vol = sess.get(m.Volume, volume_id)
        if vol is not None and vol.status == "backing-up":
            vol.status = previous if previous in ("available", "in-use") else "available"
            vol.updated_at = utcnow()
            volumes.emit("update", vol)


def _cleanup_data(drv: BackupDriver, backup_id: str, owner: str, container: str) -> None:
    try:
        drv.delete(backup_id, owner, container)
    except Exception:  # the delete of the (error) backup retries it
        log.exception("removing the data of backup %s failed", backup_id)


# ---------------------------------------------------------------------------- list, update
def list_backups(sess: Session, ctx, query: dict) -> list[m.Backup]:
    volumes.enforce(ctx, "backup:get_all", ctx.project_id)
    q = select(m.Backup)
    all_tenants = str(query.get("all_tenants", "")).lower() in ("1", "true", "yes", "on", "t")
    project = query.get("project_id")
    if not (ctx.is_admin and all_tenants):
        q = q.where(m.Backup.project_id == (project if ctx.is_admin and project else ctx.project_id))
    elif project:
        q = q.where(m.Backup.project_id == project)
    for key in ("status", "volume_id", "name", "display_name", "snapshot_id", "container"):
        if key in query:
            value = query[key]
            col = m.Backup.name if key == "display_name" else getattr(m.Backup, key)
            q = q.where(col.like(f"%{value[1:]}%") if key in ("name", "display_name") and value.startswith("~")
                        else col == value)
    if "name~" in query:
        q = q.where(m.Backup.name.like(f"%{query['name~']}%"))
    return list(sess.execute(q.order_by(*volumes.sort_order(query, m.Backup, SORT_KEYS))).scalars())


def update(sess: Session, ctx, backup_id: str, body: dict, *, metadata_allowed: bool) -> m.Backup:
    backup = load(sess, ctx, backup_id, "backup:update")
    allowed = {"name", "description", "display_name", "display_description"} | ({"metadata"} if metadata_allowed
                                                                                  else set())
    if not body or set(body) - allowed:
        bad = sorted(set(body) - allowed) if body else []
        raise BadRequest(f"Invalid input: {', '.join(bad) or 'nothing to update'}.")
    if "name" in body or "display_name" in body:
        backup.name = volumes._string(body, "name") if "name" in body else volumes._string(body, "display_name")
    if "description" in body or "display_description" in body:
        backup.description = (volumes._string(body, "description") if "description" in body
                              else volumes._string(body, "display_description"))
    if "metadata" in body:
        backup.metadata_ = volumes.check_metadata(body["metadata"])
    backup.updated_at = utcnow()
    emit("update", backup, ctx)
    return backup


# ---------------------------------------------------------------------------- delete
def delete(ctx, backup_id: str, *, force: bool = False) -> None:
    with current().db.session() as sess:
        backup = load(sess, ctx, backup_id, "volume_extension:backup_admin_actions:force_delete" if force
                      else "backup:delete")
        if backup.status == "deleting" or (not force and backup.status not in ("available", "error",
                                                                                "error_deleting")):
            raise InvalidBackup(f"Invalid backup: Backup status must be available or error, but is "
                                f"{backup.status}.")
        backup.status = "deleting"
        backup.updated_at = utcnow()
        sess.flush()  # row-locked first, so an incremental being created on it cannot slip in
        if dependents(sess, [backup.id]):
            raise InvalidBackup("Invalid backup: Incremental backups exist for this backup.")
        emit("delete.start", backup, ctx)
        drv_name = (backup.service_metadata or {}).get("driver") or default_driver_name()
        owner = (backup.service_metadata or {}).get("owner") or backup.project_id
        container = backup.container or DEFAULT_CONTAINER
    current().tasks.submit("backup.delete", _run_delete, backup_id, drv_name, owner, container, ctx)


def _run_delete(backup_id: str, drv_name: str, owner: str, container: str, ctx) -> None:
    try:
        driver(drv_name).delete(backup_id, owner, container)
    except Exception as exc:
        log.exception("deleting backup %s failed", backup_id)
        _set(backup_id, "error_deleting", fail_reason=f"{type(exc).__name__}: {exc}"[:255])
        return
    with current().db.session() as sess:
        backup = sess.get(m.Backup, backup_id)
        if backup is not None:
            payload = {"backup_id": backup.id, "volume_id": backup.volume_id, "project_id": backup.project_id}
            sess.delete(backup)
            events.emit("backup.delete.end", payload, context=ctx)


# ---------------------------------------------------------------------------- restore
def restore(ctx, backup_id: str, body: dict) -> dict:
    """Restore into `volume_id` (available, big enough) or into a new volume of the
    backup's size; returns Cinder's `restore` body."""
    if not isinstance(body, dict):
        raise BadRequest("Invalid input: 'restore' must be an object.")
    volume_id = body.get("volume_id")
    name = volumes._string(body, "name")
    with current().db.session() as sess:
        backup = load(sess, ctx, backup_id, "backup:restore")
        if backup.status != "available":
            raise InvalidBackup(f"Invalid backup: Backup status must be available, but is {backup.status}.")
        size, manifest = backup.size, dict(backup.service_metadata or {})
        if volume_id:
            vol = volumes.load(sess, ctx, str(volume_id), "volume:update")
            if vol.status != "available":
                raise volumes.InvalidVolume(f"Invalid volume: Volume to be restored to must be available, but "
                                            f"the current status is \"{vol.status}\".")
            if vol.size < size:
                raise volumes.InvalidVolume(f"Invalid volume: volume size {vol.size} is too small to restore "
                                            f"backup of size {size}.")
    new_volume = not volume_id
    with current().db.session() as sess:
        backup = sess.get(m.Backup, backup_id)
        if backup is None or backup.status != "available":
            raise InvalidBackup("Invalid backup: the backup changed state; try again.")
        if new_volume:
            vtype = types.default_type(sess, ctx.project_id)
            quotas.lock_project(sess, ctx.project_id)
            quotas.check(sess, ctx.project_id, {"volumes": 1, "gigabytes": size}, vtype.name)
            volume_id = manager.new_id()
            vol = m.Volume(id=volume_id, project_id=ctx.project_id, user_id=ctx.user_id,
                           name=name or f"restore_backup_{backup_id}",
                           description="auto-created_from_restore_from_backup", size=size,
                           status="restoring-backup", attach_status="detached",
                           availability_zone=manager.availability_zone(), host=manager.pool_host(),
                           volume_type_id=vtype.id, created_at=utcnow())
            sess.add(vol)
            sess.flush()
            volumes.emit("create.start", vol, ctx)
        else:
            vol = sess.get(m.Volume, str(volume_id))
            if vol is None or vol.status != "available":
                raise volumes.InvalidVolume("Invalid volume: the volume changed state; try again.")
            vol.status = "restoring-backup"
            vol.updated_at = utcnow()
            volumes.emit("update", vol, ctx)
        backup.status = "restoring"
        backup.updated_at = utcnow()
        emit("restore.start", backup, ctx, target_volume_id=vol.id)
        result = {"backup_id": backup_id, "volume_id": vol.id, "volume_name": vol.name or ""}
        vol_size = vol.size
    current().tasks.submit("backup.restore", _run_restore, backup_id, result["volume_id"], vol_size, manifest,
                           new_volume, ctx)
    return result


def _run_restore(backup_id: str, volume_id: str, vol_size: int, manifest: dict, new_volume: bool, ctx) -> None:
    be = manager.backend()
    try:
        drv = driver(manifest.get("driver"))
        be.write_volume(volume_id, drv.restore(manifest), vol_size)
    except Exception as exc:
        log.exception("restoring backup %s into volume %s failed", backup_id, volume_id)
        volumes.set_status(volume_id, "error_restoring")
        _set(backup_id, "available")
        from pocketstack.volume import messages

        messages.record(volume_id, "VOLUME", "VOLUME_001_001", f"restore backup failed: {type(exc).__name__}")
        return
    location = str(getattr(be, "path", lambda v: v)(volume_id))
    _restore_volume_metadata(volume_id, manifest.get("volume") or {})
    if new_volume:
        volumes.set_status(volume_id, "available", provider_location=location, launched_at=utcnow())
    else:
        volumes.set_status(volume_id, "available")
    backup = _set(backup_id, "available")
    if backup is not None:
        events.emit("backup.restore.end", {"backup_id": backup_id, "volume_id": volume_id,
                                           "project_id": backup.project_id}, context=ctx)


def _restore_volume_metadata(volume_id: str, saved: dict) -> None:
    """The source volume's metadata, image metadata and bootable flag, onto the target
    (keys the target already has are overwritten, others kept), as Cinder does."""
    with current().db.session() as sess:
        vol = sess.get(m.Volume, volume_id)
        if vol is None:
            return
        for model, values in ((m.VolumeMetadata, saved.get("metadata") or {}),
                              (m.VolumeImageMetadata, saved.get("image_metadata") or {})):
            for key, value in values.items():
                row = sess.get(model, (volume_id, key))
                if row is None:
                    sess.add(model(volume_id=volume_id, key=key, value=value))
                else:
                    row.value = value
        if "bootable" in saved:
            vol.bootable = bool(saved["bootable"])


# ---------------------------------------------------------------------------- records
RECORD_FIELDS = ("id", "volume_id", "snapshot_id", "project_id", "user_id", "name", "description", "size",
                 "object_count", "container", "parent_id", "is_incremental", "availability_zone")


def export_record(sess: Session, ctx, backup_id: str) -> dict:
    backup = load(sess, ctx, backup_id, "backup:backup-export")
    if backup.status != "available":
        raise InvalidBackup(f"Invalid backup: Backup status must be available and not {backup.status}.")
    record = {key: getattr(backup, key) for key in RECORD_FIELDS}
    record.update(metadata=backup.metadata_, service_metadata=backup.service_metadata,
                  data_timestamp=backup.data_timestamp.isoformat() if backup.data_timestamp else None,
                  created_at=backup.created_at.isoformat())
    drv = driver((backup.service_metadata or {}).get("driver"))
    url = base64.b64encode(json.dumps(record, sort_keys=True).encode()).decode()
    events.emit("backup.export", {"backup_id": backup.id, "project_id": backup.project_id}, context=ctx)
    return {"backup_service": drv.service, "backup_url": url}


def import_record(ctx, body: dict) -> str:
    volumes.enforce(ctx, "backup:backup-import", ctx.project_id)
    service, url = body.get("backup_service"), body.get("backup_url")
    if not isinstance(service, str) or not service or not isinstance(url, str) or not url:
        raise BadRequest("Incorrect request body format: backup_service and backup_url are required.")
    drv = _driver_by_service(service)
    try:
        record = json.loads(base64.b64decode(url.encode(), validate=True))
        manifest = record["service_metadata"]
        backup_id = str(record["id"])
        size = int(record["size"])
        if not isinstance(manifest, dict) or not isinstance(manifest.get("chunks"), list):
            raise ValueError("no manifest")
    except (ValueError, KeyError, TypeError):
        raise BadRequest("Invalid input received: Can't parse backup record.") from None
    if manifest.get("driver") != drv.name:
        raise BadRequest(f"Invalid input received: the record was made by the {manifest.get('driver')} driver, "
                         f"not {drv.name}.")
    try:
        drv.verify(manifest)
    except Exception as exc:
        raise InvalidBackup(f"Invalid backup: the backup's data is not in the backup store ({exc}).") from None
    owner = ctx.project_id
    with current().db.session() as sess:
        if sess.get(m.Backup, backup_id) is not None:
            raise InvalidBackup("Invalid backup: Backup already exists in database.")
        parent_id = record.get("parent_id")
        if parent_id and sess.get(m.Backup, parent_id) is None:
            parent_id = None  # its chunks are named in the manifest; the parent row is not needed
        quotas.lock_project(sess, owner)
        quotas.check(sess, owner, {"backups": 1, "backup_gigabytes": size})
        stamp = record.get("data_timestamp")
        backup = m.Backup(id=backup_id, volume_id=str(record.get("volume_id") or ""),
                          snapshot_id=record.get("snapshot_id"), project_id=owner, user_id=ctx.user_id,
                          name=record.get("name"), description=record.get("description"), size=size,
                          object_count=int(record.get("object_count") or 0), status="available",
                          availability_zone=manager.availability_zone(),
                          container=record.get("container") or DEFAULT_CONTAINER, parent_id=parent_id,
                          is_incremental=bool(record.get("is_incremental")),
                          data_timestamp=dt.datetime.fromisoformat(stamp) if stamp else utcnow(),
                          service_metadata=manifest, metadata_=record.get("metadata") or {}, created_at=utcnow())
        sess.add(backup)
        sess.flush()
        emit("import", backup, ctx)
    return backup_id


def reset_status(sess: Session, ctx, backup_id: str, status) -> None:
    backup = load(sess, ctx, backup_id, "volume_extension:backup_admin_actions:reset_status")
    if status not in RESET_STATUSES:
        raise BadRequest(f"Invalid input received: Must specify a valid status, not {status!r}.")
    backup.status = status
    backup.updated_at = utcnow()
    emit("reset_status", backup, ctx)


def count(sess: Session, project_id: str) -> int:
    return sess.execute(select(func.count()).select_from(m.Backup).where(m.Backup.project_id == project_id)).scalar()
