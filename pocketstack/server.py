"""The all-in-one server: one port, every enabled service mounted under its prefix.

Identity is mounted at the root (so `OS_AUTH_URL=http://host:5000/v3` works as users
expect); every later service under `/image`, `/compute`, ... The catalog (identity's
`sync_catalog`) is the only place those URLs are written down for clients.
"""
from __future__ import annotations

import importlib
import logging
import logging.handlers
import os
import shlex
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from pocketstack.common import db as dbmod
from pocketstack.common import events
from pocketstack.common.config import Config
from pocketstack.common.policy import Enforcer
from pocketstack.common.runtime import Runtime, current, set_current
from pocketstack.common.tasks import ThreadTaskRunner
from pocketstack.common.web import RequestIdMiddleware
from pocketstack.identity.catalog import SERVICES

log = logging.getLogger("pocketstack")

# service name -> module with app(), setup(rt) and optionally bootstrap(rt, ...)
SERVICE_MODULES = {"identity": "pocketstack.identity.service", "image": "pocketstack.image.service",
                   "object": "pocketstack.object.service", "compute": "pocketstack.compute.service",
                   "network": "pocketstack.network.service", "volume": "pocketstack.volume.service"}


def setup_logging(cfg: Config, to_stderr: bool = True) -> None:
    logs = cfg.data_dir("logs")
    root = logging.getLogger()
    level = getattr(logging, cfg.get("log", "level").upper(), logging.INFO)
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fh = logging.handlers.WatchedFileHandler(logs / "pocketstack.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"))
    root.addHandler(fh)
    if to_stderr:
        sh = logging.StreamHandler()
        sh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        sh.setLevel(logging.WARNING)
        root.addHandler(sh)
    logging.getLogger("uvicorn.access").disabled = True


def build_runtime(cfg: Config) -> Runtime:
    database = dbmod.Database(cfg.db_url)
    enforcer = Enforcer(cfg.state_dir / "policy.yaml")
    bus = events.EventBus(cfg.state_dir / "logs" / "events.jsonl")
    events.set_bus(bus)
    rt = Runtime(config=cfg, db=database, enforcer=enforcer, bus=bus, tasks=ThreadTaskRunner())
    set_current(rt)
    for name in cfg.enabled_services:
        if name in SERVICE_MODULES:
            importlib.import_module(SERVICE_MODULES[name]).setup(rt)
    return rt


def initialise(rt: Runtime, admin_password: str, reset_password: bool = False) -> dict:
    """Schema to head, keys, bootstrap data and the catalog (idempotent)."""
    changed = dbmod.upgrade(rt.db) if dbmod.needs_upgrade(rt.db) else []
    ident = importlib.import_module(SERVICE_MODULES["identity"])
    created = ident.bootstrap(rt, admin_password, reset_password=reset_password)
    # Other services seed their own data (compute's default flavors and quotas) once the
    # schema is at head: `bootstrap(rt)`, idempotent.
    for name in rt.config.enabled_services:
        if name != "identity" and name in SERVICE_MODULES:
            hook = getattr(importlib.import_module(SERVICE_MODULES[name]), "bootstrap", None)
            if hook is not None:
                hook(rt)
    write_client_files(rt.config, admin_password)
    return {"migrated": changed, **created}


def create_app(rt: Runtime | None = None) -> RequestIdMiddleware:
    rt = rt or current()
    mounts = []
    identity_app = None
    for name in rt.config.enabled_services:
        if name not in SERVICE_MODULES:
            continue
        module = importlib.import_module(SERVICE_MODULES[name])
        app = module.app()
        # A service may serve more than its catalog endpoint (compute's `/metadata`, the
        # object service's `/s3`): `extra_apps()` maps further prefixes to ASGI apps.
        for extra_prefix, extra_app in getattr(module, "extra_apps", dict)().items():
            mounts.append(Route(extra_prefix, endpoint=_ServiceRoot(extra_prefix, extra_app)))
            mounts.append(Mount(extra_prefix, app=extra_app))
        prefix = SERVICES.get(name, ((), f"/{name}", ""))[1]
        if prefix:
            # The catalog URL itself (`/image`, no trailing slash) is the service's root too.
            mounts.append(Route(prefix, endpoint=_ServiceRoot(prefix, app)))
            mounts.append(Mount(prefix, app=app))
        else:
            identity_app = app
    if identity_app is not None:
        mounts.append(Mount("", app=identity_app))
    root = Starlette(routes=mounts)
    if identity_app is not None:
        # A path no mount matches (Starlette's `.*` stops at a newline, e.g. `/v3/users/%0A/x`)
        # still gets identity's JSON 404 instead of a plain-text one.
        root.router.default = identity_app
    return RequestIdMiddleware(root)


class _ServiceRoot:
    """ASGI app serving `<prefix>` exactly as `<prefix>/` of the mounted service."""

    def __init__(self, prefix: str, app):
        self.prefix, self.app = prefix, app

    async def __call__(self, scope, receive, send):
        parent = scope.get("root_path", "")
        root = parent + self.prefix
        scope = {**scope, "app_root_path": scope.get("app_root_path", parent), "root_path": root,
                 "path": root + "/", "raw_path": (root + "/").encode()}
        await self.app(scope, receive, send)


def worker_app() -> RequestIdMiddleware:
    """Factory for extra uvicorn worker processes (`--workers N`)."""
    cfg = Config.load(os.environ["POCKETSTACK_STATE_DIR"])
    setup_logging(cfg, to_stderr=True)
    return create_app(build_runtime(cfg))


# ---------------------------------------------------------------------------- client files
def write_client_files(cfg: Config, admin_password: str) -> tuple[Path, Path]:
    auth_url = f"{cfg.public_url}/v3"
    clouds = cfg.state_dir / "clouds.yaml"
    openrc = cfg.state_dir / "openrc"
    _write_private(clouds, (
        "clouds:\n"
        "  pocketstack:\n"
        "    auth:\n"
        f"      auth_url: {auth_url}\n"
        "      username: admin\n"
        f"      password: {_yaml_str(admin_password)}\n"
        "      project_name: admin\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        f"    region_name: {cfg.region}\n"
        "    identity_api_version: 3\n"
        "    interface: public\n"
    ))
    _write_private(openrc, (
        "# source this file: admin credentials of the pocketstack cloud\n"
        f"export OS_AUTH_URL={auth_url}\n"
        "export OS_USERNAME=admin\n"
        f"export OS_PASSWORD={shlex.quote(admin_password)}\n"
        "export OS_PROJECT_NAME=admin\n"
        "export OS_USER_DOMAIN_NAME=Default\n"
        "export OS_PROJECT_DOMAIN_NAME=Default\n"
        f"export OS_REGION_NAME={cfg.region}\n"
        "export OS_IDENTITY_API_VERSION=3\n"
        "export OS_INTERFACE=public\n"
    ))
    return clouds, openrc


def _yaml_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
