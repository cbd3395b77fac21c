"""Security groups and their rules, as Neutron models them; also what Compute calls.

A project's `default` group is created the first time the project uses security groups
(lists them, creates one, creates a port), with upstream's default rules: ingress from
members of the same group (IPv4 and IPv6) and egress anywhere (IPv4 and IPv6). Other new
groups get the two egress rules only. Rules are validated as Neutron validates them
(protocol by name or number 0-255, port ranges only for port-based protocols, ICMP
type/code 0-255, remote IP prefix normalised to a CIDR and matching the ethertype, one of
remote prefix or remote group) and duplicates are refused with `SecurityGroupRuleExists`.

The Python interface (used by the network API and by Compute's os-security-groups and
server actions); every function opens (or joins) one database transaction:

    ensure_default_security_group(project_id) -> str            # the default group's id
    list_security_groups(ctx, project_id=None) -> list[dict]     # Neutron's group dicts
    get_security_group(ctx, id_or_name, project_id=None) -> dict
    create_security_group(ctx, project_id, name, description="", stateful=True) -> dict
    update_security_group(ctx, id, **changes) -> dict            # name, description, stateful
    delete_security_group(ctx, id) -> None
    create_security_group_rule(ctx, security_group_id, direction="ingress", ethertype="IPv4",
        protocol=None, port_range_min=None, port_range_max=None, remote_ip_prefix=None,
        remote_group_id=None, description="", project_id=None) -> dict
    delete_security_group_rule(ctx, id) -> None
    instance_security_groups(instance_id) -> list[dict]          # groups on the server's ports
    add_security_group_to_instance(ctx, instance_id, name_or_id) -> None
    remove_security_group_from_instance(ctx, instance_id, name_or_id) -> None
    bind_port(port_id, group_ids) / port_security_groups(port_id) / unbind_port(port_id)

`ctx=None` means the service itself (no visibility or policy checks). Errors are
`ApiError`s carrying Neutron's exception `type`; Compute renders them in Nova's format.
"""
from __future__ import annotations

import ipaddress
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.errors import ApiError, Conflict, NotFound
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

DEFAULT_DESCRIPTION = "Default security group"
ETHERTYPES = ("IPv4", "IPv6")
DIRECTIONS = ("ingress", "egress")
# neutron-lib's IP_PROTOCOL_MAP: the names a rule's protocol may be given by.
PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
             "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
             "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
             "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112}
PORT_PROTOCOLS = {6, 17, 33, 132, 136}  # tcp, udp, dccp, sctp, udplite
ICMP_PROTOCOLS = {1, 58}
IPV6_ONLY = {"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
             "41", "44", "58", "59", "60", "43"}


def _bad(type_: str, message: str):
    return r.neutron_error(400, type_, f"Invalid input for operation: {message}")


def not_found(id_: str) -> ApiError:
    return r.neutron_error(404, "SecurityGroupNotFound", f"Security group {id_} does not exist")


def session():
    return current().db.session()


def _enforce(ctx: AuthContext | None, action: str, target: dict) -> None:
    r.enforce(ctx, action, r.policy_target(target))


_is_admin = r.is_admin
_ts = r.fmt_time


def _emit(resource_action: str, payload: dict, ctx=None) -> None:
    resource, action = resource_action.split(".", 1)
    r.emit(resource, action, payload, ctx)


def _count(model):
    return lambda sess, project_id: sess.scalar(select(func.count()).select_from(model)
                                                .where(model.project_id == project_id))


r.register_quota_resource("security_group", 10, _count(m.SecurityGroup))
r.register_quota_resource("security_group_rule", 100, _count(m.SecurityGroupRule))


