"""`/servers`: create, list (+detail), show, update, delete; the server body per microversion.

HTTP <-> JSON only: request bodies are checked here (Nova's 400 messages), decisions are
made in `compute.servers`. `render()` builds the server body for the negotiated
microversion: every field a microversion adds or removes follows it (2.3 extended
attributes, 2.9 locked, 2.16 host_status, 2.19 description, 2.26 tags, 2.47 embedded
flavor, 2.63 trusted certificates, 2.71 server groups, 2.73 locked reason, 2.75
uniform update/rebuild bodies, 2.90 hostname, 2.96 pinned availability zone).
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re

from sqlalchemy import select

from pocketstack.common.errors import BadRequest, Conflict
from pocketstack.common.pagination import next_link, parse_limit
from pocketstack.compute import servers as sv
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least, session, version
from pocketstack.compute.models import BlockDeviceMapping, Instance

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def fmt(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_usec(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not dt.timezone.utc:
        value = value.astimezone(dt.timezone.utc)
    return value.isoformat()[:-6]  # without "+00:00"


def base(req) -> str:
    """The compute endpoint's root as the client reached it (`http://host:port/compute`)."""
    raw = req.raw
    return str(raw.url.replace(path=raw.scope.get("root_path", ""), query="", fragment="")).rstrip("/")


def server_links(req, server_id: str) -> list[dict]:
    return _links(base(req), server_id)


def _links(b: str, server_id: str) -> list[dict]:
    return [{"rel": "self", "href": f"{b}/v2.1/servers/{server_id}"},
            {"rel": "bookmark", "href": f"{b}/servers/{server_id}"}]


def addresses(vifs: list[dict], extended: bool = True) -> dict:
    out: dict[str, list] = {}
    for vif in vifs:
        net = vif.get("network") or {}
        label = net.get("label") or net.get("id") or "network"
        entries = out.setdefault(label, [])
        for subnet in net.get("subnets", []):
            for ip in subnet.get("ips", []):
                for addr, kind in [(ip, "fixed")] + [(f, "floating") for f in ip.get("floating_ips", [])]:
                    entry = {"version": int(addr.get("version") or subnet.get("version") or 4),
                             "addr": addr["address"]}
                    if extended:
                        entry["OS-EXT-IPS:type"] = kind
                        entry["OS-EXT-IPS-MAC:mac_addr"] = vif.get("address")
                    entries.append(entry)
    return out


