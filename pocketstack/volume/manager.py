"""cinder-volume and cinder-scheduler, in-process: the backend, service records, repairs.

One backend per controller for now (`[volume] backend`, default `file`; `lvm` when a
volume group is configured). Its service is `<host>@<backend>` (binary `cinder-volume`)
and volumes placed on it get `<host>@<backend>#<pool>` as `os-vol-host-attr:host`, the
form Cinder reports. The heartbeat keeps both services `up` in `os-services`.

Long operations (copies, image downloads, uploads) run on the task runner, so the API
answers 202 at once and the volume moves through Cinder's states. A crash mid-operation
leaves the volume in a transient state; `repair_interrupted()` on the next start moves it
to `error` (deletable), never leaving a half-copied volume `available`.
"""
from __future__ import annotations

import logging
import socket
import threading
import uuid

from sqlalchemy import select, update

from pocketstack.common.db import utcnow
from pocketstack.common.runtime import Runtime, current
from pocketstack.volume import models as m
from pocketstack.volume.backends.base import VolumeBackend

log = logging.getLogger("pocketstack.volume")

TRANSIENT_VOLUME = ("creating", "deleting", "extending", "downloading", "uploading", "retyping",
                    "backing-up", "restoring-backup", "reverting", "maintenance")
TRANSIENT_SNAPSHOT = ("creating", "deleting")
TRANSIENT_BACKUP = ("creating", "deleting", "restoring")
HEARTBEAT = 10.0

_backend: VolumeBackend | None = None
_stop = threading.Event()


def host_name() -> str:
    return current().config.get("volume", "host", "") or socket.gethostname().split(".")[0] or "pocketstack"


def backend_name() -> str:
    return current().config.get("volume", "backend_name", "") or current().config.get("volume", "backend", "file")


def service_host() -> str:
    return f"{host_name()}@{backend_name()}"


def pool_host() -> str:
    return f"{service_host()}#{backend_name()}"


def availability_zone() -> str:
    return current().config.get("volume", "storage_availability_zone", "") or "nova"


def build_backend(rt: Runtime) -> VolumeBackend:
    kind = rt.config.get("volume", "backend", "file")
    if kind == "file":
        from pocketstack.volume.backends.file import FileBackend

        cap = rt.config.get("volume", "file_capacity_gb", "")
        return FileBackend(rt.config.state_dir / "volume" / "file", backend_name=backend_name(),
                           capacity_gb=int(cap) if cap else None)
    if kind == "lvm":
        from pocketstack.volume.backends.lvm import LvmBackend

        return LvmBackend(rt.config.get("volume", "volume_group", "cinder-volumes"), backend_name=backend_name(),
                          pool_name=rt.config.get("volume", "lvm_pool_name", "") or None,
                          root=rt.config.state_dir / "volume" / "lvm")
    raise ValueError(f"unknown [volume] backend {kind!r} (available: file, lvm)")


def backend() -> VolumeBackend:
    global _backend
    if _backend is None:
        _backend = build_backend(current())
    return _backend


def set_backend(b: VolumeBackend | None) -> None:
    global _backend
    _backend = b


def heartbeat() -> None:
    rt = current()
    now = utcnow()
    with rt.db.session() as sess:
        for host, binary, caps in ((host_name(), "cinder-scheduler", {}),
                                   (service_host(), "cinder-volume", backend().capabilities())):
            svc = sess.execute(select(m.Service).where(m.Service.host == host, m.Service.binary == binary)
                               ).scalars().first()
            if svc is None:
                sess.add(m.Service(host=host, binary=binary, zone=availability_zone(), last_seen_at=now,
                                   capabilities=caps))
            else:
                svc.last_seen_at = now
                svc.capabilities = caps


def _beat_forever() -> None:
    while not _stop.wait(HEARTBEAT):
        try:
            heartbeat()
        except Exception:  # the database may be briefly unavailable; try again next beat
            log.exception("volume service heartbeat failed")


def repair_interrupted() -> list[str]:
    """Operations that were running when the previous process stopped cannot finish now."""
    repaired = []
    with current().db.session() as sess:
        for vol in sess.execute(select(m.Volume).where(m.Volume.status.in_(TRANSIENT_VOLUME))).scalars():
            # A backup only reads the volume: its data is intact, the (errored) backup is not.
            new = {"deleting": "error_deleting", "backing-up": "available",
                   "restoring-backup": "error_restoring"}.get(vol.status, "error")
            log.warning("volume %s was %s when pocketstack stopped: now %s", vol.id, vol.status, new)
            vol.status = new
            vol.updated_at = utcnow()
            repaired.append(vol.id)
        sess.execute(update(m.Snapshot).where(m.Snapshot.status == "creating").values(status="error"))
        sess.execute(update(m.Snapshot).where(m.Snapshot.status == "deleting").values(status="error_deleting"))
        sess.execute(update(m.Snapshot).where(m.Snapshot.status == "backing-up").values(status="available"))
        # An interrupted restore leaves the backup itself intact (the target volume is in error).
        sess.execute(update(m.Backup).where(m.Backup.status == "restoring").values(status="available"))
        sess.execute(update(m.Backup).where(m.Backup.status.in_(TRANSIENT_BACKUP)).values(
            status="error", fail_reason="interrupted: pocketstack stopped while it ran"))
        # Groups only change rows (their volumes and snapshots were repaired above).
        sess.execute(update(m.Group).where(m.Group.status == "updating").values(status="available"))
        sess.execute(update(m.Group).where(m.Group.status == "creating").values(status="error"))
        sess.execute(update(m.Group).where(m.Group.status == "deleting").values(status="error_deleting"))
        sess.execute(update(m.GroupSnapshot).where(m.GroupSnapshot.status == "creating").values(status="error"))
        sess.execute(update(m.GroupSnapshot).where(m.GroupSnapshot.status == "deleting").values(
            status="error_deleting"))
    return repaired


def start(rt: Runtime) -> None:
    """Bootstrap-time: default type, services, repairs, heartbeat thread (once per process)."""
    from pocketstack.volume import types

    with rt.db.session() as sess:
        types.ensure_default(sess)
    repair_interrupted()
    heartbeat()
    if not any(t.name == "volume-heartbeat" for t in threading.enumerate()):
        _stop.clear()
        threading.Thread(target=_beat_forever, name="volume-heartbeat", daemon=True).start()


def new_id() -> str:
    return str(uuid.uuid4())