# ---------------------------------------------------------------------------- rendering
def render_rule(rule: m.SecurityGroupRule, default_ids: set[str] | None = None) -> dict:
    prefix = rule.remote_ip_prefix
    return {"id": rule.id, "project_id": rule.project_id, "tenant_id": rule.project_id,
            "security_group_id": rule.security_group_id, "ethertype": rule.ethertype,
            "direction": rule.direction, "protocol": rule.protocol,
            "port_range_min": rule.port_range_min, "port_range_max": rule.port_range_max,
            "remote_ip_prefix": prefix, "remote_address_group_id": None,
            "normalized_cidr": str(ipaddress.ip_network(prefix, strict=False)) if prefix else None,
            "remote_group_id": rule.remote_group_id,
            "belongs_to_default_sg": (rule.security_group_id in default_ids) if default_ids is not None else None,
            "description": rule.description, "created_at": _ts(rule.created_at),
            "updated_at": _ts(rule.updated_at), "revision_number": rule.revision_number}


def _default_ids(sess, group_ids) -> set[str]:
    ids = list(set(group_ids))
    if not ids:
        return set()
    return set(sess.scalars(select(m.DefaultSecurityGroup.security_group_id)
                            .where(m.DefaultSecurityGroup.security_group_id.in_(ids))))


def render_groups(sess, groups: list[m.SecurityGroup]) -> list[dict]:
    """Neutron's dicts for `groups`, their rules fetched in one query."""
    ids = [g.id for g in groups]
    rules: dict[str, list] = {i: [] for i in ids}
    defaults = _default_ids(sess, ids)
    tags = r.load_tags(sess, "security_group", ids)
    if ids:
        for rule in sess.scalars(select(m.SecurityGroupRule).where(m.SecurityGroupRule.security_group_id.in_(ids))
                              .order_by(m.SecurityGroupRule.created_at, m.SecurityGroupRule.id)):
            rules[rule.security_group_id].append(render_rule(rule, defaults))
    return [{"id": g.id, "name": g.name, "stateful": g.stateful, "tenant_id": g.project_id,
             "project_id": g.project_id, "description": g.description, "shared": False,
             "security_group_rules": rules[g.id], "tags": sorted(tags.get(g.id, [])),
             "created_at": _ts(g.created_at), "updated_at": _ts(g.updated_at),
             "revision_number": g.revision_number} for g in groups]


# ---------------------------------------------------------------------------- default group
def ensure_default_security_group(project_id: str) -> str:
    """The project's `default` group id, created (with its rules) on first use.

    Two first uses racing: the project's row in `network_default_security_group` is a
    primary key, so one insert wins; the loser's savepoint rolls back and it reads the
    winner's group. This works inside a caller's transaction too (a port create)."""
    with session() as sess:
        found = sess.get(m.DefaultSecurityGroup, project_id)
        if found is not None:
            return found.security_group_id
        try:
            with sess.begin_nested():
                sg_id = _insert_group(sess, project_id, "default", DEFAULT_DESCRIPTION, True, default=True).id
        except IntegrityError:
            winner = sess.scalars(select(m.DefaultSecurityGroup.security_group_id)
                                  .where(m.DefaultSecurityGroup.project_id == project_id)
                                  .execution_options(populate_existing=True)).first()
            if winner is None:
                raise
            return winner
    _emit("security_group.created", {"id": sg_id, "project_id": project_id, "name": "default"})
    return sg_id


def _insert_group(sess, project_id, name, description, stateful, default=False) -> m.SecurityGroup:
    now = utcnow()
    sg = m.SecurityGroup(id=str(uuid.uuid4()), project_id=project_id, name=name, description=description or "",
                         stateful=stateful, created_at=now, updated_at=now)
    sess.add(sg)
    sess.flush()
    if default:
        sess.add(m.DefaultSecurityGroup(project_id=project_id, security_group_id=sg.id))
        sess.flush()
    templates = [("egress", "IPv4", None), ("egress", "IPv6", None)]
    if default:
        templates = [("ingress", "IPv4", sg.id), ("ingress", "IPv6", sg.id)] + templates
    for direction, ethertype, remote in templates:
        sess.add(m.SecurityGroupRule(id=str(uuid.uuid4()), project_id=project_id, security_group_id=sg.id,
                                     direction=direction, ethertype=ethertype, remote_group_id=remote,
                                     created_at=now, updated_at=now))
    sess.flush()
    return sg


