"""Version discovery: `/` (300 Multiple Choices), `/v3` and `/v2.0`."""
from __future__ import annotations

from pocketstack.identity.api.common import api

V3 = {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
      "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}
V2 = {"id": "v2.0", "status": "deprecated", "updated": "2016-08-04T00:00:00Z",
      "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v2.0+json"}]}


def _v3(req):
    return {**V3, "links": [{"rel": "self", "href": f"{req.base_url}/v3/"}]}


def _v2(req):
    return {**V2, "links": [{"rel": "self", "href": f"{req.base_url}/v2.0/"},
                            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}]}


@api.route("/", "GET")
def list_versions(req):
    return 300, {"versions": {"values": [_v3(req), _v2(req)]}}


@api.route("/v3", "GET")
@api.route("/v3/", "GET")
def show_v3(req):
    return {"version": _v3(req)}


@api.route("/v2.0", "GET")
@api.route("/v2.0/", "GET")
def show_v2(req):
    return {"version": _v2(req)}
