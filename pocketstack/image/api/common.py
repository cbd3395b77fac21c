"""The Image API object and what its route modules share.

Errors look like Glance's (webob's): an HTML page by default, which python-glanceclient
and openstacksdk reduce to "404 Not Found: No image found with ID ...", or a JSON
object `{"message", "code", "title"}` when the client asks for JSON (Tempest does).
"""
from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import Response

from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.common.web import Api

MAX_BODY = 1 << 20  # image metadata (properties may be long); data goes through stream routes


def render_error(err: ApiError, request: Request | None) -> Response:
    status = f"{err.code} {err.title}"
    headers = dict(err.headers)
    accept = request.headers.get("accept", "") if request is not None else ""
    if "application/json" in accept and "text/html" not in accept:
        body = json.dumps({"message": err.message, "code": status, "title": err.title})
        return Response(body, status_code=err.code, headers=headers, media_type="application/json")
    page = (f"<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n  <h1>{status}</h1>\n"
            f"  {html.escape(err.message, quote=False)}<br /><br />\n\n\n\n </body>\n</html>")
    return Response(page, status_code=err.code, headers=headers, media_type="text/html")


api = Api("image", max_body=MAX_BODY, error_renderer=render_error)


def session():
    return current().db.session()


def service_url(req) -> str:
    """scheme://host[:port]/image: this service's own root (Starlette's `base_url` is the
    application's root, above the mount)."""
    return str(req.raw.url.replace(path=req.raw.scope.get("root_path", ""), query="", fragment="")).rstrip("/")
