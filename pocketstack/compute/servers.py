"""Servers: create, list, update, delete and every action, with Nova's state machine.

The API layer (api/servers.py, api/server_actions.py) parses JSON and renders bodies;
this module decides. A server's life is three fields as in Nova: `vm_state` (stable:
building, active, stopped, paused, suspended, rescued, resized, shelved,
shelved_offloaded, error, deleted), `task_state` (what is in progress) and
`power_state` (what the hypervisor reports). An action is accepted only from the states
Nova accepts (else 409 "Cannot '<action>' instance <id> while it is in vm_state X"),
moves the task state in one conditional UPDATE (two concurrent actions cannot both
win), records an instance action, and hands the work to the conductor (`_build`,
`_terminate`, the move functions below, run on the task runner) or straight to the
host agent over `rpc`. Agents finish by writing the final state.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import string
import uuid as uuidlib
from dataclasses import dataclass, field

from sqlalchemy import and_, false, or_, select, update

from pocketstack.common.db import utcnow
from pocketstack.common.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute import hosts, instance_actions, rpc, scheduler
from pocketstack.compute.models import BlockDeviceMapping, Instance, InstanceFault, Migration, Service
from pocketstack.compute.virt import driver as vd

log = logging.getLogger("pocketstack.compute.servers")

# ---------------------------------------------------------------------------- states
ACTIVE, BUILDING, STOPPED, PAUSED, SUSPENDED = "active", "building", "stopped", "paused", "suspended"
RESCUED, RESIZED, SHELVED, OFFLOADED, ERROR = "rescued", "resized", "shelved", "shelved_offloaded", "error"
DELETED, SOFT_DELETED = "deleted", "soft-delete"

_TASK_STATUS = {
    ACTIVE: {"rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT",
             "rebooting_hard": "HARD_REBOOT", "reboot_pending_hard": "HARD_REBOOT",
             "reboot_started_hard": "HARD_REBOOT", "updating_password": "PASSWORD",
             "rebuilding": "REBUILD", "rebuild_block_device_mapping": "REBUILD", "rebuild_spawning": "REBUILD",
             "migrating": "MIGRATING", "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
             "resize_migrated": "RESIZE", "resize_finish": "RESIZE"},
    STOPPED: {"resize_prep": "RESIZE", "resize_migrating": "RESIZE", "resize_migrated": "RESIZE",
              "resize_finish": "RESIZE", "rebuilding": "REBUILD", "rebuild_spawning": "REBUILD"},
    RESIZED: {"resize_reverting": "REVERT_RESIZE"},
    ERROR: {"rebuilding": "REBUILD", "rebuild_spawning": "REBUILD"},
}
_VM_STATUS = {ACTIVE: "ACTIVE", BUILDING: "BUILD", STOPPED: "SHUTOFF", RESIZED: "VERIFY_RESIZE",
              PAUSED: "PAUSED", SUSPENDED: "SUSPENDED", RESCUED: "RESCUE", ERROR: "ERROR",
              DELETED: "DELETED", SOFT_DELETED: "SOFT_DELETED", SHELVED: "SHELVED",
              OFFLOADED: "SHELVED_OFFLOADED"}


def status_of(vm_state: str, task_state: str | None) -> str:
    by_task = _TASK_STATUS.get(vm_state, {})
    if task_state in by_task:
        return by_task[task_state]
    return _VM_STATUS.get(vm_state, "UNKNOWN")


def states_for_status(status: str) -> list[tuple[str, list | None]] | None:
    """(vm_state, task_states or None = any) pairs a `status` filter means; None if unknown."""
    status = status.upper()
    out: list[tuple[str, list | None]] = []
    for vm, st in _VM_STATUS.items():
        if st == status:
            excluded = list(_TASK_STATUS.get(vm, {}))
            out.append((vm, ["!", *excluded] if excluded else None))
    for vm, tasks in _TASK_STATUS.items():
        matching = [t for t, s in tasks.items() if s == status]
        if matching:
            out.append((vm, matching))
    if status == "UNKNOWN":
        return []
    return out or None


# ---------------------------------------------------------------------------- helpers
def _rt():
    return current()


def _session():
    return current().db.session()


def enforce(ctx, rule: str, target: dict | None = None) -> None:
    target = target or {"project_id": ctx.project_id, "user_id": ctx.user_id}
    current().enforcer.enforce(rule, {**target, "target": target}, ctx.policy_creds())


def allowed(ctx, rule: str, target: dict | None = None) -> bool:
    target = target or {"project_id": ctx.project_id, "user_id": ctx.user_id}
    return current().enforcer.check(rule, {**target, "target": target}, ctx.policy_creds())


def target_of(inst: Instance) -> dict:
    return {"project_id": inst.project_id, "user_id": inst.user_id}


class InstanceNotFound(NotFound):
    def __init__(self, instance_id: str):
        super().__init__(f"Instance {instance_id} could not be found.")


def load(sess, ctx, instance_id: str, rule: str | None = None, *, deleted_ok: bool = False) -> Instance:
    """The server as the caller may see it: 404 for another project's (never 403), then policy."""
    inst = None
    if isinstance(instance_id, str) and len(instance_id) <= 36:
        inst = sess.scalars(select(Instance).where(Instance.uuid == instance_id)).first()
    if inst is None or (inst.deleted and not deleted_ok):
        raise InstanceNotFound(instance_id)
    if not ctx.is_admin and inst.project_id != ctx.project_id and not allowed(ctx, "context_is_admin"):
        # a foreign server is "not found" unless policy explicitly grants it
        if rule is None or not allowed(ctx, rule, target_of(inst)):
            raise InstanceNotFound(instance_id)
    if rule is not None:
        enforce(ctx, rule, target_of(inst))
    return inst


