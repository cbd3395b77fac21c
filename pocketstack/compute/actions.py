"""Server actions (`POST /servers/{id}/action`): the state checks Nova makes, then the work.

Each action: load the server as the caller may see it, enforce its policy, check the
lock and the states Nova allows (409 otherwise), move the task state atomically, record
an instance action, and cast the work to the server's host (simple power operations) or
run the conductor sequence (moves, rebuild, shelve) on the task runner.
"""
from __future__ import annotations

import logging
import uuid as uuidlib

from sqlalchemy import select, update

from pocketstack.common.db import utcnow
from pocketstack.common.errors import ApiError, BadRequest, Conflict, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute import hosts, instance_actions, rpc, scheduler
from pocketstack.compute import servers as sv
from pocketstack.compute.models import Instance, Migration, Service
from pocketstack.compute.virt import driver as vd

log = logging.getLogger("pocketstack.compute.actions")

S = sv  # states live in servers.py


def _begin(ctx, instance_id: str, rule: str, action: str, request_id: str | None, *, vm_states,
           task_states=(None,), new_task: str | None = None, lock: bool = True, record: str | None = None,
           **values) -> Instance:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, rule)
        if lock:
            sv.check_lock(ctx, inst)
        sv.check_state(inst, action, vm_states, task_states)
        if new_task is not None or values:
            sv._set_task(sess, inst, action, new_task, tuple(task_states or (None,)), **values)
        instance_actions.record(sess, inst.uuid, record or action, ctx, request_id)
    emit(f"compute.instance.{record or action}.start", {"instance_id": inst.uuid}, context=ctx)
    return inst


def _need_host(inst: Instance) -> str:
    if not inst.host:
        raise Conflict(f"Instance {inst.uuid} is not ready")
    return inst.host


# ---------------------------------------------------------------------------- power
def reboot(ctx, instance_id: str, request_id, hard: bool) -> None:
    if hard:
        inst = _begin(ctx, instance_id, "os_compute_api:servers:reboot", "reboot", request_id,
                      vm_states=[S.ACTIVE, S.STOPPED, S.PAUSED, S.SUSPENDED, S.ERROR],
                      task_states=(None, "rebooting", "reboot_pending", "reboot_started", "rebooting_hard",
                                   "reboot_pending_hard", "reboot_started_hard"),
                      new_task="reboot_started_hard")
    else:
        inst = _begin(ctx, instance_id, "os_compute_api:servers:reboot", "reboot", request_id,
                      vm_states=[S.ACTIVE], new_task="reboot_started")
    rpc.cast(_need_host(inst), "run_simple", op="reboot_hard" if hard else "reboot_soft",
             instance_uuid=inst.uuid, request_id=request_id)


_SIMPLE = {
    # action: (policy, vm_states, new task_state, agent op)
    "stop": ("os_compute_api:servers:stop", [S.ACTIVE, S.ERROR, S.RESCUED], "powering-off", "stop"),
    "start": ("os_compute_api:servers:start", [S.STOPPED], "powering-on", "start"),
    "pause": ("os_compute_api:os-pause-server:pause", [S.ACTIVE, S.RESCUED], "pausing", "pause"),
    "unpause": ("os_compute_api:os-pause-server:unpause", [S.PAUSED], "unpausing", "unpause"),
    "suspend": ("os_compute_api:os-suspend-server:suspend", [S.ACTIVE, S.RESCUED], "suspending", "suspend"),
    "resume": ("os_compute_api:os-suspend-server:resume", [S.SUSPENDED], "resuming", "resume"),
    "unrescue": ("os_compute_api:os-unrescue", [S.RESCUED], "unrescuing", "unrescue"),
}


def simple(ctx, instance_id: str, request_id, action: str) -> None:
    rule, vm_states, task, op = _SIMPLE[action]
    inst = _begin(ctx, instance_id, rule, action, request_id, vm_states=vm_states, new_task=task)
    if not inst.host:
        hosts.save(inst.uuid, task, task_state=None)
        raise Conflict(f"Instance {inst.uuid} is not ready")
    rpc.cast(inst.host, "run_simple", op=op, instance_uuid=inst.uuid, request_id=request_id)


def rescue(ctx, instance_id: str, request_id, rescue_image_ref: str | None, admin_pass: str | None) -> str:
    if rescue_image_ref:
        sv._image(ctx, rescue_image_ref)
    inst = _begin(ctx, instance_id, "os_compute_api:os-rescue", "rescue", request_id,
                  vm_states=[S.ACTIVE, S.STOPPED, S.ERROR], new_task="rescuing")
    rpc.cast(_need_host(inst), "rescue_instance", instance_uuid=inst.uuid, request_id=request_id,
             rescue_image_ref=rescue_image_ref)
    return admin_pass or sv.generate_password()


def lock(ctx, instance_id: str, request_id, reason: str | None) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-lock-server:lock")
        instance_actions.record(sess, inst.uuid, "lock", ctx, request_id)
        inst.locked = True
        inst.locked_by = "owner" if ctx.project_id == inst.project_id else "admin"
        inst.locked_reason = reason
        inst.updated_at = utcnow()
    emit("compute.instance.lock", {"instance_id": inst.uuid}, context=ctx)


