"""os-volumes and os-snapshots (the block-storage proxies of microversions up to 2.35, 404
from 2.36) and os-assisted-volume-snapshots (every microversion, service role).

The proxies create, show, list (`offset` / `limit` as Nova's `common.limited`) and delete
what the volume service shows the caller, through its Python interface
(`pocketstack.volume.core`), in Nova's camel-case view. Assisted snapshots are how Cinder's
file-based drivers (NFS and the like) ask the hypervisor to snapshot an attached volume;
Nova checks the volume is attached to a server on a host and casts to that host. None of our
volume backends needs the hypervisor for that (the file and LVM backends snapshot by
themselves), so after the same checks nothing runs on the host: the answer is Nova's.
"""
from __future__ import annotations

import json

from sqlalchemy import select

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.compute import servers as sv
from pocketstack.compute.api.common import api, at_least, session
from pocketstack.compute.models import BlockDeviceMapping, Instance

VOL = "os_compute_api:os-volumes:"
SNAP = "os_compute_api:os-volumes:snapshots:"
ASSISTED = "os_compute_api:os-assisted-volume-snapshots:"


def _core():
    from pocketstack.volume import core

    return core


def _proxy(req, rule: str) -> None:
    if at_least(req, "2.36"):
        raise NotFound("The resource could not be found.")
    sv.enforce(req.context, rule)


def _time(value) -> str | None:
    return value.replace(tzinfo=None).isoformat() if value is not None else None


def _volume_view(v: dict) -> dict:
    attachments = [{"id": v["id"], "volumeId": v["id"], "serverId": a["server_id"],
                    **({"device": a["mountpoint"]} if a["mountpoint"] else {})}
                   for a in v["attachments"][:1]] if v["attach_status"] == "attached" else [{}]
    return {"id": v["id"], "status": v["status"], "size": v["size"], "availabilityZone": v["availability_zone"],
            "createdAt": _time(v["created_at"]), "attachments": attachments, "displayName": v["name"],
            "displayDescription": v["description"], "volumeType": v["volume_type"],
            "snapshotId": v["snapshot_id"], "metadata": dict(v["metadata"])}


def _snapshot_view(s: dict) -> dict:
    return {"id": s["id"], "volumeId": s["volume_id"], "status": s["status"], "size": s["size"],
            "createdAt": _time(s["created_at"]), "displayName": s["name"], "displayDescription": s["description"]}


def _limited(req, items: list) -> list:
    """Nova's `common.limited`: `offset` and `limit` (at most `[api] max_limit`)."""
    max_limit = int(current().config.get("api", "max_limit", "1000") or 1000)
    values = {}
    for name, default in (("offset", 0), ("limit", max_limit)):
        try:
            values[name] = int(req.query.get(name, default))
        except ValueError:
            raise BadRequest(f"{name} param must be an integer") from None
        if values[name] < 0:
            raise BadRequest(f"{name} param must be positive")
    limit = min(max_limit, values["limit"] or max_limit)
    return items[values["offset"]:values["offset"] + limit]


def _body(req, key: str, allowed: set[str], required: str) -> dict:
    body = req.json_object(key)
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {body}. Additional properties are "
                         f"not allowed ('{extra[0]}' was unexpected)")
    if required not in body:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {body}. "
                         f"'{required}' is a required property")
    for name in allowed - {"metadata", "force", "size"}:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise BadRequest(f"Invalid input for field/attribute {name}. Value: {body[name]}. "
                             f"{body[name]!r} is not of type 'string'")
    return body


# ---------------------------------------------------------------------------- os-volumes
def _listing(req) -> str:
    return "detail" if req.raw.url.path.endswith("/detail") else "list"


@api.route("/v2.1/os-volumes", "GET")
@api.route("/v2.1/os-volumes/detail", "GET")
def list_volumes(req):
    """Both lists show the same fields (Nova's summary and detail views are one view)."""
    _proxy(req, VOL + _listing(req))
    return {"volumes": [_volume_view(v) for v in _limited(req, _core().describe_volumes(req.context))]}


@api.route("/v2.1/os-volumes/", "GET")
@api.route("/v2.1/os-volumes/", "DELETE")
def volume_without_id(req):
    _proxy(req, VOL + "show")
    raise NotFound("Volume  could not be found.")


@api.route("/v2.1/os-volumes/{volume_id}", "GET")
def show_volume(req):
    _proxy(req, VOL + "show")
    return {"volume": _volume_view(_core().describe_volumes(req.context, req.path_params["volume_id"])[0])}


