"""Version discovery: `GET /` lists v2.0; `GET /v2.0` lists the resource collections."""
from __future__ import annotations

from pocketstack.network.api.common import api


def _root(req) -> str:
    raw = req.raw
    return str(raw.url.replace(path=raw.scope.get("root_path", ""), query="", fragment="")).rstrip("/")


@api.route("/", "GET", inline=True)
def list_versions(req):
    return {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": f"{_root(req)}/v2.0/"}]}]}
