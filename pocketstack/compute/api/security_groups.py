"""The legacy security-group proxy: os-security-groups and os-security-group-rules (up to
microversion 2.35; 404 from 2.36 as upstream), and GET /servers/{id}/os-security-groups
(every microversion).

Everything goes through the network service's Python interface
(`pocketstack.network.security_groups`), never its tables. Nova's view of a group only
shows ingress rules; a rule is `{ip_protocol, from_port, to_port, ip_range | group}`,
TCP/UDP without ports meaning 1-65535 and other protocols -1. Network errors keep their
status but are told in Nova's words where Nova rewords them.
"""
from __future__ import annotations

import ipaddress

from pocketstack.common.errors import ApiError, BadRequest, Forbidden, NotFound
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-security-groups:"
LAST = "2.35"


def _net():
    from pocketstack.network import security_groups as sg

    return sg


def _proxy_gone(req) -> None:
    if at_least(req, "2.36"):
        raise NotFound("The resource could not be found.")


def _sg_uuid(value: str) -> str:
    if not p.is_uuid(value):
        raise BadRequest("Security group id should be uuid")
    return value


def _call(fn, *args, **kwargs):
    """Run a network call, turning its errors into what Nova reports."""
    try:
        return fn(*args, **kwargs)
    except ApiError as err:
        etype = err.extra.get("type") or getattr(err, "type", "") or ""
        if err.code == 404:
            raise NotFound(err.message) from None
        if err.code == 409 and etype in ("OverQuota",):
            raise Forbidden(err.message) from None
        if err.code == 409 and etype in ("SecurityGroupInUse", "SecurityGroupCannotRemoveDefault",
                                         "SecurityGroupRuleExists", "SecurityGroupDefaultAlreadyExists",
                                         "SecurityGroupCannotUpdateDefault"):
            raise BadRequest(err.message) from None
        raise


# ---------------------------------------------------------------------------- views
def _rule_view(rule: dict, groups_by_id: dict) -> dict | None:
    protocol = rule.get("protocol")
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    if protocol and low is None and high is None:
        low, high = (1, 65535) if protocol.upper() in ("TCP", "UDP") else (-1, -1)
    out = {"id": rule["id"], "parent_group_id": rule["security_group_id"], "ip_protocol": protocol,
           "from_port": low, "to_port": high, "group": {}, "ip_range": {}}
    remote = rule.get("remote_group_id")
    if remote:
        source = groups_by_id.get(remote)
        if source is None:
            try:
                source = _net().get_security_group(None, remote)
            except ApiError:
                return None
            groups_by_id[remote] = source
        out["group"] = {"name": source.get("name"), "tenant_id": source.get("project_id")}
    else:
        out["ip_range"] = {"cidr": rule.get("remote_ip_prefix") or "0.0.0.0/0"}
    return out


def _group_view(group: dict, groups_by_id: dict | None = None) -> dict:
    known = groups_by_id if groups_by_id is not None else {group["id"]: group}
    rules = [_rule_view(r, known) for r in group.get("security_group_rules", []) if r["direction"] == "ingress"]
    return {"id": group["id"], "description": group.get("description", ""), "name": group["name"],
            "tenant_id": group["project_id"], "rules": [r for r in rules if r is not None]}


def _sorted(groups: list[dict]) -> list[dict]:
    by_id = {g["id"]: g for g in groups}
    return sorted((_group_view(g, by_id) for g in groups), key=lambda g: (g["tenant_id"], g["name"]))


def _name_and_description(req) -> tuple[str, str]:
    body = p.body(req, "security_group", None, ("name", "description"))
    out = []
    for key in ("name", "description"):
        value = body[key]
        if not isinstance(value, str):
            raise p.invalid(key, value, f"{value!r} is not of type 'string'")
        if len(value) > 255:
            raise p.invalid(key, value, f"'{value[:20]}...' is too long")
        out.append(value)
    return out[0], out[1]


# ---------------------------------------------------------------------------- groups
@api.route("/v2.1/os-security-groups", "GET")
def list_groups(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "get")
    all_tenants = ctx.is_admin and "all_tenants" in req.query
    groups = _call(_net().list_security_groups, ctx, None if all_tenants else ctx.project_id)
    views = _sorted(groups)
    offset = req.query.get("offset")
    if offset is not None:
        if not offset.isdigit():
            raise p.invalid("offset", offset, f"'{offset}' does not match '^[0-9]*$'")
        views = views[int(offset):]
    limit = p.query_limit(req)
    return {"security_groups": views[:limit] if limit is not None else views}


@api.route("/v2.1/os-security-groups", "POST")
def create_group(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "create")
    name, description = _name_and_description(req)
    group = _call(_net().create_security_group, ctx, ctx.project_id, name, description)
    return {"security_group": _group_view(group)}


@api.route("/v2.1/os-security-groups/{group_id}", "GET")
def show_group(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "show")
    gid = _sg_uuid(req.path_params["group_id"])
    return {"security_group": _group_view(_call(_net().get_security_group, ctx, gid))}


@api.route("/v2.1/os-security-groups/{group_id}", "PUT")
def update_group(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "update")
    gid = _sg_uuid(req.path_params["group_id"])
    _call(_net().get_security_group, ctx, gid)
    name, description = _name_and_description(req)
    group = _call(_net().update_security_group, ctx, gid, name=name, description=description)
    return {"security_group": _group_view(group)}


