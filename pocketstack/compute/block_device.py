"""Boot from volume: `block_device_mapping_v2` checked as Nova checks it, and the build's
block_device_mapping step.

`plan()` runs in the API request before any row exists: it normalises the requested
mappings (plus the ones a volume-backed snapshot image carries in its
`block_device_mapping` property), refuses what Nova refuses (400 `Block Device Mapping is
Invalid: ...`, `Invalid volume: ...`), looks every volume, snapshot and image up through
`volume.core` / `image.core` with the caller's rights, and tells `servers.create` whether
the server is volume-backed and which image metadata it boots with. Existing volumes are
reserved for the server right away (`reserve()`), so two boots cannot take one volume.

`prepare_for_host()` is the conductor's step once a host is chosen: volumes to be made
(from an image, a snapshot, or blank) are created and waited for, then every volume is
connected to the host (`volume.core.connect`), in boot order. A failure detaches what was
attached, deletes the volumes this build made, and raises `BuildAbort` for the server's
fault. The virt driver then gets the volumes as `InstanceInfo.block_devices`
(`block_devices()`).
"""
from __future__ import annotations

import json
import logging
import uuid as uuidlib
from dataclasses import dataclass, field

from sqlalchemy import select

from pocketstack.common.errors import ApiError, BadRequest, Forbidden, NotFound
from pocketstack.common.runtime import current
from pocketstack.compute.models import BlockDeviceMapping

log = logging.getLogger("pocketstack.compute.block_device")
GiB = 1 << 30
_INVALID = "Block Device Mapping is Invalid: "
# image properties too big for system metadata (Nova's SM_SKIP_KEYS)
SM_SKIP_KEYS = ("mappings", "block_device_mapping", "img_mappings", "img_block_device_mapping")
BOOT_SEQUENCE = _INVALID + "Boot sequence for the instance and image/block device mapping combination is not valid."


class BuildAbort(Exception):
    """Preparing the server's volumes failed; the message goes into its fault."""


def volume_core():
    """The volume service's interface, or None when block storage is not enabled."""
    if "volume" not in current().config.enabled_services:
        return None
    from pocketstack.volume import core

    return core


@dataclass
class Plan:
    bdms: list[dict] = field(default_factory=list)   # normalised rows to store (no image root)
    volume_backed: bool = False
    boot_image: dict = field(default_factory=dict)   # the image (meta) the server boots from
    reservations: list[str] = field(default_factory=list)  # attachment ids taken by reserve()


# ---------------------------------------------------------------------------- normalising
def _int(value, name: str, minimum: int = 0) -> int:
    try:
        out = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        out = None
    if out is None or out < minimum:
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. {value!r} is not valid")
    return out


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid input for field/attribute delete_on_termination. Value: {value}.")


def _normalise(b: dict, image_given: bool) -> dict:
    st = b.get("source_type")
    dest = b.get("destination_type") or ("volume" if st in ("volume", "snapshot") else "local")
    ident = b.get("uuid")
    if ident is None:  # image-defined mappings name their source as Nova stores it
        ident = b.get(f"{st}_id")
    boot_index = b.get("boot_index")
    boot_index = None if boot_index is None else _int(boot_index, "boot_index", minimum=-(2 ** 31))
    if boot_index is not None and boot_index < 0:
        boot_index = None
    if st == "blank" and ident:
        raise BadRequest(_INVALID + "Invalid device UUID.")
    if st != "blank" and not ident:
        raise BadRequest(_INVALID + "Missing device UUID.")
    if st == "image" and dest == "local" and not (image_given and boot_index == 0):
        raise BadRequest(_INVALID + "Mapping image to local is not supported.")
    if st in ("volume", "snapshot") and dest == "local":
        raise BadRequest(_INVALID + f"Mapping {st} to local is not supported.")
    if b.get("volume_type") and (dest == "local" or st == "volume"):
        raise BadRequest(_INVALID + ("Specifying a volume_type with destination_type=local is not supported."
                                     if dest == "local" else "Specifying volume type to existing volume is not "
                                     "supported."))
    device = b.get("device_name")
    if device is not None and (not isinstance(device, str) or not device.strip() or " " in device
                               or len(device) > 255):
        raise BadRequest(_INVALID + "Device name empty or too long.")
    if device and not device.startswith("/dev/"):
        device = "/dev/" + device
    size = b.get("volume_size")
    return {"source_type": st, "destination_type": dest, "uuid": ident, "boot_index": boot_index,
            "device_name": device or None, "volume_size": None if size in (None, "") else _int(size, "volume_size", 1),
            "delete_on_termination": _bool(b.get("delete_on_termination", False), "delete_on_termination"),
            "device_type": b.get("device_type"), "disk_bus": b.get("disk_bus"), "tag": b.get("tag"),
            "guest_format": b.get("guest_format")}


