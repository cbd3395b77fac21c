"""CORS for containers and objects (Swift's proxy CORS handling) and `/crossdomain.xml`.

A container opts in with `X-Container-Meta-Access-Control-Allow-Origin` (space-separated
origins, or `*`), `-Max-Age` and `-Expose-Headers`. A preflight `OPTIONS` (no token needed)
with an allowed `Origin` and a known `Access-Control-Request-Method` is answered 200 with
`Access-Control-Allow-Origin` / `-Allow-Methods` / `-Allow-Headers` (what was asked) /
`-Max-Age`; a disallowed one is 401; an `OPTIONS` without `Origin` is a 200 with `Allow`.
Actual requests from an allowed origin get `Access-Control-Allow-Origin` and
`Access-Control-Expose-Headers` (the simple headers, Swift's own, every `X-Container-Meta-*` /
`X-Object-Meta-*` in the answer, and the container's list); other origins get no CORS
headers (`strict_cors_mode`, upstream's default).
"""
from __future__ import annotations

from starlette.responses import Response

from pocketstack.object import capabilities

CROSSDOMAIN_POLICY = '<allow-access-from domain="*" secure="false" />'
OBJECT_METHODS = ("COPY", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT")
CONTAINER_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT")
ACCOUNT_METHODS = ("GET", "HEAD", "OPTIONS", "POST")
EXPOSE = ("cache-control", "content-language", "content-type", "expires", "last-modified", "pragma", "etag",
          "x-timestamp", "x-trans-id", "x-openstack-request-id")

capabilities.register("crossdomain", {"cross_domain_policy": CROSSDOMAIN_POLICY})


def _storage():
    from pocketstack.object.api import storage

    return storage()


def container_cors(account: str, container: str | None) -> dict:
    if not container:
        return {}
    info = _storage().container_info(account, container)
    if info is None:
        return {}
    meta = {k.lower(): v for k, v in info["metadata"].items()}
    return {"allow_origin": meta.get("x-container-meta-access-control-allow-origin"),
            "max_age": meta.get("x-container-meta-access-control-max-age"),
            "expose_headers": meta.get("x-container-meta-access-control-expose-headers")}


def origin_allowed(cors: dict, origin: str) -> bool:
    allowed = {o for o in (cors.get("allow_origin") or "").split(" ") if o}
    return origin in allowed or "*" in allowed


def preflight(req, account: str, container: str | None, obj: str | None) -> Response:
    from pocketstack.object.api import trans_id

    methods = OBJECT_METHODS if obj else CONTAINER_METHODS if container else ACCOUNT_METHODS
    headers = {"Allow": ", ".join(methods), "X-Trans-Id": trans_id(), "Content-Length": "0"}
    origin = req.headers.get("origin")
    if not origin or not container:
        return Response(status_code=200, headers=headers, media_type="text/html; charset=UTF-8")
    cors = container_cors(account, container)
    if not origin_allowed(cors, origin) or req.headers.get("access-control-request-method") not in methods:
        return Response(status_code=401, headers=headers, media_type="text/html; charset=UTF-8")
    wildcard = (cors.get("allow_origin") or "").strip() == "*"
    headers["Access-Control-Allow-Origin"] = "*" if wildcard else origin
    headers["Vary"] = "Origin"
    if cors.get("max_age") is not None:
        headers["Access-Control-Max-Age"] = cors["max_age"]
    headers["Access-Control-Allow-Methods"] = ", ".join(methods)
    asked = [h.strip() for h in req.headers.get("access-control-request-headers", "").split(",") if h.strip()]
    if asked:
        headers["Access-Control-Allow-Headers"] = ", ".join(dict.fromkeys(asked))
        headers["Vary"] += ", Access-Control-Request-Headers"
    return Response(status_code=200, headers=headers, media_type="text/html; charset=UTF-8")


def add_headers(req, account: str, container: str | None, headers: dict) -> dict:
    """CORS headers on an actual (non-preflight) answer for an allowed `Origin`."""
    origin = req.headers.get("origin")
    if not origin or not container:
        return headers
    cors = container_cors(account, container)
    if not origin_allowed(cors, origin):
        return headers
    wildcard = (cors.get("allow_origin") or "").strip() == "*"
    headers["Access-Control-Allow-Origin"] = "*" if wildcard else origin
    expose = list(EXPOSE)
    expose += [k.lower() for k in headers if k.lower().startswith(("x-container-meta", "x-object-meta"))]
    expose += [h.strip().lower() for h in (cors.get("expose_headers") or "").split(" ") if h.strip()]
    headers["Access-Control-Expose-Headers"] = ", ".join(dict.fromkeys(expose))
    return headers


def error_headers(request) -> dict:
    """CORS headers for an error answer (upstream adds them to every answer of a container or
    object request from an allowed origin, errors included, so browsers can read them)."""
    if request is None or not request.headers.get("origin"):
        return {}
    params = request.path_params or {}
    account, container = params.get("account"), params.get("container")
    if not account or not container:
        return {}
    try:
        cors = container_cors(account, container)
    except Exception:  # an error page must render whatever the storage says
        return {}
    origin = request.headers["origin"]
    if not origin_allowed(cors, origin):
        return {}
    wildcard = (cors.get("allow_origin") or "").strip() == "*"
    expose = list(EXPOSE) + [h.strip().lower() for h in (cors.get("expose_headers") or "").split(" ") if h.strip()]
    return {"Access-Control-Allow-Origin": "*" if wildcard else origin,
            "Access-Control-Expose-Headers": ", ".join(dict.fromkeys(expose))}


def crossdomain(req) -> Response:
    from pocketstack.object.api import trans_id

    body = ('<?xml version="1.0"?>\n<!DOCTYPE cross-domain-policy SYSTEM '
            '"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >\n<cross-domain-policy>\n'
            f"{CROSSDOMAIN_POLICY}\n</cross-domain-policy>")
    return Response(body, headers={"X-Trans-Id": trans_id()}, media_type="application/xml; charset=utf-8")
