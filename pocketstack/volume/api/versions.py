"""Version discovery: `GET /` (300 Multiple Choices, as Cinder answers) and `GET /v3/`."""
from __future__ import annotations

from pocketstack.volume.api.common import MAX_VERSION, MIN_VERSION, api, service_url

UPDATED = "2023-08-31T00:00:00Z"


def _v3(root: str) -> dict:
    return {"id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
            "updated": UPDATED,
            "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                      {"rel": "self", "href": f"{root}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}]}


@api.route("/", "GET", inline=True)
def list_versions(req):
    return 300, {"versions": [_v3(service_url(req))]}


@api.route("/v3", "GET", inline=True)
@api.route("/v3/", "GET", inline=True)
def show_version(req):
    return {"versions": [_v3(service_url(req))]}
