"""Flavors, flavor extra specs and flavor access (os-flavor-access) as Nova serves them.

Microversions: 2.7 refuses access grants on public flavors (409); 2.55 adds `description`
(and PUT to change it); 2.61 embeds `extra_specs` in flavor bodies for callers allowed to
read them; 2.75 reports `swap` 0 instead of ""; 2.86 validates extra specs; 2.102 drops
`rxtx_factor` and `OS-FLV-DISABLED:disabled`, adds the `name` filter and refuses unknown
query parameters.
"""
from __future__ import annotations

import re

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.compute import extra_specs as spec_rules
from pocketstack.compute import flavors
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-flavor-manage:"
ES = "os_compute_api:os-flavor-extra-specs:"
FA = "os_compute_api:os-flavor-access"
ID_RE = r"^(?! )[a-zA-Z0-9. _-]+(?<! )$"
SPEC_KEY_RE = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
LIST_QUERY = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir")


# ---------------------------------------------------------------------------- views
def _basic(req, f: flavors.FlavorInfo) -> dict:
    out = {"id": f.id, "name": f.name, "links": p.links(req, "flavors", f.id)}
    if at_least(req, "2.55"):
        out["description"] = f.description
    return out


def _full(req, f: flavors.FlavorInfo, with_specs: bool | None = None) -> dict:
    out = {"id": f.id, "name": f.name, "ram": f.ram, "disk": f.disk, "swap": f.swap or "",
           "OS-FLV-EXT-DATA:ephemeral": f.ephemeral, "OS-FLV-DISABLED:disabled": f.disabled,
           "vcpus": f.vcpus, "os-flavor-access:is_public": f.is_public,
           "rxtx_factor": f.rxtx_factor or "", "links": p.links(req, "flavors", f.id)}
    if at_least(req, "2.55"):
        out["description"] = f.description
    if at_least(req, "2.61"):
        if with_specs is None:
            with_specs = p.can(req, ES + "index")
        if with_specs:
            out["extra_specs"] = dict(f.extra_specs)
    if at_least(req, "2.75"):
        out["swap"] = f.swap or 0
    if at_least(req, "2.102"):
        del out["OS-FLV-DISABLED:disabled"], out["rxtx_factor"]
    return out


# ---------------------------------------------------------------------------- list / show
def _list(req, detail: bool):
    query = LIST_QUERY + (("name",) if at_least(req, "2.102") else ())
    p.strict_query(req, query, "2.75")
    ctx = req.context
    q = req.query
    is_public: bool | None = True
    if ctx.is_admin and "is_public" in q:
        raw = q.get("is_public", "")
        if raw.lower() == "none":
            is_public = None
        elif raw.strip().lower() in p.TRUE | p.FALSE:
            is_public = raw.strip().lower() in p.TRUE
        else:
            raise BadRequest(f"Invalid is_public filter [{raw}]")
    mins = {}
    for key in ("minRam", "minDisk"):
        if key in q:
            try:
                mins[key] = int(q[key])
            except ValueError:
                raise BadRequest(f"Invalid {key} filter [{q[key]}]") from None
    sort_key = q.get("sort_key", "flavorid")
    sort_dir = q.get("sort_dir", "asc")
    keys = [k for k in flavors.SORT_KEYS if not (k == "rxtx_factor" and at_least(req, "2.102"))]
    if sort_key not in keys:
        raise p.invalid("sort_key", sort_key, f"'{sort_key}' is not one of {keys}")
    if sort_dir not in ("asc", "desc"):
        raise p.invalid("sort_dir", sort_dir, f"'{sort_dir}' is not one of ['asc', 'desc']")
    limit = p.query_limit(req)
    items = flavors.list_flavors(ctx, is_public=is_public, min_ram=mins.get("minRam"),
                                 min_disk=mins.get("minDisk"), sort_key=sort_key, sort_dir=sort_dir,
                                 limit=limit, marker=q.get("marker"),
                                 name=q.get("name") if at_least(req, "2.102") else None)
    with_specs = p.can(req, ES + "index") if detail else False
    body = {"flavors": [_full(req, f, with_specs) if detail else _basic(req, f) for f in items]}
    nxt = p.next_links(req, "flavors/detail" if detail else "flavors", items, limit, lambda f: f.id)
    if nxt:
        body["flavors_links"] = nxt
    return body


