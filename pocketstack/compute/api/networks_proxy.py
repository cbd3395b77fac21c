"""os-networks and os-tenant-networks: the read-only network proxies of microversions up to
2.35 (404 from 2.36). They list what the network service shows the caller, through its
Python interface (`pocketstack.network.core`); the nova-network writes they once had
answer 410 Gone at every microversion, as Nova since Ussuri.
"""
from __future__ import annotations

from pocketstack.common.errors import ApiError, Gone, NotFound
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

NET = "os_compute_api:os-networks:"
TENANT = "os_compute_api:os-tenant-networks:"
ADMIN_FIELDS = ("created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge", "vlan",
                "vpn_public_address", "vpn_public_port", "vpn_private_address", "dhcp_start", "project_id",
                "host", "bridge_interface", "multi_host", "priority", "rxtx_base", "mtu", "dhcp_server",
                "enable_dhcp", "share_address")
FIELDS = ("cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6", "gateway_v6", "netmask_v6")


def _core():
    from pocketstack.network import core

    return core


def _gone_after_235(req) -> None:
    if at_least(req, "2.36"):
        raise NotFound("The resource could not be found.")


def _network_view(ctx, net: dict) -> dict:
    out = {"id": net["id"], "label": net.get("name")}
    fields = FIELDS + (ADMIN_FIELDS if ctx.is_admin else ())
    out.update({f: None for f in fields})
    return out


def _get(ctx, net_id: str) -> dict:
    try:
        return _core().get_network(ctx, net_id)
    except ApiError as err:
        if err.code == 404:
            raise NotFound("Network not found") from None
        raise


@api.route("/v2.1/os-networks", "GET")
def list_networks(req):
    _gone_after_235(req)
    ctx = p.authorize(req, NET + "list")
    return {"networks": [_network_view(ctx, n) for n in _core().list_networks(ctx)]}


@api.route("/v2.1/os-networks/{network_id}", "GET")
def show_network(req):
    _gone_after_235(req)
    ctx = p.authorize(req, NET + "show")
    return {"network": _network_view(ctx, _get(ctx, req.path_params["network_id"]))}


@api.route("/v2.1/os-tenant-networks", "GET")
def list_tenant_networks(req):
    _gone_after_235(req)
    ctx = p.authorize(req, TENANT + "list")
    return {"networks": [{"id": n["id"], "cidr": "None", "label": n.get("name")}
                         for n in _core().list_networks(ctx)]}


@api.route("/v2.1/os-tenant-networks/{network_id}", "GET")
def show_tenant_network(req):
    _gone_after_235(req)
    ctx = p.authorize(req, TENANT + "show")
    net = _get(ctx, req.path_params["network_id"])
    return {"network": {"id": net["id"], "cidr": "None", "label": net.get("name")}}


@api.route("/v2.1/os-networks", "POST")
@api.route("/v2.1/os-networks/add", "POST")
@api.route("/v2.1/os-networks/{network_id}", "DELETE")
@api.route("/v2.1/os-networks/{network_id}/action", "POST")
@api.route("/v2.1/os-tenant-networks", "POST")
@api.route("/v2.1/os-tenant-networks/{network_id}", "DELETE")
def removed_network_api(req):
    """nova-network's writes, removed upstream in 21.0.0 (Ussuri)."""
    raise Gone("This API only works with nova-network, which was removed in the 21.0.0 (Ussuri) release.")