def image_defined_bdms(image: dict) -> list[dict]:
    """The mappings a volume-backed server's snapshot image carries (`bdm_v2` ones only)."""
    raw = image.get("block_device_mapping") if image else None
    if not raw or str(image.get("bdm_v2", "")).lower() not in ("true", "1"):
        return []
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    return [dict(i) for i in items if isinstance(i, dict) and not i.get("no_device")]


# ---------------------------------------------------------------------------- plan (API time)
def plan(ctx, requested: list[dict], image: dict, flavor, count: int, image_loader) -> Plan:
    """Nova's create-time checks of the block device mappings; `image` is the imageRef's
    image ({} when none), `image_loader(ref)` loads another image as the caller sees it."""
    image_given = bool(image)
    bdms = [_normalise(b, image_given) for b in requested]
    defined = [_normalise(b, False) for b in image_defined_bdms(image)]
    if any(b["boot_index"] == 0 for b in defined):
        # the image's own root (a snapshot) replaces the image root a client adds for --image
        bdms = [b for b in bdms if not (b["boot_index"] == 0 and b["source_type"] == "image")]
    names = {b["device_name"] for b in bdms if b["device_name"]}
    bdms = [b for b in defined if not b["device_name"] or b["device_name"] not in names] + bdms
    if not image_given and not any(b["boot_index"] == 0 for b in bdms):
        for b in bdms:  # a legacy block_device_mapping boots from the volume on vda
            if b["device_name"] == "/dev/vda" and b["destination_type"] == "volume":
                b["boot_index"] = 0
                break
    if image_given and not any(b["boot_index"] == 0 for b in bdms):
        bdms.insert(0, {"source_type": "image", "destination_type": "local", "uuid": image["id"], "boot_index": 0,
                        "device_name": "/dev/vda", "volume_size": None, "delete_on_termination": True,
                        "device_type": "disk", "disk_bus": None, "tag": None, "guest_format": None})
    if image_given and any(b["destination_type"] == "volume" and b["device_name"] == "/dev/vda"
                           and b["boot_index"] != 0 for b in bdms):
        raise BadRequest("The volume cannot be assigned the same device name as the root device vda")
    names = [b["device_name"] for b in bdms if b["device_name"]]
    if len(names) != len(set(names)):
        raise BadRequest(_INVALID + "Device names must be unique.")
    indexes = sorted(b["boot_index"] for b in bdms if b["boot_index"] is not None)
    if not indexes or indexes != list(range(len(indexes))):
        raise BadRequest(BOOT_SEQUENCE)
    if count > 1 and any(b["source_type"] == "volume" for b in bdms):
        raise BadRequest("Cannot attach one or more volumes to multiple instances")
    if any(b["destination_type"] == "volume" for b in bdms) and volume_core() is None:
        ident = next((b["uuid"] for b in bdms if b["source_type"] == "volume"), None)
        raise BadRequest(_INVALID + (f"failed to get volume {ident}." if ident else
                                     "volumes need the block storage service, which this cloud does not run."))
    root = next(b for b in bdms if b["boot_index"] == 0)
    out = Plan(volume_backed=root["destination_type"] == "volume")
    for b in bdms:
        _check_one(ctx, b, image, image_loader, out, root is b)
    _check_local_disks(bdms, flavor)
    _assign_devices(bdms)
    out.bdms = [b for b in bdms if not (b["source_type"] == "image" and b["destination_type"] == "local"
                                        and b["boot_index"] == 0)]
    if out.volume_backed:
        _check_root_volume(root, out.boot_image, flavor)
    elif image_given:
        out.boot_image = image
    return out


