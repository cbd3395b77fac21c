"""Object Storage as a pocketstack service: the Swift v1 API under `/object`.

`setup()` registers the policy and opens the storage engine: the ring is
`<state_dir>/object/object.ring.gz`; when there is none, one is bootstrapped with
`pocketstack ring`'s builder (`[object] replicas` replicas, default 3, on `[object] devices`
device directories d1..dN, default 3, one per zone). Catalog entry (type `object-store`,
`/object/v1/AUTH_$(project_id)s`) comes from identity's catalog sync.
"""
from __future__ import annotations

import os
import secrets

from pocketstack.common.runtime import Runtime
from pocketstack.object.policies import DEFAULTS
from pocketstack.object.ring import Ring
from pocketstack.object.storage import Storage, bootstrap_ring

_storage: Storage | None = None


def app():
    from pocketstack.object.api import api

    return _TransId(api.app())


def extra_apps() -> dict[str, object]:
    """More apps to mount on the main port: the S3 API at `/s3` (not in the catalog: S3
    clients are pointed at `<public_url>/s3` with EC2 credentials)."""
    from pocketstack.object import s3

    return {"/s3": s3.app()}


class _TransId:
    """Every response (errors included) carries Swift's `X-Trans-Id` and `X-Openstack-Request-Id`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from pocketstack.object.api import trans_id

        tid = trans_id()

        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-trans-id"]
                headers.append((b"x-trans-id", tid.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


def _hash_suffix(root) -> str:
    path = root / "hash_path_suffix"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(8))
    return path.read_text().strip()


def setup(rt: Runtime) -> None:
    global _storage
    from pocketstack.object.api import api

    rt.enforcer.register_defaults(DEFAULTS)
    cfg = rt.config
    root = cfg.state_dir / "object"
    replicas = int(cfg.get("object", "replicas", "3"))
    devices = int(cfg.get("object", "devices", str(max(3, replicas))))
    ring_path = bootstrap_ring(root, replicas=replicas, devices=devices)
    ring = Ring(ring_path, hash_path_suffix=_hash_suffix(root))
    _storage = Storage(root, ring)
    _start_replicator(cfg, _storage)
    from pocketstack.object import expirer

    expirer.start(float(cfg.get("object", "expirer_interval", "30") or 0))  # X-Delete-At (expirer.py)
    api.www_authenticate = f"Keystone uri='{cfg.public_url}/v3'"


_background = None


def _start_replicator(cfg, storage: Storage) -> None:
    """The replicator/auditor thread (`[object] replicator_interval`, 0 = off; see replicator.py)."""
    global _background
    from pocketstack.object import replicator

    if _background is not None:
        _background.stop.set()
        _background = None
    interval = float(cfg.get("object", "replicator_interval", "30") or 0)
    if interval <= 0:
        return
    _background = replicator.Background(
        storage, interval,
        audit_interval=float(cfg.get("object", "auditor_interval", "3600") or 0),
        audit_bytes_per_second=float(cfg.get("object", "auditor_bytes_per_second", "10000000") or 0),
        reclaim_age=float(cfg.get("object", "reclaim_age", str(replicator.RECLAIM_AGE)))).start()


def open_storage(cfg) -> Storage:
    """The storage engine of a state dir, without the rest of the service (one-shot commands)."""
    root = cfg.state_dir / "object"
    replicas = int(cfg.get("object", "replicas", "3"))
    devices = int(cfg.get("object", "devices", str(max(3, replicas))))
    ring = Ring(bootstrap_ring(root, replicas=replicas, devices=devices), hash_path_suffix=_hash_suffix(root))
    return Storage(root, ring)


def get_storage() -> Storage:
    if _storage is None:
        raise RuntimeError("the object service is not set up")
    return _storage