def unlock(ctx, instance_id: str, request_id) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-lock-server:unlock")
        if inst.locked and inst.locked_by == "admin" and ctx.project_id == inst.project_id:
            sv.enforce(ctx, "os_compute_api:os-lock-server:unlock:unlock_override", sv.target_of(inst))
        instance_actions.record(sess, inst.uuid, "unlock", ctx, request_id)
        inst.locked, inst.locked_by, inst.locked_reason = False, None, None
        inst.updated_at = utcnow()
    emit("compute.instance.unlock", {"instance_id": inst.uuid}, context=ctx)


def trigger_crash_dump(ctx, instance_id: str, request_id) -> None:
    inst = _begin(ctx, instance_id, "os_compute_api:servers:trigger_crash_dump", "trigger_crash_dump",
                  request_id, vm_states=[S.ACTIVE, S.PAUSED, S.RESCUED, S.RESIZED, S.ERROR])
    if inst.power_state != vd.RUNNING and inst.vm_state != S.PAUSED:
        raise Conflict(f"Instance {inst.uuid} is not running")
    rpc.cast(_need_host(inst), "trigger_crash_dump", instance_uuid=inst.uuid, request_id=request_id)


def change_password(ctx, instance_id: str, request_id, password: str) -> None:
    inst = _begin(ctx, instance_id, "os_compute_api:os-admin-password", "changePassword", request_id,
                  vm_states=[S.ACTIVE], new_task="updating_password")
    try:
        rpc.call(_need_host(inst), "set_admin_password", instance_uuid=inst.uuid, request_id=request_id,
                 password=password)
    finally:
        hosts.save(inst.uuid, "updating_password", task_state=None)


def reset_state(ctx, instance_id: str, request_id, state: str) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-admin-actions:reset_state")
        instance_actions.record(sess, inst.uuid, "resetState", ctx, request_id)
        inst.vm_state = S.ACTIVE if state == "active" else S.ERROR
        inst.task_state = None
        inst.updated_at = utcnow()
    emit("compute.instance.reset_state", {"instance_id": inst.uuid, "state": state}, context=ctx)


def console_output(ctx, instance_id: str, length: int | None) -> str:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-console-output")
    if not inst.host or inst.vm_state in (S.BUILDING, S.OFFLOADED, S.SHELVED):
        raise Conflict(f"Instance {inst.uuid} is not ready")
    try:
        text = rpc.call(inst.host, "get_console_output", instance_uuid=inst.uuid)
    except rpc.HostUnavailable:
        raise Conflict(f"Instance {inst.uuid} is not ready") from None
    if length is not None:
        # the last `length` pieces between newlines, as nova-compute cuts the log
        text = "\n".join(text.split("\n")[-length:]) if length > 0 else ""
    return text


def remote_console(ctx, instance_id: str, protocol: str, console_type: str) -> str:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-remote-consoles")
    if inst.vm_state != S.ACTIVE or not inst.host:
        raise Conflict(f"Instance {inst.uuid} is not ready")
    try:
        agent_types = hosts.get_host(inst.host).driver.console_types
    except LookupError:
        raise Conflict(f"Instance {inst.uuid} is not ready") from None
    if console_type not in agent_types:
        raise BadRequest(f"Unavailable console type {console_type}.")
    from pocketstack.compute import console

    try:
        connect = rpc.call(inst.host, "get_console", instance_uuid=inst.uuid, console_type=console_type)
    except (rpc.HostUnavailable, vd.DriverError) as exc:
        raise Conflict(f"Instance {inst.uuid} is not ready: {exc}") from None
    token = console.authorize(inst.uuid, console_type, connect or {}, current().config.public_url)
    return console.url_for(console_type, token)


