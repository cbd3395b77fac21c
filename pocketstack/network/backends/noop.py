"""The default dataplane: builds nothing on the host.

Ports are reported as plugged into a bridge named as the Linux-bridge backend would name
it, so compute can run with the fake virt driver; the agents listed by `agents.py` (DHCP,
L3, metadata on this host) stay alive because this process "is" them.
"""
from __future__ import annotations

from pocketstack.network.backends.base import NetworkBackend, bridge_name, tap_name


class NoopBackend(NetworkBackend):
    name = "noop"

    def ensure_network(self, network: dict) -> str:
        return bridge_name(network["id"])

    def delete_network(self, network_id: str) -> None:
        return None

    def plug_port(self, port: dict, network: dict) -> dict:
        return {"tap": tap_name(port["id"]), "bridge": bridge_name(network["id"]), "mtu": network.get("mtu") or 1500}

    def unplug_port(self, port_id: str) -> None:
        return None

    def sync_dhcp(self, network: dict) -> None:
        return None

    def sync_router(self, router: dict) -> None:
        return None

    def delete_router(self, router_id: str) -> None:
        return None

    def apply_security_groups(self, port: dict) -> None:
        return None
