"""The Linux-bridge dataplane (root only): bridges, taps, dnsmasq in namespaces, router NAT.

- A network is a bridge `brq<net-id[:11]>`. Its segment: `flat` bridges the host interface
  `[linux_bridge] physical_interface_mappings` names for the physical network, `vlan` a
  sub-interface `<iface>.<vid>` of it, `vxlan` a VXLAN device `vxlan-<vni>` from `[vxlan]
  local_ip` (multicast group `[vxlan] vxlan_group` for flooding); without that configuration
  (and for `local`) the bridge alone, reaching only this host. Real interfaces are touched
  only when an operator maps a physical network onto one.
- A port is a persistent tap `tap<port-id[:11]>` on the bridge; QEMU opens it with
  `-netdev tap,ifname=...,script=no,downscript=no`.
- DHCP: a namespace `qdhcp-<net-id>` holds a veth (`ns-<port[:11]>` inside, `tap<port[:11]>`
  on the bridge) with the DHCP port's MAC and addresses and runs one dnsmasq with static
  leases only (`--dhcp-range=<net>,static`): a hosts file mapping each port's MAC to exactly
  its IPAM address, an options file with gateway, DNS servers, host routes and the MTU.
  Changed entries rewrite the files and SIGHUP dnsmasq; changed subnets restart it.
- Routers: a namespace `qrouter-<id>` with `qr-<port[:11]>` interfaces on the tenant bridges
  (the gateway IPs), `qg-<port[:11]>` on the external bridge with a default route to the
  external subnet's gateway, ip_forward on, and an iptables `nat` table inside the namespace
  (never the host's): SNAT to the gateway address when `enable_snat`, DNAT/SNAT pairs for
  floating IPs (held as /32 addresses on `qg-`), extra routes.
- Security groups (`firewall.py`): per port chains in the host's `filter` table matched with
  `-m physdev` on the tap, written with `iptables-restore --noflush` (our chains only).
- Metadata (`pocketstack.network.metadata_proxy`): a proxy process in each router namespace
  (REDIRECT 169.254.169.254:80 -> 9697 from `qr-`) and in the DHCP namespace of networks
  with an isolated subnet (on 169.254.169.254:80, pushed to instances as a host route),
  forwarding over `<run_dir>/metadata.sock` to the agent in the pocketstack process.
- The demo "outside" (`ensure_outside`): a namespace `pocketstack-outside` holding the
  external subnet's gateway address on a veth plugged into the external network's bridge.

Every operation compares the wanted state with what it did last (and with what exists, so
a restarted pocketstack adopts its devices) and changes only the difference.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pocketstack.network.backends import firewall
from pocketstack.network.backends.base import BackendError, NetworkBackend, bridge_name, tap_name
from pocketstack.network.metadata_proxy import METADATA_IP, ROUTER_PORT

log = logging.getLogger("pocketstack.network.linuxbridge")

TIMEOUT = 15
VXLAN_PORT = 4789
OUTSIDE_NS = "pocketstack-outside"
OUTSIDE_INSIDE = "ps-out0"  # the veth end in the outside namespace (the bridge end: ps-out<tag>)
ROUTER_OWNERS = ("network:router_interface", "network:router_interface_distributed", "network:ha_router_replicated_interface")


class CommandError(BackendError):
    pass


def run(args: list[str], *, ns: str | None = None, check: bool = True, input: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=TIMEOUT)
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def link_exists(name: str, ns: str | None = None) -> bool:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", "link", "show", "dev", name]
    return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT).returncode == 0


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def ensure_netns(name: str) -> None:
    if not netns_exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "link", "set", "lo", "up"], ns=name)


def delete_netns(name: str) -> None:
    if netns_exists(name):
        run(["ip", "netns", "delete", name], check=False)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie (a daemon's parent is init, which may reap late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def tap_mac(mac: str) -> str:
    """The host side of an instance NIC: fe:... so it never equals the guest's MAC."""
    return "fe" + mac[2:]