# ---------------------------------------------------------------------------- images
def create_image(ctx, instance_id: str, request_id, name: str, metadata: dict, *, backup: bool = False,
                 rotation: int | None = None) -> str:
    from pocketstack.image import core as image_core

    from pocketstack.compute import block_device

    rule = "os_compute_api:os-create-backup" if backup else "os_compute_api:servers:create_image"
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, rule)
        sv.check_state(inst, "createImage", [S.ACTIVE, S.STOPPED, S.PAUSED, S.SUSPENDED])
    if block_device.is_volume_backed(inst.uuid):
        if backup:
            raise BadRequest("Backup is not supported for volume-backed instances.")
        # Nova's snapshot_volume_backed: volume snapshots + a data-less image, no task state
        with sv._session() as sess:
            instance_actions.record(sess, inst.uuid, "createImage", ctx, request_id)
        emit("compute.instance.snapshot.start", {"instance_id": inst.uuid}, context=ctx)
        image_id = block_device.snapshot_image(ctx, inst, name, metadata)
        emit("compute.instance.snapshot.end", {"instance_id": inst.uuid, "image_id": image_id}, context=ctx)
        return image_id
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, rule)
        sv.check_state(inst, "createImage", [S.ACTIVE, S.STOPPED, S.PAUSED, S.SUSPENDED])
        props = {k: str(v) for k, v in (metadata or {}).items()}
        try:
            disk_format = hosts.get_host(inst.host).driver.snapshot_format if inst.host else "qcow2"
        except LookupError:
            disk_format = "qcow2"
        body = {"name": name, "disk_format": disk_format, "container_format": "bare",
                "instance_uuid": inst.uuid, "image_type": "backup" if backup else "snapshot",
                "base_image_ref": inst.image_ref or "", "owner_project_name": ctx.project_name or "",
                "user_id": inst.user_id, **props}
        for k, v in (inst.system_metadata or {}).items():
            if k.startswith("image_") and k[6:] not in body and k[6:] not in (
                    "base_image_ref", "image_type", "instance_uuid", "owner_project_name"):
                body[k[6:]] = v
        for key in ("min_ram", "min_disk"):
            if key in body and key not in props:
                body[key] = int(body[key])
        image = image_core.create(sess, None, {**body, "owner": inst.project_id})
        image_id = image.id
        sv._set_task(sess, inst, "createImage", "image_snapshot")
        instance_actions.record(sess, inst.uuid, "createBackup" if backup else "createImage", ctx, request_id)
    emit("compute.instance.snapshot.start", {"instance_id": inst.uuid, "image_id": image_id}, context=ctx)
    extra = {"rotation": rotation, "backup_type": props.get("backup_type")} if backup else {}
    rpc.cast(_need_host(inst), "snapshot_instance", instance_uuid=inst.uuid, request_id=request_id,
             image_id=image_id, **extra)
    return image_id


# ---------------------------------------------------------------------------- moves
def _new_migration(sess, inst: Instance, mtype: str, status: str, new_flavor: dict | None = None,
                   dest: str | None = None) -> Migration:
    mig = Migration(uuid=str(uuidlib.uuid4()), instance_uuid=inst.uuid, project_id=inst.project_id,
                    user_id=inst.user_id, source_compute=inst.host, source_node=inst.node, dest_compute=dest,
                    dest_host=dest, old_flavor_id=str((inst.flavor or {}).get("flavorid")),
                    new_flavor_id=str((new_flavor or inst.flavor or {}).get("flavorid")), migration_type=mtype,
                    status=status, created_at=utcnow(), updated_at=utcnow())
    sess.add(mig)
    sess.flush()
    return mig


def _set_migration(mig_id: int, **values) -> None:
    with sv._session() as sess:
        mig = sess.get(Migration, mig_id)
        if mig is not None:
            for k, v in values.items():
                setattr(mig, k, v)
            mig.updated_at = utcnow()


def resize(ctx, instance_id: str, request_id, flavor_ref, *, migrate_only: bool = False,
           host: str | None = None, disk_config: str | None = None) -> None:
    from pocketstack.compute import flavors, quotas

    with sv._session() as sess:
        rule = ("os_compute_api:os-migrate-server:migrate" if migrate_only else "os_compute_api:servers:resize")
        inst = sv.load(sess, ctx, instance_id, rule)
        if host:
            sv.enforce(ctx, "os_compute_api:os-migrate-server:migrate:host", sv.target_of(inst))
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "migrate" if migrate_only else "resize", [S.ACTIVE, S.STOPPED])
        if migrate_only:
            new = dict(inst.flavor)
        else:
            flavor = flavors.get_flavor_for_boot(ctx, flavor_ref)
            if flavor.id == str(inst.flavor.get("flavorid")):
                raise BadRequest("When resizing, instances must change flavor!")
            from pocketstack.compute import block_device

            local_root = not block_device.is_volume_backed(inst.uuid)  # a root volume keeps its size
            if local_root and flavor.disk < int(inst.flavor.get("root_gb", 0)) and flavor.disk != 0:
                raise BadRequest("Resizing to a smaller disk flavor is not allowed.")
            if local_root and flavor.disk == 0 and int(inst.flavor.get("root_gb", 0)) != 0:
                raise BadRequest("Server disk was unable to be resized because: Resize to zero disk flavor is "
                                 "not allowed.")
            new = flavor.snapshot()
            dc, dr = flavor.vcpus - inst.vcpus, flavor.ram - inst.memory_mb
            quotas.check_and_reserve(ctx, inst.project_id, inst.user_id,
                                     {"cores": max(dc, 0), "ram": max(dr, 0)})
        if host:
            svc = sess.scalars(select(Service).where(Service.host == host,
                                                     Service.binary == "nova-compute")).first()
            if svc is None:
                raise BadRequest(f"Compute host {host} could not be found.")
            if host == inst.host:
                raise BadRequest(f"The target host can't be the same one.")
        extra = {"disk_config": disk_config} if disk_config else {}
        sv._set_task(sess, inst, "resize", "resize_prep", **extra)
        mig = _new_migration(sess, inst, "migration" if migrate_only else "resize", "pre-migrating", new)
        instance_actions.record(sess, inst.uuid, "migrate" if migrate_only else "resize", ctx, request_id)
        mig_id = mig.id
    emit("compute.instance.resize.start", {"instance_id": inst.uuid}, context=ctx)
    rpc.spawn("compute.resize", _resize_task, inst.uuid, request_id, mig_id, new, migrate_only, host)


