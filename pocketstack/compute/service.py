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
    from pocketstack.compute.api import console_auth_tokens  # noqa: F401
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
    check_virt_driver(rt.config)
    _setup_metadata(rt)


QEMU_DRIVERS = ("qemu", "kvm", "libvirt")


def check_virt_driver(config) -> None:
    """`[compute] compute_driver` (flag `--virt-driver`, env POCKETSTACK_VIRT_DRIVER) must be
    usable here: the qemu driver needs root (its instances' taps and bridges), QEMU and
    qemu-img, and one server process (the agent owns the guests); a ConfigError is the
    CLI's one-line message, never a traceback."""
    import os
    import shutil

    from pocketstack.common.config import ConfigError

    kind = (config.get("compute", "compute_driver") or "fake").strip().lower()
    if kind == "fake":
        return
    if kind not in QEMU_DRIVERS:
        raise ConfigError(f"[compute] compute_driver must be fake or qemu, not {kind!r}")
    if os.geteuid() != 0:
        raise ConfigError("the qemu virt driver needs root (taps and bridges for the instances' NICs); "
                          "run pocketstack as root or use --virt-driver fake")
    binary = (config.get("compute", "qemu_binary", "") or "qemu-system-x86_64").strip()
    missing = [tool for tool in (binary, "qemu-img") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"the qemu virt driver needs {' and '.join(missing)}: run tools/install-system-deps.sh "
                          "(packages qemu-system-x86, qemu-utils) or use --virt-driver fake")
    if config.getint("pocketstack", "workers") > 1:
        raise ConfigError("[compute] compute_driver = qemu runs in one server process: use workers = 1")


def banner_hint(config) -> str | None:
    """The line `pocketstack up` prints about simulated instances and how to get real ones."""
    driver = (config.get("compute", "compute_driver") or "fake").strip().lower()
    backend = (config.get("network", "backend") or "noop").strip().lower()
    if "compute" not in config.enabled_services or (driver in QEMU_DRIVERS and backend != "noop"):
        return None
    if driver in QEMU_DRIVERS:
        return ("  instances:    QEMU guests without a network dataplane (noop backend); for bridges, DHCP "
                "and NAT add --network-backend linuxbridge")
    return ("  instances:    simulated (fake virt driver); real VMs with networking: "
            "sudo pocketstack up --virt-driver qemu --network-backend linuxbridge")


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
    """The metadata API at `/metadata` (what the dataplane routes 169.254.169.254 to) and the
    noVNC console proxy at `/compute/console` (mounted before `/compute`)."""
    from pocketstack.compute import console
    from pocketstack.compute.api.metadata import api as metadata_api

    return {"/metadata": metadata_api.app(), "/compute/console": console.app()}


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
