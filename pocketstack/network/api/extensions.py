"""`/v2.0/extensions`: exactly the API extensions this service implements.

Clients probe aliases (the `openstack` CLI hides options, openstacksdk and Tempest skip
tests), so each module registers only what it really does with `resource.register_extension`.
"""
from __future__ import annotations

from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api


@api.route("/v2.0/extensions", "GET", inline=True)
def list_extensions(req):
    req.context  # noqa: B018 - a valid token is required, as upstream
    return {"extensions": [dict(e) for _, e in sorted(r.EXTENSIONS.items())]}


@api.route("/v2.0/extensions/{alias}", "GET", inline=True)
def show_extension(req):
    req.context  # noqa: B018
    ext = r.EXTENSIONS.get(req.path_params["alias"])
    if ext is None:
        raise r.not_found("HTTPNotFound", f"Extension with alias {req.path_params['alias']} does not exist")
    return {"extension": dict(ext)}


@api.route("/v2.0", "GET", inline=True)
@api.route("/v2.0/", "GET", inline=True)
def show_v2(req):
    """`GET /v2.0`: the resource collections of this version (from the routes themselves)."""
    base = str(req.raw.url.replace(query="", fragment="")).rstrip("/")
    names = sorted({route.path.split("/")[2] for route in api.routes
                    if route.path.count("/") == 2 and route.path.startswith("/v2.0/")
                    and "{" not in route.path and route.path.split("/")[2] not in ("", "extensions")})
    return {"resources": [{"name": _singular(n), "collection": n,
                           "links": [{"rel": "self", "href": f"{base}/{n}"}]} for n in names]}


def _singular(collection: str) -> str:
    name = collection.replace("-", "_")
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


@api.route("/v2.0/service-providers", "GET")
def list_service_providers(req):
    """No advanced services (VPN, load balancers) are provided: an empty list, as a Neutron
    without them answers."""
    req.context  # noqa: B018
    return r.list_response(req, "service_providers", [])
