"""`GET /os-console-auth-tokens/{token}` (admin): where a console token's proxy connects.

Before microversion 2.31 Nova only shows rdp-html5 tokens (400 otherwise); from 2.31 any
type. An unknown or expired token is a 404. The tokens are compute/console.py's."""
from __future__ import annotations

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.compute import console
from pocketstack.compute import servers as sv
from pocketstack.compute.api.common import api, at_least


@api.route("/v2.1/os-console-auth-tokens/{console_token}", "GET")
def show_console_auth_token(req):
    sv.enforce(req.context, "os_compute_api:os-console-auth-tokens")
    token = req.path_params["console_token"]
    info = console.validate(token)
    if info is None:
        raise NotFound("The token is invalid or has expired.")
    if not at_least(req, "2.31") and info["console_type"] != "rdp-html5":
        raise BadRequest("The requested console type details are not accessible")
    return {"console": {"instance_uuid": info["instance_uuid"], "host": info["host"], "port": info["port"],
                        "internal_access_path": info["internal_access_path"]}}