def _check_one(ctx, b: dict, image: dict, image_loader, out: Plan, is_root: bool) -> None:
    st, dest = b["source_type"], b["destination_type"]
    core = volume_core()
    if st == "image":
        if image and b["uuid"] == image.get("id"):
            found = image
        else:
            try:
                found = image_loader(b["uuid"])
            except ApiError as err:
                if "not active" in err.message:
                    raise
                raise BadRequest(_INVALID + f"failed to get image {b['uuid']}.") from None
        if dest == "volume" and not b["volume_size"]:
            raise BadRequest("Images with destination_type 'volume' need to have a non-zero size specified")
        if is_root:
            out.boot_image = found
    elif st == "volume":
        try:
            vol = core.get_volume(ctx, b["uuid"])
        except NotFound:
            raise BadRequest(_INVALID + f"failed to get volume {b['uuid']}.") from None
        if vol["status"] != "available" and not (vol["multiattach"] and vol["status"] == "in-use"):
            raise BadRequest(f"Invalid volume: volume '{vol['id']}' status must be 'available'. "
                             f"Currently in '{vol['status']}'")
        b["volume_size"] = vol["size"]
        if is_root and not vol["bootable"]:
            raise BadRequest(f"Block Device {vol['id']} is not bootable.")
        if is_root:
            meta = vol.get("volume_image_metadata") or {}
            out.boot_image = {k: v for k, v in meta.items() if k not in ("image_id", "image_name")}
            out.boot_image.update(id=meta.get("image_id", ""), name=meta.get("image_name", ""))
    elif st == "snapshot":
        try:
            snap = core.get_snapshot(ctx, b["uuid"])
        except NotFound:
            raise BadRequest(_INVALID + f"failed to get snapshot {b['uuid']}.") from None
        b["volume_size"] = b["volume_size"] or snap["size"]
        if is_root:
            try:
                source = core.get_volume(ctx, snap["volume_id"])
            except NotFound:
                source = None
            if source is not None and not source["bootable"]:
                raise BadRequest(f"Block Device {snap['id']} is not bootable.")
        if is_root and image:
            out.boot_image = image
    elif dest == "volume" and not b["volume_size"]:
        raise BadRequest("Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size")


def _check_local_disks(bdms: list[dict], flavor) -> None:
    local = [b for b in bdms if b["source_type"] == "blank" and b["destination_type"] == "local"]
    swaps = [b for b in local if b["guest_format"] == "swap"]
    if len(swaps) > 1:
        raise BadRequest(_INVALID + "More than one swap drive requested.")
    if swaps and (swaps[0]["volume_size"] or 0) > int(getattr(flavor, "swap", 0) or 0):
        raise BadRequest("Swap drive requested is larger than instance type allows.")
    ephemeral_gb = int(getattr(flavor, "ephemeral", 0) or 0)
    if sum(b["volume_size"] or ephemeral_gb for b in local if b not in swaps) > ephemeral_gb:
        raise BadRequest("Ephemeral disks requested are larger than the instance type allows. If no size is "
                         "given in one block device mapping, flavor ephemeral size will be used.")


