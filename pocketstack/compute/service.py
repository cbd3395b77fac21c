"""Compute (Nova v2.1) as a pocketstack service: its ASGI app, policy, hosts and bootstrap.

Mounted under `/compute` (catalog type `compute`, endpoint `/compute/v2.1`); the tables
come from this service's migrations.
"""
from __future__ import annotations

from pocketstack.common.runtime import Runtime


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.compute.api import versions  # noqa: F401
    from pocketstack.compute.api.common import MicroversionMiddleware, api

    return MicroversionMiddleware(api.app())


def setup(rt: Runtime) -> None:
    from pocketstack.compute.api.common import api

    api.www_authenticate = f"Keystone uri='{rt.config.public_url}/v3'"