def _resize_task(instance_uuid, request_id, mig_id, new_flavor, migrate_only, host) -> None:
    inst = hosts.load(instance_uuid)
    if inst is None or inst.deleted:
        return
    source = inst.host
    ignore = [source] if migrate_only or not _same_host_ok() else []
    try:
        with instance_actions.Event(instance_uuid, request_id, "conductor_migrate_server"):
            spec = sv._spec_for(inst, flavor=new_flavor, ignore=ignore, force_hosts=[host] if host else None)
            spec.availability_zone = inst.pinned_availability_zone
            node = scheduler.schedule_and_claim(spec)
    except scheduler.NoValidHost as exc:
        hosts.save(instance_uuid, "resize_prep", task_state=None)
        _set_migration(mig_id, status="error")
        hosts.add_fault(instance_uuid, 500, str(exc))
        return
    dest = node.host
    _set_migration(mig_id, dest_compute=dest, dest_node=node.hypervisor_hostname, dest_host=dest,
                   status="migrating")
    try:
        with instance_actions.Event(instance_uuid, request_id, "compute_resize_instance", source):
            hosts.save(instance_uuid, "resize_prep", task_state="resize_migrating")
            rpc.call(source, "migrate_disk_and_power_off", instance_uuid=instance_uuid, dest_host=dest)
            hosts.save(instance_uuid, "resize_migrating", task_state="resize_migrated")
        sysmeta = dict(inst.system_metadata or {})
        sysmeta["old_vm_state"] = inst.vm_state
        with instance_actions.Event(instance_uuid, request_id, "compute_finish_resize", dest):
            hosts.save(instance_uuid, "resize_migrated", task_state="resize_finish", host=dest,
                       node=node.hypervisor_hostname, flavor=new_flavor, old_flavor=inst.flavor,
                       vcpus=int(new_flavor.get("vcpus", 0)), memory_mb=int(new_flavor.get("memory_mb", 0)),
                       system_metadata=sysmeta)
            rpc.call(dest, "finish_migration", instance_uuid=instance_uuid)
    except Exception as exc:  # noqa: BLE001
        log.warning("resize of %s failed: %s", instance_uuid, exc)
        hosts.release(dest, new_flavor)
        _set_migration(mig_id, status="error")
        hosts.save(instance_uuid, vm_state=S.ERROR, task_state=None)
        hosts.add_fault(instance_uuid, 500, str(exc), host=source)
        return
    if not hosts.save(instance_uuid, "resize_finish", task_state=None, vm_state=S.RESIZED,
                      power_state=vd.RUNNING):
        return
    _set_migration(mig_id, status="finished")
    hosts.notify(instance_uuid, "resize.end")


def _same_host_ok() -> bool:
    raw = current().config.get("compute", "allow_resize_to_same_host", "true").strip().lower()
    return raw in ("1", "true", "yes", "on")


def _finished_migration(sess, inst: Instance) -> Migration | None:
    return sess.scalars(select(Migration).where(Migration.instance_uuid == inst.uuid,
                                                Migration.status == "finished")
                        .order_by(Migration.id.desc())).first()


def confirm_resize(ctx, instance_id: str, request_id) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:servers:confirm_resize")
        sv.check_lock(ctx, inst)
        mig = _finished_migration(sess, inst)
        if inst.vm_state != S.RESIZED or mig is None:
            raise BadRequest("Instance has not been resized.") if mig is None else sv.state_conflict(
                inst, "confirmResize")
        instance_actions.record(sess, inst.uuid, "confirmResize", ctx, request_id)
        old_vm = (inst.system_metadata or {}).get("old_vm_state", S.ACTIVE)
        old_flavor, source = inst.old_flavor, mig.source_compute
        mig.status = "confirmed"
        mig.updated_at = utcnow()
        inst.vm_state = S.STOPPED if old_vm == S.STOPPED else S.ACTIVE
        inst.power_state = vd.SHUTDOWN if old_vm == S.STOPPED else vd.RUNNING
        inst.old_flavor = None
        inst.updated_at = utcnow()
    try:
        rpc.call(source, "confirm_migration", instance_uuid=inst.uuid)
    except Exception:  # noqa: BLE001 - the source's leftovers are its problem
        log.exception("confirm on %s failed", source)
    hosts.release(source, old_flavor)
    emit("compute.instance.resize.confirm.end", {"instance_id": inst.uuid}, context=ctx)


def revert_resize(ctx, instance_id: str, request_id) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:servers:revert_resize")
        sv.check_lock(ctx, inst)
        mig = _finished_migration(sess, inst)
        if mig is None:
            raise BadRequest("Instance has not been resized.")
        sv.check_state(inst, "revertResize", [S.RESIZED])
        sv._set_task(sess, inst, "revertResize", "resize_reverting")
        instance_actions.record(sess, inst.uuid, "revertResize", ctx, request_id)
        mig.status = "reverting"
        mig_id = mig.id
    rpc.spawn("compute.revert_resize", _revert_task, inst.uuid, request_id, mig_id)


