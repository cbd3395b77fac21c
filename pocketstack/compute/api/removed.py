"""APIs upstream removed (nova-network, cells v1, agents, cloudpipe, certificates, fping):
Nova keeps their routes and answers 410 Gone whatever the method or microversion, so old
clients learn the API is gone rather than that they mistyped it. The routes are spelled
out (not a catch-all) so nothing else under /v2.1 is shadowed."""
from __future__ import annotations

from pocketstack.common.errors import Gone
from pocketstack.compute.api.common import api

ALL = ["GET", "POST", "PUT", "DELETE"]
REMOVED = (
    "/os-agents", "/os-agents/{a}",
    "/os-cells", "/os-cells/capacities", "/os-cells/detail", "/os-cells/info", "/os-cells/sync_instances",
    "/os-cells/{a}", "/os-cells/{a}/capacities",
    "/os-certificates", "/os-certificates/{a}",
    "/os-cloudpipe", "/os-cloudpipe/{a}",
    "/os-fixed-ips/{a}", "/os-fixed-ips/{a}/action",
    "/os-floating-ip-dns", "/os-floating-ip-dns/{a}", "/os-floating-ip-dns/{a}/entries/{b}",
    "/os-floating-ips-bulk", "/os-floating-ips-bulk/{a}",
    "/os-fping", "/os-fping/{a}",
    "/os-security-group-default-rules", "/os-security-group-default-rules/{a}",
)


def removed_api(req):
    raise Gone("This resource is no longer available. No forwarding address is given.")


for _path in REMOVED:
    api.route("/v2.1" + _path, ALL)(removed_api)