def _check_root_volume(root: dict, boot_image: dict, flavor) -> None:
    """Nova's flavor/image checks for a volume root: memory as always, min_disk (and, where
    we create the volume from the image, its size) against the volume, never the flavor disk."""
    if flavor.ram < int(boot_image.get("min_ram") or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    size = root["volume_size"]
    if size is None:
        return
    min_disk = int(boot_image.get("min_disk") or 0) * GiB
    if min_disk > size * GiB:
        raise BadRequest(f"Volume is smaller than the minimum size specified in image metadata. Volume size is "
                         f"{size * GiB} bytes, minimum size is {min_disk} bytes.")
    image_size = int(boot_image.get("size") or 0) if root["source_type"] == "image" else 0
    if image_size > size * GiB:
        raise BadRequest(f"Volume is smaller than the image. Volume size is {size * GiB} bytes, image size is "
                         f"{image_size} bytes.")


def _assign_devices(bdms: list[dict]) -> None:
    used = {b["device_name"] for b in bdms if b["device_name"]}
    for b in sorted(bdms, key=lambda b: (b["boot_index"] is None, b["boot_index"] or 0)):
        if b["device_name"]:
            continue
        for letter in "abcdefghijklmnopqrstuvwxyz":
            name = f"/dev/vd{letter}"
            if name not in used and (letter != "a" or b["boot_index"] == 0):
                b["device_name"] = name
                used.add(name)
                break
        else:
            raise BadRequest("No free disk device names for prefix 'vd'")


def check_zero_disk(ctx, flavor, volume_backed: bool, allowed) -> None:
    """Nova refuses image-backed boots on a flavor without a root disk unless policy allows."""
    if not volume_backed and not int(flavor.disk or 0) and not allowed(ctx, "os_compute_api:servers:create:zero_disk_flavor"):
        raise Forbidden("Only volume-backed servers are allowed for flavors with zero disk.")


def reserve(ctx, p: Plan, instance_uuid: str) -> None:
    """Reserve every existing volume for the server (all or none)."""
    core = volume_core()
    try:
        for b in p.bdms:
            if b["source_type"] == "volume":
                b["attachment_id"] = core.reserve(ctx, b["uuid"], instance_uuid)
                p.reservations.append(b["attachment_id"])
    except BaseException:
        unreserve(p)
        raise


def unreserve(p: Plan) -> None:
    core = volume_core()
    for att in p.reservations:
        try:
            core.detach(None, att)
        except Exception:  # noqa: BLE001 - already gone
            log.warning("releasing reservation %s failed", att, exc_info=True)
    p.reservations.clear()


def rows_for(p: Plan, instance_uuid: str, now) -> list[BlockDeviceMapping]:
    out = []
    for b in p.bdms:
        st = b["source_type"]
        out.append(BlockDeviceMapping(
            uuid=str(uuidlib.uuid4()), instance_uuid=instance_uuid, source_type=st,
            destination_type=b["destination_type"], device_name=b["device_name"], boot_index=b["boot_index"],
            image_id=b["uuid"] if st == "image" else None, volume_id=b["uuid"] if st == "volume" else None,
            snapshot_id=b["uuid"] if st == "snapshot" else None, attachment_id=b.get("attachment_id"),
            volume_size=b["volume_size"], tag=b["tag"], device_type=b["device_type"] or "disk",
            disk_bus=b["disk_bus"] or ("virtio" if b["destination_type"] == "volume" else None),
            delete_on_termination=b["delete_on_termination"], created_at=now))
    return out


# ---------------------------------------------------------------------------- build time
def _volume_rows(instance_uuid: str) -> list[BlockDeviceMapping]:
    with current().db.session() as sess:
        rows = list(sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == instance_uuid, BlockDeviceMapping.destination_type == "volume")
            .order_by(BlockDeviceMapping.id)))
    return sorted(rows, key=lambda r: (r.boot_index is None, r.boot_index or 0, r.id))


def _set(row_id: int, **values) -> None:
    with current().db.session() as sess:
        row = sess.get(BlockDeviceMapping, row_id)
        if row is not None:
            for k, v in values.items():
                setattr(row, k, v)


def _timeout() -> float:
    conf = current().config
    try:
        retries = int(conf.get("compute", "block_device_allocate_retries", "60") or 60)
        interval = float(conf.get("compute", "block_device_allocate_retries_interval", "3") or 3)
    except ValueError:
        retries, interval = 60, 3.0
    return max(1.0, retries * interval)


def _gone(instance_uuid: str) -> bool:
    from pocketstack.compute.models import Instance

    with current().db.session() as sess:
        return not sess.scalar(select(Instance.id).where(Instance.uuid == instance_uuid,
                                                         Instance.deleted.is_(False)))


