"""Networking (Neutron v2.0) as a pocketstack service: its ASGI app and policy.

Mounted under `/network` (catalog type `network`); the tables come from this service's
migrations.
"""
from __future__ import annotations

from pocketstack.common.runtime import Runtime


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.network.api import versions  # noqa: F401
    # core resources and conventions (networks, subnets, ports, subnet pools, quotas, tags, extensions)
    from pocketstack.network.api import extensions, networks, ports, quotas, subnetpools, subnets  # noqa: F401
    # security groups, routers, floating IPs, RBAC, auto-allocated topology, AZs, agents
    from pocketstack.network.api import agents, floating_ips, rbac, routers, security_groups  # noqa: F401
    from pocketstack.network.api import tags  # noqa: F401  (after the resources: generic paths last)
    from pocketstack.network.api.common import api

    return api.app()


def setup(rt: Runtime) -> None:
    from pocketstack.network.api.common import api

    api.www_authenticate = f"Keystone uri='{rt.config.public_url}/v3'"
    from pocketstack.network import core
    from pocketstack.network.policies import DEFAULTS

    rt.enforcer.register_defaults(DEFAULTS)
    core.register()  # extensions, quota resources, tag targets of the core resources
    # quota resources and the port-delete hooks of the L3 / security group modules, also when
    # only the Python interface is used (no API app built)
    from pocketstack.network import floating_ips, rbac, routers, security_groups  # noqa: F401
    # the dataplane backend ([network] backend: noop, linuxbridge; docs/network-dataplane.md)
    from pocketstack.common.config import ConfigError
    from pocketstack.network import backends

    try:
        if rt.config.get("network", "backend").strip().lower() not in ("", "noop") and \
                rt.config.getint("pocketstack", "workers") > 1:
            raise backends.BackendError("[network] backend = linuxbridge runs in one server process: "
                                        "use workers = 1")
        backends.configure(rt)
    except backends.BackendError as exc:
        raise ConfigError(str(exc)) from None


def bootstrap(rt: Runtime) -> None:
    """With `[network] external_network = demo`: the `public` external network (idempotent;
    docs/network-dataplane.md). Its outside namespace is the dataplane's."""
    if (rt.config.get("network", "external_network") or "").strip().lower() not in ("", "none"):
        from pocketstack.network.backends.outside import ensure_public_network

        ensure_public_network(rt)
        from pocketstack.network import backends

        backends.get_dataplane().request_full_sync()
