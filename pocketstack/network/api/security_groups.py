"""`/v2.0/security-groups` and `/v2.0/security-group-rules`: HTTP <-> Neutron JSON only.

The logic (default groups, rule validation, duplicates, in-use checks) is in
`pocketstack.network.security_groups`, which Compute calls too.
"""
from __future__ import annotations

from pocketstack.common.errors import BadRequest
from pocketstack.network import security_groups as sg
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api, session

GROUP = r.Resource("security_group", "security_groups", [
    r.Attr("stateful", put=True, default=True, validate=r.v_bool),
])
RULE = r.Resource("security_group_rule", "security_group_rules", [
    r.Attr("description", default="", validate=r.v_string(255)),
    r.Attr("security_group_id", required=True),
    r.Attr("direction", required=True, validate=r.v_enum(sg.DIRECTIONS)),
    r.Attr("ethertype", default="IPv4"),
    r.Attr("protocol", default=None),
    r.Attr("port_range_min", default=None),
    r.Attr("port_range_max", default=None),
    r.Attr("remote_ip_prefix", default=None),
    r.Attr("remote_group_id", default=None),
    r.Attr("remote_address_group_id", default=None),
], named=False)

r.register_extension("security-group", "security-group", "The security groups extension.",
                     "2012-10-05T10:00:00-00:00")
r.register_extension("stateful-security-group", "Stateful security group",
                     "Indicates if the security group is stateful or not")
r.register_extension("security-groups-remote-address-group", "Remote address group id field for security "
                     "group rules", "Add new field of remote address group id in security group rules")
r.register_extension("security-groups-normalized-cidr", "Normalized CIDR field for security group rules",
                     "Add new field with normalized remote_ip_prefix cidr in SG rule")
r.register_extension("security-groups-rules-belongs-to-default-sg", "Security group rule belongs to the "
                     "project's default security group", "Flag to determine if the security group rule "
                     "belongs to the project's default security group")


def _tag_load(sess, ctx, id_):
    return sg.load_group(sess, ctx, id_)


r.register_tags("security-groups", "security_group", _tag_load,
                lambda row: {"project_id": row.project_id, "tenant_id": row.project_id})


# ---------------------------------------------------------------------------- groups
@api.route("/v2.0/security-groups", "GET")
def list_groups(req):
    ctx = req.context
    r.enforce(ctx, "get_security_group", {"project_id": ctx.project_id, "tenant_id": ctx.project_id})
    wanted = req.query.getlist("project_id") or req.query.getlist("tenant_id")
    items = sg.list_security_groups(ctx, wanted[0] if len(wanted) == 1 else None)
    return r.list_response(req, "security_groups", items)


@api.route("/v2.0/security-groups", "POST")
def create_group(req):
    ctx = req.context
    if isinstance(req.json, dict) and "security_groups" in req.json:
        return _bulk(req, GROUP, lambda body: _create_group(ctx, body))
    return 201, {"security_group": _create_group(ctx, req.json)}


def _create_group(ctx, body) -> dict:
    data = GROUP.parse_create(body, ctx)
    r.enforce_attrs(ctx, "create_security_group", {"project_id": data["project_id"]}, data["_explicit"])
    return sg.create_security_group(ctx, data["project_id"], data["name"], data["description"], data["stateful"])


@api.route("/v2.0/security-groups/{id}", "GET")
def show_group(req):
    return r.show_response(req, "security_group", sg.get_security_group(req.context, req.path_params["id"]))


@api.route("/v2.0/security-groups/{id}", "PUT")
def update_group(req):
    ctx = req.context
    changes = GROUP.parse_update(req.json)
    with session() as sess:
        row = sg.load_group(sess, ctx, req.path_params["id"])
        r.check_if_match(req, row)
        body = sg.update_security_group(ctx, row.id, **changes)
    return {"security_group": body}


@api.route("/v2.0/security-groups/{id}", "DELETE")
def delete_group(req):
    ctx = req.context
    with session() as sess:
        row = sg.load_group(sess, ctx, req.path_params["id"])
        r.check_if_match(req, row)
        sg.delete_security_group(ctx, row.id)
        r.delete_tags(sess, "security_group", row.id)
    return 204, None


# ---------------------------------------------------------------------------- rules
@api.route("/v2.0/security-group-rules", "GET")
def list_rules(req):
    ctx = req.context
    return r.list_response(req, "security_group_rules", sg.list_security_group_rules(ctx))


@api.route("/v2.0/security-group-rules", "POST")
def create_rule(req):
    ctx = req.context
    if isinstance(req.json, dict) and "security_group_rules" in req.json:
        return _bulk(req, RULE, lambda body: _create_rule(ctx, body))
    return 201, {"security_group_rule": _create_rule(ctx, req.json)}


def _create_rule(ctx, body) -> dict:
    data = RULE.parse_create(body, ctx)
    if data.get("remote_address_group_id") is not None:
        raise r.not_found("AddressGroupNotFound",
                          f"Address group {data['remote_address_group_id']} could not be found.")
    return sg.create_security_group_rule(
        ctx, data["security_group_id"], direction=data["direction"], ethertype=data["ethertype"],
        protocol=data["protocol"], port_range_min=data["port_range_min"], port_range_max=data["port_range_max"],
        remote_ip_prefix=data["remote_ip_prefix"], remote_group_id=data["remote_group_id"],
        description=data["description"], project_id=data["project_id"])


@api.route("/v2.0/security-group-rules/{id}", "GET")
def show_rule(req):
    return r.show_response(req, "security_group_rule",
                           sg.get_security_group_rule(req.context, req.path_params["id"]))


@api.route("/v2.0/security-group-rules/{id}", "DELETE")
def delete_rule(req):
    sg.delete_security_group_rule(req.context, req.path_params["id"])
    return 204, None


def _bulk(req, resource: r.Resource, create_one):
    """Bulk create (`{"security_group_rules": [...]}`): all or nothing, in one transaction."""
    items = req.json.get(resource.plural)
    if not isinstance(items, list) or not items:
        raise BadRequest(f"Invalid input for {resource.plural}. Reason: it must be a non-empty list.")
    with session():
        created = [create_one({resource.singular: item.get(resource.singular, item)
                               if isinstance(item, dict) else item}) for item in items]
    return 201, {resource.plural: created}
