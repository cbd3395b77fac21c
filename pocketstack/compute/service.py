"""Compute (Nova v2.1) as a pocketstack service: its ASGI app, policy, hosts and bootstrap.

Mounted under `/compute` (catalog type `compute`, endpoint `/compute/v2.1`); the tables
come from this service's migrations.
"""
from __future__ import annotations

from pocketstack.common.runtime import Runtime


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.compute.api import versions  # noqa: F401
    from pocketstack.compute.api import periphery  # noqa: F401  (flavors, keypairs, quotas, ...)
    from pocketstack.compute.api import images, server_actions, server_extras, servers  # noqa: F401
    from pocketstack.compute.api.common import MicroversionMiddleware, api
    from pocketstack.compute import hosts

    hosts.start()  # register this controller's compute hosts (fake driver) and heartbeat them
    return _ComputeRequestId(MicroversionMiddleware(api.app()))


class _ComputeRequestId:
    """Nova answers `x-compute-request-id` too (the same id): clients and Tempest read it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = scope.get("state", {}).get("request_id")

        async def stamped(message):
            if message["type"] == "http.response.start" and rid:
                message["headers"] = list(message.get("headers", [])) + [(b"x-compute-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, stamped)


def setup(rt: Runtime) -> None:
    from pocketstack.compute.api.common import api

    api.www_authenticate = f"Keystone uri='{rt.config.public_url}/v3'"
    from pocketstack.compute.policies import DEFAULTS

    rt.enforcer.register_defaults(DEFAULTS)
    _setup_metadata(rt)


def _setup_metadata(rt: Runtime) -> None:
    """Point the metadata API at the real instances and the shared proxy secret."""
    from pocketstack.compute import hosts
    from pocketstack.compute.api import metadata as metadata_api
    from pocketstack.compute.api.server_extras import set_password

    def find(instance_uuid: str):
        inst = hosts.load(instance_uuid)
        if inst is None or inst.vm_state == "deleted":
            return None
        return hosts.instance_info(inst).metadata_view

    def get_password(instance_uuid: str) -> str:
        inst = hosts.load(instance_uuid)
        sm = (inst.system_metadata or {}) if inst is not None else {}
        return "".join(sm.get(f"password_{i}", "") for i in range(4))

    def set_once(instance_uuid: str, password: str) -> bool:
        if get_password(instance_uuid):
            return False
        set_password(instance_uuid, password)
        return True

    metadata_api.configure(metadata_secret(rt), find, get_password, set_once)


def bootstrap(rt: Runtime) -> None:
    """Seed data once the schema is at head: the guide's m1.* flavors on a new cloud and
    upstream's default quotas as the `default` quota class (both idempotent)."""
    from pocketstack.compute import flavors, quotas

    flavors.ensure_default_flavors()
    quotas.ensure_default_class()


def extra_apps() -> dict:
    """The metadata API at `/metadata` (what the dataplane routes 169.254.169.254 to)."""
    from pocketstack.compute.api.metadata import api as metadata_api

    return {"/metadata": metadata_api.app()}


def metadata_secret(rt: Runtime) -> str:
    """`[neutron] metadata_proxy_shared_secret`, or one generated once into the state dir."""
    import os
    import secrets

    configured = rt.config.get("neutron", "metadata_proxy_shared_secret", "")
    if configured:
        return configured
    path = rt.config.state_dir / "compute" / "metadata_proxy_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()