def get(ctx, instance_id: str, rule: str = "os_compute_api:servers:show") -> Instance:
    with _session() as sess:
        return load(sess, ctx, instance_id, rule)


def state_conflict(inst: Instance, action: str, attr: str = "vm_state") -> Conflict:
    value = getattr(inst, attr)
    return Conflict(f"Cannot '{action}' instance {inst.uuid} while it is in {attr} {value}")


def check_state(inst: Instance, action: str, vm_states=None, task_states=(None,)) -> None:
    if vm_states is not None and inst.vm_state not in vm_states:
        raise state_conflict(inst, action)
    if task_states is not None and inst.task_state not in task_states:
        raise state_conflict(inst, action, "task_state")


def check_lock(ctx, inst: Instance) -> None:
    if inst.locked and not ctx.is_admin:
        raise Conflict(f"Instance {inst.uuid} is locked")


def _set_task(sess, inst: Instance, action: str, new_task: str | None, expected=(None,), **values) -> None:
    """Move the task state only if nobody else did first (else 409 like a state conflict)."""
    conds = [Instance.id == inst.id, Instance.deleted.is_(False)]
    vals = [t for t in expected if t is not None]
    cond = Instance.task_state.in_(vals) if vals else None
    if None in expected:
        cond = Instance.task_state.is_(None) if cond is None else (cond | Instance.task_state.is_(None))
    conds.append(cond)
    res = sess.execute(update(Instance).where(*conds).values(task_state=new_task, updated_at=utcnow(), **values))
    if res.rowcount != 1:
        sess.refresh(inst)
        raise state_conflict(inst, action, "task_state")
    sess.refresh(inst)


def set_error(instance_uuid: str, code: int, message: str, details: str | None = None,
              host: str | None = None, **values) -> None:
    hosts.save(instance_uuid, vm_state=ERROR, task_state=None, **values)
    hosts.add_fault(instance_uuid, code, message, details, host)
    hosts.notify(instance_uuid, "create.error", message=message)


def latest_fault(sess, instance_uuid: str) -> InstanceFault | None:
    return sess.scalars(select(InstanceFault).where(InstanceFault.instance_uuid == instance_uuid)
                        .order_by(InstanceFault.id.desc()).limit(1)).first()


def faults_for(sess, uuids: list[str]) -> dict[str, InstanceFault]:
    out: dict[str, InstanceFault] = {}
    if uuids:
        for f in sess.scalars(select(InstanceFault).where(InstanceFault.instance_uuid.in_(uuids))
                              .order_by(InstanceFault.id)):
            out[f.instance_uuid] = f
    return out


def net():
    """Network's public interface (pocketstack.network.core), or None before it exists."""
    try:
        from pocketstack.network import core
    except ImportError:
        return None
    return core


def net_fn(name: str):
    core = net()
    return getattr(core, name, None) if core is not None else None


def nw_info(instance_uuid: str) -> list[dict]:
    fn = net_fn("get_instance_nw_info")
    if fn is None:
        return []
    try:
        return fn(instance_uuid) or []
    except Exception:  # noqa: BLE001 - a network hiccup must not break server show
        log.exception("network info for %s unavailable", instance_uuid)
        return []


def instance_security_groups(inst: Instance) -> list[dict]:
    fn = net_fn("instance_security_groups")
    if fn is not None and inst.host and nw_info(inst.uuid):
        try:
            return [{"name": g.get("name")} for g in fn(inst.uuid)]
        except Exception:  # noqa: BLE001
            log.exception("security groups of %s unavailable", inst.uuid)
    return [{"name": n} for n in (inst.security_groups or [])]


def host_status(sess, host: str | None) -> str:
    if not host:
        return ""
    return host_statuses(sess, [host])[host]


def host_statuses(sess, hosts) -> dict[str, str]:
    """2.16 `host_status` of each host, from one query."""
    if not hosts:
        return {}
    found = {s.host: s for s in sess.scalars(select(Service).where(Service.host.in_(set(hosts)),
                                                                   Service.binary == "nova-compute"))}
    return {h: _service_status(found.get(h)) for h in hosts}


def _service_status(svc: Service | None) -> str:
    if svc is None:
        return "UNKNOWN"
    if not scheduler.service_is_up(svc):
        return "DOWN"
    if svc.disabled:
        return "MAINTENANCE"
    return "UP"


# ---------------------------------------------------------------------------- create
@dataclass
class BootRequest:
    name: str
    flavor_ref: str
    image_ref: str = ""
    key_name: str | None = None
    security_groups: list = field(default_factory=lambda: ["default"])
    user_data: str | None = None
    metadata: dict = field(default_factory=dict)
    availability_zone: str | None = None
    bdms: list = field(default_factory=list)
    config_drive: bool = False
    min_count: int = 1
    max_count: int = 1
    admin_pass: str | None = None
    tags: list = field(default_factory=list)
    description: str | None = None
    hostname: str | None = None
    hints: dict = field(default_factory=dict)
    networks: object = None  # "auto", "none", list of dicts, or None (= auto before 2.37)
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    disk_config: str = "MANUAL"
    host: str | None = None
    hypervisor_hostname: str | None = None


_HOSTNAME_BAD = re.compile(r"[^\w.-]+")


def default_hostname(display_name: str, instance_uuid: str) -> str:
    """Nova's sanitisation of a display name into a hostname (RFC 952/1123 label)."""
    name = display_name.lower().replace(" ", "-").replace("_", "-")
    name = _HOSTNAME_BAD.sub("", name.encode("ascii", "ignore").decode())
    name = re.sub(r"[-.]+", lambda m: m.group(0)[0], name).strip(".-")[:63].strip(".-")
    return name or f"Server-{instance_uuid}"