def _revert_task(instance_uuid, request_id, mig_id) -> None:
    inst = hosts.load(instance_uuid)
    with sv._session() as sess:
        mig = sess.get(Migration, mig_id)
        source, source_node, dest = mig.source_compute, mig.source_node, mig.dest_compute
    new_flavor, old_flavor = inst.flavor, inst.old_flavor or inst.flavor
    old_vm = (inst.system_metadata or {}).get("old_vm_state", S.ACTIVE)
    with instance_actions.Event(instance_uuid, request_id, "compute_revert_resize", dest):
        try:
            rpc.call(dest, "destroy_plain", instance_uuid=instance_uuid)
        except Exception:  # noqa: BLE001
            log.exception("revert: destroying on %s failed", dest)
    hosts.release(dest, new_flavor)
    hosts.save(instance_uuid, "resize_reverting", host=source, node=source_node, flavor=old_flavor,
               old_flavor=None, vcpus=int(old_flavor.get("vcpus", 0)),
               memory_mb=int(old_flavor.get("memory_mb", 0)))
    with instance_actions.Event(instance_uuid, request_id, "compute_finish_revert_resize", source):
        try:
            rpc.call(source, "finish_revert_migration", instance_uuid=instance_uuid)
        except Exception:  # noqa: BLE001
            log.exception("revert: restarting on %s failed", source)
    hosts.save(instance_uuid, "resize_reverting", task_state=None,
               vm_state=S.STOPPED if old_vm == S.STOPPED else S.ACTIVE,
               power_state=vd.SHUTDOWN if old_vm == S.STOPPED else vd.RUNNING)
    _set_migration(mig_id, status="reverted")
    hosts.notify(instance_uuid, "resize.revert.end")


def live_migrate(ctx, instance_id: str, request_id, host: str | None) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-migrate-server:migrate_live")
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "os-migrateLive", [S.ACTIVE, S.PAUSED])
        if host:
            svc = sess.scalars(select(Service).where(Service.host == host,
                                                     Service.binary == "nova-compute")).first()
            if svc is None:
                raise BadRequest(f"Compute host {host} could not be found.")
            if host == inst.host:
                raise BadRequest(f"Unable to migrate instance ({inst.uuid}) to current host ({host}).")
        sv._set_task(sess, inst, "os-migrateLive", "migrating")
        mig = _new_migration(sess, inst, "live-migration", "accepted")
        instance_actions.record(sess, inst.uuid, "live-migration", ctx, request_id)
        mig_id = mig.id
    rpc.spawn("compute.live_migrate", _live_task, inst.uuid, request_id, mig_id, host)


def _live_task(instance_uuid, request_id, mig_id, host) -> None:
    inst = hosts.load(instance_uuid)
    source = inst.host
    try:
        node = scheduler.schedule_and_claim(sv._spec_for(inst, ignore=[source],
                                                         force_hosts=[host] if host else None))
    except scheduler.NoValidHost:
        hosts.save(instance_uuid, "migrating", task_state=None)
        _set_migration(mig_id, status="error")
        return
    _set_migration(mig_id, dest_compute=node.host, dest_node=node.hypervisor_hostname, dest_host=node.host,
                   status="running")
    with instance_actions.Event(instance_uuid, request_id, "compute_live_migration", source):
        try:
            rpc.call(source, "live_migrate", instance_uuid=instance_uuid, dest_host=node.host)
            rpc.call(node.host, "spawn_plain", instance_uuid=instance_uuid)
        except Exception:  # noqa: BLE001
            hosts.release(node.host, inst.flavor)
            hosts.save(instance_uuid, "migrating", task_state=None)
            _set_migration(mig_id, status="error")
            raise
    hosts.save(instance_uuid, "migrating", task_state=None, host=node.host, node=node.hypervisor_hostname)
    hosts.release(source, inst.flavor)
    _set_migration(mig_id, status="completed")
    hosts.notify(instance_uuid, "live_migration._post.end")


def evacuate(ctx, instance_id: str, request_id, host: str | None, admin_pass: str | None) -> str | None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-evacuate")
        sv.check_state(inst, "evacuate", [S.ACTIVE, S.STOPPED, S.ERROR], None)
        if host:
            if sess.scalars(select(Service).where(Service.host == host,
                                                  Service.binary == "nova-compute")).first() is None:
                raise NotFound(f"Compute host {host} not found.")
            if host == inst.host:
                raise BadRequest("The target host can't be the same one.")
        svc = sess.scalars(select(Service).where(Service.host == inst.host,
                                                 Service.binary == "nova-compute")).first()
        if svc is not None and scheduler.service_is_up(svc):
            raise BadRequest(f"Compute service of {inst.host} is still in use.")
        sv._set_task(sess, inst, "evacuate", "rebuilding", (None, *("rebooting", "powering-off")))
        mig = _new_migration(sess, inst, "evacuation", "accepted")
        instance_actions.record(sess, inst.uuid, "evacuate", ctx, request_id)
        mig_id = mig.id
    rpc.spawn("compute.evacuate", _evacuate_task, inst.uuid, request_id, mig_id, host)
    return admin_pass or sv.generate_password()