def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class LinuxBridgeBackend(NetworkBackend):
    name = "linuxbridge"

    def __init__(self, *, physical_interface_mappings: dict[str, str] | None = None, local_ip: str = "",
                 vxlan_group: str = "224.0.0.1", run_dir: str | Path = "/run/pocketstack-network",
                 dhcp_lease_duration: int = 86400, metadata: bool = True, outside_namespace: str = OUTSIDE_NS):
        self.mappings = dict(physical_interface_mappings or {})
        self.local_ip = local_ip
        self.vxlan_group = vxlan_group
        self.run_dir = Path(run_dir)
        self.lease = dhcp_lease_duration
        self.networks: dict[str, dict] = {}  # net id -> {"bridge", "devices": [(name, kind)], "key"}
        self.ports: dict[str, dict] = {}  # port id -> {"tap", "bridge", "network_id"}
        self.dhcp: dict[str, dict] = {}  # net id -> {"ns", "port_id", "veth", "addrs", "cmd", "files"}
        self.routers: dict[str, dict] = {}  # router id -> {"ns", "ifaces", "nat", "routes"}
        self._children: dict[int, subprocess.Popen] = {}  # dnsmasq / proxy processes we started
        self.metadata = metadata  # run metadata proxies (forwarding to metadata_socket())
        self.fw_tag = firewall.chain_tag(self.run_dir)
        self.fw_ports: dict[str, dict] = {}  # filtered port id -> its view
        self.fw_applied: dict[str, str] = {}  # family (iptables, ip6tables, ebtables) -> text last applied
        self.fw_known: dict[str, set[str]] = {}  # family -> our chains that exist (deleted when unwanted)
        self.fw_rewrite_after = 30.0  # rewrite even unchanged rules this often (someone ran iptables -F)
        self._fw_written = 0.0
        self.outside: dict | None = None  # {"network_id", "address"} of the demo outside namespace
        self.outside_ns = outside_namespace

    @classmethod
    def from_config(cls, config) -> "LinuxBridgeBackend":
        mappings = {}
        raw = config.get("linux_bridge", "physical_interface_mappings")
        for item in filter(None, (x.strip() for x in raw.split(","))):
            physnet, sep, iface = item.partition(":")
            if not sep or not physnet or not iface:
                raise BackendError(f"[linux_bridge] physical_interface_mappings: {item!r} is not physnet:interface")
            mappings[physnet.strip()] = iface.strip()
        lease = config.get("linux_bridge", "dhcp_lease_duration") or "86400"
        return cls(physical_interface_mappings=mappings, local_ip=config.get("vxlan", "local_ip"),
                   vxlan_group=config.get("vxlan", "vxlan_group") or "224.0.0.1",
                   run_dir=config.get("linux_bridge", "run_dir") or "/run/pocketstack-network",
                   dhcp_lease_duration=int(lease),
                   metadata=(config.get("network", "metadata_proxy") or "true").lower() not in ("false", "0", "no"),
                   outside_namespace=config.get("linux_bridge", "outside_namespace") or OUTSIDE_NS)

    # ------------------------------------------------------------------ lifecycle
    def check(self) -> None:
        if os.geteuid() != 0:
            raise BackendError("the linuxbridge network backend needs root (bridges, taps, namespaces, "
                               "dnsmasq, iptables); run pocketstack as root or use [network] backend = noop")
        missing = [t for t in ("ip", "dnsmasq", "iptables-restore", "ip6tables-restore") if shutil.which(t) is None]
        if missing:
            raise BackendError(f"the linuxbridge network backend needs {', '.join(missing)}: "
                               "run tools/install-system-deps.sh")

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        self._bridge_netfilter()
        self.fw_known = self._existing_chains()  # a previous process's chains: adopted

    def stop(self, cleanup: bool = False) -> None:
        if not cleanup:
            return  # bridges, taps, DHCP, routers and filters keep serving running instances
        self.delete_outside()
        for router_id in list(self.routers):
            self.delete_router(router_id)
        for port_id in list(self.ports):
            self.unplug_port(port_id)
        for net_id in list(set(self.networks) | set(self.dhcp)):
            self.delete_network(net_id)
        self.remove_firewall()

    def metadata_socket(self) -> str | None:
        return str(self.run_dir / "metadata.sock") if self.metadata else None

    def agent_configurations(self) -> dict:
        return {"interface_mappings": dict(self.mappings), "tunnel_types": ["vxlan"] if self.local_ip else [],
                "dhcp_driver": "dnsmasq"}

    # ------------------------------------------------------------------ L2
    def _segment_devices(self, network: dict, bridge: str) -> list[tuple[str, str]]:
        """[(device, kind)] that join the bridge; kind 'owned' (we created it) or 'enslaved'."""
        segs = network.get("segments") or []
        if not segs:
            return []
        seg = segs[0]
        kind, physnet, seg_id = seg.get("network_type"), seg.get("physical_network"), seg.get("segmentation_id")
        mtu = network.get("mtu") or 1500
        if kind == "vxlan":
            if not self.local_ip or seg_id is None:
                return []
            dev = f"vxlan-{seg_id}"
            if not link_exists(dev):
                args = ["ip", "link", "add", dev, "type", "vxlan", "id", seg_id, "local", self.local_ip,
                        "dstport", VXLAN_PORT]
                phys = self._device_of(self.local_ip)
                if self.vxlan_group and phys:
                    args += ["group", self.vxlan_group, "dev", phys]
                run(args)
            run(["ip", "link", "set", dev, "mtu", mtu, "master", bridge, "up"])
            return [(dev, "owned")]
        if kind in ("flat", "vlan"):
            iface = self.mappings.get(physnet or "")
            if not iface:
                log.warning("network %s: no physical_interface_mappings entry for %r; bridge only",
                            network["id"], physnet)
                return []
            if kind == "flat":
                run(["ip", "link", "set", iface, "master", bridge, "up"])
                return [(iface, "enslaved")]
            dev = f"{iface}.{seg_id}"
            if len(dev) > 15:
                dev = f"vlan{seg_id}-{iface}"[:15]
            if not link_exists(dev):
                run(["ip", "link", "add", "link", iface, "name", dev, "type", "vlan", "id", seg_id])
            run(["ip", "link", "set", dev, "master", bridge, "up"])
            return [(dev, "owned")]
        return []  # local, geneve: this host only

    @staticmethod
    def _device_of(address: str) -> str | None:
        out = run(["ip", "-o", "addr", "show", "to", address], check=False)
        return out.split()[1] if out.strip() else None

    def ensure_network(self, network: dict) -> str:
        net_id = network["id"]
        bridge = bridge_name(net_id)
        key = _digest(network.get("segments"), network.get("mtu"), network.get("admin_state_up", True))
        have = self.networks.get(net_id)
        if have is not None and have["key"] == key and link_exists(bridge):
            return bridge
        if not link_exists(bridge):
            run(["ip", "link", "add", bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0"])
        run(["ip", "link", "set", bridge, "up" if network.get("admin_state_up", True) else "down"])
        devices = self._segment_devices(network, bridge)
        self.networks[net_id] = {"bridge": bridge, "devices": devices, "key": key, "mtu": network.get("mtu") or 1500}
        self._sync_firewall()  # the new bridge's own traffic is accepted
        return bridge

    def delete_network(self, network_id: str) -> None:
        self._stop_dhcp(network_id)
        have = self.networks.pop(network_id, None)
        for port_id, info in list(self.ports.items()):
            if info["network_id"] == network_id:
                self.unplug_port(port_id)
        for dev, kind in (have or {}).get("devices", []):
            if kind == "owned":
                run(["ip", "link", "delete", dev], check=False)
            else:
                run(["ip", "link", "set", dev, "nomaster"], check=False)
        bridge = bridge_name(network_id)
        if link_exists(bridge):
            run(["ip", "link", "delete", bridge], check=False)
        self._sync_firewall()

    def plug_port(self, port: dict, network: dict) -> dict:
        bridge = self.ensure_network(network)
        tap = tap_name(port["id"])
        mtu = network.get("mtu") or 1500
        if not link_exists(tap):
            run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
        run(["ip", "link", "set", tap, "address", tap_mac(port["mac_address"]), "mtu", mtu, "master", bridge,
             "up" if port.get("admin_state_up", True) else "down"])
        self.ports[port["id"]] = {"tap": tap, "bridge": bridge, "network_id": network["id"]}
        return {"tap": tap, "bridge": bridge, "mtu": mtu}

    def unplug_port(self, port_id: str) -> None:
        self.ports.pop(port_id, None)
        tap = tap_name(port_id)
        if link_exists(tap):
            run(["ip", "link", "delete", tap], check=False)
        if self.fw_ports.pop(port_id, None) is not None:
            self._sync_firewall()

    def present_taps(self) -> list[str]:
        return [n for n in os.listdir("/sys/class/net") if n.startswith("tap") and len(n) == 14]

    # ------------------------------------------------------------------ security groups
    def apply_security_groups(self, port: dict) -> None:
        filtered = port.get("port_security_enabled", True) and not (port.get("device_owner") or "").startswith(
            "network:")
        if filtered:
            self.fw_ports[port["id"]] = port
        elif self.fw_ports.pop(port["id"], None) is None:
            return
        self._sync_firewall()

    @staticmethod
    def _bridge_netfilter() -> None:
        """Bridged frames must cross iptables for physdev filtering (br_netfilter)."""
        flags = [Path("/proc/sys/net/bridge", f"bridge-nf-call-{x}") for x in ("iptables", "ip6tables")]
        if not flags[0].exists():
            run(["modprobe", "br_netfilter"], check=False)
        for flag in flags:
            try:
                if flag.read_text().strip() != "1":
                    flag.write_text("1\n")
            except OSError as exc:
                log.warning("security groups are not enforced: cannot enable %s (%s)", flag, exc)

    def _families(self) -> list[str]:
        return [f for f in firewall.FAMILIES if shutil.which(f + "-restore")]

    @staticmethod
    def _listing(family: str, chain: str | None = None) -> str:
        if family == "ebtables":
            return run(["ebtables", "-L", *([chain] if chain else [])], check=False)
        return run([family, "-w", "-S", *([chain] if chain else [])], check=False)

    def _existing_chains(self) -> dict[str, set[str]]:
        """Our chains as the host has them (a previous process's, adopted at start)."""
        found = {}
        for family in self._families():
            names = set()
            for line in self._listing(family).splitlines():
                words = line.split()
                if family == "ebtables" and line.startswith("Bridge chain: "):
                    names.add(words[2].rstrip(","))
                elif family != "ebtables" and line.startswith("-N "):
                    names.add(words[1])
            found[family] = {n for n in names if n.startswith(f"psq{self.fw_tag}")}
        return found

    def _sync_firewall(self) -> None:
        """Write our chains (only where the text changed) and make sure FORWARD jumps to them."""
        bridges = [n["bridge"] for n in self.networks.values()]
        if not self.fw_ports and not bridges and not any(self.fw_known.values()):
            return
        if time.monotonic() - self._fw_written > self.fw_rewrite_after:
            self.fw_applied.clear()
            self._fw_written = time.monotonic()
        for family in self._families():
            wanted = firewall.wanted_chains(self.fw_tag, self.fw_ports, family)
            text = firewall.render(self.fw_tag, list(self.fw_ports.values()), bridges,
                                   sorted(self.fw_known.get(family, set()) - wanted), family)
            if self.fw_applied.get(family) != text:
                run(firewall.restore_command(family), input=text)
                self.fw_applied[family] = text
                top = firewall.top_chain(self.fw_tag, family)
                if f"-j {top}" not in self._listing(family, "FORWARD"):
                    run([family, *([] if family == "ebtables" else ["-w"]), "-I", "FORWARD", "1", "-j", top])
                raw = firewall.raw_chain(self.fw_tag)
                if family != "ebtables" and f"-j {raw}" not in run([family, "-w", "-t", "raw", "-S", "PREROUTING"]):
                    run([family, "-w", "-t", "raw", "-I", "PREROUTING", "1", "-j", raw])
            self.fw_known[family] = wanted

    def remove_firewall(self) -> None:
        """Every chain of ours and the FORWARD jumps to them (stop with cleanup, tests)."""
        existing = self._existing_chains()
        for family in self._families():
            top = firewall.top_chain(self.fw_tag, family)
            wait = [] if family == "ebtables" else ["-w"]
            for _ in range(10):
                if f"-j {top}" not in self._listing(family, "FORWARD"):
                    break
                run([family, *wait, "-D", "FORWARD", "-j", top], check=False)
            chains = sorted(self.fw_known.get(family, set()) | existing.get(family, set()))
            if chains:
                run(firewall.restore_command(family), input=firewall.removal(family, chains), check=False)
            raw = firewall.raw_chain(self.fw_tag)
            if family != "ebtables" and f"-N {raw}" in run([family, "-w", "-t", "raw", "-S"], check=False):
                run([family, "-w", "-t", "raw", "-D", "PREROUTING", "-j", raw], check=False)
                run(firewall.restore_command(family),
                    input=firewall.removal(family, [raw]).replace("*filter", "*raw"), check=False)
        self.fw_ports.clear()
        self.fw_applied.clear()
        self.fw_known = {}

    # ------------------------------------------------------------------ veths into namespaces
    def _veth(self, ns: str, inside: str, outside: str, bridge: str, mac: str, mtu: int) -> None:
        if not link_exists(inside, ns):
            if link_exists(outside):
                run(["ip", "link", "delete", outside], check=False)
            run(["ip", "link", "add", outside, "mtu", mtu, "type", "veth", "peer", "name", inside, "mtu", mtu,
                 "netns", ns])
        run(["ip", "link", "set", outside, "mtu", mtu, "master", bridge, "up"])
        run(["ip", "link", "set", inside, "address", mac, "mtu", mtu, "up"], ns=ns)

    @staticmethod
    def _set_addresses(ns: str, dev: str, wanted: list[str]) -> None:
        out = run(["ip", "-o", "addr", "show", "dev", dev], ns=ns)
        have = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) > 3 and parts[2] in ("inet", "inet6") and not parts[3].startswith("fe80:"):
                have.add(parts[3])
        norm = {str(ipaddress.ip_interface(w)) for w in wanted}
        for addr in sorted(have - norm):
            run(["ip", "addr", "del", addr, "dev", dev], ns=ns, check=False)
        for addr in sorted(norm - have):
            run(["ip", "addr", "add", addr, "dev", dev], ns=ns)

    # ------------------------------------------------------------------ DHCP
    def _dhcp_dir(self, net_id: str) -> Path:
        return self.run_dir / "dhcp" / net_id

    @staticmethod
    def _pid_alive(pid_file: Path, needle: str) -> int | None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if running(pid) and needle in _cmdline(pid) else None

    def sync_dhcp(self, network: dict) -> None:
        net_id = network["id"]
        subnets = [s for s in network.get("subnets", []) if s.get("enable_dhcp") and s.get("ip_version") == 4]
        hosts = network.get("dhcp_hosts", [])
        dhcp_port = [h for h in hosts if h.get("device_owner") == "network:dhcp"]
        if not subnets or not dhcp_port:
            self._stop_dhcp(net_id)
            return
        port_id, mac = dhcp_port[0]["port_id"], dhcp_port[0]["mac_address"]
        have = self.dhcp.get(net_id)
        if have is not None and have["port_id"] != port_id:
            self._stop_dhcp(net_id)
            have = None
        ns = f"qdhcp-{net_id}"
        inside, outside = "ns-" + port_id[:11], tap_name(port_id)
        mtu = network.get("mtu") or 1500
        bridge = self.ensure_network(network)
        by_subnet = {s["id"]: s for s in subnets}
        addrs = sorted(f"{h['ip_address']}/{ipaddress.ip_network(by_subnet[h['subnet_id']]['cidr']).prefixlen}"
                       for h in dhcp_port if h["subnet_id"] in by_subnet)
        # isolated subnets (no router interface): metadata is served from this namespace
        routed = {h["subnet_id"] for h in hosts if h.get("device_owner") in ROUTER_OWNERS}
        dhcp_ip = {h["subnet_id"]: h["ip_address"] for h in dhcp_port}
        isolated = {s["id"] for s in subnets if s["id"] not in routed and s["id"] in dhcp_ip} if self.metadata else set()
        if isolated:
            addrs.append(f"{METADATA_IP}/32")
        plumb_key = _digest(mac, mtu, addrs, bridge)
        if have is None or have.get("plumb") != plumb_key or not link_exists(inside, ns):
            ensure_netns(ns)
            self._veth(ns, inside, outside, bridge, mac, mtu)
            self._set_addresses(ns, inside, addrs)
        # files: hosts (static leases) and options, per subnet tag
        tags = {s["id"]: f"subnet{i}" for i, s in enumerate(subnets)}
        host_lines = []
        for h in hosts:
            if h["subnet_id"] not in tags or h.get("device_owner") == "network:dhcp":
                continue
            name = h.get("hostname") or ("host-" + h["ip_address"].replace(".", "-"))
            host_lines.append(f"{h['mac_address']},{name},{h['ip_address']},{self.lease}s")
        opt_lines = [f"option:mtu,{mtu}"]
        for s in subnets:
            tag = tags[s["id"]]
            gw = s.get("gateway_ip")
            opt_lines.append(f"tag:{tag},option:router,{gw}" if gw else f"tag:{tag},option:router")
            if s.get("dns_nameservers"):
                opt_lines.append(f"tag:{tag},option:dns-server,{','.join(s['dns_nameservers'])}")
            routes = [r for r in s.get("host_routes") or [] if ipaddress.ip_network(r["destination"]).version == 4]
            if s["id"] in isolated:
                routes.append({"destination": f"{METADATA_IP}/32", "nexthop": dhcp_ip[s["id"]]})
            if routes:
                pairs = [f"{r['destination']},{r['nexthop']}" for r in routes]
                if gw:  # clients ignore option 3 when 121 is present: repeat the default route
                    pairs.append(f"0.0.0.0/0,{gw}")
                opt_lines.append(f"tag:{tag},option:classless-static-route,{','.join(pairs)}")
        files_key = _digest(host_lines, opt_lines)
        folder = self._dhcp_dir(net_id)
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)
        pid_file, hosts_file, opts_file = folder / "pid", folder / "host", folder / "opts"
        ranges = []
        for s in subnets:
            net = ipaddress.ip_network(s["cidr"])
            ranges.append(f"--dhcp-range=set:{tags[s['id']]},{net.network_address},static,{net.netmask},"
                          f"{self.lease}s")
        cmd = ["dnsmasq", "--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--port=0", "--leasefile-ro",
               "--no-ping", "--bind-interfaces", f"--interface={inside}", "--except-interface=lo", "--dhcp-authoritative",
               f"--pid-file={pid_file}", f"--dhcp-hostsfile={hosts_file}", f"--dhcp-optsfile={opts_file}",
               f"--dhcp-lease-max={max(256, 2 * len(host_lines))}", *ranges]
        pid = self._pid_alive(pid_file, str(pid_file))
        files_changed = have is None or have.get("files") != files_key or not hosts_file.exists()
        # dnsmasq keeps leases in memory: a removed or changed entry (a deleted port whose
        # address goes to a new MAC) needs a restart to forget them; additions only a SIGHUP
        try:
            before = set(hosts_file.read_text().splitlines())
        except OSError:
            before = set()
        forget = bool(before - set(host_lines))
        if pid is not None and (forget or (have is not None and have.get("cmd") != cmd)):
            self._kill(pid)  # before the files change: whoever sees the new files sees the new dnsmasq
            pid = None
        if files_changed:
            for path, lines in ((hosts_file, host_lines), (opts_file, opt_lines)):
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(x + "\n" for x in lines))
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
        if pid is None:
            self._start_daemon(f"dnsmasq for network {net_id}", ns, [*cmd, "--keep-in-foreground"], pid_file,
                               folder / "log")
        elif files_changed:
            os.kill(pid, signal.SIGHUP)
        self.dhcp[net_id] = {"ns": ns, "port_id": port_id, "plumb": plumb_key, "files": files_key, "cmd": cmd}
        if isolated:
            self._ensure_proxy(folder, ns, ["--network-id", net_id, "--bind", METADATA_IP, "--port", "80"])
        else:
            self._stop_proxy(folder)

    def _start_daemon(self, what: str, ns: str, cmd: list[str], pid_file: Path, log_file: Path) -> None:
        """A server (dnsmasq, a metadata proxy) in the foreground as our child (so we reap it),
        in its own session (so it outlives a pocketstack restart, which then finds it by its
        pid file, written once it serves)."""
        with open(log_file, "ab") as log_fh:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL, stdout=log_fh,
                                    stderr=log_fh, start_new_session=True)
        self._children[proc.pid] = proc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CommandError(f"{what} exited: {log_file.read_text(errors='replace').strip()[-300:]}")
            if self._pid_alive(pid_file, str(pid_file)) == proc.pid:
                return
            time.sleep(0.05)
        raise CommandError(f"{what} did not start")

    # ------------------------------------------------------------------ metadata proxies
    def _ensure_proxy(self, folder: Path, ns: str, args: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pid_file = folder / "metadata.pid"
        cmd = [sys.executable, "-m", "pocketstack.network.metadata_proxy", "--socket", self.metadata_socket(),
               "--pid-file", str(pid_file), *args]
        pid = self._pid_alive(pid_file, str(pid_file))
        if pid is not None and _cmdline(pid).split("\0")[:len(cmd)] == cmd:
            return
        if pid is not None:
            self._kill(pid)
        self._start_daemon(f"metadata proxy in {ns}", ns, cmd, pid_file, folder / "metadata.log")

    def _stop_proxy(self, folder: Path) -> None:
        pid = self._pid_alive(folder / "metadata.pid", str(folder / "metadata.pid"))
        if pid is not None:
            self._kill(pid)
        (folder / "metadata.pid").unlink(missing_ok=True)

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                self._children.pop(pid, None)

    def _kill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            self._reap()
            if not running(pid):  # gone, or a zombie its (re)parent has not reaped: sockets freed
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def _stop_dhcp(self, net_id: str) -> None:
        have = self.dhcp.pop(net_id, None)
        folder = self._dhcp_dir(net_id)
        self._stop_proxy(folder)
        pid = self._pid_alive(folder / "pid", str(folder / "pid"))
        if pid is not None:
            self._kill(pid)
        if have is not None:
            outside = tap_name(have["port_id"])
            if link_exists(outside):
                run(["ip", "link", "delete", outside], check=False)
        delete_netns(f"qdhcp-{net_id}")
        shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ routers
    def sync_router(self, router: dict) -> None:
        router_id = router["id"]
        ns = f"qrouter-{router_id}"
        have = self.routers.setdefault(router_id, {"ns": ns, "ifaces": {}, "nat": None, "routes": []})
        ensure_netns(ns)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=ns)
        wanted: dict[str, tuple] = {}
        gw = router.get("gateway")
        fips = [f for f in router.get("floating_ips", []) if f.get("fixed_ip_address")]
        ports = [("qr-", p) for p in router.get("interfaces", [])] + ([("qg-", gw)] if gw else [])
        for prefix, port in ports:
            inside = prefix + port["id"][:11]
            addrs = [f"{ip['ip_address']}/{ip['prefixlen']}" for ip in port["fixed_ips"]
                     if ip.get("prefixlen") is not None]
            if prefix == "qg-":
                addrs += [f"{f['floating_ip_address']}/32" for f in fips]
            key = _digest(port["mac_address"], port.get("mtu"), addrs, port["network_id"])
            wanted[inside] = (port["id"], key)
            if have["ifaces"].get(inside, (None, None))[1] == key and link_exists(inside, ns):
                continue
            self._veth(ns, inside, tap_name(port["id"]), bridge_name(port["network_id"]), port["mac_address"],
                       port.get("mtu") or 1500)
            self._set_addresses(ns, inside, addrs)
        for inside, (port_id, _) in list(have["ifaces"].items()):
            if inside not in wanted:
                if link_exists(tap_name(port_id)):
                    run(["ip", "link", "delete", tap_name(port_id)], check=False)
        have["ifaces"] = wanted
        # routes: default via the external subnet's gateway, then the extra routes
        routes = []
        if gw:
            gws = [ip["gateway_ip"] for ip in gw["fixed_ips"] if ip.get("gateway_ip") and
                   ipaddress.ip_address(ip["gateway_ip"]).version == 4]
            if gws:
                routes.append(("default", gws[0]))
        routes += [(r["destination"], r["nexthop"]) for r in router.get("routes", [])]
        if routes != have["routes"]:
            for dest, _ in have["routes"]:
                if (dest, _) not in routes:
                    run(["ip", "route", "del", dest], ns=ns, check=False)
            for dest, via in routes:
                run(["ip", "route", "replace", dest, "via", via], ns=ns, check=False)
            have["routes"] = routes
        # NAT: the namespace's own nat table, replaced atomically
        rules = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                 ":POSTROUTING ACCEPT [0:0]"]
        if gw:
            qg = "qg-" + gw["id"][:11]
            for f in fips:
                rules.append(f"-A PREROUTING -d {f['floating_ip_address']}/32 -j DNAT "
                             f"--to-destination {f['fixed_ip_address']}")
                rules.append(f"-A OUTPUT -d {f['floating_ip_address']}/32 -j DNAT "
                             f"--to-destination {f['fixed_ip_address']}")
                rules.append(f"-A POSTROUTING -s {f['fixed_ip_address']}/32 -o {qg} -j SNAT "
                             f"--to-source {f['floating_ip_address']}")
            v4 = [ip["ip_address"] for ip in gw["fixed_ips"] if ipaddress.ip_address(ip["ip_address"]).version == 4]
            if router.get("enable_snat", True) and v4:
                rules.append(f"-A POSTROUTING -o {qg} -m conntrack ! --ctstate DNAT -j SNAT --to-source {v4[0]}")
        meta = self.metadata and bool(router.get("interfaces"))
        if meta:
            rules.append(f"-A PREROUTING -d {METADATA_IP}/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT "
                         f"--to-ports {ROUTER_PORT}")
        rules.append("COMMIT")
        rules += ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        if meta:  # only instances (through the REDIRECT) reach the proxy
            rules.append(f"-A INPUT -p tcp -m tcp --dport {ROUTER_PORT} ! -i qr-+ -j DROP")
        rules.append("COMMIT")
        text = "\n".join(rules) + "\n"
        if text != have["nat"]:
            run(["iptables-restore"], ns=ns, input=text)
            have["nat"] = text
        folder = self._router_dir(router_id)
        if meta:
            self._ensure_proxy(folder, ns, ["--router-id", router_id, "--bind", "0.0.0.0",
                                            "--port", str(ROUTER_PORT)])
        else:
            self._stop_proxy(folder)

    def _router_dir(self, router_id: str) -> Path:
        return self.run_dir / "router" / router_id

    def delete_router(self, router_id: str) -> None:
        have = self.routers.pop(router_id, None)
        self._stop_proxy(self._router_dir(router_id))
        shutil.rmtree(self._router_dir(router_id), ignore_errors=True)
        for port_id, _ in (have or {}).get("ifaces", {}).values():
            if link_exists(tap_name(port_id)):
                run(["ip", "link", "delete", tap_name(port_id)], check=False)
        delete_netns(f"qrouter-{router_id}")  # its veths and nat table go with it

    # ------------------------------------------------------------------ the demo outside world
    def ensure_outside(self, network: dict) -> None:
        """`pocketstack-outside`: the external subnet's gateway address (and the default
        route's end) on a veth into the external network's bridge; never the host's stack."""
        subnet = next((x for x in network.get("subnets", []) if x.get("ip_version") == 4 and x.get("gateway_ip")),
                      None)
        if subnet is None:
            return
        address = f"{subnet['gateway_ip']}/{ipaddress.ip_network(subnet['cidr']).prefixlen}"
        bridge = self.ensure_network(network)
        want = {"network_id": network["id"], "address": address}
        ns, outside = self.outside_ns, f"ps-out{self.fw_tag}"
        if self.outside == want and link_exists(OUTSIDE_INSIDE, ns):
            return
        ensure_netns(ns)
        mac = "fa:16:3f:" + ":".join(network["id"].replace("-", "")[i:i + 2] for i in (0, 2, 4))
        self._veth(ns, OUTSIDE_INSIDE, outside, bridge, mac, network.get("mtu") or 1500)
        self._set_addresses(ns, OUTSIDE_INSIDE, [address])
        self.outside = want

    def delete_outside(self) -> None:
        if link_exists(f"ps-out{self.fw_tag}"):
            run(["ip", "link", "delete", f"ps-out{self.fw_tag}"], check=False)
        if self.outside is not None:
            delete_netns(self.outside_ns)
        self.outside = None