@api.route("/v2.1/os-security-groups/{group_id}", "DELETE")
def delete_group(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "delete")
    gid = _sg_uuid(req.path_params["group_id"])
    _call(_net().get_security_group, ctx, gid)
    _call(_net().delete_security_group, ctx, gid)
    return 202, None


# ---------------------------------------------------------------------------- rules
def _ports(protocol, from_port, to_port, by_group: bool) -> tuple[str | None, int | None, int | None]:
    """Nova's rule arguments: ports default for a source-group rule, are checked per
    protocol (TCP/UDP 1-65535 and ordered, ICMP type/code -1..255)."""
    if by_group and protocol and from_port is None and to_port is None:
        from_port, to_port = (-1, -1) if str(protocol).upper() == "ICMP" else (1, 65535)
    if not (protocol and from_port is not None and to_port is not None):
        if not by_group:
            raise BadRequest("Not enough parameters to build a valid rule.")
        return None, None, None
    protocol = str(protocol)
    try:
        low, high = int(from_port), int(to_port)
    except (TypeError, ValueError):
        if protocol.upper() == "ICMP":
            raise BadRequest("Invalid input received: Type and Code must be integers for ICMP protocol type") \
                from None
        raise BadRequest("Invalid input received: To and From ports must be integers") from None
    upper = protocol.upper()
    if upper not in ("TCP", "UDP", "ICMP"):
        raise BadRequest(f"Invalid IP protocol {protocol}.")
    if upper in ("TCP", "UDP") and low > high:
        raise BadRequest(f"Invalid port range {low}:{high}. Former value cannot be greater than the later")
    if upper in ("TCP", "UDP") and (low < 1 or high > 65535):
        raise BadRequest(f"Invalid port range {low}:{high}. Valid {upper} ports should be between 1-65535")
    if upper == "ICMP" and not (-1 <= low <= 255 and -1 <= high <= 255):
        raise BadRequest(f"Invalid port range {low}:{high}. For ICMP, the type:code must be valid")
    return protocol.lower(), low, high


@api.route("/v2.1/os-security-group-rules", "POST")
def create_rule(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "rule:create")
    body = p.body(req, "security_group_rule", None, ("parent_group_id",))
    parent = body["parent_group_id"]
    if not isinstance(parent, str) or not p.is_uuid(parent):
        raise p.invalid("parent_group_id", parent, f"{parent!r} is not a 'uuid'")
    group_id = body.get("group_id")
    if group_id is not None and (not isinstance(group_id, str) or not p.is_uuid(group_id)):
        raise p.invalid("group_id", group_id, f"{group_id!r} is not a 'uuid'")
    net = _net()
    _call(net.get_security_group, ctx, parent)
    source = _call(net.get_security_group, ctx, group_id) if group_id else None
    cidr = None
    if group_id is None:
        raw = body.get("cidr") or "0.0.0.0/0"
        try:
            network = ipaddress.ip_network(str(raw), strict=False)
        except ValueError:
            raise BadRequest(f"Invalid cidr {raw}.") from None
        if network.prefixlen == 0 and str(raw).split("/")[0] not in ("0.0.0.0", "::"):
            raise BadRequest(f"Bad prefix for network in cidr {raw}")
        cidr = str(raw)
    protocol, low, high = _ports(body.get("ip_protocol"), body.get("from_port"), body.get("to_port"),
                                 group_id is not None)
    ethertype = "IPv6" if cidr and ipaddress.ip_network(cidr, strict=False).version == 6 else "IPv4"
    rule = _call(net.create_security_group_rule, ctx, parent, direction="ingress", ethertype=ethertype,
                 protocol=protocol, port_range_min=None if low == -1 else low,
                 port_range_max=None if high == -1 else high, remote_ip_prefix=cidr, remote_group_id=group_id)
    known = {source["id"]: source} if source else {}
    return {"security_group_rule": _rule_view(rule, known)}


@api.route("/v2.1/os-security-group-rules/{rule_id}", "DELETE")
def delete_rule(req):
    _proxy_gone(req)
    ctx = p.authorize(req, R + "rule:delete")
    rid = req.path_params["rule_id"]
    if not p.is_uuid(rid):
        raise BadRequest("Security group id should be uuid")
    _call(_net().delete_security_group_rule, ctx, rid)
    return 202, None


# ---------------------------------------------------------------------------- a server's groups
@api.route("/v2.1/servers/{server_id}/os-security-groups", "GET")
def server_groups(req):
    from pocketstack.compute import servers

    ctx = req.context
    p.strict_query(req, (), "2.102")
    inst = servers.get(ctx, req.path_params["server_id"], "os_compute_api:os-security-groups:list")
    groups = _call(_net().instance_security_groups, inst.uuid)
    return {"security_groups": _sorted(groups)}


@api.route("/v2.1/os-security-groups/", ["PUT", "DELETE"])
@api.route("/v2.1/os-security-group-rules/", ["DELETE"])
def empty_id(req):
    """An empty id names nothing: 404 (not the collection, not 405), as Nova."""
    raise NotFound("The resource could not be found.")