def _evacuate_task(instance_uuid, request_id, mig_id, host) -> None:
    inst = hosts.load(instance_uuid)
    source = inst.host
    try:
        node = scheduler.schedule_and_claim(sv._spec_for(inst, ignore=[source],
                                                         force_hosts=[host] if host else None))
    except scheduler.NoValidHost as exc:
        hosts.save(instance_uuid, "rebuilding", task_state=None, vm_state=S.ERROR)
        hosts.add_fault(instance_uuid, 500, str(exc))
        _set_migration(mig_id, status="error")
        return
    with instance_actions.Event(instance_uuid, request_id, "compute_rebuild_instance", node.host):
        hosts.save(instance_uuid, "rebuilding", host=node.host, node=node.hypervisor_hostname,
                   task_state="rebuild_spawning")
        rpc.call(node.host, "spawn_plain", instance_uuid=instance_uuid)
    hosts.release(source, inst.flavor)
    hosts.save(instance_uuid, "rebuild_spawning", task_state=None, vm_state=S.ACTIVE, power_state=vd.RUNNING)
    _set_migration(mig_id, status="done", dest_compute=node.host, dest_node=node.hypervisor_hostname,
                   dest_host=node.host)


# ---------------------------------------------------------------------------- rebuild
def rebuild(ctx, instance_id: str, request_id, image_ref: str, values: dict, admin_pass: str | None,
            reimage_boot_volume: bool = False) -> str:
    from pocketstack.compute import block_device

    image = sv._image(ctx, image_ref)
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:servers:rebuild")
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "rebuild", [S.ACTIVE, S.STOPPED, S.ERROR])
        fl = inst.flavor or {}
        if int(fl.get("memory_mb", 0)) < int(image.get("min_ram") or 0):
            raise BadRequest("Flavor's memory is too small for requested image.")
        # a volume-backed server keeps its root volume: a new image only with 2.93's reimage
        root, reimage = block_device.rebuild_root(inst.uuid, image, reimage_boot_volume)
        if root is None and fl.get("root_gb") and int(fl.get("root_gb")) < int(image.get("min_disk") or 0):
            raise BadRequest("Flavor's disk is too small for requested image.")
        if root is not None:
            values.setdefault("image_ref", inst.image_ref)  # "" stays the sign of a volume-backed server
        if "key_name" in values and values["key_name"] is not None:
            from pocketstack.compute import keypairs

            try:
                values["key_data"] = keypairs.get_keypair(inst.user_id, values["key_name"]).public_key
            except NotFound:
                raise BadRequest("Invalid key_name provided.") from None
        elif "key_name" in values:
            values["key_data"] = None
        prior = inst.vm_state
        sv._set_task(sess, inst, "rebuild", "rebuilding", **{"image_ref": image["id"], **values})
        sysmeta = dict(inst.system_metadata or {})
        sysmeta = {k: v for k, v in sysmeta.items() if not k.startswith("image_")}
        sysmeta.update({"image_" + k: str(v)[:255] for k, v in sv._image_props(image).items()
                        if isinstance(v, (str, int, float, bool))})
        sysmeta.update(sv.image_minimums(image, (inst.flavor or {}).get("root_gb", 0)))
        sysmeta["rebuild_prior_vm_state"] = prior
        inst.system_metadata = sysmeta
        instance_actions.record(sess, inst.uuid, "rebuild", ctx, request_id)
    emit("compute.instance.rebuild.start", {"instance_id": inst.uuid, "image_ref": image["id"]}, context=ctx)
    rpc.spawn("compute.rebuild", _rebuild_task, inst.uuid, request_id, prior, reimage)
    return admin_pass or sv.generate_password()


def _rebuild_task(instance_uuid, request_id, prior, reimage: tuple | None = None) -> None:
    inst = hosts.load(instance_uuid)
    if inst is None or not inst.host:
        hosts.save(instance_uuid, "rebuilding", task_state=None, vm_state=S.ERROR)
        return
    try:
        with instance_actions.Event(instance_uuid, request_id, "compute_rebuild_instance", inst.host):
            if reimage:  # (volume id, image id): the root volume gets the new image first
                from pocketstack.compute import block_device

                hosts.save(instance_uuid, "rebuilding", task_state="rebuild_block_device_mapping")
                block_device.reimage(*reimage)
                hosts.save(instance_uuid, "rebuild_block_device_mapping", task_state="rebuilding")
            hosts.save(instance_uuid, "rebuilding", task_state="rebuild_spawning")
            rpc.call(inst.host, "spawn_rebuilt", instance_uuid=instance_uuid)
    except Exception as exc:  # noqa: BLE001
        hosts.save(instance_uuid, ["rebuild_spawning", "rebuilding", "rebuild_block_device_mapping"],
                   task_state=None, vm_state=S.ERROR)
        hosts.add_fault(instance_uuid, 500, str(exc), host=inst.host)
        return
    if prior == S.STOPPED:
        hosts.save(instance_uuid, "rebuild_spawning", task_state=None, vm_state=S.STOPPED,
                   power_state=vd.SHUTDOWN, launched_at=utcnow())
    else:
        hosts.save(instance_uuid, "rebuild_spawning", task_state=None, vm_state=S.ACTIVE,
                   power_state=vd.RUNNING, launched_at=utcnow())
    hosts.notify(instance_uuid, "rebuild.end")


