"""Block Storage (Cinder v3) as a pocketstack service: its ASGI app, policy and backend.

Mounted under `/volume` (catalog types `block-storage` and `volumev3`, endpoint
`/volume/v3/$(project_id)s`); tables from this service's migrations. `bootstrap(rt)`
(after the schema is at head) creates the default volume type, registers the scheduler
and volume services, repairs operations a crash interrupted and starts the heartbeat.
"""
from __future__ import annotations

from pocketstack.common.runtime import Runtime
from pocketstack.volume.policies import DEFAULTS


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.volume.api import misc, snapshots, types, versions, volumes  # noqa: F401
    from pocketstack.volume.api import backups, encryption, groups, manage, transfers  # noqa: F401
    from pocketstack.volume.api.common import MicroversionMiddleware, api

    return MicroversionMiddleware(api.app())


def setup(rt: Runtime) -> None:
    from pocketstack.volume import manager
    from pocketstack.volume.api.common import api

    rt.enforcer.register_defaults(DEFAULTS)
    api.www_authenticate = f"Keystone uri='{rt.config.public_url}/v3'"
    manager.set_backend(None)  # rebuilt from this runtime's configuration
    from pocketstack.volume import backups

    backups.reset_drivers()


def bootstrap(rt: Runtime) -> None:
    from pocketstack.volume import manager

    manager.start(rt)