@api.route("/v2.1/flavors", "GET")
def list_flavors(req):
    return _list(req, detail=False)


@api.route("/v2.1/flavors/detail", "GET")
def list_flavors_detail(req):
    return _list(req, detail=True)


@api.route("/v2.1/flavors/{flavor_id}", "GET")
def show_flavor(req):
    ctx = req.context
    p.strict_query(req, (), "2.102")
    return {"flavor": _full(req, flavors.get_flavor(ctx, req.path_params["flavor_id"]))}


# ---------------------------------------------------------------------------- manage
@api.route("/v2.1/flavors", "POST")
def create_flavor(req):
    p.authorize(req, R + "create", {})
    allowed = ["name", "id", "ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap",
               "rxtx_factor", "os-flavor-access:is_public"]
    if at_least(req, "2.55"):
        allowed.append("description")
    if at_least(req, "2.102"):
        allowed.remove("rxtx_factor")
    f = p.body(req, "flavor", tuple(allowed), ("name", "ram", "vcpus", "disk"))
    name = p.name(f["name"], "name")
    flavorid = f.get("id")
    if flavorid is not None:
        if isinstance(flavorid, bool) or not isinstance(flavorid, (str, int, float)):
            raise p.invalid("id", flavorid, f"{flavorid!r} is not of type 'string', 'number', 'null'")
        flavorid = str(flavorid)
        if not 1 <= len(flavorid) <= 255 or not re.fullmatch(ID_RE, flavorid):
            raise p.invalid("id", flavorid, f"'{flavorid}' does not match '{ID_RE}'")
    ram = p.integer(f["ram"], "ram", 1)
    vcpus = p.integer(f["vcpus"], "vcpus", 1)
    disk = p.integer(f["disk"], "disk", 0)
    ephemeral = p.integer(f.get("OS-FLV-EXT-DATA:ephemeral", 0), "OS-FLV-EXT-DATA:ephemeral", 0)
    swap = f.get("swap", 0)
    swap = 0 if swap == "" else p.integer(swap, "swap", 0)
    rxtx = f.get("rxtx_factor", 1.0)
    if isinstance(rxtx, bool) or not isinstance(rxtx, (int, float, str)):
        raise p.invalid("rxtx_factor", rxtx, f"{rxtx!r} is not of type 'number', 'string'")
    try:
        rxtx = float(rxtx)
    except ValueError:
        raise p.invalid("rxtx_factor", rxtx, f"'{rxtx}' does not match '^[0-9]+(\\.[0-9]+)?$'") from None
    if not 0 < rxtx <= flavors.SQL_SP_FLOAT_MAX:
        raise p.invalid("rxtx_factor", rxtx, f"{rxtx} is less than or equal to the minimum of 0")
    is_public = p.boolean(f.get("os-flavor-access:is_public", True), "os-flavor-access:is_public")
    desc = p.description(f.get("description"))
    info = flavors.create_flavor(req.context, name=name, ram=ram, vcpus=vcpus, disk=disk, flavorid=flavorid,
                                 ephemeral=ephemeral, swap=swap, rxtx_factor=rxtx, is_public=is_public,
                                 description=desc)
    return {"flavor": _full(req, info)}


@api.route("/v2.1/flavors/{flavor_id}", "PUT")
def update_flavor(req):
    if not at_least(req, "2.55"):
        raise NotFound("The resource could not be found.")
    p.authorize(req, R + "update", {})
    f = p.body(req, "flavor", ("description",), ("description",))
    desc = p.description(f["description"])
    return {"flavor": _full(req, flavors.update_description(req.context, req.path_params["flavor_id"], desc))}


@api.route("/v2.1/flavors/{flavor_id}", "DELETE")
def delete_flavor(req):
    p.authorize(req, R + "delete", {})
    flavors.delete_flavor(req.context, req.path_params["flavor_id"])
    return 202, None


