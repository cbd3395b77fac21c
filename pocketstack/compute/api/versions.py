"""Version discovery: `GET /` (all versions) and `GET /v2.1` (this version)."""
from __future__ import annotations

from pocketstack.compute.api.common import MAX_VERSION, MIN_VERSION, api

UPDATED = "2013-07-23T11:33:21Z"


def _root(req) -> str:
    raw = req.raw
    return str(raw.url.replace(path=raw.scope.get("root_path", ""), query="", fragment="")).rstrip("/")


def _v21(root: str) -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
            "updated": UPDATED, "links": [{"rel": "self", "href": f"{root}/v2.1/"}]}


def _v20(root: str) -> dict:
    """The legacy v2.0 API, listed first as Nova lists it (clients and Tempest expect it)."""
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": f"{root}/v2/"}]}


@api.route("/", "GET", inline=True)
def list_versions(req):
    root = _root(req)
    return {"versions": [_v20(root), _v21(root)]}


@api.route("/v2.1", "GET", inline=True)
@api.route("/v2.1/", "GET", inline=True)
def show_version(req):
    root = _root(req)
    body = _v21(root)
    body["links"] = [{"rel": "self", "href": f"{root}/v2.1/"},
                     {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}]
    body["media-types"] = [{"base": "application/json",
                            "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return {"version": body}


@api.route("/v2", "GET", inline=True)
@api.route("/v2/", "GET", inline=True)
def show_v20(req):
    root = _root(req)
    body = _v20(root)
    body["links"] = [{"rel": "self", "href": f"{root}/v2/"},
                     {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}]
    body["media-types"] = [{"base": "application/json",
                            "type": "application/vnd.openstack.compute+json;version=2"}]
    return {"version": body}