def prepare_for_host(ctx, instance_uuid: str, host: str) -> None:
    """Create the volumes the server still lacks and connect all of them to `host`."""
    core = volume_core()
    rows = _volume_rows(instance_uuid)
    if not rows:
        return
    created: list[str] = []
    try:
        for row in rows:
            if _gone(instance_uuid):
                raise BuildAbort(f"Instance {instance_uuid} was deleted during its build.")
            volume_id = row.volume_id
            if volume_id is None:
                if row.source_type == "snapshot":
                    core.wait_for_snapshot(row.snapshot_id, _timeout())
                name = f"{instance_uuid}-blank-vol" if row.source_type == "blank" else ""
                volume_id = core.create_volume(ctx, row.volume_size, name=name,
                                               image_id=row.image_id if row.source_type == "image" else None,
                                               snapshot_id=row.snapshot_id if row.source_type == "snapshot" else None)
                created.append(volume_id)
                _set(row.id, volume_id=volume_id)
                core.wait_for_volume(volume_id, _timeout())
            attachment_id = row.attachment_id
            if attachment_id is None:
                attachment_id = core.reserve(None, volume_id, instance_uuid)
                _set(row.id, attachment_id=attachment_id)
            core.connect(attachment_id, host, row.device_name or "")
        if _gone(instance_uuid):
            raise BuildAbort(f"Instance {instance_uuid} was deleted during its build.")
    except Exception as exc:  # noqa: BLE001 - whatever it was, it is the server's fault message
        message = exc.message if isinstance(exc, ApiError) else str(exc) or type(exc).__name__
        log.warning("block device setup of %s failed: %s", instance_uuid, message)
        release_after_failure(instance_uuid, created)
        raise BuildAbort(message) from None


def release_after_failure(instance_uuid: str, created: list[str]) -> None:
    """Undo a failed block_device_mapping step: detach everything, delete what this build made
    (and what was to be deleted with the server); volumes the user brought stay available."""
    core = volume_core()
    doomed = list(created)
    for row in _volume_rows(instance_uuid):
        if row.attachment_id:
            try:
                core.detach(None, row.attachment_id)
            except Exception:  # noqa: BLE001
                log.warning("detaching %s after a failed build failed", row.volume_id, exc_info=True)
        values = {"attachment_id": None}
        if row.volume_id and (row.volume_id in created or row.delete_on_termination):
            if row.volume_id not in doomed:
                doomed.append(row.volume_id)
            if row.source_type != "volume":
                values["volume_id"] = None
        _set(row.id, **values)
    for volume_id in doomed:  # also those whose mapping went with a server deleted meanwhile
        try:
            core.delete_volume(None, volume_id)
        except NotFound:
            pass
        except Exception:  # noqa: BLE001 - e.g. still creating; an admin deletes it later
            log.warning("deleting volume %s after a failed build failed", volume_id, exc_info=True)


def disconnect_all(instance_uuid: str) -> None:
    """Shelve offload: the host lets go of every volume, the server keeps them reserved."""
    core = volume_core()
    for row in _volume_rows(instance_uuid) if core is not None else ():
        if row.attachment_id:
            try:
                core.disconnect(row.attachment_id)
            except Exception:  # noqa: BLE001 - the attachment is gone already
                log.warning("disconnecting volume %s failed", row.volume_id, exc_info=True)


def connect_all(instance_uuid: str, host: str) -> None:
    """Unshelve: every volume of the server connected to its new host."""
    core = volume_core()
    for row in _volume_rows(instance_uuid) if core is not None else ():
        if row.attachment_id:
            core.connect(row.attachment_id, host, row.device_name or "")


# ---------------------------------------------------------------------------- the driver's view
def block_devices(instance_uuid: str) -> list[dict]:
    """`InstanceInfo.block_devices`: the connected volumes, the root (boot_index 0) first."""
    core = volume_core()
    if core is None:
        return []
    out = []
    for row in _volume_rows(instance_uuid):
        info = core.connection_info(row.attachment_id) if row.volume_id and row.attachment_id else None
        if info is None:
            continue
        out.append({"boot_index": row.boot_index, "device_name": row.device_name, "volume_id": row.volume_id,
                    "connection_info": info, "delete_on_termination": bool(row.delete_on_termination)})
    return out


def root_volume(instance_uuid: str) -> BlockDeviceMapping | None:
    """The boot_index-0 volume mapping of a volume-backed server (None when image-backed)."""
    return next((r for r in _volume_rows(instance_uuid) if r.boot_index == 0), None)


def is_volume_backed(instance_uuid: str) -> bool:
    return root_volume(instance_uuid) is not None