# ---------------------------------------------------------------------------- quotas
def _quota_check(sess, project_id: str, resource: str, adding: int) -> None:
    r.check_quota(sess, project_id, resource, adding)


# ---------------------------------------------------------------------------- groups
def _visible(ctx: AuthContext | None, project_id: str) -> bool:
    return ctx is None or _is_admin(ctx) or ctx.project_id == project_id


def load_group(sess, ctx: AuthContext | None, id_: str) -> m.SecurityGroup:
    sg = sess.get(m.SecurityGroup, id_)
    if sg is None or not _visible(ctx, sg.project_id):
        raise not_found(id_)
    return sg


def list_group_rows(sess, ctx: AuthContext | None, project_id: str | None = None) -> list[m.SecurityGroup]:
    """The groups `ctx` may see (all for admins), optionally only `project_id`'s."""
    q = select(m.SecurityGroup).order_by(m.SecurityGroup.created_at, m.SecurityGroup.id)
    if project_id:
        q = q.where(m.SecurityGroup.project_id == project_id)
    if ctx is not None and not _is_admin(ctx):
        q = q.where(m.SecurityGroup.project_id == ctx.project_id)
    return list(sess.scalars(q))


def list_security_groups(ctx: AuthContext | None, project_id: str | None = None) -> list[dict]:
    """Groups visible to `ctx` (of `project_id` if given); creates the caller's (or the
    asked project's, for admins) default group first, as Neutron does."""
    target = project_id or (ctx.project_id if ctx else None)
    if target and (ctx is None or _is_admin(ctx) or target == ctx.project_id):
        ensure_default_security_group(target)
    with session() as sess:
        return render_groups(sess, list_group_rows(sess, ctx, project_id))


def get_security_group(ctx: AuthContext | None, id_or_name: str, project_id: str | None = None) -> dict:
    """One group by id, or by name within `project_id` (default: the caller's project).
    Several groups with that name: 409 `NeutronClientNoUniqueMatch`-like conflict."""
    with session() as sess:
        sg = _find_group(sess, ctx, id_or_name, project_id)
        _enforce(ctx, "get_security_group", {"project_id": sg.project_id})
        return render_groups(sess, [sg])[0]


def _find_group(sess, ctx, id_or_name: str, project_id: str | None) -> m.SecurityGroup:
    sg = sess.get(m.SecurityGroup, id_or_name)
    if sg is not None and _visible(ctx, sg.project_id):
        return sg
    owner = project_id or (ctx.project_id if ctx else None)
    if owner and id_or_name == "default":
        ensure_default_security_group(owner)
    q = select(m.SecurityGroup).where(m.SecurityGroup.name == id_or_name)
    if owner:
        q = q.where(m.SecurityGroup.project_id == owner)
    found = [g for g in sess.scalars(q) if _visible(ctx, g.project_id)]
    if not found:
        raise not_found(id_or_name)
    if len(found) > 1:
        raise r.neutron_error(409, "Conflict", f"Multiple security_group matches found for name '{id_or_name}', "
                                               "use an ID to be more specific.")
    return found[0]


