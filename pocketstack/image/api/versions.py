"""Version discovery: `/image/` and `/image/versions` list the v2 minor versions, as Glance."""
from __future__ import annotations

from pocketstack.image.api.common import api, service_url

# v2.0 ... v2.16: through the image tasks API (2.12), cache API (2.14/2.16), stores detail (2.15).
CURRENT = 16


def versions(req) -> dict:
    href = f"{service_url(req)}/v2/"
    out = []
    for minor in range(CURRENT, -1, -1):
        out.append({"id": f"v2.{minor}", "status": "CURRENT" if minor == CURRENT else "SUPPORTED",
                    "links": [{"rel": "self", "href": href}]})
    return {"versions": out}


@api.route("/", "GET", inline=True)
def list_versions(req):
    return 300, versions(req)


@api.route("/versions", "GET", inline=True)
def list_versions_200(req):
    return versions(req)


@api.route("/v2", "GET", inline=True)
@api.route("/v2/", "GET", inline=True)
def unversioned_v2(req):
    return 300, versions(req)
