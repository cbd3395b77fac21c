"""The network dataplane interface and the dispatcher that drives it from events.

A `NetworkBackend` turns the Networking service's views (`core.network_sync_data`,
`core.port_sync_data`, `routers.router_sync_data`) into host state. Every method is
idempotent: called again with the same view it changes nothing, called with a new view it
converges. The `Dataplane` subscribes to the service's `network.*` events, collects the
network / router ids they touch, and reconciles them on one worker thread (events may be
emitted before their transaction commits, so the worker waits a moment and re-reads; a
periodic pass catches anything missed). Compute plugs its instances' ports synchronously
through `Dataplane.plug(port_id)` and passes the returned tap to QEMU. Instance taps that
exist on the host (a restart, a device made by hand) are adopted: filtered and kept.
The Dataplane also runs the metadata agent (the unix socket the backend's proxies forward
169.254.169.254 to) and keeps the demo external network's "outside" namespace.
"""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

log = logging.getLogger("pocketstack.network.dataplane")


class BackendError(Exception):
    """The backend cannot run (not root, a missing tool, a bad option)."""


def bridge_name(network_id: str) -> str:
    return "brq" + network_id[:11]


def tap_name(port_id: str) -> str:
    return "tap" + port_id[:11]


class NetworkBackend(ABC):
    """What a network dataplane implements. Views are the dicts of the sync-data functions."""

    name = "base"

    def check(self) -> None:
        """Raise BackendError when this backend cannot run here."""

    def start(self) -> None:
        """Called once before the first reconcile."""

    def stop(self, cleanup: bool = False) -> None:
        """Stop background work; with cleanup remove everything this backend created."""

    @abstractmethod
    def ensure_network(self, network: dict) -> str:
        """Build the L2 segment of `network` (network_sync_data: id, mtu, segments); returns the
        bridge name."""

    @abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Remove the network's bridge, segment devices and DHCP server."""

    @abstractmethod
    def plug_port(self, port: dict, network: dict) -> dict:
        """Create the port's tap on its network's bridge: {"tap", "bridge", "mtu"} (what QEMU
        gets as `-netdev tap,ifname=<tap>,script=no,downscript=no`)."""

    @abstractmethod
    def unplug_port(self, port_id: str) -> None:
        """Remove the port's tap (no error when absent)."""

    @abstractmethod
    def sync_dhcp(self, network: dict) -> None:
        """Serve DHCP for the network's DHCP-enabled subnets: exactly the `dhcp_hosts` entries
        (MAC -> IPAM address), gateway, DNS, host routes, MTU; none when no subnet has DHCP."""

    @abstractmethod
    def sync_router(self, router: dict) -> None:
        """Build the router (router_sync_data): interfaces, gateway, SNAT, floating IPs, routes."""

    @abstractmethod
    def delete_router(self, router_id: str) -> None:
        """Remove the router's namespace and NAT."""

    @abstractmethod
    def apply_security_groups(self, port: dict) -> None:
        """Enforce the port's security groups / anti-spoofing (port_sync_data: groups' rules,
        remote group members, fixed IPs, address pairs); `port_security_enabled` false or a
        `network:` port means unfiltered. Called again on every change of any of those."""

    def metadata_socket(self) -> str | None:
        """The unix socket this backend's metadata proxies (router and isolated-network DHCP
        namespaces, 169.254.169.254) forward to; the Dataplane serves it with the metadata
        agent. None: no proxies."""
        return None

    def present_taps(self) -> list[str]:
        """Names of the instance taps (`tap<port[:11]>`) that exist on this host: the
        Dataplane adopts those of its ports (filters them, removes them with the port)."""
        return []

    def ensure_outside(self, network: dict) -> None:
        """Give the (external) network a stand-in for the outside world: a namespace holding
        its subnet's gateway address (`[network] external_network = demo`)."""
        raise BackendError(f"the {self.name} network backend has no outside namespace")

    def delete_outside(self) -> None:
        """Remove what ensure_outside built."""

    def agent_configurations(self) -> dict:
        return {}


