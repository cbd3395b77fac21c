"""Network dataplane backends (docs/network-dataplane.md).

`[network] backend` picks one: `noop` (default; nothing on the host) or `linuxbridge`
(Linux bridges, taps, a dnsmasq per network in a `qdhcp-` namespace, `qrouter-` namespaces
with NAT; needs root). `service.setup()` calls `configure(rt)`; compute calls
`get_dataplane().plug(port_id)` / `.unplug(port_id)`.
"""
from pocketstack.network.backends.base import (  # noqa: F401
    BackendError, Dataplane, NetworkBackend, configure, get_dataplane, load_backend)