@api.route("/v2.1/os-volumes", "POST")
def create_volume(req):
    _proxy(req, VOL + "create")
    vol = _body(req, "volume", {"volume_type", "metadata", "snapshot_id", "size", "availability_zone",
                                "display_name", "display_description"}, "size")
    size = vol["size"]
    if isinstance(size, bool) or not (isinstance(size, int) or (isinstance(size, str) and size.isdigit())):
        raise BadRequest(f"Invalid input for field/attribute size. Value: {size}. "
                         f"{size!r} does not match '^[0-9]+$'")
    if int(size) < 1:
        raise BadRequest(f"Invalid input for field/attribute size. Value: {size}. "
                         f"{size} is less than the minimum of 1")
    if vol.get("metadata") is not None and not isinstance(vol["metadata"], dict):
        raise BadRequest(f"Invalid input for field/attribute metadata. Value: {vol['metadata']}. "
                         f"{vol['metadata']!r} is not of type 'object'")
    body = {"size": int(size)}
    for key, name in (("display_name", "name"), ("display_description", "description"), ("volume_type", None),
                      ("metadata", None), ("snapshot_id", None), ("availability_zone", None)):
        if vol.get(key) is not None:
            body[name or key] = vol[key]
    core = _core()
    volume_id = core.create_volume_as_requested(req.context, body)
    location = str(req.raw.url.replace(query="", fragment="")).rstrip("/") + f"/{volume_id}"
    return 200, {"volume": _volume_view(core.describe_volumes(req.context, volume_id)[0])}, {"Location": location}


@api.route("/v2.1/os-volumes/{volume_id}", "DELETE")
def delete_volume(req):
    _proxy(req, VOL + "delete")
    _core().delete_volume(req.context, req.path_params["volume_id"])
    return 202, None


# ---------------------------------------------------------------------------- os-snapshots
@api.route("/v2.1/os-snapshots", "GET")
@api.route("/v2.1/os-snapshots/detail", "GET")
def list_snapshots(req):
    _proxy(req, SNAP + _listing(req))
    return {"snapshots": [_snapshot_view(s) for s in _limited(req, _core().describe_snapshots(req.context))]}


@api.route("/v2.1/os-snapshots/{snapshot_id}", "GET")
def show_snapshot(req):
    _proxy(req, SNAP + "show")
    return {"snapshot": _snapshot_view(_core().describe_snapshots(req.context, req.path_params["snapshot_id"])[0])}


@api.route("/v2.1/os-snapshots", "POST")
def create_snapshot(req):
    _proxy(req, SNAP + "create")
    snap = _body(req, "snapshot", {"volume_id", "force", "display_name", "display_description"}, "volume_id")
    force = snap.get("force", False)
    if isinstance(force, str) and force.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        force = force.lower() in ("true", "1", "yes", "on")
    if not isinstance(force, bool):
        raise BadRequest(f"Invalid input for field/attribute force. Value: {force}. "
                         f"{force!r} is not of type 'boolean', 'string'")
    core = _core()
    snapshot_id = core.create_snapshot(req.context, snap["volume_id"], snap.get("display_name") or "",
                                       snap.get("display_description"), force=force)
    return {"snapshot": _snapshot_view(core.describe_snapshots(req.context, snapshot_id)[0])}


@api.route("/v2.1/os-snapshots/{snapshot_id}", "DELETE")
def delete_snapshot(req):
    _proxy(req, SNAP + "delete")
    _core().delete_snapshot_as_requested(req.context, req.path_params["snapshot_id"])
    return 202, None


# ---------------------------------------------------------------------------- os-assisted-volume-snapshots
def _attached_server(volume_id: str) -> Instance:
    """The server the volume is attached to, on a host (Nova's 400s otherwise)."""
    with session() as sess:
        inst = sess.scalars(select(Instance)
                            .join(BlockDeviceMapping, BlockDeviceMapping.instance_uuid == Instance.uuid)
                            .where(BlockDeviceMapping.volume_id == volume_id, Instance.deleted.is_(False))).first()
    if inst is None:
        raise BadRequest(f"No volume Block Device Mapping with id {volume_id}.")
    if not inst.host:
        raise BadRequest(f"Instance {inst.uuid} is not ready")
    return inst


@api.route("/v2.1/os-assisted-volume-snapshots", "POST")
def create_assisted_snapshot(req):
    sv.enforce(req.context, ASSISTED + "create", {})
    snap = req.json_object("snapshot")
    volume_id, info = snap.get("volume_id"), snap.get("create_info")
    if not isinstance(volume_id, str) or not isinstance(info, dict):
        missing = "volume_id" if not isinstance(volume_id, str) else "create_info"
        raise BadRequest(f"Invalid input for field/attribute snapshot. Value: {snap}. "
                         f"'{missing}' is a required property")
    for key in ("snapshot_id", "type"):
        if not isinstance(info.get(key), str):
            raise BadRequest(f"Invalid input for field/attribute create_info. Value: {info}. "
                             f"'{key}' is a required property")
    if info["type"] != "qcow2":
        raise BadRequest(f"Invalid input for field/attribute type. Value: {info['type']}. "
                         f"'{info['type']}' is not one of ['qcow2']")
    _attached_server(volume_id)
    return {"snapshot": {"id": info.get("id"), "volumeId": volume_id}}


@api.route("/v2.1/os-assisted-volume-snapshots/{snapshot_id}", "DELETE")
def delete_assisted_snapshot(req):
    sv.enforce(req.context, ASSISTED + "delete", {})
    try:
        info = json.loads(req.query["delete_info"])
        volume_id = info["volume_id"]
    except KeyError as exc:
        raise BadRequest(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(volume_id, str):
        raise BadRequest("'volume_id'")
    _attached_server(volume_id)
    return 204, None
