"""`POST /servers/{id}/action` and `/remote-consoles`: body checks and status codes per action.

The body names the action (`{"reboot": {"type": "HARD"}}`); each handler validates its
argument as Nova's schema does and calls `compute.actions`. Status codes follow Nova:
202 for asynchronous actions, 200 with a body for rescue / console output / consoles /
evacuate (before 2.14), 204 for confirmResize.
"""
from __future__ import annotations

from starlette.responses import Response

from pocketstack.common.errors import BadRequest
from pocketstack.compute import actions
from pocketstack.compute import servers as sv
from pocketstack.compute.api.common import api, at_least
from pocketstack.compute.api.servers import _bad, _enable_password, _metadata, _str, base, groups_of, render

ACTIONS: dict = {}


def action(*names, since: str | None = None):
    def deco(fn):
        for n in names:
            ACTIONS[n] = (fn, since)
        return fn
    return deco


def accepted():
    return Response(status_code=202)


def _args(value, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(name, f"{value!r}. {value!r} is not of type 'object', 'null'")
    return value


@api.route("/v2.1/servers/{server_id}/action", "POST")
def server_action(req):
    body = req.json_object()
    if len(body) != 1:
        # Nova accepts exactly one action per request
        if not body:
            raise BadRequest("Malformed request body")
    name = next(iter(body))
    entry = ACTIONS.get(name)
    if entry is None or (entry[1] and not at_least(req, entry[1])):
        raise BadRequest(f"There is no such action: {name}")
    return entry[0](req, req.path_params["server_id"], body[name])


# ---------------------------------------------------------------------------- power
@action("reboot")
def reboot(req, sid, arg):
    if not isinstance(arg, dict) or "type" not in arg:
        raise BadRequest("Invalid input for field/attribute reboot. Value: {}. 'type' is a required property"
                         .format(arg))
    kind = arg["type"]
    if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
        raise _bad("type", f"{kind}. {kind!r} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']")
    actions.reboot(req.context, sid, req.request_id, hard=kind.upper() == "HARD")
    return accepted()


def _simple(name):
    def handler(req, sid, arg):
        actions.simple(req.context, sid, req.request_id, name)
        return accepted()
    return handler


action("os-stop")(_simple("stop"))
action("os-start")(_simple("start"))
action("pause")(_simple("pause"))
action("unpause")(_simple("unpause"))
action("suspend")(_simple("suspend"))
action("resume")(_simple("resume"))
action("unrescue")(_simple("unrescue"))


@action("lock")
def lock(req, sid, arg):
    reason = None
    if arg is not None:
        if not isinstance(arg, dict):
            raise _bad("lock", f"{arg!r}")
        if "locked_reason" in arg:
            if not at_least(req, "2.73"):
                raise BadRequest("Invalid input for field/attribute lock. Additional properties are not allowed "
                                 "('locked_reason' was unexpected)")
            reason = _str(arg["locked_reason"], "locked_reason")
        elif arg:
            raise BadRequest("Invalid input for field/attribute lock. Additional properties are not allowed")
    actions.lock(req.context, sid, req.request_id, reason)
    return accepted()


@action("unlock")
def unlock(req, sid, arg):
    actions.unlock(req.context, sid, req.request_id)
    return accepted()


@action("rescue")
def rescue(req, sid, arg):
    arg = _args(arg, "rescue")
    pw = _str(arg["adminPass"], "adminPass") if "adminPass" in arg else None
    image = arg.get("rescue_image_ref")
    if image is not None:
        image = _str(image, "rescue_image_ref")
    pw = actions.rescue(req.context, sid, req.request_id, image, pw)
    return {"adminPass": pw} if _enable_password() else {}


@action("trigger_crash_dump", since="2.17")
def crash_dump(req, sid, arg):
    actions.trigger_crash_dump(req.context, sid, req.request_id)
    return accepted()


@action("changePassword")
def change_password(req, sid, arg):
    if not isinstance(arg, dict) or "adminPass" not in arg:
        raise BadRequest("Invalid input for field/attribute changePassword. 'adminPass' is a required property")
    actions.change_password(req.context, sid, req.request_id, _str(arg["adminPass"], "adminPass"))
    return accepted()


@action("os-resetState")
def reset_state(req, sid, arg):
    state = arg.get("state") if isinstance(arg, dict) else None
    if state not in ("active", "error"):
        raise _bad("state", f"{state}. {state!r} is not one of ['active', 'error']")
    actions.reset_state(req.context, sid, req.request_id, state)
    return accepted()


@action("injectNetworkInfo", "resetNetwork")
def inject_network_info(req, sid, arg):
    sv.get(req.context, sid, "os_compute_api:os-admin-actions:inject_network_info")
    return accepted()


# ---------------------------------------------------------------------------- console
@action("os-getConsoleOutput")
def console_output(req, sid, arg):
    arg = _args(arg, "os-getConsoleOutput")
    length = arg.get("length")
    if length is not None:
        if isinstance(length, str) and length.lstrip("-").isdigit():
            length = int(length)
        if not isinstance(length, int) or isinstance(length, bool) or length < -1:
            raise _bad("length", f"{length}. {length!r} is not of type 'integer'")
        if length == -1:
            length = None
    return {"output": actions.console_output(req.context, sid, length)}


_LEGACY_CONSOLES = {"os-getVNCConsole": ("vnc", ("novnc", "xvpvnc")),
                    "os-getSPICEConsole": ("spice", ("spice-html5",)),
                    "os-getRDPConsole": ("rdp", ("rdp-html5",)),
                    "os-getSerialConsole": ("serial", ("serial",))}


def _legacy_console(name):
    protocol, types = _LEGACY_CONSOLES[name]

    def handler(req, sid, arg):
        kind = arg.get("type") if isinstance(arg, dict) else None
        if kind not in types:
            raise _bad("type", f"{kind}. {kind!r} is not one of {list(types)}")
        url = actions.remote_console(req.context, sid, protocol, kind)
        return {"console": {"type": kind, "url": url}}
    return handler


for _name in _LEGACY_CONSOLES:
    action(_name)(_legacy_console(_name))

_PROTOCOLS = {"vnc": ("novnc", "xvpvnc"), "spice": ("spice-html5",), "rdp": ("rdp-html5",),
              "serial": ("serial",), "mks": ("webmks",)}


@api.route("/v2.1/servers/{server_id}/remote-consoles", "POST")
def remote_consoles(req):
    if not at_least(req, "2.6"):
        from pocketstack.common.errors import NotFound

        raise NotFound("The resource could not be found.")
    body = req.json_object("remote_console")
    protocol, kind = body.get("protocol"), body.get("type")
    if protocol not in _PROTOCOLS or (protocol == "mks" and not at_least(req, "2.8")):
        raise _bad("protocol", f"{protocol}. {protocol!r} is not one of {sorted(_PROTOCOLS)}")
    if kind not in _PROTOCOLS[protocol]:
        raise _bad("type", f"{kind}. {kind!r} is not one of {list(_PROTOCOLS[protocol])}")
    url = actions.remote_console(req.context, req.path_params["server_id"], protocol, kind)
    return {"remote_console": {"protocol": protocol, "type": kind, "url": url}}


# ---------------------------------------------------------------------------- images
@action("createImage")
def create_image(req, sid, arg):
    if not isinstance(arg, dict) or "name" not in arg:
        raise BadRequest("Invalid input for field/attribute createImage. 'name' is a required property")
    name = _str(arg["name"], "name", min_len=1)
    meta = _metadata(arg.get("metadata", {}), "metadata")
    image_id = actions.create_image(req.context, sid, req.request_id, name, meta)
    location = f"{base(req)}/v2.1/images/{image_id}"
    if at_least(req, "2.45"):
        return 202, {"image_id": image_id}
    return Response(status_code=202, headers={"Location": location})


@action("createBackup")
def create_backup(req, sid, arg):
    if not isinstance(arg, dict):
        raise _bad("createBackup", f"{arg!r}")
    for key in ("name", "backup_type", "rotation"):
        if key not in arg:
            raise BadRequest(f"Invalid input for field/attribute createBackup. '{key}' is a required property")
    try:
        rotation = int(arg["rotation"])
    except (TypeError, ValueError):
        raise _bad("rotation", f"{arg['rotation']}") from None
    if rotation < 0:
        raise _bad("rotation", f"{rotation}")
    name = _str(arg["name"], "name", min_len=1)
    image_id = actions.create_image(req.context, sid, req.request_id, name,
                                    {"backup_type": str(arg["backup_type"])}, backup=True, rotation=rotation)
    if at_least(req, "2.45"):
        return 202, {"image_id": image_id}
    location = f"{base(req)}/v2.1/images/{image_id}"
    return Response(status_code=202, headers={"Location": location})


# ---------------------------------------------------------------------------- resize / rebuild
@action("resize")
def resize(req, sid, arg):
    if not isinstance(arg, dict) or "flavorRef" not in arg:
        raise BadRequest("Invalid input for field/attribute resize. 'flavorRef' is a required property")
    ref = arg["flavorRef"]
    if not isinstance(ref, (str, int)) or isinstance(ref, bool) or str(ref) == "":
        raise _bad("flavorRef", f"{ref!r}")
    disk_config = arg.get("OS-DCF:diskConfig")
    if disk_config is not None and disk_config not in ("AUTO", "MANUAL"):
        raise _bad("OS-DCF:diskConfig", f"{disk_config}. {disk_config!r} is not one of ['AUTO', 'MANUAL']")
    actions.resize(req.context, sid, req.request_id, str(ref), disk_config=disk_config)
    return accepted()


@action("confirmResize")
def confirm_resize(req, sid, arg):
    actions.confirm_resize(req.context, sid, req.request_id)
    return Response(status_code=204)


@action("revertResize")
def revert_resize(req, sid, arg):
    actions.revert_resize(req.context, sid, req.request_id)
    return accepted()


@action("rebuild")
def rebuild(req, sid, arg):
    if not isinstance(arg, dict) or "imageRef" not in arg:
        raise BadRequest("Invalid input for field/attribute rebuild. 'imageRef' is a required property")
    image_ref = _str(arg["imageRef"], "imageRef", min_len=1)
    values = {}
    if "name" in arg:
        values["display_name"] = _str(arg["name"], "name", min_len=1)
    if "metadata" in arg:
        values["meta"] = _metadata(arg["metadata"])
    for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
        if key in arg:
            values[attr] = arg[key] or None
    if "OS-DCF:diskConfig" in arg:
        values["disk_config"] = arg["OS-DCF:diskConfig"]
    if "description" in arg:
        if not at_least(req, "2.19"):
            raise BadRequest("Invalid input for field/attribute rebuild. Additional properties are not allowed "
                             "('description' was unexpected)")
        values["description"] = _str(arg["description"], "description", allow_none=True)
    if "key_name" in arg:
        if not at_least(req, "2.54"):
            raise BadRequest("Invalid input for field/attribute rebuild. Additional properties are not allowed "
                             "('key_name' was unexpected)")
        values["key_name"] = _str(arg["key_name"], "key_name", allow_none=True)
    if "user_data" in arg:
        if not at_least(req, "2.57"):
            raise BadRequest("Invalid input for field/attribute rebuild. Additional properties are not allowed "
                             "('user_data' was unexpected)")
        values["user_data"] = arg["user_data"]
    if "personality" in arg and at_least(req, "2.57"):
        raise BadRequest("Invalid input for field/attribute rebuild. Additional properties are not allowed "
                         "('personality' was unexpected)")
    if "hostname" in arg:
        if not at_least(req, "2.90"):
            raise BadRequest("Invalid input for field/attribute rebuild. Additional properties are not allowed "
                             "('hostname' was unexpected)")
        values["hostname"] = _str(arg["hostname"], "hostname", min_len=1)
    pw = _str(arg["adminPass"], "adminPass") if "adminPass" in arg else None
    pw = actions.rebuild(req.context, sid, req.request_id, image_ref, values, pw,
                         reimage_boot_volume=at_least(req, "2.93"))
    inst = sv.get(req.context, sid)
    body = render(req, inst, view="rebuild", groups=groups_of(inst) if at_least(req, "2.71") else None)
    if _enable_password():
        body["adminPass"] = pw
    return 202, {"server": body}


# ---------------------------------------------------------------------------- shelve
@action("shelve")
def shelve(req, sid, arg):
    actions.shelve(req.context, sid, req.request_id)
    return accepted()


@action("shelveOffload")
def shelve_offload(req, sid, arg):
    actions.shelve_offload(req.context, sid, req.request_id)
    return accepted()


@action("unshelve")
def unshelve(req, sid, arg):
    az, host = None, None
    if arg is not None:
        if not isinstance(arg, dict) or not at_least(req, "2.77"):
            raise _bad("unshelve", f"{arg!r}. {arg!r} is not of type 'null'")
        extra = set(arg) - {"availability_zone", "host"}
        if extra or ("host" in arg and not at_least(req, "2.91")):
            raise BadRequest("Invalid input for field/attribute unshelve. Additional properties are not allowed")
        if "availability_zone" in arg:
            az = arg["availability_zone"]
            if az is not None:
                az = _str(az, "availability_zone", min_len=1)
            elif not at_least(req, "2.91"):
                raise _bad("availability_zone", "None. None is not of type 'string'")
            else:
                az = ""
        if "host" in arg:
            host = _str(arg["host"], "host", min_len=1)
    actions.unshelve(req.context, sid, req.request_id, az, host)
    return accepted()


# ---------------------------------------------------------------------------- admin moves
@action("migrate")
def migrate(req, sid, arg):
    host = None
    if arg is not None:
        if not isinstance(arg, dict) or (arg and not at_least(req, "2.56")):
            raise _bad("migrate", f"{arg!r}. {arg!r} is not of type 'null'")
        if arg.get("host") is not None:
            host = _str(arg["host"], "host", min_len=1)
    actions.resize(req.context, sid, req.request_id, None, migrate_only=True, host=host)
    return accepted()


@action("os-migrateLive")
def migrate_live(req, sid, arg):
    if not isinstance(arg, dict) or "host" not in arg or "block_migration" not in arg:
        raise BadRequest("Invalid input for field/attribute os-migrateLive. 'block_migration' and 'host' are "
                         "required properties")
    bm = arg["block_migration"]
    if at_least(req, "2.25"):
        if bm not in ("auto", True, False, "True", "False", "true", "false"):
            raise _bad("block_migration", f"{bm}")
    host = arg.get("host")
    if host is not None:
        host = _str(host, "host", min_len=1)
    actions.live_migrate(req.context, sid, req.request_id, host)
    return accepted()


@action("evacuate")
def evacuate(req, sid, arg):
    arg = _args(arg, "evacuate")
    host = arg.get("host")
    if host is not None:
        host = _str(host, "host", min_len=1)
    if "onSharedStorage" in arg and at_least(req, "2.14"):
        raise BadRequest("Invalid input for field/attribute evacuate. Additional properties are not allowed "
                         "('onSharedStorage' was unexpected)")
    pw = _str(arg["adminPass"], "adminPass") if "adminPass" in arg else None
    pw = actions.evacuate(req.context, sid, req.request_id, host, pw)
    if not at_least(req, "2.14") and _enable_password():
        return {"adminPass": pw}
    return Response(status_code=200)


@action("forceDelete")
def force_delete(req, sid, arg):
    sv.delete(req.context, sid, req.request_id, force=True)
    return accepted()


@action("restore")
def restore(req, sid, arg):
    inst = sv.get(req.context, sid, "os_compute_api:os-deferred-delete:restore")
    raise sv.state_conflict(inst, "restore")


# ---------------------------------------------------------------------------- security groups
def _sg(remove: bool):
    def handler(req, sid, arg):
        if not isinstance(arg, dict) or not isinstance(arg.get("name"), str) or not arg["name"].strip():
            raise BadRequest("Security group name cannot be empty")
        actions.add_security_group(req.context, sid, req.request_id, arg["name"].strip(), remove=remove)
        return accepted()
    return handler


action("addSecurityGroup")(_sg(False))
action("removeSecurityGroup")(_sg(True))


# ---------------------------------------------------------------------------- floating IPs (≤2.43)
def _floating_ip(req, sid, arg, add: bool):
    from pocketstack.common.errors import ApiError, Conflict, NotFound
    from pocketstack.network import floating_ips

    if not isinstance(arg, dict) or not isinstance(arg.get("address"), str):
        raise BadRequest("Invalid input for field/attribute address. 'address' is a required property")
    address = arg["address"]
    inst = sv.get(req.context, sid, "os_compute_api:os-floating-ips:" + ("add" if add else "remove"))
    fip = next((f for f in floating_ips.list_floating_ips(req.context)
                if f["floating_ip_address"] == address), None)
    if fip is None:
        raise NotFound("floating IP not found")
    if add:
        vifs = sv.nw_info(inst.uuid)
        fixed = arg.get("fixed_address")
        port = None
        for vif in vifs:
            addrs = [ip["address"] for s in vif.get("network", {}).get("subnets", []) for ip in s.get("ips", [])]
            if (fixed is None and addrs) or fixed in addrs:
                port, fixed = vif["id"], fixed or next((a for a in addrs if ":" not in a), addrs[0])
                break
        if port is None:
            raise BadRequest("No nw_info cache associated with instance" if not vifs else
                             f"Specified fixed address '{fixed}' not assigned to instance")
        changes = {"port_id": port, "fixed_ip_address": fixed}
    else:
        ports = {v["id"] for v in sv.nw_info(inst.uuid)}
        if fip.get("port_id") not in ports:
            raise Conflict(f"Floating IP {address} is not associated with instance {inst.uuid}.")
        changes = {"port_id": None}
    try:
        floating_ips.update_floating_ip(req.context, fip["id"], changes)
    except ApiError as err:
        # Nova answers the network's refusals (already has a floating IP, ...) as 400s
        raise (BadRequest(err.message) if err.code in (400, 409) else err) from None
    return accepted()


@action("addFloatingIp")
def add_floating_ip(req, sid, arg):
    if at_least(req, "2.44"):
        raise BadRequest("There is no such action: addFloatingIp")
    return _floating_ip(req, sid, arg, True)


@action("removeFloatingIp")
def remove_floating_ip(req, sid, arg):
    if at_least(req, "2.44"):
        raise BadRequest("There is no such action: removeFloatingIp")
    return _floating_ip(req, sid, arg, False)
