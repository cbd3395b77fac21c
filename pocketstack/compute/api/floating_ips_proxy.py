"""os-floating-ips and os-floating-ip-pools: the floating-IP proxies of microversions up to
2.35 (404 from 2.36), through the network service's Python interface.

A pool is an external network (by name); a Nova floating IP is `{id, ip, fixed_ip,
instance_id, pool}`, `instance_id` being the server owning the associated port. Without
a `pool` in the body, `[neutron] default_floating_pool` is used, or the only external
network when that is unset or absent.
"""
from __future__ import annotations

from pocketstack.common.errors import ApiError, BadRequest, Forbidden, NotFound
from pocketstack.common.runtime import current
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-floating-ips:"


def _fips():
    from pocketstack.network import floating_ips

    return floating_ips


def _gone(req) -> None:
    if at_least(req, "2.36"):
        raise NotFound("The resource could not be found.")


def _pools(ctx) -> list[dict]:
    from pocketstack.network import core

    return [n for n in core.list_networks(ctx) if n.get("router:external")]


def _pool_names(ctx) -> dict[str, str]:
    return {n["id"]: n["name"] for n in _pools(ctx)}


def _view(fip: dict, names: dict) -> dict:
    details = fip.get("port_details") or {}
    owner = details.get("device_owner") or ""
    return {"id": fip["id"], "ip": fip["floating_ip_address"], "fixed_ip": fip.get("fixed_ip_address"),
            "instance_id": details.get("device_id") if owner.startswith("compute:") else None,
            "pool": names.get(fip["floating_network_id"], fip["floating_network_id"])}


def _get(ctx, fip_id: str) -> dict:
    try:
        return _fips().get_floating_ip(ctx, fip_id)
    except ApiError as err:
        if err.code == 404:
            raise NotFound(f"Floating IP not found for ID {fip_id}") from None
        raise


@api.route("/v2.1/os-floating-ip-pools", "GET")
def list_pools(req):
    _gone(req)
    ctx = p.authorize(req, "os_compute_api:os-floating-ip-pools")
    return {"floating_ip_pools": [{"name": n["name"]} for n in _pools(ctx)]}


@api.route("/v2.1/os-floating-ips", "GET")
def list_floating_ips(req):
    _gone(req)
    ctx = p.authorize(req, R + "list")
    names = _pool_names(ctx)
    mine = [f for f in _fips().list_floating_ips(ctx) if f["project_id"] == ctx.project_id]
    return {"floating_ips": [_view(f, names) for f in mine]}


@api.route("/v2.1/os-floating-ips/{fip_id}", "GET")
def show_floating_ip(req):
    _gone(req)
    ctx = p.authorize(req, R + "show")
    return {"floating_ip": _view(_get(ctx, req.path_params["fip_id"]), _pool_names(ctx))}


@api.route("/v2.1/os-floating-ips", "POST")
def allocate_floating_ip(req):
    _gone(req)
    ctx = p.authorize(req, R + "create")
    data = req.json if req.body else None
    pool = None
    if data is not None:
        if not isinstance(data, dict):
            raise BadRequest(f"Invalid input: {data!r} is not of type 'object'")
        pool = data.get("pool")
        if pool is not None and not isinstance(pool, str):
            raise p.invalid("pool", pool, f"{pool!r} is not of type 'string', 'null'")
    pools = _pools(ctx)
    if pool is None:
        default = current().config.get("neutron", "default_floating_pool", "") or ""
        chosen = [n for n in pools if default and n["name"] == default] or (pools if len(pools) == 1 else [])
    else:
        chosen = [n for n in pools if pool in (n["name"], n["id"])]
    if len(chosen) != 1:
        raise NotFound("Floating IP pool not found.")
    try:
        fip = _fips().create_floating_ip(ctx, {"floating_network_id": chosen[0]["id"], "project_id": ctx.project_id})
    except ApiError as err:
        if getattr(err, "type", "") == "OverQuota" or err.extra.get("type") == "OverQuota":
            raise Forbidden("Maximum number of floating IPs exceeded") from None
        if err.code == 400 and "xhausted" in (getattr(err, "type", "") + str(err.extra.get("type", ""))):
            raise NotFound(f"No more floating IPs in pool {chosen[0]['name']}.") from None
        raise
    return {"floating_ip": _view(fip, {chosen[0]["id"]: chosen[0]["name"]})}


@api.route("/v2.1/os-floating-ips/{fip_id}", "DELETE")
def release_floating_ip(req):
    _gone(req)
    ctx = p.authorize(req, R + "delete")
    fip_id = req.path_params["fip_id"]
    _get(ctx, fip_id)
    _fips().delete_floating_ip(ctx, fip_id)
    return 202, None
