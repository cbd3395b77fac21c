"""Networking (Neutron v2.0) as a pocketstack service: its ASGI app and policy.

Mounted under `/network` (catalog type `network`); the tables come from this service's
migrations.
"""
from __future__ import annotations

from pocketstack.common.runtime import Runtime


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.network.api import versions  # noqa: F401
    from pocketstack.network.api.common import api

    return api.app()


def setup(rt: Runtime) -> None:
    from pocketstack.network.api.common import api

    api.www_authenticate = f"Keystone uri='{rt.config.public_url}/v3'"