class Dataplane:
    """Drives one backend from the event bus: collects dirty ids, reconciles on a thread."""

    def __init__(self, backend: NetworkBackend, *, debounce: float = 0.15, resync_interval: float = 30.0):
        self.backend = backend
        self.debounce = debounce
        self.resync_interval = resync_interval
        self._cond = threading.Condition()
        self._dirty_nets: set[str] = set()
        self._dirty_routers: set[str] = set()
        self._dirty_ports: set[str] = set()
        self._dirty_sg = False  # groups, rules or memberships changed: re-filter every plugged port
        self._dirty_all = False
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._plugged: dict[str, str] = {}  # port id -> network id
        self._lock = threading.RLock()  # one backend operation at a time
        self._generation = 0  # bumped per event, so flush() knows what it waits for
        self._done = 0
        self.external_network = ""  # name of the demo external network given an outside namespace
        self.tap_poll = 1.0  # how often the worker looks for new instance taps to adopt
        self._taps_seen: set[str] = set()
        self.metadata_agent = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, bus, agent=None) -> None:
        self.backend.start()
        if agent is not None:
            self.metadata_agent = agent
            agent.start()
        bus.subscribe("network.", self.on_event)
        self._thread = threading.Thread(target=self._run, name="network-dataplane", daemon=True)
        self._thread.start()
        self.request_full_sync()

    def stop(self, cleanup: bool = False) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.metadata_agent is not None:
            self.metadata_agent.stop()
            self.metadata_agent = None
        with self._lock:
            self.backend.stop(cleanup=cleanup)

    # ------------------------------------------------------------------ events
    def on_event(self, event: dict) -> None:
        kind = event.get("event_type", "")
        payload = event.get("payload") or {}
        parts = kind.split(".")
        if len(parts) < 3:
            return
        resource = parts[1]
        with self._cond:
            if resource == "network":
                self._dirty_nets.add(payload.get("id", ""))
            elif resource in ("subnet", "port"):
                if payload.get("network_id"):
                    self._dirty_nets.add(payload["network_id"])
                else:
                    self._dirty_all = True  # resolved on the worker, after the commit
                if resource == "port" and payload.get("id"):
                    self._dirty_ports.add(payload["id"])
                self._dirty_all = self._dirty_all or resource == "subnet"
            elif resource == "router":
                self._dirty_routers.add(payload.get("id", ""))
            elif resource in ("floatingip", "security_group", "security_group_rule"):
                self._dirty_all = True
            else:
                return
            if resource in ("port", "security_group", "security_group_rule"):
                self._dirty_sg = True  # a rule, or who is in a remote group, changed
            self._generation += 1
            self._cond.notify_all()

    def _taps_changed(self) -> bool:
        try:
            taps = set(self.backend.present_taps())
        except Exception:  # a transient failure: the periodic full pass covers it
            return False
        changed, self._taps_seen = taps != self._taps_seen, taps
        return changed

    def request_full_sync(self) -> None:
        with self._cond:
            self._dirty_all = True
            self._generation += 1
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event seen so far is reconciled (tests, `pocketstack` tools)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._generation
            while self._done < target or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------------ compute's calls
    def plug(self, port_id: str) -> dict:
        """Plug a port now (compute, before starting QEMU): {"tap", "bridge", "mtu"}."""
        from pocketstack.network import core

        port = core.port_sync_data(port_id)
        if port is None:
            raise BackendError(f"port {port_id} does not exist")
        net = core.network_sync_data(port["network_id"])
        with self._lock:
            self.backend.ensure_network(net)
            info = self.backend.plug_port(port, net)
            self.backend.apply_security_groups(port)
            self._plugged[port_id] = port["network_id"]
        return info

    def unplug(self, port_id: str) -> None:
        with self._lock:
            self.backend.unplug_port(port_id)
            self._plugged.pop(port_id, None)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        last_full = time.monotonic()
        while True:
            with self._cond:
                while not self._stop and not (self._dirty_all or self._dirty_nets or self._dirty_routers
                                              or self._dirty_ports or self._dirty_sg):
                    left = self.resync_interval - (time.monotonic() - last_full)
                    if not self._cond.wait(max(0.1, min(left, self.tap_poll))):
                        if left <= self.tap_poll:
                            self._dirty_all = True
                        elif self._taps_changed():  # a tap appeared or went (QEMU, a restart)
                            self._dirty_sg = True
                            self._generation += 1
                if self._stop:
                    return
            time.sleep(self.debounce)  # let the emitting transaction commit, batch a burst
            with self._cond:
                gen = self._generation
                nets, routers, ports = self._dirty_nets, self._dirty_routers, self._dirty_ports
                full, sg = self._dirty_all, self._dirty_sg
                self._dirty_nets, self._dirty_routers, self._dirty_ports = set(), set(), set()
                self._dirty_all = self._dirty_sg = False
                self._busy = True
            try:
                if full:
                    last_full = time.monotonic()
                self.reconcile(nets, routers, ports, full, sg)
            except Exception as exc:
                if type(exc).__name__ in ("OperationalError", "ProgrammingError"):  # schema not there yet
                    log.debug("dataplane reconcile deferred: %s", exc)
                else:
                    log.exception("dataplane reconcile failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._done = max(self._done, gen)
                    self._cond.notify_all()

    def reconcile(self, nets: set[str], routers: set[str], ports: set[str], full: bool, sg: bool = True) -> None:
        """Converge the host on the database. Always a whole pass (the backend skips what is
        already right, so an unchanged network costs a few queries): networks with a DHCP
        port, a plugged port or a router port get a bridge (and DHCP); routers their
        namespace; what the backend holds that is no longer wanted goes. Plugged ports are
        re-filtered after any port or security-group change (remote groups make one port's
        change another's), and instance taps found on the host are adopted."""
        from sqlalchemy import select

        from pocketstack.common.runtime import current
        from pocketstack.network import core, models as m, routers as routers_mod

        taps = {name[3:]: name for name in self.backend.present_taps()}
        with current().db.session() as sess:
            wanted = set(sess.scalars(select(m.Port.network_id).where(m.Port.device_owner == "network:dhcp")))
            router_ids = set(sess.scalars(select(m.Router.id)))
            adopt = {}
            for prefix in sorted(taps):
                row = sess.execute(select(m.Port.id, m.Port.device_owner).where(m.Port.id.like(prefix + "%"))).first()
                if row is not None and not (row[1] or "").startswith("network:") and row[0] not in self._plugged:
                    adopt[row[0]] = True
            outside = None
            if self.external_network:
                outside = sess.scalar(select(m.Network.id).where(m.Network.name == "public",
                                                                 m.Network.external.is_(True)))
        with self._lock:
            for port_id in sorted(adopt):
                data = core.port_sync_data(port_id)
                if data is not None:
                    net = core.network_sync_data(data["network_id"])
                    self.backend.ensure_network(net)
                    self.backend.plug_port(data, net)
                    self._plugged[port_id] = data["network_id"]
                    ports = ports | {port_id}
            for port_id in sorted(ports | set(self._plugged)):
                if port_id not in self._plugged:
                    continue
                data = core.port_sync_data(port_id)
                if data is None:
                    self.backend.unplug_port(port_id)
                    self._plugged.pop(port_id, None)
                elif port_id in ports or sg or full:
                    self.backend.apply_security_groups(data)
            wanted |= set(self._plugged.values())
            if outside:
                wanted.add(outside)
            views = {}
            for router_id in sorted(router_ids):
                view = routers_mod.router_sync_data(router_id)
                if view is not None and view.get("admin_state_up", True):
                    views[router_id] = view
                    wanted |= {p["network_id"] for p in [view.get("gateway")] + list(view.get("interfaces", []))
                               if p}
            for net_id in sorted(wanted):
                data = core.network_sync_data(net_id)
                if data is None:
                    continue
                self.backend.ensure_network(data)
                self.backend.sync_dhcp(data)
                if net_id == outside:
                    self.backend.ensure_outside(data)
            for router_id, view in views.items():
                self.backend.sync_router(view)
            for router_id in sorted(set(self.backend_routers()) - set(views)):
                self.backend.delete_router(router_id)
            for net_id in sorted(set(self.backend_networks()) - wanted):
                self.backend.delete_network(net_id)

    def backend_networks(self) -> list[str]:
        return list(getattr(self.backend, "networks", {}) or {})

    def backend_routers(self) -> list[str]:
        return list(getattr(self.backend, "routers", {}) or {})


_dataplane: Dataplane | None = None


def load_backend(config) -> NetworkBackend:
    name = (config.get("network", "backend") or "noop").strip().lower()
    if name == "noop":
        from pocketstack.network.backends.noop import NoopBackend

        return NoopBackend()
    if name == "linuxbridge":
        from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend

        return LinuxBridgeBackend.from_config(config)
    raise BackendError(f"[network] backend must be noop or linuxbridge, not {name!r}")


def configure(rt) -> Dataplane:
    """Select, check and start the configured backend (service.setup)."""
    global _dataplane
    if _dataplane is not None:
        _dataplane.stop()
        _dataplane = None
    backend = load_backend(rt.config)
    backend.check()
    dp = Dataplane(backend)
    external = (rt.config.get("network", "external_network") or "").strip().lower()
    if external not in ("", "none"):
        if external != "demo":
            raise BackendError(f"[network] external_network must be demo (or empty), not {external!r}")
        if backend.name != "linuxbridge":
            raise BackendError("[network] external_network = demo (pocketstack up --external-network demo) needs "
                               "the linuxbridge network backend: add --network-backend linuxbridge (as root)")
        dp.external_network = "public"
    if backend.name != "noop":  # the no-op backend needs no events and no thread
        dp.start(rt.bus, _metadata_agent(rt, backend))
    _dataplane = dp
    return dp


def _metadata_agent(rt, backend: NetworkBackend):
    """The agent behind the backend's metadata proxies: it signs for the compute metadata
    API on this server (its secret is compute's `metadata_secret`)."""
    path = backend.metadata_socket()
    if not path:
        return None
    from pocketstack.network.metadata_proxy import MetadataAgent

    secret = ""
    if "compute" in rt.config.enabled_services:
        from pocketstack.compute.service import metadata_secret

        secret = metadata_secret(rt)
    host = rt.config.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return MetadataAgent(path, host, rt.config.port, secret)


def get_dataplane() -> Dataplane:
    global _dataplane
    if _dataplane is None:
        from pocketstack.network.backends.noop import NoopBackend

        _dataplane = Dataplane(NoopBackend())
    return _dataplane


def set_dataplane(dp: Dataplane | None) -> None:
    global _dataplane
    _dataplane = dp
