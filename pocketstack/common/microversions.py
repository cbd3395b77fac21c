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