# ---------------------------------------------------------------------------- extra specs
def _check_specs(req, specs: dict) -> dict:
    out = {}
    for key, value in specs.items():
        if not SPEC_KEY_RE.match(key):
            raise p.invalid("extra_specs", specs, f"Additional properties are not allowed ('{key}' was unexpected)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise p.invalid(key, value, f"{value!r} is not of type 'string', 'number'")
        text = str(value)
        if len(text) > 255:
            raise BadRequest(f"extra_specs value has more than 255 characters.")
        if at_least(req, "2.86"):
            spec_rules.validate(key, text)
        out[key] = text
    return out


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs", "GET")
def list_extra_specs(req):
    ctx = p.authorize(req, ES + "index")
    p.strict_query(req, (), "2.102")
    return {"extra_specs": dict(flavors.get_flavor(ctx, req.path_params["flavor_id"]).extra_specs)}


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs", "POST")
def create_extra_specs(req):
    p.authorize(req, ES + "create", {})
    specs = p.body(req, "extra_specs")
    checked = _check_specs(req, specs)
    flavors.set_extra_specs(req.context, req.path_params["flavor_id"], checked)
    return {"extra_specs": specs}


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "GET")
def show_extra_spec(req):
    ctx = p.authorize(req, ES + "show")
    p.strict_query(req, (), "2.102")
    fid, key = req.path_params["flavor_id"], req.path_params["key"]
    specs = flavors.get_flavor(ctx, fid).extra_specs
    if key not in specs:
        raise NotFound(f"Flavor {fid} has no extra specs with key {key}.")
    return {key: specs[key]}


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "PUT")
def update_extra_spec(req):
    p.authorize(req, ES + "update", {})
    data = req.json
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input: {data!r} is not of type 'object'")
    if len(data) > 1:
        raise BadRequest(f"Invalid input for field/attribute. Value: {data}. {data} has too many properties")
    if not data:
        raise BadRequest(f"Invalid input for field/attribute. Value: {data}. {data} does not have enough properties")
    checked = _check_specs(req, data)
    if req.path_params["key"] not in data:
        raise BadRequest("Request body and URI mismatch")
    flavors.set_extra_specs(req.context, req.path_params["flavor_id"], checked)
    return data


@api.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "DELETE")
def delete_extra_spec(req):
    p.authorize(req, ES + "delete", {})
    flavors.delete_extra_spec(req.context, req.path_params["flavor_id"], req.path_params["key"])
    return 200, None


# ---------------------------------------------------------------------------- access
def _access_body(flavor_id: str, projects: list[str]) -> dict:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": t} for t in projects]}


@api.route("/v2.1/flavors/{flavor_id}/os-flavor-access", "GET")
def list_access(req):
    p.authorize(req, FA, {})
    p.strict_query(req, (), "2.102")
    fid = req.path_params["flavor_id"]
    flavors.get_flavor(None, fid)
    return _access_body(fid, flavors.access_list(fid))


@api.route("/v2.1/flavors/{flavor_id}/action", "POST")
def flavor_action(req):
    fid = req.path_params["flavor_id"]
    data = req.json
    if not isinstance(data, dict) or len(data) != 1:
        raise BadRequest("There is either no action or more than one action in the request body.")
    action = next(iter(data))
    if action not in ("addTenantAccess", "removeTenantAccess"):
        raise BadRequest(f"There is no such action: {action}")
    rule = FA + (":add_tenant_access" if action == "addTenantAccess" else ":remove_tenant_access")
    p.authorize(req, rule, {})
    inner = p.body(req, action, ("tenant",), ("tenant",))
    tenant = inner["tenant"]
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= 255:
        raise p.invalid(f"{action}/tenant", tenant, f"{tenant!r} is not a valid project id")
    flavor = flavors.get_flavor(None, fid)
    p.verify_project(tenant)
    if action == "addTenantAccess":
        return _access_body(fid, flavors.add_access(req.context, fid, tenant))
    return _access_body(fid, flavors.remove_access(req.context, fid, tenant))