def _check_name(name) -> str:
    if name is None:
        return ""
    if not isinstance(name, str):
        raise _bad("InvalidInput", f"'{name}' is not a valid string")
    if len(name) > 255:
        raise _bad("InvalidInput", f"'{name}' exceeds maximum length of 255")
    if name.lower() == "default":
        raise r.neutron_error(409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
    return name


def _check_description(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad("InvalidInput", f"'{value}' is not a valid string")
    if len(value) > 255:
        raise _bad("InvalidInput", f"'{value}' exceeds maximum length of 255")
    return value


def _check_bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _bad("InvalidInput", f"'{value}' cannot be converted to boolean")


def create_security_group(ctx: AuthContext | None, project_id: str, name: str, description: str = "",
                          stateful: bool = True) -> dict:
    """A new group in `project_id` with the two egress rules. Name `default` is refused
    (409 SecurityGroupDefaultAlreadyExists); the project's default group is ensured first."""
    name = _check_name(name)
    description = _check_description(description)
    stateful = _check_bool(stateful, "stateful")
    _enforce(ctx, "create_security_group", {"project_id": project_id})
    ensure_default_security_group(project_id)
    with session() as sess:
        _quota_check(sess, project_id, "security_group", 1)
        _quota_check(sess, project_id, "security_group_rule", 2)
        sg = _insert_group(sess, project_id, name, description, stateful)
        body = render_groups(sess, [sg])[0]
    _emit("security_group.created", {"id": sg.id, "project_id": project_id, "name": name}, ctx)
    return body


def update_security_group(ctx: AuthContext | None, id_: str, **changes) -> dict:
    """Change `name`, `description` and/or `stateful`. The default group keeps its name
    (409 SecurityGroupCannotUpdateDefault); `stateful` cannot flip while ports use the group."""
    allowed = {"name", "description", "stateful"}
    unknown = set(changes) - allowed
    if unknown:
        raise _bad("HTTPBadRequest", f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    if "name" in changes:
        changes["name"] = _check_name(changes["name"])
    if "description" in changes:
        changes["description"] = _check_description(changes["description"])
    if "stateful" in changes:
        changes["stateful"] = _check_bool(changes["stateful"], "stateful")
    with session() as sess:
        sg = load_group(sess, ctx, id_)
        _enforce(ctx, "update_security_group", {"project_id": sg.project_id})
        if "stateful" in changes and changes["stateful"] != sg.stateful and _in_use(sess, sg.id):
            raise r.neutron_error(409, "SecurityGroupInUse", f"Security Group {sg.id} in use.")
        if "name" in changes and _is_default(sess, sg):
            raise r.neutron_error(409, "SecurityGroupCannotUpdateDefault",
                                  "Updating default security group not allowed.")
        for key, value in changes.items():
            setattr(sg, key, value)
        if changes:
            sg.revision_number += 1
            sg.updated_at = utcnow()
        sess.flush()
        body = render_groups(sess, [sg])[0]
    _emit("security_group.updated", {"id": id_, "changes": sorted(changes)}, ctx)
    return body


def _is_default(sess, sg: m.SecurityGroup) -> bool:
    row = sess.get(m.DefaultSecurityGroup, sg.project_id)
    return row is not None and row.security_group_id == sg.id


def _in_use(sess, sg_id: str) -> bool:
    return sess.scalar(select(func.count()).select_from(m.SecurityGroupPortBinding)
                       .where(m.SecurityGroupPortBinding.security_group_id == sg_id)) > 0


def delete_security_group(ctx: AuthContext | None, id_: str) -> None:
    """Delete a group and its rules. In use by a port: 409 SecurityGroupInUse; a
    project's default group: 409 SecurityGroupCannotRemoveDefault unless admin."""
    with session() as sess:
        sg = load_group(sess, ctx, id_)
        _enforce(ctx, "delete_security_group", {"project_id": sg.project_id})
        if _in_use(sess, sg.id):
            raise r.neutron_error(409, "SecurityGroupInUse", f"Security Group {sg.id} in use.")
        is_default = sess.get(m.DefaultSecurityGroup, sg.project_id)
        if is_default is not None and is_default.security_group_id == sg.id:
            if not _is_admin(ctx):
                raise r.neutron_error(409, "SecurityGroupCannotRemoveDefault",
                                      "Insufficient rights for removing default security group.")
            sess.delete(is_default)
        # rules of other groups pointing at this one go with it (remote_group_id cascade)
        sess.execute(delete(m.SecurityGroupRule).where(m.SecurityGroupRule.remote_group_id == sg.id))
        sess.execute(delete(m.SecurityGroupRule).where(m.SecurityGroupRule.security_group_id == sg.id))
        sess.delete(sg)
        project_id = sg.project_id
    _emit("security_group.deleted", {"id": id_, "project_id": project_id}, ctx)


# ---------------------------------------------------------------------------- rules
def _convert_protocol(value) -> str | None:
    if value is None or value == "any":
        return None
    if isinstance(value, bool):
        raise _invalid_protocol(value)
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        number = int(value)
        if 0 <= number <= 255:
            return str(number)
        raise _invalid_protocol(value)
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    raise _invalid_protocol(value)


def _invalid_protocol(value) -> ApiError:
    values = "[None, 'any', " + ", ".join(f"'{p}'" for p in PROTOCOLS) + "]"
    return _bad("SecurityGroupRuleInvalidProtocol",
                f"Security group rule protocol {value} not supported. Only protocol values {values} "
                "and integer representations [0 to 255] are supported.")


def _convert_port(value) -> int | None:
    if value is None:
        return None
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 <= number <= 65535:
        raise _bad("SecurityGroupInvalidPortValue", f"Invalid value for port {value}")
    return number


def _convert_ethertype(value) -> str:
    if isinstance(value, str):
        for e in ETHERTYPES:
            if e.lower() == value.lower():
                return e
    raise _bad("SecurityGroupRuleInvalidEtherType",
               f"Security group rule for ethertype '{value}' not supported. Allowed values are ['IPv4', 'IPv6'].")


def _convert_prefix(value) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_interface(str(value).strip()))
    except ValueError:
        raise _bad("InvalidCIDR", f"Invalid CIDR {value} given as IP prefix.") from None


def _protocol_number(protocol: str | None) -> int | None:
    if protocol is None:
        return None
    return int(protocol) if protocol.isdigit() else PROTOCOLS[protocol]


def validate_rule(rule: dict) -> dict:
    """Neutron's conversions and checks on a rule's attributes; returns the canonical rule."""
    if rule.get("direction") not in DIRECTIONS:
        raise _bad("InvalidInput", f"Invalid input for direction. Reason: '{rule.get('direction')}' is not in "
                                   "['ingress', 'egress'].")
    rule["ethertype"] = _convert_ethertype(rule.get("ethertype") if rule.get("ethertype") is not None else "IPv4")
    rule["protocol"] = _convert_protocol(rule.get("protocol"))
    rule["port_range_min"] = _convert_port(rule.get("port_range_min"))
    rule["port_range_max"] = _convert_port(rule.get("port_range_max"))
    rule["remote_ip_prefix"] = _convert_prefix(rule.get("remote_ip_prefix"))
    # canonical forms: legacy IPv6 ICMP names, the whole port range means "no range"
    if rule["ethertype"] == "IPv6":
        if rule["protocol"] in ("icmp", "icmpv6"):
            rule["protocol"] = "ipv6-icmp"
        elif rule["protocol"] == "1":
            rule["protocol"] = "58"
    if rule["port_range_min"] == 1 and rule["port_range_max"] == 65535:
        rule["port_range_min"] = rule["port_range_max"] = None
    _validate_ports(rule)
    if rule["remote_ip_prefix"]:
        version = ipaddress.ip_interface(rule["remote_ip_prefix"]).version
        if rule["ethertype"] != f"IPv{version}":
            raise _bad("SecurityGroupRuleParameterConflict",
                       f"Conflicting value ethertype {rule['ethertype']} for CIDR {rule['remote_ip_prefix']}")
    if rule["protocol"] in IPV6_ONLY and rule["ethertype"] == "IPv4":
        raise _bad("SecurityGroupEthertypeConflictWithProtocol",
                   f"Invalid ethertype {rule['ethertype']} for protocol {rule['protocol']}.")
    if rule.get("remote_ip_prefix") and rule.get("remote_group_id"):
        raise _bad("SecurityGroupMultipleRemoteEntites",
                   "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
    return rule


def _validate_ports(rule: dict) -> None:
    low, high = rule["port_range_min"], rule["port_range_max"]
    if low is None and high is None:
        return
    if not rule["protocol"]:
        raise _bad("SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
    number = _protocol_number(rule["protocol"])
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise _bad("SecurityGroupInvalidPortValue", "Invalid value for port 0")
        if low is None or high is None or low > high:
            raise _bad("SecurityGroupInvalidPortRange",
                       "For TCP/UDP protocols, port_range_min must be <= port_range_max")
    elif number in ICMP_PROTOCOLS:
        for value, field, attr in ((low, "type", "port_range_min"), (high, "code", "port_range_max")):
            if value is not None and not 0 <= value <= 255:
                raise _bad("SecurityGroupInvalidIcmpValue",
                           f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.")
        if low is None and high is not None:
            raise _bad("SecurityGroupMissingIcmpType",
                       f"ICMP code (port-range-max) {high} is provided but ICMP type (port-range-min) is missing.")
    else:
        raise _bad("SecurityGroupInvalidProtocolForPort",
                   f"Ports cannot be specified for protocol {number}. "
                   "Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.")


def _rule_key(rule) -> tuple:
    """What makes two rules the same (Neutron's comparison: `any` prefixes equal none,
    protocols compared by number)."""
    get = rule.get if isinstance(rule, dict) else (lambda k: getattr(rule, k))
    prefix = get("remote_ip_prefix")
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    return (get("direction"), get("ethertype"), get("port_range_min"), get("port_range_max"),
            _protocol_number(get("protocol")), get("remote_group_id"), prefix, get("security_group_id"))


def create_security_group_rule(ctx: AuthContext | None, security_group_id: str, direction: str = "ingress",
                               ethertype: str = "IPv4", protocol=None, port_range_min=None, port_range_max=None,
                               remote_ip_prefix=None, remote_group_id=None, description: str = "",
                               project_id: str | None = None) -> dict:
    """Add a rule to a group (Neutron's checks; duplicates 409 SecurityGroupRuleExists).
    `project_id` defaults to the group's project; the remote group must be visible too."""
    rule = validate_rule({"direction": direction, "ethertype": ethertype, "protocol": protocol,
                          "port_range_min": port_range_min, "port_range_max": port_range_max,
                          "remote_ip_prefix": remote_ip_prefix, "remote_group_id": remote_group_id,
                          "security_group_id": security_group_id})
    description = _check_description(description)
    if not isinstance(security_group_id, str) or not security_group_id:
        raise _bad("InvalidInput", "'security_group_id' must be a string")
    with session() as sess:
        sg = load_group(sess, ctx, security_group_id)
        owner = project_id or sg.project_id
        _enforce(ctx, "create_security_group_rule", {"project_id": owner,
                                                     "security_group:project_id": sg.project_id})
        if remote_group_id is not None:
            if not isinstance(remote_group_id, str):
                raise not_found(str(remote_group_id))
            load_group(sess, ctx, remote_group_id)
        key = _rule_key(rule)
        for existing in sess.scalars(select(m.SecurityGroupRule)
                                     .where(m.SecurityGroupRule.security_group_id == sg.id)):
            if _rule_key(existing) == key:
                raise r.neutron_error(409, "SecurityGroupRuleExists",
                                      f"Security group rule already exists. Rule id is {existing.id}.")
        _quota_check(sess, owner, "security_group_rule", 1)
        now = utcnow()
        row = m.SecurityGroupRule(id=str(uuid.uuid4()), project_id=owner, security_group_id=sg.id,
                                  remote_group_id=rule["remote_group_id"], direction=rule["direction"],
                                  ethertype=rule["ethertype"], protocol=rule["protocol"],
                                  port_range_min=rule["port_range_min"], port_range_max=rule["port_range_max"],
                                  remote_ip_prefix=rule["remote_ip_prefix"], description=description,
                                  created_at=now, updated_at=now)
        sess.add(row)
        sg.revision_number += 1
        sg.updated_at = now
        sess.flush()
        body = render_rule(row, _default_ids(sess, [sg.id]))
    _emit("security_group_rule.created", {"id": row.id, "security_group_id": sg.id, "project_id": owner}, ctx)
    return body


def load_rule(sess, ctx: AuthContext | None, id_: str) -> m.SecurityGroupRule:
    rule = sess.get(m.SecurityGroupRule, id_)
    if rule is not None and ctx is not None and not _is_admin(ctx):
        owner = sess.get(m.SecurityGroup, rule.security_group_id)
        if ctx.project_id not in (rule.project_id, owner.project_id if owner else None):
            rule = None
    if rule is None:
        raise r.neutron_error(404, "SecurityGroupRuleNotFound", f"Security group rule {id_} does not exist")
    return rule


def _rule_target(rule: m.SecurityGroupRule, sg: m.SecurityGroup) -> dict:
    return {"project_id": rule.project_id, "security_group:project_id": sg.project_id}


def get_security_group_rule(ctx: AuthContext | None, id_: str) -> dict:
    with session() as sess:
        rule = load_rule(sess, ctx, id_)
        sg = sess.get(m.SecurityGroup, rule.security_group_id)
        _enforce(ctx, "get_security_group_rule", _rule_target(rule, sg))
        return render_rule(rule, _default_ids(sess, [rule.security_group_id]))


def list_rule_rows(sess, ctx: AuthContext | None) -> list[m.SecurityGroupRule]:
    q = select(m.SecurityGroupRule).order_by(m.SecurityGroupRule.created_at, m.SecurityGroupRule.id)
    if ctx is not None and not _is_admin(ctx):
        own_groups = select(m.SecurityGroup.id).where(m.SecurityGroup.project_id == ctx.project_id)
        q = q.where((m.SecurityGroupRule.project_id == ctx.project_id)
                    | m.SecurityGroupRule.security_group_id.in_(own_groups))
    return list(sess.scalars(q))


def list_security_group_rules(ctx: AuthContext | None) -> list[dict]:
    if ctx is not None and ctx.project_id:
        ensure_default_security_group(ctx.project_id)
    with session() as sess:
        rows = list_rule_rows(sess, ctx)
        defaults = _default_ids(sess, [x.security_group_id for x in rows])
        return [render_rule(x, defaults) for x in rows]


def delete_security_group_rule(ctx: AuthContext | None, id_: str) -> None:
    with session() as sess:
        rule = load_rule(sess, ctx, id_)
        sg = sess.get(m.SecurityGroup, rule.security_group_id)
        _enforce(ctx, "delete_security_group_rule", _rule_target(rule, sg))
        sess.delete(rule)
        sg.revision_number += 1
        sg.updated_at = utcnow()
        payload = {"id": id_, "security_group_id": sg.id, "project_id": rule.project_id}
    _emit("security_group_rule.deleted", payload, ctx)


# ---------------------------------------------------------------------------- ports and servers
def port_security_groups(port_id: str) -> list[str]:
    with session() as sess:
        return list(sess.scalars(select(m.SecurityGroupPortBinding.security_group_id)
                                 .where(m.SecurityGroupPortBinding.port_id == port_id)
                                 .order_by(m.SecurityGroupPortBinding.security_group_id)))


def check_groups_for_port(ctx: AuthContext | None, project_id: str, group_ids: list) -> list[str]:
    """Validate a port's `security_groups` (each must exist and belong to the port's project
    or be visible to an admin caller): 404 SecurityGroupNotFound otherwise. Mixing stateful
    and stateless groups is a 409 SecurityGroupConflict, as upstream."""
    if not isinstance(group_ids, list):
        raise _bad("InvalidInput", f"'{group_ids}' is not a list")
    with session() as sess:
        out, stateful = [], set()
        for gid in dict.fromkeys(group_ids):
            if not isinstance(gid, str):
                raise _bad("InvalidInput", f"'{gid}' is not a valid UUID")
            sg = sess.get(m.SecurityGroup, gid)
            if sg is None or (sg.project_id != project_id and not _is_admin(ctx)):
                raise not_found(gid)
            out.append(sg.id)
            stateful.add(sg.stateful)
        if len(stateful) > 1:
            raise r.neutron_error(409, "SecurityGroupConflict",
                                  "Error Cannot apply both stateful and stateless security groups on the same port "
                                  "at the same time while attempting the operation.")
        return out


def bind_port(port_id: str, group_ids: list[str]) -> None:
    """Set a port's groups (replacing any). Callers validate with `check_groups_for_port`."""
    with session() as sess:
        sess.execute(delete(m.SecurityGroupPortBinding).where(m.SecurityGroupPortBinding.port_id == port_id))
        for gid in dict.fromkeys(group_ids):
            sess.add(m.SecurityGroupPortBinding(port_id=port_id, security_group_id=gid))
        sess.flush()


def unbind_port(port_id: str) -> None:
    bind_port(port_id, [])


def _instance_port_ids(sess, instance_id: str) -> list[str]:
    port = getattr(m, "Port", None)
    if port is None:
        return []
    return list(sess.scalars(select(port.id).where(port.device_id == instance_id)
                             .where(port.device_owner.like("compute:%")).order_by(port.id)))


def instance_security_groups(instance_id: str) -> list[dict]:
    """The groups on a server's ports (each once, in name order): Neutron's group dicts."""
    with session() as sess:
        ports = _instance_port_ids(sess, instance_id)
        if not ports:
            return []
        ids = set(sess.scalars(select(m.SecurityGroupPortBinding.security_group_id)
                               .where(m.SecurityGroupPortBinding.port_id.in_(ports))))
        groups = list(sess.scalars(select(m.SecurityGroup).where(m.SecurityGroup.id.in_(ids))
                                   .order_by(m.SecurityGroup.name, m.SecurityGroup.id))) if ids else []
        return render_groups(sess, groups)


def add_security_group_to_instance(ctx: AuthContext | None, instance_id: str, name_or_id: str) -> None:
    """Add a group (by name in the caller's project, or id) to every port of the server.
    Already there: 409 (Nova reports it as a 400/409 in its own format)."""
    with session() as sess:
        sg = _find_group(sess, ctx, name_or_id, None)
        ports = _instance_port_ids(sess, instance_id)
        if not ports:
            raise r.neutron_error(400, "BadRequest", "The server has no ports to add the security group to.")
        present = set(sess.scalars(select(m.SecurityGroupPortBinding.port_id)
                                   .where(m.SecurityGroupPortBinding.security_group_id == sg.id)
                                   .where(m.SecurityGroupPortBinding.port_id.in_(ports))))
        if len(present) == len(ports):
            raise Conflict(f"Security group {name_or_id} is already associated with the instance {instance_id}")
        for port_id in ports:
            if port_id not in present:
                sess.add(m.SecurityGroupPortBinding(port_id=port_id, security_group_id=sg.id))
        sess.flush()
        sg_id = sg.id
    _emit("security_group.instance.added", {"security_group_id": sg_id, "instance_id": instance_id}, ctx)


def remove_security_group_from_instance(ctx: AuthContext | None, instance_id: str, name_or_id: str) -> None:
    """Remove a group from every port of the server; not on it: 404."""
    with session() as sess:
        sg = _find_group(sess, ctx, name_or_id, None)
        ports = _instance_port_ids(sess, instance_id)
        result = sess.execute(delete(m.SecurityGroupPortBinding)
                              .where(m.SecurityGroupPortBinding.security_group_id == sg.id)
                              .where(m.SecurityGroupPortBinding.port_id.in_(ports or [""])))
        if not result.rowcount:
            raise NotFound(f"Security group {name_or_id} not associated with the instance {instance_id}")
        sg_id = sg.id
    _emit("security_group.instance.removed", {"security_group_id": sg_id, "instance_id": instance_id}, ctx)


__all__ = ["ensure_default_security_group", "list_security_groups", "get_security_group", "create_security_group",
           "update_security_group", "delete_security_group", "create_security_group_rule",
           "delete_security_group_rule", "instance_security_groups", "add_security_group_to_instance",
           "remove_security_group_from_instance", "bind_port", "unbind_port", "port_security_groups",
           "check_groups_for_port"]