# ---------------------------------------------------------------------------- shelve
def shelve(ctx, instance_id: str, request_id) -> None:
    inst = _begin(ctx, instance_id, "os_compute_api:os-shelve:shelve", "shelve", request_id,
                  vm_states=[S.ACTIVE, S.STOPPED, S.PAUSED, S.SUSPENDED], new_task="shelving")
    image_id = None
    from pocketstack.compute import block_device

    if inst.image_ref and not block_device.is_volume_backed(inst.uuid):
        # image-backed: the disk is kept as a `<name>-shelved` snapshot, as Nova does
        from pocketstack.image import core as image_core

        try:
            fmt = hosts.get_host(inst.host).driver.snapshot_format if inst.host else "qcow2"
        except LookupError:
            fmt = "qcow2"
        with sv._session() as sess:
            image_id = image_core.create(sess, None, {
                "name": f"{inst.display_name}-shelved", "disk_format": fmt, "container_format": "bare",
                "instance_uuid": inst.uuid, "image_type": "snapshot", "base_image_ref": inst.image_ref,
                "user_id": inst.user_id, "owner": inst.project_id}).id
    rpc.spawn("compute.shelve", _shelve_task, inst.uuid, request_id, image_id)


def _offload_time() -> int:
    try:
        return int(current().config.get("compute", "shelved_offload_time", "0") or 0)
    except ValueError:
        return 0


def _shelve_task(instance_uuid, request_id, image_id=None) -> None:
    inst = hosts.load(instance_uuid)
    host = _need_host(inst)
    try:
        with instance_actions.Event(instance_uuid, request_id, "compute_shelve_instance", host):
            rpc.call(host, "power_off_plain", instance_uuid=instance_uuid)
            if image_id:
                rpc.call(host, "upload_snapshot", instance_uuid=instance_uuid, image_id=image_id)
    except Exception as exc:  # noqa: BLE001 - the server stays where it was, the snapshot goes
        log.warning("shelving %s failed: %s", instance_uuid, exc)
        hosts.save(instance_uuid, "shelving", task_state=None)
        hosts.add_fault(instance_uuid, 500, str(exc), host=host)
        if image_id:
            from pocketstack.image import core as image_core

            try:
                image_core.delete_image(None, image_id)
            except Exception:  # noqa: BLE001
                log.exception("deleting the shelve snapshot %s failed", image_id)
        return
    sysmeta = {**(inst.system_metadata or {}), "shelved_at": utcnow().isoformat(), "shelved_host": host}
    if image_id:
        sysmeta["shelved_image_id"] = image_id
    if not hosts.save(instance_uuid, "shelving", task_state=None, vm_state=S.SHELVED, power_state=vd.SHUTDOWN,
                      system_metadata=sysmeta):
        return
    hosts.notify(instance_uuid, "shelve.end")
    if _offload_time() == 0:
        if hosts.save(instance_uuid, None, task_state="shelving_offloading"):
            _offload(instance_uuid, request_id)


def shelve_offload(ctx, instance_id: str, request_id) -> None:
    inst = _begin(ctx, instance_id, "os_compute_api:os-shelve:shelve_offload", "shelveOffload", request_id,
                  vm_states=[S.SHELVED], new_task="shelving_offloading")
    rpc.spawn("compute.shelve_offload", _offload, inst.uuid, request_id)


def _offload(instance_uuid, request_id) -> None:
    inst = hosts.load(instance_uuid)
    if inst.host:
        with instance_actions.Event(instance_uuid, request_id, "compute_shelve_offload_instance", inst.host):
            try:
                rpc.call(inst.host, "destroy_plain", instance_uuid=instance_uuid)
            except Exception:  # noqa: BLE001
                log.exception("offload: destroying %s failed", instance_uuid)
        hosts.release(inst.host, inst.flavor)
    from pocketstack.compute import block_device

    block_device.disconnect_all(instance_uuid)  # the volumes stay the server's (`reserved`)
    hosts.save(instance_uuid, "shelving_offloading", task_state=None, vm_state=S.OFFLOADED, host=None, node=None,
               power_state=vd.SHUTDOWN)
    hosts.notify(instance_uuid, "shelve_offload.end")


def unshelve(ctx, instance_id: str, request_id, availability_zone=None, host: str | None = None) -> None:
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, "os_compute_api:os-shelve:unshelve")
        if host:
            sv.enforce(ctx, "os_compute_api:os-shelve:unshelve_to_host", sv.target_of(inst))
        sv.check_lock(ctx, inst)
        sv.check_state(inst, "unshelve", [S.SHELVED, S.OFFLOADED])
        if (availability_zone is not None or host) and inst.vm_state != S.OFFLOADED:
            raise Conflict(f"Specifying an availability zone or a host when unshelving server {inst.uuid} "
                           f"with status SHELVED is not supported. The server status must be "
                           f"SHELVED_OFFLOADED.")
        extra = {}
        if availability_zone is not None:
            if availability_zone and availability_zone not in sv._known_azs():
                raise BadRequest("The requested availability zone is not available")
            extra["pinned_availability_zone"] = availability_zone or None
        sv._set_task(sess, inst, "unshelve", "unshelving", **extra)
        instance_actions.record(sess, inst.uuid, "unshelve", ctx, request_id)
    rpc.spawn("compute.unshelve", _unshelve_task, inst.uuid, request_id, host)