def _image(ctx, image_ref: str) -> dict:
    from pocketstack.image import core as image_core

    image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
    with _session() as sess:
        try:
            img, _member = image_core.load(sess, image_id, ctx)
        except NotFound:
            raise BadRequest(f"Image {image_id} could not be found.") from None
        body = image_core.render_one(sess, img, ctx)
    if body["status"] != "active":
        raise BadRequest(f"Image {image_id} is not active.")
    return body


def _image_props(image: dict) -> dict:
    core_keys = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
                 "os_hash_value", "owner", "size", "virtual_size", "container_format", "disk_format",
                 "min_disk", "min_ram", "created_at", "updated_at", "tags", "self", "file", "schema",
                 "stores", "locations", "direct_url"}
    return {k: v for k, v in image.items() if k not in core_keys}


def image_minimums(image: dict, root_gb: int) -> dict:
    """What a snapshot of the server inherits (as Nova keeps them in system metadata): the
    image's min_ram, and its min_disk raised to the flavor's root disk."""
    return {"image_min_ram": str(int(image.get("min_ram") or 0)),
            "image_min_disk": str(max(int(image.get("min_disk") or 0), int(root_gb or 0)))}


def _check_image_vs_flavor(image: dict, flavor) -> None:
    if flavor.ram < int(image.get("min_ram") or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    if flavor.disk and flavor.disk < int(image.get("min_disk") or 0):
        raise BadRequest("Flavor's disk is too small for requested image.")
    size = image.get("size") or 0
    if flavor.disk and size > flavor.disk * 1024 ** 3:
        raise BadRequest("Flavor's disk is too small for requested image.")


def _known_azs() -> set[str]:
    with _session() as sess:
        return {hs.az for hs in scheduler._host_states(sess)}


def _validate_networks(ctx, project_id: str, requested) -> None:
    fn = net_fn("validate_requested_networks")
    if fn is None or requested in (None, "none", "auto"):
        return
    try:
        fn(ctx, project_id, requested)
    except ApiError as err:
        if err.code == 404:
            raise BadRequest(err.message) from None
        raise


def _check_security_groups(ctx, project_id: str, names: list[str]) -> None:
    fn = net_fn("get_security_group")
    if fn is None:
        return
    ensure = net_fn("ensure_default_security_group")
    for name in names:
        if name == "default" and ensure is not None:
            ensure(project_id)
            continue
        try:
            fn(ctx, name, project_id)
        except ApiError as err:
            if err.code == 404:
                raise BadRequest(f"Security group {name} not found for project {project_id}.") from None
            raise


def _group_from_hints(ctx, hints: dict):
    group_id = hints.get("group")
    if not group_id:
        return None
    from pocketstack.compute import server_groups

    try:
        return server_groups.get_group(ctx, str(group_id))
    except NotFound:
        raise BadRequest(f"Invalid server group: Instance group {group_id} could not be found.") from None


def _reservation_id() -> str:
    return "r-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def generate_password(length: int = 12) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def create(ctx, req: BootRequest, request_id: str | None, *, multi_hostname_ok: bool = True
           ) -> tuple[list[Instance], str | None]:
    """Validate everything, insert the servers (BUILD/scheduling) and start their builds.
    Returns (instances, admin password); nothing is created when any check fails."""
    from pocketstack.compute import block_device, flavors, keypairs, quotas

    project_id, user_id = ctx.project_id, ctx.user_id
    if not project_id:
        raise Forbidden("Creating a server requires a project-scoped token.")
    enforce(ctx, "os_compute_api:servers:create", {"project_id": project_id, "user_id": user_id})
    if req.networks not in (None, "auto", "none") and req.networks:
        enforce(ctx, "os_compute_api:servers:create:attach_network")
    if req.hostname is not None:
        enforce(ctx, "os_compute_api:servers:create:custom_hostname")
    force_hosts, force_nodes = [], []
    az = req.availability_zone
    if az and ":" in az:
        enforce(ctx, "os_compute_api:servers:create:forced_host")
        az, _, rest = az.partition(":")
        host, _, node = rest.partition(":")
        force_hosts = [host] if host else []
        force_nodes = [node] if node else []
        az = az or None
    if req.host or req.hypervisor_hostname:
        enforce(ctx, "os_compute_api:servers:create:requested_destination")
        with _session() as sess:
            if req.host and sess.scalars(select(Service).where(Service.host == req.host,
                                                                Service.binary == "nova-compute")).first() is None:
                raise BadRequest(f"Compute host {req.host} could not be found.")
        force_hosts = [req.host] if req.host else force_hosts
        force_nodes = [req.hypervisor_hostname] if req.hypervisor_hostname else force_nodes
    flavor = flavors.get_flavor_for_boot(ctx, req.flavor_ref)
    image: dict = {}
    if req.image_ref:
        image = _image(ctx, req.image_ref)
    if req.bdms:
        enforce(ctx, "os_compute_api:servers:create:attach_volume", {"project_id": project_id, "user_id": user_id})
    bdm_plan = block_device.plan(ctx, req.bdms, image, flavor, req.max_count, lambda ref: _image(ctx, ref))
    if not bdm_plan.volume_backed:
        _check_image_vs_flavor(image, flavor)
    block_device.check_zero_disk(ctx, flavor, bdm_plan.volume_backed, allowed)
    key_data = None
    if req.key_name is not None:
        try:
            key_data = keypairs.get_keypair(user_id, req.key_name).public_key
        except NotFound:
            raise BadRequest("Invalid key_name provided.") from None
    if az and not force_hosts and az not in _known_azs():
        raise BadRequest("The requested availability zone is not available")
    if req.user_data is not None:
        try:
            base64.b64decode(req.user_data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("User data needs to be valid base 64.") from None
    _validate_networks(ctx, project_id, req.networks)
    _check_security_groups(ctx, project_id, req.security_groups)
    group = _group_from_hints(ctx, req.hints)
    md_limit = quotas.project_limits(project_id).get("metadata_items", 128)
    if 0 <= md_limit < len(req.metadata):
        raise Forbidden("Quota exceeded for metadata_items: Requested "
                        f"{len(req.metadata)}, but already used 0 of {md_limit} metadata_items")

    snapshot = flavor.snapshot()
    count = req.max_count
    per = {"cores": flavor.vcpus, "ram": flavor.ram}
    fit = quotas.max_instances_allowed(ctx, project_id, user_id, per, req.max_count)
    if fit < req.max_count:
        count = max(fit, req.min_count)
    admin_pass = req.admin_pass or generate_password()
    reservation = _reservation_id()
    created: list[Instance] = []
    now = utcnow()
    uuids = [str(uuidlib.uuid4()) for _ in range(count)]
    boot_props = {"image_" + k: str(v)[:255] for k, v in _image_props(bdm_plan.boot_image).items()
                  if isinstance(v, (str, int, float, bool)) and k not in block_device.SM_SKIP_KEYS}
    boot_props.update(image_minimums(bdm_plan.boot_image or {}, flavor.disk))
    block_device.reserve(ctx, bdm_plan, uuids[0])  # existing volumes (then count is 1)
    try:
        with _session() as sess:
            quotas.check_and_reserve(ctx, project_id, user_id,
                                     {"instances": count, "cores": count * flavor.vcpus, "ram": count * flavor.ram})
            for index, inst_uuid in enumerate(uuids):
                name = req.name if count == 1 else f"{req.name}-{index + 1}"
                if req.hostname is not None:
                    hostname = req.hostname if count == 1 else f"{req.hostname}-{index + 1}"
                else:
                    hostname = default_hostname(name, inst_uuid)
                inst = Instance(uuid=inst_uuid, project_id=project_id, user_id=user_id, display_name=name,
                                hostname=hostname, description=req.description,
                                image_ref=(image.get("id") if image else ""), flavor=snapshot,
                                vcpus=flavor.vcpus, memory_mb=flavor.ram, key_name=req.key_name,
                                key_data=key_data, vm_state=BUILDING, task_state="scheduling",
                                power_state=vd.NOSTATE, availability_zone=az, pinned_availability_zone=az,
                                locked=False, meta=dict(req.metadata), tags=list(dict.fromkeys(req.tags)),
                                system_metadata=dict(boot_props),
                                user_data=req.user_data, config_drive="True" if req.config_drive else "",
                                access_ip_v4=req.access_ip_v4, access_ip_v6=req.access_ip_v6,
                                reservation_id=reservation, launch_index=index,
                                security_groups=list(dict.fromkeys(req.security_groups)),
                                requested_networks=req.networks, scheduler_hints=dict(req.hints),
                                disk_config=req.disk_config, root_device_name="/dev/vda", progress=0,
                                created_at=now, updated_at=now)
                sess.add(inst)
                sess.flush()
                if image and not bdm_plan.volume_backed:
                    sess.add(BlockDeviceMapping(uuid=str(uuidlib.uuid4()), instance_uuid=inst_uuid,
                                                source_type="image", destination_type="local",
                                                device_name="/dev/vda", boot_index=0, image_id=image["id"],
                                                device_type="disk", delete_on_termination=True, created_at=now))
                sess.add_all(block_device.rows_for(bdm_plan, inst_uuid, now))
                instance_actions.record(sess, inst_uuid, "create", ctx, request_id)
                if group is not None:
                    from pocketstack.compute import server_groups

                    server_groups.add_member(group.id, inst_uuid, ctx)
                created.append(inst)
    except BaseException:
        block_device.unreserve(bdm_plan)
        raise
    for inst in created:
        emit("compute.instance.create.start", {"instance_id": inst.uuid, "tenant_id": project_id,
                                               "user_id": user_id, "display_name": inst.display_name,
                                               "flavor": snapshot.get("name"), "image_ref": inst.image_ref},
             context=ctx)
        rpc.spawn("compute.build", _build, inst.uuid, request_id, ctx, admin_pass,
                  force_hosts, force_nodes, image)
    return created, admin_pass


def _spec_for(inst: Instance, *, flavor: dict | None = None, ignore: list | None = None,
              force_hosts=None, force_nodes=None, image: dict | None = None) -> scheduler.RequestSpec:
    group = None
    try:
        from pocketstack.compute import server_groups

        group = server_groups.group_of_instance(inst.uuid)
    except Exception:  # noqa: BLE001 - no server groups: no group filters
        group = None
    props = {k[6:]: v for k, v in (inst.system_metadata or {}).items() if k.startswith("image_")}
    if image:
        props.update(_image_props(image))
    return scheduler.RequestSpec(flavor=flavor or inst.flavor, project_id=inst.project_id, instance_uuid=inst.uuid,
                                 availability_zone=inst.pinned_availability_zone, image_props=props,
                                 hints=inst.scheduler_hints or {}, ignore_hosts=list(ignore or []),
                                 force_hosts=list(force_hosts or []), force_nodes=list(force_nodes or []),
                                 group=group)


def _build(instance_uuid: str, request_id: str | None, ctx, admin_pass: str | None,
           force_hosts=None, force_nodes=None, image: dict | None = None) -> None:
    """The conductor's build: schedule + claim, network, spawn; reschedule on host failure."""
    tried: list[str] = []
    max_attempts = max(1, current().config.getint("compute", "max_attempts") or 3)
    last_error = None
    for attempt in range(max_attempts):
        inst = hosts.load(instance_uuid)
        if inst is None or inst.deleted:
            return
        try:
            with instance_actions.Event(instance_uuid, request_id, "conductor_schedule_and_build_instances"):
                node = scheduler.schedule_and_claim(_spec_for(inst, ignore=tried, force_hosts=force_hosts,
                                                              force_nodes=force_nodes, image=image))
        except scheduler.NoValidHost as exc:
            if attempt == 0:
                set_error(instance_uuid, 500, str(exc), details=str(exc))
            else:
                msg = (f"Exceeded maximum number of retries. Exhausted all hosts available for retrying "
                       f"build failures for instance {instance_uuid}.")
                set_error(instance_uuid, 500, msg, details=str(last_error or msg))
            return
        host = node.host
        az = scheduler.host_az(host)
        if not hosts.save(instance_uuid, "scheduling", host=host, node=node.hypervisor_hostname,
                          availability_zone=az, task_state="networking"):
            hosts.release(host, inst.flavor)
            return
        # networking
        try:
            _allocate_network(ctx, inst, host, az)
        except Exception as exc:  # noqa: BLE001 - any network failure is the server's fault
            msg = exc.message if isinstance(exc, ApiError) else f"Failed to allocate the network(s): {exc}"
            log.warning("network allocation for %s failed: %s", instance_uuid, msg)
            set_error(instance_uuid, 500, "Build of instance %s aborted: %s" % (instance_uuid, msg), host=host)
            return
        if not hosts.save(instance_uuid, "networking", task_state="block_device_mapping"):
            _deallocate_network(ctx, instance_uuid)
            return
        if not _prepare_block_devices(ctx, instance_uuid, host):
            return
        try:
            rpc.call(host, "build_and_run_instance", instance_uuid=instance_uuid, request_id=request_id,
                     admin_password=admin_pass)
        except (vd.DriverError, rpc.HostUnavailable) as exc:
            last_error = exc
            log.info("build of %s failed on %s (%s); rescheduling", instance_uuid, host, exc)
            _deallocate_network(ctx, instance_uuid)
            if not hosts.save(instance_uuid, ["spawning", "block_device_mapping"], host=None, node=None,
                              task_state="scheduling"):
                return  # deleted meanwhile: terminate releases the claim
            hosts.release(host, inst.flavor)
            tried.append(host)
            continue
        hosts.notify(instance_uuid, "create.end")
        return
    msg = (f"Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures "
           f"for instance {instance_uuid}.")
    set_error(instance_uuid, 500, msg, details=str(last_error or msg))


def _prepare_block_devices(ctx, instance_uuid: str, host: str) -> bool:
    """The build's block_device_mapping step (volumes made and connected to `host`); False
    when the build stops here: the server is in ERROR (Nova's BuildAbort) or was deleted."""
    from pocketstack.compute import block_device, volumes as compute_volumes

    try:
        block_device.prepare_for_host(ctx, instance_uuid, host)
    except block_device.BuildAbort as exc:
        inst = hosts.load(instance_uuid)
        if inst is not None and not inst.deleted:  # (a deleted server's volumes are cleaned up already)
            _deallocate_network(ctx, instance_uuid)
            set_error(instance_uuid, 500, f"Build of instance {instance_uuid} aborted: {exc}", host=host)
        return False
    inst = hosts.load(instance_uuid)
    if inst is None or inst.deleted:  # deleted meanwhile: what this step attached goes too
        compute_volumes.detach_all(ctx, instance_uuid)
        return False
    return True


def _allocate_network(ctx, inst: Instance, host: str, az: str) -> None:
    fn = net_fn("allocate_for_instance")
    requested = inst.requested_networks
    if fn is None or requested == "none":
        return
    if requested in (None, []):
        # before 2.37 an omitted `networks` means "whatever the project can use", and a
        # project with nothing usable gets a server without networking, as upstream
        try:
            _allocate(fn, ctx, inst, host, "auto", az)
        except ApiError as err:
            log.info("no network for %s (%s); booting without one", inst.uuid, err.message)
        return
    _allocate(fn, ctx, inst, host, requested, az)


def _allocate(fn, ctx, inst: Instance, host: str, requested, az: str) -> None:
    import inspect

    kwargs = {"instance_id": inst.uuid, "project_id": inst.project_id, "host": host, "requested": requested,
              "security_groups": inst.security_groups or ["default"]}
    if "availability_zone" in inspect.signature(fn).parameters:
        kwargs["availability_zone"] = az  # ports' device_owner is compute:<az>
    fn(ctx, **kwargs)


def _deallocate_network(ctx, instance_uuid: str) -> None:
    fn = net_fn("deallocate_for_instance")
    if fn is None:
        return
    try:
        fn(ctx, instance_uuid)
    except Exception:  # noqa: BLE001 - ports left behind are cleaned by the next delete
        log.exception("network deallocation for %s failed", instance_uuid)


# ---------------------------------------------------------------------------- list
SORT_KEYS = {"access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone", "config_drive",
             "created_at", "display_description", "display_name", "host", "hostname", "image_ref",
             "instance_type_id", "kernel_id", "key_name", "launch_index", "launched_at", "locked",
             "locked_by", "node", "power_state", "progress", "project_id", "ramdisk_id", "root_device_name",
             "task_state", "terminated_at", "updated_at", "user_id", "uuid", "vm_state"}
_SORT_ATTR = {"display_description": "description", "auto_disk_config": "disk_config",
              "instance_type_id": "vcpus", "kernel_id": "uuid", "ramdisk_id": "uuid"}


@dataclass
class ListQuery:
    all_tenants: bool = False
    project_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    status: list = field(default_factory=list)
    image: str | None = None
    flavor: str | None = None
    host: str | None = None
    node: str | None = None
    ip: str | None = None
    ip6: str | None = None
    changes_since: object = None
    changes_before: object = None
    tags: list = field(default_factory=list)
    tags_any: list = field(default_factory=list)
    not_tags: list = field(default_factory=list)
    not_tags_any: list = field(default_factory=list)
    locked: bool | None = None
    deleted: bool | None = None
    reservation_id: str | None = None
    availability_zone: str | None = None
    key_name: str | None = None
    description: str | None = None
    hostname: str | None = None
    uuid: str | None = None
    vm_state: list = field(default_factory=list)
    task_state: list = field(default_factory=list)
    power_state: list = field(default_factory=list)
    launched_at: object = None
    terminated_at: object = None
    sort: list = field(default_factory=lambda: [("created_at", "desc")])
    strict_status: bool = False


def _regex(pattern: str):
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


def _ips_of(vifs: list[dict], version: int) -> list[str]:
    out = []
    for vif in vifs:
        for subnet in vif.get("network", {}).get("subnets", []):
            for ip in subnet.get("ips", []):
                if int(ip.get("version", subnet.get("version", 4))) == version:
                    out.append(ip["address"])
                    for fip in ip.get("floating_ips", []) if version == 4 else []:
                        out.append(fip["address"])
    return out


def nw_info_many(instance_uuids: list[str]) -> dict[str, list[dict]]:
    """`nw_info` for many servers in a few queries (the network service's batched call)."""
    out: dict[str, list[dict]] = {u: [] for u in instance_uuids}
    if not instance_uuids:
        return out
    fn = net_fn("get_instances_nw_info")
    try:
        if fn is not None:
            out.update(fn(instance_uuids))
        else:
            out.update({u: nw_info(u) for u in instance_uuids})
    except Exception:  # noqa: BLE001 - a network hiccup must not break a server list
        log.exception("network info for %d servers unavailable", len(instance_uuids))
    return out


def security_groups_many(insts: list[Instance], vifs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`instance_security_groups` for a page of servers: one query for all their ports."""
    wired = [i.uuid for i in insts if i.host and vifs.get(i.uuid)]
    names: dict[str, list[str]] = {}
    fn = net_fn("instances_security_group_names")
    if wired and fn is not None:
        try:
            names = {u: [] for u in wired} | fn(wired)
        except Exception:  # noqa: BLE001 - fall back to the names asked for at boot
            log.exception("security groups of %d servers unavailable", len(wired))
    return {i.uuid: [{"name": n} for n in names.get(i.uuid, i.security_groups or [])] for i in insts}


def _filtered(ctx, q: ListQuery):
    """The SELECT with every filter SQL can apply (all but regexes, flavor, IPs, tags)."""
    stmt = select(Instance)
    if q.project_id:
        stmt = stmt.where(Instance.project_id == q.project_id)
    elif not q.all_tenants:
        stmt = stmt.where(Instance.project_id == ctx.project_id)
    if q.deleted is True:
        stmt = stmt.where(Instance.deleted.is_(True))
    elif q.deleted is False or (q.changes_since is None and q.changes_before is None):
        stmt = stmt.where(Instance.deleted.is_(False))
    for value, col in ((q.user_id, Instance.user_id), (q.host, Instance.host), (q.node, Instance.node),
                       (q.reservation_id, Instance.reservation_id), (q.key_name, Instance.key_name),
                       (q.availability_zone, Instance.availability_zone), (q.uuid, Instance.uuid)):
        if value:
            stmt = stmt.where(col == value)
    if q.locked is not None:
        stmt = stmt.where(Instance.locked.is_(q.locked))
    if q.image:
        stmt = stmt.where(Instance.image_ref == q.image.rstrip("/").rsplit("/", 1)[-1])
    if q.changes_since is not None:
        stmt = stmt.where(Instance.updated_at >= q.changes_since)
    if q.changes_before is not None:
        stmt = stmt.where(Instance.updated_at <= q.changes_before)
    if q.vm_state:
        stmt = stmt.where(Instance.vm_state.in_(q.vm_state))
    if q.task_state:
        stmt = stmt.where(Instance.task_state.in_(q.task_state))
    if q.power_state:
        stmt = stmt.where(Instance.power_state.in_(q.power_state))
    if q.status:
        wanted = []
        for st in q.status:
            pairs = states_for_status(st)
            if pairs is None:
                if q.strict_status:
                    raise BadRequest("Invalid status value")
                return None
            wanted.extend(pairs)
        stmt = stmt.where(or_(false(), *(_state_clause(vm, tasks) for vm, tasks in wanted)))
    return stmt


def _state_clause(vm: str, tasks):
    if tasks is None:
        return Instance.vm_state == vm
    if tasks and tasks[0] == "!":
        return and_(Instance.vm_state == vm, or_(Instance.task_state.is_(None), Instance.task_state.not_in(tasks[1:])))
    return and_(Instance.vm_state == vm, Instance.task_state.in_(tasks))


def _needs_python(q: ListQuery) -> bool:
    return bool(q.flavor or q.name or q.description or q.hostname or q.ip or q.ip6
                or q.tags or q.tags_any or q.not_tags or q.not_tags_any)


def _python_filters(rows: list[Instance], q: ListQuery) -> list[Instance]:
    if q.flavor:
        ref = q.flavor.rstrip("/").rsplit("/", 1)[-1]
        rows = [r for r in rows if str((r.flavor or {}).get("flavorid")) == ref]
    for pattern, attr in ((q.name, "display_name"), (q.description, "description"), (q.hostname, "hostname")):
        if pattern:
            rx = _regex(pattern)
            rows = [r for r in rows if rx.search(getattr(r, attr) or "")]
    for pattern, version in ((q.ip, 4), (q.ip6, 6)):
        if pattern:
            rx = _regex(pattern)
            vifs = nw_info_many([r.uuid for r in rows])
            rows = [r for r in rows if any(rx.search(a) for a in _ips_of(vifs[r.uuid], version))]
    if q.tags:
        rows = [r for r in rows if set(q.tags) <= set(r.tags or [])]
    if q.tags_any:
        rows = [r for r in rows if set(q.tags_any) & set(r.tags or [])]
    if q.not_tags:
        rows = [r for r in rows if not set(q.not_tags) <= set(r.tags or [])]
    if q.not_tags_any:
        rows = [r for r in rows if not set(q.not_tags_any) & set(r.tags or [])]
    return rows


def _sort_columns(q: ListQuery) -> list[tuple]:
    return [(getattr(Instance, _SORT_ATTR.get(k, k)), d == "desc") for k, d in q.sort + [("id", "desc")]]


def list_instances(ctx, q: ListQuery) -> list[Instance]:
    """Every server matching `q`, sorted (in SQL; Python sorts only what Python filtered)."""
    stmt = _filtered(ctx, q)
    if stmt is None:
        return []
    with _session() as sess:
        rows = list(sess.scalars(stmt.order_by(*_order(q))))
    return _python_filters(rows, q) if _needs_python(q) else rows


def _order(q: ListQuery) -> list:
    # None sorts first ascending and last descending, as Python's sort of (is-not-None, value)
    return [c.desc().nulls_last() if desc else c.asc().nulls_first() for c, desc in _sort_columns(q)]


def _after(q: ListQuery, marker: Instance):
    """Rows strictly after `marker` in `q`'s order (keyset pagination; the key ends in `id`)."""
    ors, equal = [], []
    for col, desc in _sort_columns(q):
        v = getattr(marker, col.key)
        if desc:
            later = None if v is None else or_(col < v, col.is_(None))
        else:
            later = col.is_not(None) if v is None else col > v
        if later is not None:
            ors.append(and_(*equal, later))
        equal.append(col.is_(None) if v is None else col == v)
    return or_(false(), *ors)


_UNSHOWN = {"old_flavor", "new_flavor", "requested_networks", "key_data", "vcpus", "memory_mb", "locked_by",
            "deleted", "deleted_at"}


def list_page(ctx, q: ListQuery, limit: int, marker: str | None = None, *,
              columns: tuple = (), skip: tuple = ()) -> tuple[list[Instance], bool]:
    """One page of `q` after the server `marker` (which must match `q`, else 400): at most
    `limit` servers and whether more follow. Filters, order and the page are SQL's, so a page
    costs the same however many servers there are; filters only Python can apply (regexes,
    flavor, IPs, tags) fall back to filtering the full list. The servers are read-only rows
    with Instance's attribute names (no ORM objects to build): `columns` of them, else all
    but those no server body shows and those in `skip`."""
    if _needs_python(q):
        rows = list_instances(ctx, q)
        start = 0
        if marker:
            start = next((i + 1 for i, r in enumerate(rows) if r.uuid == marker), -1)
            if start < 0:
                raise BadRequest(f"marker [{marker}] not found")
        page = rows[start:start + limit + 1]
        return page[:limit], len(page) > limit
    stmt = _filtered(ctx, q)
    if stmt is None:
        return [], False
    with _session() as sess:
        if marker:
            after = sess.scalars(stmt.where(Instance.uuid == marker)).first() if len(marker) <= 36 else None
            if after is None:
                raise BadRequest(f"marker [{marker}] not found")
            stmt = stmt.where(_after(q, after))
        if columns:
            keys = [*{c.key for c, _ in _sort_columns(q)} | {"id", "uuid", *columns}]
        else:
            keys = [a.key for a in Instance.__mapper__.column_attrs if a.key not in _UNSHOWN and a.key not in skip]
        stmt = stmt.with_only_columns(*(getattr(Instance, k) for k in keys))
        rows = sess.execute(stmt.order_by(*_order(q)).limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit


# ---------------------------------------------------------------------------- update / delete
def update_instance(ctx, instance_id: str, values: dict) -> Instance:
    with _session() as sess:
        inst = load(sess, ctx, instance_id, "os_compute_api:servers:update")
        for key, value in values.items():
            setattr(inst, key, value)
        inst.updated_at = utcnow()
        sess.flush()
    emit("compute.instance.update", {"instance_id": inst.uuid, "fields": sorted(values)}, context=ctx)
    return inst


def delete(ctx, instance_id: str, request_id: str | None, *, force: bool = False) -> None:
    rule = "os_compute_api:os-deferred-delete:force" if force else "os_compute_api:servers:delete"
    with _session() as sess:
        inst = load(sess, ctx, instance_id, rule)
        check_lock(ctx, inst)
        if inst.task_state == "deleting":
            return
        instance_actions.record(sess, inst.uuid, "delete", ctx, request_id)
        emit("compute.instance.delete.start", {"instance_id": inst.uuid}, context=ctx)
        if not inst.host:
            # never reached a host (scheduling, failed to schedule, shelved offloaded): done here
            _mark_deleted(sess, inst)
            uuid, done = inst.uuid, True
        else:
            inst.task_state = "deleting"
            inst.updated_at = utcnow()
            uuid, done = inst.uuid, False
    if done:
        _after_delete(ctx, uuid)
        return
    rpc.spawn("compute.terminate", _terminate, uuid, request_id, ctx)


def _mark_deleted(sess, inst: Instance) -> None:
    now = utcnow()
    inst.vm_state, inst.task_state, inst.power_state = DELETED, None, vd.NOSTATE
    inst.deleted, inst.deleted_at, inst.terminated_at, inst.updated_at = True, now, now, now


def _after_delete(ctx, instance_uuid: str) -> None:
    try:
        from pocketstack.compute import server_groups

        server_groups.remove_instance(instance_uuid)
    except Exception:  # noqa: BLE001
        log.exception("removing %s from its server group failed", instance_uuid)
    _deallocate_network(ctx, instance_uuid)
    try:
        from pocketstack.compute import volumes as compute_volumes

        compute_volumes.detach_all(ctx, instance_uuid)
    except Exception:  # noqa: BLE001 - volumes left attached show in the volume service; admins reset them
        log.exception("detaching the volumes of %s failed", instance_uuid)
    emit("compute.instance.delete.end", {"instance_id": instance_uuid}, context=ctx)


def _terminate(instance_uuid: str, request_id: str | None, ctx) -> None:
    inst = hosts.load(instance_uuid)
    if inst is None or inst.deleted:
        return
    try:
        rpc.call(inst.host, "terminate_instance", instance_uuid=instance_uuid, request_id=request_id)
    except rpc.HostUnavailable:
        log.warning("host %s of %s is gone; deleting the record only", inst.host, instance_uuid)
    with _session() as sess:
        row = sess.scalars(select(Instance).where(Instance.uuid == instance_uuid)).first()
        if row is None or row.deleted:
            return
        host, flavor = row.host, row.flavor
        _mark_deleted(sess, row)
        mig = _open_migration(sess, instance_uuid)
    hosts.release(host, flavor)
    if mig is not None and row.old_flavor:
        hosts.release(mig.source_compute if mig.source_compute != host else host, row.old_flavor)
    _after_delete(ctx, instance_uuid)


def _open_migration(sess, instance_uuid: str) -> Migration | None:
    mig = sess.scalars(select(Migration).where(Migration.instance_uuid == instance_uuid,
                                               Migration.status == "finished")
                       .order_by(Migration.id.desc())).first()
    if mig is not None:
        mig.status = "confirmed"
        mig.updated_at = utcnow()
    return mig


# ---------------------------------------------------------------------------- metadata & tags
MAX_TAGS = 50


def check_tag(tag) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > 60 or "," in tag or "/" in tag:
        raise BadRequest(f"Invalid input for field/attribute tag. Value: {tag}.")
    return tag


def set_metadata(ctx, instance_id: str, values: dict, *, replace: bool, rule: str) -> dict:
    from pocketstack.compute import quotas

    with _session() as sess:
        inst = load(sess, ctx, instance_id, rule)
        check_lock(ctx, inst)
        check_state(inst, "update metadata", [ACTIVE, PAUSED, SUSPENDED, STOPPED, SHELVED, OFFLOADED, ERROR,
                                             RESIZED, RESCUED, BUILDING], None)
        meta = {} if replace else dict(inst.meta or {})
        meta.update(values)
        limit = quotas.project_limits(inst.project_id).get("metadata_items", 128)
        if 0 <= limit < len(meta):
            raise Forbidden(f"Quota exceeded for metadata_items: Requested {len(meta)}, but already used "
                            f"0 of {limit} metadata_items")
        inst.meta = meta
        inst.updated_at = utcnow()
    emit("compute.instance.update", {"instance_id": instance_id, "fields": ["metadata"]}, context=ctx)
    return meta


def delete_metadata_item(ctx, instance_id: str, key: str) -> None:
    with _session() as sess:
        inst = load(sess, ctx, instance_id, "os_compute_api:server-metadata:delete")
        check_lock(ctx, inst)
        meta = dict(inst.meta or {})
        if key not in meta:
            raise NotFound("Metadata item was not found")
        meta.pop(key)
        inst.meta = meta
        inst.updated_at = utcnow()
    emit("compute.instance.update", {"instance_id": instance_id, "fields": ["metadata"]}, context=ctx)


def _tag_state_check(inst: Instance) -> None:
    if inst.vm_state not in (ACTIVE, PAUSED, SUSPENDED, STOPPED, SHELVED, OFFLOADED, ERROR, RESIZED, RESCUED,
                             BUILDING):
        raise state_conflict(inst, "update tags")


def set_tags(ctx, instance_id: str, tags: list[str] | None, *, add: str | None = None,
             remove: str | None = None, rule: str) -> list[str]:
    with _session() as sess:
        inst = load(sess, ctx, instance_id, rule)
        _tag_state_check(inst)
        current_tags = list(inst.tags or [])
        if tags is not None:
            current_tags = list(dict.fromkeys(check_tag(t) for t in tags))
        if add is not None:
            check_tag(add)
            if add not in current_tags:
                current_tags.append(add)
        if remove is not None:
            if remove not in current_tags:
                raise NotFound(f"Tag {remove} could not be found.")
            current_tags.remove(remove)
        if len(current_tags) > MAX_TAGS:
            raise BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        inst.tags = current_tags
        inst.updated_at = utcnow()
    emit("compute.instance.update", {"instance_id": instance_id, "fields": ["tags"]}, context=ctx)
    return current_tags
