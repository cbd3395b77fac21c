"""Microversion negotiation (`OpenStack-API-Version` and the legacy per-service headers).

A service declares its min and max; `negotiate` reads the request headers and returns
the version to serve, or raises 406 for one outside the range, as upstream does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from pocketstack.common.errors import ApiError, BadRequest


class NotAcceptable(ApiError):
    code = 406


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> "Version":
        m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
        if not m:
            raise BadRequest(f"Invalid microversion string {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    def __lt__(self, other):
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self):
        return f"{self.major}.{self.minor}"


def negotiate(headers, service_type: str, minimum: str, maximum: str,
              legacy_header: str | None = None) -> Version:
    lo, hi = Version.parse(minimum), Version.parse(maximum)
    requested = None
    for value in headers.getlist("openstack-api-version") if hasattr(headers, "getlist") else \
            [headers.get("openstack-api-version")]:
        if not value:
            continue
        for part in value.split(","):
            bits = part.strip().split(None, 1)
            if len(bits) == 2 and bits[0].lower() == service_type:
                requested = bits[1]
    if requested is None and legacy_header:
        requested = headers.get(legacy_header)
    if requested is None:
        return lo
    if requested.strip().lower() == "latest":
        return hi
    version = Version.parse(requested)
    if not lo <= version <= hi:
        raise NotAcceptable(f"Version {version} is not supported by the API. "
                            f"Minimum is {lo} and maximum is {hi}.")
    return version


def response_headers(service_type: str, version: Version, legacy_header: str | None = None) -> dict:
    headers = {"OpenStack-API-Version": f"{service_type} {version}",
               "Vary": "OpenStack-API-Version"}
    if legacy_header:
        headers[legacy_header] = str(version)
        headers["Vary"] += f", {legacy_header}"
    return headers


class MicroversionMiddleware:
    """ASGI middleware for a microversioned API (compute, volume, ...): negotiates the
    version before routing, leaves it in `scope[scope_key]` for handlers, answers an
    unacceptable one with the service's own error body, and stamps the served version on
    every response (errors too)."""

    def __init__(self, app, *, service_type: str, minimum, maximum, legacy_header: str | None,
                 scope_key: str, render_error):
        # minimum/maximum: strings or zero-argument callables (a module constant raised later)
        self.app, self.service_type, self.legacy_header = app, service_type, legacy_header
        self.minimum, self.maximum = minimum, maximum
        self.scope_key, self.render_error = scope_key, render_error

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        lo = self.minimum() if callable(self.minimum) else self.minimum
        hi = self.maximum() if callable(self.maximum) else self.maximum
        try:
            ver = negotiate(Headers(scope=scope), self.service_type, lo, hi, self.legacy_header)
        except ApiError as err:
            return await self.render_error(err, None)(scope, receive, send)
        scope[self.scope_key] = ver
        extra = [(k.lower().encode(), v.encode())
                 for k, v in response_headers(self.service_type, ver, self.legacy_header).items()]
        names = {k for k, _ in extra}

        async def stamped(message):
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if k.lower() not in names] + extra
            await send(message)

        await self.app(scope, receive, stamped)