def _unshelve_task(instance_uuid, request_id, host) -> None:
    inst = hosts.load(instance_uuid)
    if inst.vm_state == S.SHELVED and inst.host:
        with instance_actions.Event(instance_uuid, request_id, "compute_unshelve_instance", inst.host):
            rpc.call(inst.host, "power_on_plain", instance_uuid=instance_uuid)
        hosts.save(instance_uuid, "unshelving", task_state=None, vm_state=S.ACTIVE, power_state=vd.RUNNING)
        _drop_shelved_image(instance_uuid)
        hosts.notify(instance_uuid, "unshelve.end")
        return
    try:
        node = scheduler.schedule_and_claim(sv._spec_for(inst, force_hosts=[host] if host else None))
    except scheduler.NoValidHost as exc:
        hosts.save(instance_uuid, "unshelving", task_state=None)
        hosts.add_fault(instance_uuid, 500, str(exc))
        return
    az = scheduler.host_az(node.host)
    hosts.save(instance_uuid, "unshelving", host=node.host, node=node.hypervisor_hostname,
               availability_zone=az, task_state="spawning")
    try:
        with instance_actions.Event(instance_uuid, request_id, "compute_unshelve_instance", node.host):
            from pocketstack.compute import block_device

            block_device.connect_all(instance_uuid, node.host)
            rpc.call(node.host, "spawn_plain", instance_uuid=instance_uuid)
    except Exception as exc:  # noqa: BLE001
        hosts.release(node.host, inst.flavor)
        hosts.save(instance_uuid, "spawning", task_state=None, vm_state=S.OFFLOADED, host=None, node=None)
        hosts.add_fault(instance_uuid, 500, str(exc))
        return
    hosts.save(instance_uuid, "spawning", task_state=None, vm_state=S.ACTIVE, power_state=vd.RUNNING)
    _drop_shelved_image(instance_uuid)
    hosts.notify(instance_uuid, "unshelve.end")


def _drop_shelved_image(instance_uuid: str) -> None:
    """The `<name>-shelved` snapshot has served its purpose once the server runs again."""
    from pocketstack.image import core as image_core

    inst = hosts.load(instance_uuid)
    sysmeta = dict(inst.system_metadata or {}) if inst is not None else {}
    image_id = sysmeta.pop("shelved_image_id", None)
    for key in ("shelved_at", "shelved_host"):
        sysmeta.pop(key, None)
    hosts.save(instance_uuid, system_metadata=sysmeta)
    if image_id:
        try:
            image_core.delete_image(None, image_id)
        except Exception:  # noqa: BLE001 - already deleted by its owner
            log.info("shelved image %s was already gone", image_id)


# ---------------------------------------------------------------------------- security groups
def add_security_group(ctx, instance_id: str, request_id, name: str, *, remove: bool = False) -> None:
    rule = "os_compute_api:os-security-groups:remove" if remove else "os_compute_api:os-security-groups:add"
    with sv._session() as sess:
        inst = sv.load(sess, ctx, instance_id, rule)
    fn = sv.net_fn("remove_security_group_from_instance" if remove else "add_security_group_to_instance")
    has_ports = bool(sv.nw_info(inst.uuid))
    if fn is not None and has_ports:
        try:
            fn(ctx, inst.uuid, name)
        except ApiError as err:
            if err.code == 404 and "not found" not in err.message.lower():
                raise NotFound(err.message) from None
            raise
    else:
        # no ports yet: the names wait in the server's requested groups
        names = list(inst.security_groups or [])
        if remove:
            if name not in names:
                raise NotFound(f"Security group {name} not associated with the instance {inst.uuid}")
            names.remove(name)
        else:
            check = sv.net_fn("get_security_group")
            if check is not None:
                try:
                    check(ctx, name, inst.project_id)
                except ApiError as err:
                    if err.code == 404:
                        raise NotFound(f"Security group {name} not found for project {inst.project_id}.") \
                            from None
                    raise
            if name in names:
                raise BadRequest(f"Security group {name} is already associated with the instance {inst.uuid}")
            names.append(name)
        with sv._session() as sess:
            sess.execute(update(Instance).where(Instance.uuid == inst.uuid)
                         .values(security_groups=names, updated_at=utcnow()))
    with sv._session() as sess:
        instance_actions.record(sess, inst.uuid, "removeSecurityGroup" if remove else "addSecurityGroup",
                                ctx, request_id)
    emit("compute.instance.update", {"instance_id": inst.uuid, "fields": ["security_groups"]}, context=ctx)

