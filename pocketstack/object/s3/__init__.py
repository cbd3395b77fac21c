"""The S3 API of the object service, mounted at `/s3` on the main port.

`app()` is the ASGI app `pocketstack.object.service.extra_apps()` hands to the server.
Path-style addressing (`/s3/<bucket>/<key>`) always works; virtual-host style
(`http://<bucket>.<domain>:PORT/s3/<key>`) too when `[s3] domain` names the host clients use
for the endpoint (and DNS sends `*.<domain>` here): such a request is rewritten to its
path-style form before routing, keeping what the client sent for the signature check.

Every response carries S3's `x-amz-request-id` (the request's `x-openstack-request-id`, so
one id finds the access-log line) and `x-amz-id-2`.
"""
from __future__ import annotations


def app():
    from pocketstack.object.s3.api import api

    return _S3Entry(api.app())


class _S3Entry:
    def __init__(self, app):
        self.app = app
        self._domain: str | None = None

    def domain(self) -> str:
        if self._domain is None:
            from pocketstack.common.runtime import current

            self._domain = (current().config.get("s3", "domain", "") or "").strip().lower().strip(".")
        return self._domain

    def _virtual_host(self, scope) -> dict:
        """Rewrite `<bucket>.<domain>` requests to path-style; returns the (new) scope."""
        domain = self.domain()
        if not domain:
            return scope
        host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1").lower()
                break
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not host.endswith("." + domain):
            return scope
        bucket = host[: -len(domain) - 1]
        root = scope.get("root_path", "")
        path, raw = scope["path"], scope.get("raw_path") or scope["path"].encode()
        rest = path[len(root):] if path.startswith(root) else path
        raw_rest = raw[len(root.encode()):] if raw.startswith(root.encode()) else raw
        return {**scope, "path": f"{root}/{bucket}{rest or '/'}",
                "raw_path": f"{root}/{bucket}".encode() + (raw_rest or b"/"),
                "s3_vhost": {"bucket": bucket, "raw_path": raw}}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope = self._virtual_host(scope)
        request_id = (scope.get("state") or {}).get("request_id", "").encode()

        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-amz-request-id", request_id))
                headers.append((b"x-amz-id-2", request_id))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)