# ---------------------------------------------------------------------------- rebuild
def rebuild_root(instance_uuid: str, image: dict, reimage_boot_volume: bool):
    """(root volume mapping or None, (volume id, image id) to re-image or None) for a rebuild.
    As Nova: the same image as the root volume's is a plain rebuild; another image is
    refused before 2.93 and written over the root volume from 2.93 (`reimage_boot_volume`)."""
    root = root_volume(instance_uuid)
    if root is None:
        return None, None
    current_image = volume_core().get_volume(None, root.volume_id)["volume_image_metadata"].get("image_id")
    if current_image == image["id"]:
        return root, None
    if not reimage_boot_volume:
        raise BadRequest(f"Image {image['id']} is unacceptable: Unable to rebuild with a different image for a "
                         f"volume-backed server.")
    if root.volume_size and int(image.get("min_disk") or 0) > root.volume_size:
        raise BadRequest(f"Volume is smaller than the minimum size specified in image metadata. Volume size is "
                         f"{root.volume_size * GiB} bytes, minimum size is {int(image['min_disk']) * GiB} bytes.")
    return root, (root.volume_id, image["id"])


def reimage(volume_id: str, image_id: str) -> None:
    volume_core().reimage(volume_id, image_id)


# ---------------------------------------------------------------------------- createImage
_NOT_INHERITED = {"block_device_mapping", "bdm_v2", "root_device_name", "cache_in_nova", "bittorrent",
                  "img_signature_hash_method", "img_signature", "img_signature_key_type",
                  "img_signature_certificate_uuid"}


def snapshot_image(ctx, inst, name: str, metadata: dict) -> str:
    """createImage of a volume-backed server, as Nova's `snapshot_volume_backed`: a forced
    snapshot of every volume, and an image without data (size 0) whose properties map them
    (`block_device_mapping`, `bdm_v2`, `root_device_name`). Booting that image creates the
    volumes from the snapshots again."""
    from pocketstack.image import core as image_core

    core = volume_core()
    props = {k[6:]: v for k, v in (inst.system_metadata or {}).items()
             if k.startswith("image_") and k[6:] not in _NOT_INHERITED and not k[6:].startswith("os_glance")}
    for key in ("min_ram", "min_disk"):  # core image attributes: integers
        if key in props:
            props[key] = int(props[key])
    props.update({k: str(v) for k, v in (metadata or {}).items()})
    mapping, made = [], []
    try:
        for row in _volume_rows(inst.uuid):
            if not row.volume_id:
                continue
            vol = core.get_volume(None, row.volume_id)
            snapshot_id = core.create_snapshot(ctx, row.volume_id, f"snapshot for {name}", vol.get("description"))
            made.append(snapshot_id)
            mapping.append({"source_type": "snapshot", "destination_type": "volume", "snapshot_id": snapshot_id,
                            "volume_id": None, "image_id": None, "volume_size": row.volume_size or vol["size"],
                            "boot_index": row.boot_index, "device_name": row.device_name,
                            "delete_on_termination": bool(row.delete_on_termination),
                            "device_type": row.device_type, "disk_bus": row.disk_bus, "guest_format": None,
                            "no_device": None, "tag": None, "volume_type": None})
        body = {**props, "name": name, "disk_format": "raw", "container_format": "bare",
                "owner": inst.project_id, "visibility": "private" if ctx.project_id == inst.project_id else "shared",
                "root_device_name": inst.root_device_name or "/dev/vda"}
        if ctx.project_id != inst.project_id:
            body["instance_owner"] = inst.project_id
        if mapping:
            body.update(block_device_mapping=json.dumps(mapping), bdm_v2="True")
        image = image_core.create_image_from_stream(None, body, iter([b""]), 0)
    except ApiError as err:
        for snapshot_id in made:  # no orphan snapshots behind a refused request
            try:
                core.delete_snapshot(None, snapshot_id)
            except Exception:  # noqa: BLE001
                log.warning("removing snapshot %s failed", snapshot_id, exc_info=True)
        if err.code == 413:
            raise Forbidden("Quota exceeded for resources: snapshots") from None
        raise
    return image["id"]