def host_id(inst: Instance) -> str:
    if not inst.host:
        return ""
    return hashlib.sha224((inst.project_id + inst.host).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


class RenderContext:
    """What rendering many servers shares, fetched once per page: faults, volumes, ports and
    addresses, security groups, host states (one query or batched call each, never one per
    server), policy answers and the endpoint's URL."""

    def __init__(self, req, insts: list[Instance]):
        ctx = req.context
        self.req = req
        self.ctx = ctx
        self.base = base(req)
        v = version(req)
        self.version = (v.major, v.minor)
        self.admin_attrs = sv.allowed(ctx, "os_compute_api:os-extended-server-attributes")
        self.show_host_status = at_least(req, "2.16") and sv.allowed(ctx, "os_compute_api:servers:show:host_status")
        self.extra_specs = sv.allowed(ctx, "os_compute_api:servers:show:flavor-extra-specs")
        uuids = [i.uuid for i in insts]
        with session() as sess:
            # a fault is only shown for ERROR and DELETED servers
            self.faults = sv.faults_for(sess, [i.uuid for i in insts if i.vm_state in (sv.ERROR, sv.DELETED)])
            self.volumes: dict[str, list] = {u: [] for u in uuids}
            if uuids:
                for b in sess.scalars(select(BlockDeviceMapping).where(
                        BlockDeviceMapping.instance_uuid.in_(uuids),
                        BlockDeviceMapping.destination_type == "volume",
                        BlockDeviceMapping.volume_id.is_not(None)).order_by(BlockDeviceMapping.id)):
                    self.volumes[b.instance_uuid].append(b)
            self.host_states = sv.host_statuses(sess, {i.host for i in insts if i.host})
        wired = [i.uuid for i in insts if i.host or i.vm_state != sv.BUILDING]
        self.vifs = sv.nw_info_many(wired)
        self.security_groups = sv.security_groups_many(insts, self.vifs)


def render(req, inst: Instance, rc: RenderContext | None = None, *, view: str = "show",
           groups: list[str] | None = None) -> dict:
    """The server body: `view` is show (GET / detail), update or rebuild (PUT / rebuild action)."""
    rc = rc or RenderContext(req, [inst])
    served = rc.version

    def at(text: str) -> bool:
        return served >= _version_tuple(text)

    full = view == "show" or at("2.75")
    status = sv.status_of(inst.vm_state, inst.task_state)
    b = rc.base
    if inst.image_ref:
        image: object = {"id": inst.image_ref, "links": [{"rel": "bookmark", "href": f"{b}/images/{inst.image_ref}"}]}
        if at("2.98"):
            image["properties"] = image_properties(inst)
    else:
        image = ""
    fl = inst.flavor or {}
    if at("2.47"):
        flavor = {"vcpus": fl.get("vcpus", 0), "ram": fl.get("memory_mb", 0), "disk": fl.get("root_gb", 0),
                  "ephemeral": fl.get("ephemeral_gb", 0), "swap": fl.get("swap", 0) or 0,
                  "original_name": fl.get("name", "")}
        if rc.extra_specs:
            flavor["extra_specs"] = dict(fl.get("extra_specs") or {})
    else:
        fid = str(fl.get("flavorid", ""))
        flavor = {"id": fid, "links": [{"rel": "bookmark", "href": f"{b}/flavors/{fid}"}]}
    vifs = rc.vifs.get(inst.uuid, [])
    body = {
        "id": inst.uuid, "name": inst.display_name, "status": status, "tenant_id": inst.project_id,
        "user_id": inst.user_id, "metadata": dict(inst.meta or {}), "hostId": host_id(inst),
        "image": image, "flavor": flavor, "created": fmt(inst.created_at),
        "updated": fmt(inst.updated_at or inst.created_at), "addresses": addresses(vifs, extended=full),
        "accessIPv4": inst.access_ip_v4 or "", "accessIPv6": inst.access_ip_v6 or "",
        "links": _links(b, inst.uuid), "OS-DCF:diskConfig": inst.disk_config or "MANUAL",
    }
    if status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
        body["progress"] = inst.progress if status != "BUILD" else 0
    fault = rc.faults.get(inst.uuid)
    if fault is not None and inst.vm_state in (sv.ERROR, sv.DELETED):
        f = {"code": fault.code, "created": fmt(fault.created_at), "message": fault.message}
        if fault.details and (rc.ctx.is_admin or fault.code != 500):
            f["details"] = fault.details
        body["fault"] = f
    if full:
        body.update({
            "key_name": inst.key_name,
            "OS-SRV-USG:launched_at": fmt_usec(inst.launched_at),
            "OS-SRV-USG:terminated_at": fmt_usec(inst.terminated_at),
            "OS-EXT-AZ:availability_zone": inst.availability_zone or "",
            "OS-EXT-STS:task_state": inst.task_state, "OS-EXT-STS:vm_state": inst.vm_state,
            "OS-EXT-STS:power_state": inst.power_state,
            "config_drive": inst.config_drive or "",
        })
        sgs = rc.security_groups.get(inst.uuid)
        if sgs:
            body["security_groups"] = sgs
        vols = []
        for v in rc.volumes.get(inst.uuid, []):
            item = {"id": v.volume_id}
            if at("2.3"):
                item["delete_on_termination"] = bool(v.delete_on_termination)
            vols.append(item)
        body["os-extended-volumes:volumes_attached"] = vols
        if rc.admin_attrs:
            body.update({"OS-EXT-SRV-ATTR:host": inst.host, "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.node,
                         "OS-EXT-SRV-ATTR:instance_name": f"instance-{inst.id:08x}"})
            if at("2.3"):
                body.update({"OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                             "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                             "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                             "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                             "OS-EXT-SRV-ATTR:root_device_name": inst.root_device_name,
                             "OS-EXT-SRV-ATTR:user_data": inst.user_data})
        elif at("2.90"):
            body["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
        if rc.show_host_status:
            body["host_status"] = rc.host_states.get(inst.host, "") if inst.host else ""
    if at("2.9"):
        body["locked"] = bool(inst.locked)
    if at("2.19"):
        body["description"] = inst.description
    if at("2.26"):
        body["tags"] = list(inst.tags or [])
    if at("2.63"):
        body["trusted_image_certificates"] = None
    if at("2.71") and view in ("show", "update", "rebuild") and groups is not None:
        body["server_groups"] = groups
    if at("2.73"):
        body["locked_reason"] = inst.locked_reason
    if at("2.96"):
        body["pinned_availability_zone"] = inst.pinned_availability_zone
    if at("2.100") and full:
        body["scheduler_hints"] = dict(inst.scheduler_hints or {})
    if view == "rebuild":
        if at("2.54") and "key_name" not in body:
            body["key_name"] = inst.key_name
        if at("2.57"):
            body["user_data"] = inst.user_data
            body.pop("OS-EXT-SRV-ATTR:user_data", None)
    return body


_PROP_KEY = re.compile(r"^[a-zA-Z0-9_:. ]{1,255}$")


def image_properties(inst: Instance) -> dict:
    """2.98: the image's properties as they were at boot (kept in system metadata)."""
    out = {}
    for key, value in (inst.system_metadata or {}).items():
        if key.startswith("image_") and _PROP_KEY.match(key[6:]) and key[6:] not in (
                "base_image_ref", "owner_specified.openstack.md5", "owner_specified.openstack.sha256",
                "owner_specified.openstack.object"):
            out[key[6:]] = None if value is None else str(value)[:255]
    return out


def groups_of(inst: Instance) -> list[str]:
    try:
        from pocketstack.compute import server_groups

        g = server_groups.group_of_instance(inst.uuid)
    except Exception:  # noqa: BLE001 - no server groups module: none
        return []
    return [g.id] if g is not None else []


# ---------------------------------------------------------------------------- create
def _bad(field: str, why: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {field}. Value: {why}")


def _str(value, field: str, *, max_len: int = 255, min_len: int = 0, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise _bad(field, f"{value!r}. {value!r} is not of type 'string'")
    if len(value) > max_len:
        raise _bad(field, f"{value}. '{value}' is too long")
    if len(value.strip()) < min_len:
        raise _bad(field, f"{value}. '{value}' is too short" if value == "" else
                   f"{value}. '{value}' does not match any of the regexes")
    return value


def _metadata(value, field: str = "metadata") -> dict:
    if not isinstance(value, dict):
        raise _bad(field, f"{value!r}. {value!r} is not of type 'object'")
    for k, v in value.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise _bad(field, f"{value!r}. Additional properties are not allowed")
        if not isinstance(v, str) or len(v) > 255:
            raise _bad(field, f"{value!r}. {v!r} is not of type 'string'")
    return value


def _count(value, field: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _bad(field, f"{value}. {value!r} is not a valid positive integer")
    return value


_HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")


def parse_networks(req, value):
    if value in ("auto", "none"):
        if not at_least(req, "2.37"):
            raise _bad("networks", f"{value}. '{value}' is not of type 'array'")
        return value
    if not isinstance(value, list):
        raise _bad("networks", f"{value!r}. {value!r} is not of type 'array'")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad("networks", f"{item!r}. {item!r} is not of type 'object'")
        unknown = set(item) - {"uuid", "port", "fixed_ip", "tag"}
        if unknown:
            raise _bad("networks", f"{item!r}. Additional properties are not allowed")
        entry = {}
        if "uuid" in item:
            entry["uuid"] = _str(item["uuid"], "uuid")
            if not _UUID.match(entry["uuid"]):
                raise BadRequest(f"Bad networks format: network uuid is not in proper format ({item['uuid']})")
        if item.get("port") is not None:
            entry["port"] = _str(item["port"], "port")
            if not _UUID.match(entry["port"]):
                raise _bad("port", f"{item['port']}. '{item['port']}' is not a 'uuid'")
        if "fixed_ip" in item:
            import ipaddress

            try:
                ipaddress.ip_address(item["fixed_ip"])
            except (ValueError, TypeError):
                raise BadRequest(f"Invalid fixed IP address ({item['fixed_ip']})") from None
            entry["fixed_ip"] = item["fixed_ip"]
        if "tag" in item:
            if not at_least(req, "2.32"):
                raise _bad("networks", f"{item!r}. Additional properties are not allowed")
            entry["tag"] = _str(item["tag"], "tag", max_len=60)
        if "uuid" not in entry and "port" not in entry:
            raise BadRequest("Bad networks format")
        out.append(entry)
    if not out and at_least(req, "2.37"):
        raise _bad("networks", "[]. [] is too short")
    return out


def parse_create(req) -> sv.BootRequest:
    body = req.json_object()
    server = body.get("server")
    if not isinstance(server, dict):
        raise BadRequest("Invalid input for field/attribute server. Value: None. None is not of type 'object'"
                         if server is None else "Invalid input for field/attribute server.")
    allowed = {"name", "imageRef", "flavorRef", "adminPass", "metadata", "networks", "personality",
               "key_name", "security_groups", "user_data", "availability_zone", "block_device_mapping",
               "block_device_mapping_v2", "config_drive", "min_count", "max_count", "return_reservation_id",
               "accessIPv4", "accessIPv6", "OS-DCF:diskConfig", "description", "tags", "trusted_image_certificates",
               "host", "hypervisor_hostname", "hostname"}
    extra = set(server) - allowed
    if extra:
        raise BadRequest(f"Invalid input for field/attribute server. Value: {server}. Additional properties are "
                         f"not allowed ({', '.join(repr(e) for e in sorted(extra))} were unexpected)")
    if "name" not in server:
        raise BadRequest("Invalid input for field/attribute server. Value: {}. 'name' is a required property"
                         .format(server))
    name = _str(server["name"], "name", min_len=1)
    if name != name.strip() and not at_least(req, "2.1"):
        raise _bad("name", name)
    if "flavorRef" not in server:
        raise BadRequest("Invalid input for field/attribute server. 'flavorRef' is a required property")
    flavor_ref = server["flavorRef"]
    if not isinstance(flavor_ref, (str, int)) or isinstance(flavor_ref, bool) or str(flavor_ref) == "":
        raise _bad("flavorRef", f"{flavor_ref!r}. {flavor_ref!r} is not of type 'string', 'integer'")
    r = sv.BootRequest(name=name, flavor_ref=str(flavor_ref))
    image_ref = server.get("imageRef")
    if image_ref not in (None, ""):
        image_ref = _str(image_ref, "imageRef")
        image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
        if not _UUID.match(image_id):
            raise _bad("imageRef", f"{image_ref}. '{image_ref}' is not a 'uuid'")
        r.image_ref = image_id
    if "adminPass" in server:
        r.admin_pass = _str(server["adminPass"], "adminPass")
    if "metadata" in server:
        r.metadata = _metadata(server["metadata"])
    if "key_name" in server:
        r.key_name = _str(server["key_name"], "key_name", min_len=1, allow_none=True)
    if "security_groups" in server:
        sgs = server["security_groups"]
        if not isinstance(sgs, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                and s["name"] for s in sgs):
            raise _bad("security_groups", f"{sgs!r}")
        r.security_groups = [s["name"] for s in sgs] or ["default"]
    if "user_data" in server and server["user_data"] is not None:
        ud = server["user_data"]
        if not isinstance(ud, str) or len(ud) > 65535:
            raise _bad("user_data", "user_data must be a base64 string of at most 65535 characters")
        r.user_data = ud
    if "availability_zone" in server and server["availability_zone"] is not None:
        r.availability_zone = _str(server["availability_zone"], "availability_zone", min_len=1) or None
    if "personality" in server:
        if at_least(req, "2.57"):
            raise BadRequest("Invalid input for field/attribute server. Additional properties are not allowed "
                             "('personality' was unexpected)")
        pers = server["personality"]
        if not isinstance(pers, list) or not all(isinstance(p, dict) and "path" in p and "contents" in p
                                                 for p in pers):
            raise _bad("personality", f"{pers!r}")
        from pocketstack.compute import quotas

        limit = quotas.project_limits(req.context.project_id or "").get("injected_files", 5)
        if 0 <= limit < len(pers):
            raise _over("Personality file limit exceeded")
    bdms = server.get("block_device_mapping_v2")
    if bdms is not None:
        if not isinstance(bdms, list) or not all(isinstance(b, dict) for b in bdms):
            raise _bad("block_device_mapping_v2", f"{bdms!r}")
        for b in bdms:
            st = b.get("source_type")
            if st not in ("image", "volume", "snapshot", "blank"):
                raise _bad("source_type", f"{st}. {st!r} is not one of ['volume', 'image', 'snapshot', 'blank']")
            if b.get("destination_type") not in (None, "local", "volume"):
                raise _bad("destination_type", f"{b.get('destination_type')}")
            if "boot_index" in b and b["boot_index"] is not None:
                try:
                    b["boot_index"] = int(b["boot_index"])
                except (TypeError, ValueError):
                    raise _bad("boot_index", f"{b['boot_index']}") from None
        r.bdms = bdms
    if server.get("block_device_mapping"):
        legacy = server["block_device_mapping"]
        if not isinstance(legacy, list):
            raise _bad("block_device_mapping", f"{legacy!r}")
        r.bdms = r.bdms + [{"source_type": "volume", "destination_type": "volume", "uuid": b.get("volume_id"),
                            "device_name": b.get("device_name"), "boot_index": None} for b in legacy
                           if isinstance(b, dict)]
    if "config_drive" in server:
        cd = server["config_drive"]
        if cd in (True, "True", "true", "1", 1):
            r.config_drive = True
        elif cd in (False, "False", "false", "0", 0, "", None):
            r.config_drive = False
        else:
            raise _bad("config_drive", f"{cd}")
    r.min_count = _count(server.get("min_count", 1), "min_count")
    r.max_count = _count(server.get("max_count", r.min_count), "max_count")
    if r.min_count > r.max_count:
        raise BadRequest("min_count must be <= max_count")
    for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
        if key in server and server[key] not in (None, ""):
            import ipaddress

            try:
                ip = ipaddress.ip_address(server[key])
            except (ValueError, TypeError):
                raise _bad(key, f"{server[key]}. '{server[key]}' is not a 'ipv{key[-1]}'") from None
            if ip.version != int(key[-1]):
                raise _bad(key, f"{server[key]}. '{server[key]}' is not a 'ipv{key[-1]}'")
            setattr(r, attr, str(ip))
    if "OS-DCF:diskConfig" in server:
        if server["OS-DCF:diskConfig"] not in ("AUTO", "MANUAL"):
            raise _bad("OS-DCF:diskConfig", f"{server['OS-DCF:diskConfig']}")
        r.disk_config = server["OS-DCF:diskConfig"]
    if "description" in server:
        if not at_least(req, "2.19"):
            raise BadRequest("Invalid input for field/attribute server. Additional properties are not allowed "
                             "('description' was unexpected)")
        r.description = _str(server["description"], "description", allow_none=True)
    if "tags" in server:
        if not at_least(req, "2.52"):
            raise BadRequest("Invalid input for field/attribute server. Additional properties are not allowed "
                             "('tags' was unexpected)")
        tags = server["tags"]
        if not isinstance(tags, list) or len(tags) > sv.MAX_TAGS:
            raise _bad("tags", f"{tags!r}")
        r.tags = [sv.check_tag(t) for t in tags]
    if "trusted_image_certificates" in server and server["trusted_image_certificates"] is not None:
        raise BadRequest("Image certificate validation is not supported by this cloud's virt driver.")
    for key in ("host", "hypervisor_hostname"):
        if key in server:
            if not at_least(req, "2.74"):
                raise BadRequest(f"Invalid input for field/attribute server. Additional properties are not "
                                 f"allowed ('{key}' was unexpected)")
            setattr(r, key, _str(server[key], key, min_len=1))
    if "hostname" in server:
        if not at_least(req, "2.90"):
            raise BadRequest("Invalid input for field/attribute server. Additional properties are not allowed "
                             "('hostname' was unexpected)")
        hn = _str(server["hostname"], "hostname", min_len=1)
        if not _HOSTNAME_RE.match(hn) or (not at_least(req, "2.94") and "." in hn):
            raise _bad("hostname", f"{hn}. '{hn}' does not match the hostname pattern")
        if r.max_count > 1 and not at_least(req, "2.94"):
            raise BadRequest("Unable to set hostname for multiple instances before microversion 2.94.")
        r.hostname = hn
    networks = server.get("networks")
    if "networks" in server:
        r.networks = parse_networks(req, networks)
    elif at_least(req, "2.37"):
        raise BadRequest("Invalid input for field/attribute server. 'networks' is a required property")
    hints = body.get("os:scheduler_hints", body.get("OS-SCH-HNT:scheduler_hints"))
    if hints is not None:
        if not isinstance(hints, dict):
            raise _bad("os:scheduler_hints", f"{hints!r}")
        if "group" in hints and (not isinstance(hints["group"], str) or not _UUID.match(hints["group"])):
            raise _bad("group", f"{hints['group']}. '{hints['group']}' is not a 'uuid'")
        r.hints = hints
    return r


def _over(message: str):
    from pocketstack.common.errors import Forbidden

    return Forbidden(message)


@api.route("/v2.1/servers", "POST")
def create_server(req):
    boot = parse_create(req)
    return_rid = bool(req.json_object()["server"].get("return_reservation_id"))
    ctx = req.context
    insts, admin_pass = sv.create(ctx, boot, req.request_id)
    if return_rid and boot.max_count >= 1:
        return 202, {"reservation_id": insts[0].reservation_id}
    inst = insts[0]
    body = {"id": inst.uuid, "links": server_links(req, inst.uuid), "OS-DCF:diskConfig": inst.disk_config,
            "security_groups": [{"name": n} for n in inst.security_groups or ["default"]]}
    if boot.networks == "none" or not boot.security_groups:
        body.pop("security_groups", None)
    if _enable_password():
        body["adminPass"] = admin_pass
    return 202, {"server": body}, {"Location": server_links(req, inst.uuid)[0]["href"]}


def _enable_password() -> bool:
    from pocketstack.common.runtime import current

    raw = current().config.get("api", "enable_instance_password", "true").strip().lower()
    return raw in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------- list
_ADMIN_ONLY_FILTERS = {"host", "node", "deleted", "project_id", "tenant_id", "user_id", "reservation_id",
                       "vm_state", "task_state", "power_state", "launched_at", "terminated_at", "uuid",
                       "key_name", "created_at", "availability_zone", "config_drive", "progress"}


def _parse_time(value: str, name: str) -> dt.datetime:
    raw = value.strip().replace(" ", "+")
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}. "
                         f"'{value}' is not a 'date-time'") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def _bool_param(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "t", "on", "y"):
        return True
    if v in ("false", "0", "no", "f", "off", "n"):
        return False
    raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}.")


def _split(values: list[str]) -> list[str]:
    return [t for v in values for t in v.split(",") if t]


# Nova's index query schema: from 2.75 anything else is a 400
_LIST_PARAMS = ("user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
                "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host", "node",
                "flavor", "reservation_id", "launched_at", "terminated_at", "availability_zone", "name",
                "display_name", "description", "display_description", "locked_by", "uuid", "root_device_name",
                "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "sort_key",
                "sort_dir", "all_tenants", "soft_deleted", "deleted", "status", "changes-since", "ip", "ip6",
                "created_at", "block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
                "security_groups", "pci_devices", "limit", "marker", "tags", "tags-any", "not-tags",
                "not-tags-any", "changes-before", "locked")


def list_query(req) -> sv.ListQuery:
    ctx = req.context
    qp = req.query
    p.strict_query(req, _LIST_PARAMS, "2.75")
    q = sv.ListQuery()
    is_admin = sv.allowed(ctx, "os_compute_api:servers:allow_all_filters")
    if "all_tenants" in qp:
        flag = qp.get("all_tenants", "")
        on = True if flag == "" else _bool_param(flag, "all_tenants")
        if on:
            sv.enforce(ctx, "os_compute_api:servers:detail:get_all_tenants")
            q.all_tenants = True
    if is_admin:
        pid = qp.get("project_id") or qp.get("tenant_id")
        if pid and q.all_tenants:  # without all_tenants Nova ignores a project filter
            q.project_id = pid
            q.all_tenants = True
        q.host = qp.get("host")
        q.node = qp.get("node")
        q.user_id = qp.get("user_id")
        q.reservation_id = qp.get("reservation_id")
        q.key_name = qp.get("key_name")
        q.uuid = qp.get("uuid")
        q.availability_zone = qp.get("availability_zone")
        if "deleted" in qp:
            q.deleted = _bool_param(qp["deleted"], "deleted")
        q.vm_state = qp.getlist("vm_state")
        q.task_state = qp.getlist("task_state")
        try:
            q.power_state = [int(p) for p in qp.getlist("power_state")]
        except ValueError:
            raise BadRequest("Invalid input for query parameters power_state.") from None
    elif qp.get("reservation_id"):
        q.reservation_id = qp.get("reservation_id")
    q.name = qp.get("name") or qp.get("display_name")
    q.status = qp.getlist("status")
    q.strict_status = at_least(req, "2.38")
    q.image = qp.get("image")
    q.flavor = qp.get("flavor")
    q.ip = qp.get("ip")
    q.ip6 = qp.get("ip6")
    if at_least(req, "2.83") or is_admin:
        q.description = qp.get("description")
        q.hostname = qp.get("hostname") if at_least(req, "2.90") or is_admin else None
    elif at_least(req, "2.19") and is_admin:
        q.description = qp.get("description")
    if "changes-since" in qp:
        q.changes_since = _parse_time(qp["changes-since"], "changes-since")
    if "changes-before" in qp and at_least(req, "2.66"):
        q.changes_before = _parse_time(qp["changes-before"], "changes-before")
    if q.changes_since and q.changes_before and q.changes_since > q.changes_before:
        raise BadRequest("The value of changes-since must be less than or equal to changes-before.")
    if at_least(req, "2.26"):
        q.tags = _split(qp.getlist("tags"))
        q.tags_any = _split(qp.getlist("tags-any"))
        q.not_tags = _split(qp.getlist("not-tags"))
        q.not_tags_any = _split(qp.getlist("not-tags-any"))
    if at_least(req, "2.73") and "locked" in qp:
        q.locked = _bool_param(qp["locked"], "locked")
    keys, dirs = qp.getlist("sort_key"), qp.getlist("sort_dir")
    if keys or dirs:
        sort = []
        for i, key in enumerate(keys or ["created_at"]):
            if key not in sv.SORT_KEYS:
                raise BadRequest(f"Invalid input for query parameters sort_key. Value: {key}.")
            if not is_admin and key in ("host", "node"):
                raise _forbidden(f"Only administrators can sort servers by {key}")
            d = dirs[i] if i < len(dirs) else (dirs[-1] if dirs else "desc")
            if d not in ("asc", "desc"):
                raise BadRequest(f"Invalid input for query parameters sort_dir. Value: {d}.")
            sort.append((key, d))
        q.sort = sort
    return q


def _forbidden(message: str):
    from pocketstack.common.errors import Forbidden

    return Forbidden(message)


def _page(req, *, columns: tuple = (), skip: tuple = ()) -> tuple[list[Instance], list[dict] | None]:
    """The page `limit` / `marker` ask for (SQL does the paging) and its `next` link."""
    from pocketstack.common.runtime import current

    max_limit = int(current().config.get("api", "max_limit", "1000") or 1000)
    raw = req.query.get("limit")
    try:
        limit = parse_limit(raw, max_limit)
    except BadRequest:
        raise BadRequest(f"Invalid input for query parameters limit. Value: {raw}. "
                         f"'{raw}' does not match '^-?[0-9]+$'") from None
    q = list_query(req)
    effective = limit if limit is not None else max_limit
    page, more = sv.list_page(req.context, q, effective, req.query.get("marker"), columns=columns, skip=skip)
    links = None
    if more and page:
        path = "/v2.1/servers/detail" if req.raw.url.path.endswith("/detail") else "/v2.1/servers"
        links = [{"rel": "next", "href": next_link(base(req) + path, list(req.query.multi_items()),
                                                   page[-1].uuid)}]
    return page, links


@api.route("/v2.1/servers", "GET")
def list_servers(req):
    ctx = req.context
    sv.enforce(ctx, "os_compute_api:servers:index")
    rows, links = _page(req, columns=("display_name",))
    b = base(req)
    body = {"servers": [{"id": r.uuid, "links": _links(b, r.uuid), "name": r.display_name} for r in rows]}
    if links:
        body["servers_links"] = links
    return body


@api.route("/v2.1/servers/detail", "GET")
def list_servers_detail(req):
    ctx = req.context
    sv.enforce(ctx, "os_compute_api:servers:detail")
    # JSON columns this microversion does not show are not even decoded
    skip = tuple(col for col, since in (("tags", "2.26"), ("system_metadata", "2.98"), ("scheduler_hints", "2.100"))
                 if not at_least(req, since))
    rows, links = _page(req, skip=skip)
    rc = RenderContext(req, rows)
    body = {"servers": [render(req, r, rc, view="show") for r in rows]}
    if links:
        body["servers_links"] = links
    return body


# ---------------------------------------------------------------------------- show / update / delete
@api.route("/v2.1/servers/{server_id}", "GET")
def show_server(req):
    p.strict_query(req, (), "2.102")
    inst = sv.get(req.context, req.path_params["server_id"])
    return {"server": render(req, inst, groups=groups_of(inst) if at_least(req, "2.71") else None)}


@api.route("/v2.1/servers/{server_id}", "PUT")
def update_server(req):
    body = req.json_object()
    server = body.get("server")
    if not isinstance(server, dict):
        raise BadRequest("Invalid input for field/attribute server. Value: None. None is not of type 'object'")
    values = {}
    allowed = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig", "description", "hostname"}
    if at_least(req, "2.104"):
        allowed.add("pinned_availability_zone")
    extra = set(server) - allowed
    if extra:
        raise BadRequest(f"Invalid input for field/attribute server. Additional properties are not allowed "
                         f"({', '.join(repr(e) for e in sorted(extra))} were unexpected)")
    if "name" in server:
        values["display_name"] = _str(server["name"], "name", min_len=1)
    for key, attr in (("accessIPv4", "access_ip_v4"), ("accessIPv6", "access_ip_v6")):
        if key in server:
            import ipaddress

            v = server[key]
            if v in (None, ""):
                values[attr] = None
                continue
            try:
                ip = ipaddress.ip_address(v)
            except (ValueError, TypeError):
                raise _bad(key, f"{v}. '{v}' is not a 'ipv{key[-1]}'") from None
            if ip.version != int(key[-1]):
                raise _bad(key, f"{v}. '{v}' is not a 'ipv{key[-1]}'")
            values[attr] = str(ip)
    if "OS-DCF:diskConfig" in server:
        if server["OS-DCF:diskConfig"] not in ("AUTO", "MANUAL"):
            raise _bad("OS-DCF:diskConfig", f"{server['OS-DCF:diskConfig']}")
        values["disk_config"] = server["OS-DCF:diskConfig"]
    if "description" in server:
        if not at_least(req, "2.19"):
            raise BadRequest("Invalid input for field/attribute server. Additional properties are not allowed "
                             "('description' was unexpected)")
        values["description"] = _str(server["description"], "description", allow_none=True)
    if "hostname" in server:
        if not at_least(req, "2.90"):
            raise BadRequest("Invalid input for field/attribute server. Additional properties are not allowed "
                             "('hostname' was unexpected)")
        hn = _str(server["hostname"], "hostname", min_len=1)
        if not _HOSTNAME_RE.match(hn) or (not at_least(req, "2.94") and "." in hn):
            raise _bad("hostname", f"{hn}. '{hn}' does not match the hostname pattern")
        values["hostname"] = hn
    if "pinned_availability_zone" in server:
        values["pinned_availability_zone"] = _pin(req, server["pinned_availability_zone"])
    inst = sv.update_instance(req.context, req.path_params["server_id"], values)
    return {"server": render(req, inst, view="update",
                             groups=groups_of(inst) if at_least(req, "2.71") else None)}


def _pin(req, az):
    """2.104: unpin (null) or re-pin a server to the zone it is in now; Nova's 409s otherwise."""
    if az is not None:
        az = _str(az, "pinned_availability_zone", min_len=1)
        if az != az.strip():
            raise _bad("pinned_availability_zone", f"{az}. '{az}' does not match the name pattern")
    inst = sv.get(req.context, req.path_params["server_id"], "os_compute_api:servers:update")
    pinned = inst.pinned_availability_zone
    if az is None or az == pinned:
        return az
    if pinned is not None:
        raise Conflict("Cannot change pinned availability zone directly. Unpin first by setting "
                       "pinned_availability_zone to null.")
    current = inst.availability_zone or ""
    if az != current:
        raise Conflict(f"Server can only be pinned to its current availability zone '{current}', "
                       f"but '{az}' was requested.")
    return az


@api.route("/v2.1/servers/{server_id}", "DELETE")
def delete_server(req):
    sv.delete(req.context, req.path_params["server_id"], req.request_id)
    return 204, None
