"""Image as a pocketstack service: its ASGI app, its policy and its stores.

Nothing to bootstrap: the catalog entry (type `image`, `/image`) comes from identity's
catalog sync, the tables from this service's migrations.
"""
from __future__ import annotations

from pocketstack.common.runtime import Runtime
from pocketstack.image import core
from pocketstack.image.policies import DEFAULTS


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.image.api import data, images, info, members, metadefs, schemas, versions  # noqa: F401
    from pocketstack.image.api.common import api

    return api.app()


def setup(rt: Runtime) -> None:
    rt.enforcer.register_defaults(DEFAULTS)
    core.set_backend(None)  # rebuilt from this runtime's configuration
    core.backend()
