"""The Linux-bridge dataplane with real peers: a cloud started with `[network] backend =
linuxbridge`, driven through the Networking API; "instances" are network namespaces whose
veth is attached to the network's bridge with the port's MAC, running busybox's udhcpc.

Checks: each instance gets exactly its IPAM address (and gateway, DNS, MTU) from dnsmasq,
an unknown MAC gets nothing, a port created later is served after the SIGHUP, instances
on one network ping each other, an instance on another network (same CIDR) reaches
neither, a router gives SNAT to an "outside" namespace and DNAT for a floating IP,
plugged taps are on the bridge, and deleting everything removes every device, namespace
and dnsmasq. Needs root, netns, dnsmasq, iptables and busybox; skipped otherwise.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Cloud
from tests.network.netlib import NeutronHTTP

PREFIX = "psq" + uuid.uuid4().hex[:5]  # every namespace/device the test itself creates


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (bridges, namespaces, dnsmasq)"
    for tool in ("ip", "dnsmasq", "iptables-restore", "busybox"):
        if shutil.which(tool) is None:
            return f"needs {tool} (tools/install-system-deps.sh)"
    probe = PREFIX + "probe"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


REASON = _why_not()
needs_root = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def sh(*args, check=True, timeout=30) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: {res.returncode} {res.stderr}")
    return res


def link_exists(name: str, ns: str | None = None) -> bool:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", "link", "show", "dev", name]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def wait_for(fn, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
    fi
    echo "ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu" > "$OUT"
    ;;
esac
exit 0
"""


class Instance:
    """A namespace standing in for a VM: eth0 (the port's MAC) whose peer is on a bridge."""

    def __init__(self, tag: str, mac: str, bridge: str, workdir: Path, host_dev: str | None = None):
        self.ns = f"{PREFIX}-{tag}"
        self.host_dev = host_dev or f"{PREFIX}{tag}"[:15]  # tap<port[:11]>: the dataplane adopts (filters) it
        self.mac = mac
        self.out = workdir / f"{tag}.lease"
        self.script = workdir / "udhcpc.sh"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host_dev, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "link", "set", self.host_dev, "master", bridge, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "eth0", "address", mac, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def dhcp(self, tries: int = 4, routes: bool = False) -> dict | None:
        """One DHCP exchange; with `routes` also option 121 (classless static routes), applied."""
        self.out.unlink(missing_ok=True)
        res = subprocess.run(["ip", "netns", "exec", self.ns, "env", f"OUT={self.out}", "busybox", "udhcpc", "-i",
                              "eth0", "-n", "-q", "-f", "-t", str(tries), "-T", "1", "-O", "mtu",
                              *(["-O", "staticroutes"] if routes else []), "-s",
                              str(self.script)], capture_output=True, text=True, timeout=30)
        if res.returncode != 0 or not self.out.exists():
            return None
        return dict(item.split("=", 1) for item in self.out.read_text().split() if "=" in item)

    def sh(self, *args, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout)

    def ping(self, address: str, count: int = 2) -> bool:
        return subprocess.run(["ip", "netns", "exec", self.ns, "busybox", "ping", "-c", str(count), "-W", "1", address],
                              capture_output=True, timeout=30).returncode == 0

    def remove(self) -> None:
        subprocess.run(["ip", "link", "delete", self.host_dev], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True)


def workdir(tmp_path_factory, name: str) -> Path:
    """A module's folder holding the instances' udhcpc script (skips without root)."""
    if REASON is not None:
        pytest.skip(REASON)
    work = tmp_path_factory.mktemp(name)
    (work / "udhcpc.sh").write_text(UDHCPC_SCRIPT)
    os.chmod(work / "udhcpc.sh", 0o755)
    return work


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = workdir(tmp_path_factory, "lb")
    run_dir = Path(f"/run/{PREFIX}-net")
    cloud = Cloud(work / "cloud", config={("pocketstack", "enabled_services"): "identity,network",
                                          ("network", "backend"): "linuxbridge",
                                          ("linux_bridge", "run_dir"): str(run_dir)})
    made = {"networks": [], "routers": [], "instances": []}
    try:
        cloud.start()
        api = NeutronHTTP(cloud, cloud.token())
        yield {"cloud": cloud, "api": api, "work": work, "made": made, "run_dir": run_dir}
    finally:
        teardown(cloud, made, run_dir)


def leftovers(run_dir: Path) -> None:
    """Whatever a cloud left (a failed test, or its normal stop, which keeps serving):
    dnsmasqs, metadata proxies, our iptables chains."""
    from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend

    for pid_file in [*run_dir.glob("*/*/pid"), *run_dir.glob("*/*/metadata.pid")]:
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    LinuxBridgeBackend(run_dir=run_dir).remove_firewall()


def teardown(cloud: Cloud, made: dict, run_dir: Path) -> None:
    """Stop the cloud, then remove what it and the test made (also after a failure):
    instances, processes, chains, router and DHCP namespaces, bridges, extra namespaces."""
    cloud.stop()
    for inst in made.get("instances", []):
        inst.remove()
    leftovers(run_dir)
    for rid in made.get("routers", []):
        subprocess.run(["ip", "netns", "delete", f"qrouter-{rid}"], capture_output=True)
    for nid in made.get("networks", []):
        subprocess.run(["ip", "netns", "delete", f"qdhcp-{nid}"], capture_output=True)
        subprocess.run(["ip", "link", "delete", "brq" + nid[:11]], capture_output=True)
    for name in made.get("taps", []):
        subprocess.run(["ip", "link", "delete", name], capture_output=True)
    for ns in made.get("namespaces", []):
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
    shutil.rmtree(run_dir, ignore_errors=True)


def create(env, kind: str, body: dict) -> dict:
    item = env["api"].create(kind, body)
    if kind == "network":
        env["made"]["networks"].append(item["id"])
    if kind == "router":
        env["made"]["routers"].append(item["id"])
    return item


def instance(env, tag: str, port: dict) -> Instance:
    bridge = "brq" + port["network_id"][:11]
    wait_for(lambda: link_exists(bridge), what=f"bridge {bridge}")
    inst = Instance(tag, port["mac_address"], bridge, env["work"])
    env["made"]["instances"].append(inst)
    return inst


def dnsmasq_ready(env, net_id: str, count_hosts: int | None = None) -> bool:
    folder = env["run_dir"] / "dhcp" / net_id
    if not (folder / "pid").exists() or not (folder / "host").exists():
        return False
    from pocketstack.network.backends.linuxbridge import running

    try:
        pid = int((folder / "pid").read_text().strip())
    except (OSError, ValueError):
        return False
    if not running(pid):
        return False
    if count_hosts is not None:
        return len((folder / "host").read_text().splitlines()) == count_hosts
    return True


@pytest.fixture(scope="module")
def topo(env):
    """Network A (two ports) and network B with the same CIDR (one port)."""
    cidr = "10.231.0.0/24"
    net_a = create(env, "network", {"name": "lb-a"})
    sub_a = create(env, "subnet", {"network_id": net_a["id"], "ip_version": 4, "cidr": cidr,
                                   "dns_nameservers": ["10.231.0.53"]})
    net_b = create(env, "network", {"name": "lb-b"})
    sub_b = create(env, "subnet", {"network_id": net_b["id"], "ip_version": 4, "cidr": cidr})
    a1 = create(env, "port", {"network_id": net_a["id"]})
    a2 = create(env, "port", {"network_id": net_a["id"]})
    b1 = create(env, "port", {"network_id": net_b["id"], "fixed_ips": [{"subnet_id": sub_b["id"],
                                                                         "ip_address": "10.231.0.10"}]})
    wait_for(lambda: dnsmasq_ready(env, net_a["id"], 2), what="dnsmasq of network A with 2 hosts")
    wait_for(lambda: dnsmasq_ready(env, net_b["id"], 1), what="dnsmasq of network B")
    return {"net_a": net_a, "sub_a": sub_a, "net_b": net_b, "sub_b": sub_b, "a1": a1, "a2": a2, "b1": b1,
            "i_a1": instance(env, "a1", a1), "i_a2": instance(env, "a2", a2), "i_b1": instance(env, "b1", b1)}


@needs_root
def test_dhcp_namespace_and_files(env, topo):
    net_id = topo["net_a"]["id"]
    ns = f"qdhcp-{net_id}"
    assert Path("/run/netns", ns).exists()
    dhcp_port = env["api"].get(f"/ports?network_id={net_id}&device_owner=network:dhcp").json()["ports"][0]
    inside = "ns-" + dhcp_port["id"][:11]
    assert link_exists(inside, ns)
    addrs = sh("ip", "netns", "exec", ns, "ip", "-o", "addr", "show", "dev", inside).stdout
    assert f"{dhcp_port['fixed_ips'][0]['ip_address']}/24" in addrs
    hosts = (env["run_dir"] / "dhcp" / net_id / "host").read_text()
    for port in (topo["a1"], topo["a2"]):
        assert f"{port['mac_address']},host-{port['fixed_ips'][0]['ip_address'].replace('.', '-')}," \
               f"{port['fixed_ips'][0]['ip_address']}," in hosts
    assert dhcp_port["mac_address"] not in hosts
    opts = (env["run_dir"] / "dhcp" / net_id / "opts").read_text()
    assert "option:router,10.231.0.1" in opts and "option:dns-server,10.231.0.53" in opts
    assert f"option:mtu,{topo['net_a']['mtu']}" in opts


@needs_root
def test_each_instance_gets_exactly_its_ipam_address(topo):
    for tag in ("a1", "a2", "b1"):
        lease = topo["i_" + tag].dhcp()
        assert lease is not None, f"{tag}: no DHCP lease"
        assert lease["ip"] == topo[tag]["fixed_ips"][0]["ip_address"], (tag, lease)
        assert lease["mask"] == "24"
        assert lease["router"] == "10.231.0.1"
        assert lease["mtu"] == str(topo["net_a"]["mtu"])
    assert topo["i_a1"].dhcp() is not None  # a renewal gets the same address
    lease = topo["i_a1"].dhcp()
    assert lease["dns"] == "10.231.0.53"


@needs_root
def test_unknown_mac_gets_no_lease(env, topo):
    stranger = instance(env, "x", {"network_id": topo["net_a"]["id"], "mac_address": "fa:16:3e:99:99:99"})
    assert stranger.dhcp(tries=2) is None


@needs_root
def test_instances_on_one_network_ping_each_other(topo):
    for tag in ("a1", "a2"):
        if topo["i_" + tag].dhcp() is None:
            pytest.fail(f"{tag}: no lease")
    assert topo["i_a1"].ping(topo["a2"]["fixed_ips"][0]["ip_address"])
    assert topo["i_a2"].ping(topo["a1"]["fixed_ips"][0]["ip_address"])


@needs_root
def test_other_network_is_isolated(topo):
    assert topo["i_b1"].dhcp()["ip"] == "10.231.0.10"
    for tag in ("a1", "a2"):
        assert topo["i_" + tag].dhcp() is not None
        assert not topo["i_b1"].ping(topo[tag]["fixed_ips"][0]["ip_address"], count=1)
        assert not topo["i_" + tag].ping("10.231.0.10", count=1)


@needs_root
def test_port_created_later_is_served_after_reload(env, topo):
    net_id = topo["net_a"]["id"]
    pid_before = int((env["run_dir"] / "dhcp" / net_id / "pid").read_text())
    a3 = create(env, "port", {"network_id": net_id})
    wait_for(lambda: dnsmasq_ready(env, net_id, 3), what="hosts file with the new port")
    assert int((env["run_dir"] / "dhcp" / net_id / "pid").read_text()) == pid_before  # SIGHUP, no restart
    inst = instance(env, "a3", a3)
    lease = inst.dhcp()
    assert lease is not None and lease["ip"] == a3["fixed_ips"][0]["ip_address"]
    env["api"]("DELETE", f"/ports/{a3['id']}", expect=204)
    inst.remove()  # the "instance" goes with its port (its address returns to the pool)
    env["made"]["instances"].remove(inst)
    # the freed address goes to the next port, with another MAC: dnsmasq must have forgotten
    # the old lease (a removed entry restarts it)
    wait_for(lambda: dnsmasq_ready(env, net_id, 2), what="hosts file without the deleted port")
    a3b = create(env, "port", {"network_id": net_id, "fixed_ips": [{"ip_address": a3["fixed_ips"][0]["ip_address"]}]})
    wait_for(lambda: dnsmasq_ready(env, net_id, 3), what="hosts file with the reused address")
    lease = instance(env, "a3b", a3b).dhcp()
    assert lease is not None and lease["ip"] == a3["fixed_ips"][0]["ip_address"]
    env["api"]("DELETE", f"/ports/{a3b['id']}", expect=204)
    wait_for(lambda: dnsmasq_ready(env, net_id, 2), what="hosts file without the deleted port")


@needs_root
def test_restart_adopts_the_dataplane(env, topo):
    """Bridges, namespaces and dnsmasq outlive a restart; the new process adopts them (the
    same dnsmasq keeps serving) and keeps following changes."""
    net_id = topo["net_a"]["id"]
    pid = int((env["run_dir"] / "dhcp" / net_id / "pid").read_text())
    env["cloud"].stop()
    from pocketstack.network.backends.linuxbridge import running

    assert running(pid) and link_exists("brq" + net_id[:11])
    assert topo["i_a1"].dhcp()["ip"] == topo["a1"]["fixed_ips"][0]["ip_address"]  # served while down
    env["cloud"].start()
    env["api"].token = env["cloud"].token()
    a4 = create(env, "port", {"network_id": net_id})
    wait_for(lambda: dnsmasq_ready(env, net_id, 3), what="hosts file after restart")
    assert int((env["run_dir"] / "dhcp" / net_id / "pid").read_text()) == pid
    lease = instance(env, "a4", a4).dhcp()
    assert lease is not None and lease["ip"] == a4["fixed_ips"][0]["ip_address"]
    env["api"]("DELETE", f"/ports/{a4['id']}", expect=204)
    wait_for(lambda: dnsmasq_ready(env, net_id, 2), what="hosts file without the port")


@needs_root
def test_router_snat_and_floating_ip(env, topo):
    api = env["api"]
    ext = create(env, "network", {"name": "lb-ext", "router:external": True})
    ext_sub = create(env, "subnet", {"network_id": ext["id"], "ip_version": 4, "cidr": "172.31.250.0/24",
                                     "gateway_ip": "172.31.250.1", "enable_dhcp": False})
    router = create(env, "router", {"name": "lb-r", "external_gateway_info": {"network_id": ext["id"]}})
    api("PUT", f"/routers/{router['id']}/add_router_interface", json={"subnet_id": topo["sub_a"]["id"]},
        expect=200)
    ns = f"qrouter-{router['id']}"
    ext_bridge = "brq" + ext["id"][:11]
    wait_for(lambda: Path("/run/netns", ns).exists() and link_exists(ext_bridge), what="router namespace")
    # "outside": a namespace on the external bridge holding the external gateway address
    outside = Instance("out", "fa:16:3e:00:00:01", ext_bridge, env["work"])
    env["made"]["instances"].append(outside)
    sh("ip", "netns", "exec", outside.ns, "ip", "addr", "add", "172.31.250.1/24", "dev", "eth0")
    router = api.get(f"/routers/{router['id']}").json()["router"]
    gw_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    wait_for(lambda: outside.ping(gw_ip, count=1), what="router gateway reachable from outside")
    a1 = topo["i_a1"]
    assert a1.dhcp() is not None
    assert a1.ping("10.231.0.1"), "the router's interface answers on network A"
    assert a1.ping("172.31.250.1"), "outside reachable through the router"
    # SNAT: "outside" has no route back to 10.231.0.0/24, so the ping above only came back
    # because the router rewrote the source to its gateway address
    assert "10.231.0.0" not in sh("ip", "netns", "exec", outside.ns, "ip", "route").stdout
    nat = sh("ip", "netns", "exec", ns, "iptables-save", "-t", "nat").stdout
    assert f"--to-source {gw_ip}" in nat
    # floating IP: DNAT from outside to a1's fixed address
    fip = api.create("floatingip", {"floating_network_id": ext["id"], "port_id": topo["a1"]["id"]})
    wait_for(lambda: f"--to-destination {topo['a1']['fixed_ips'][0]['ip_address']}" in
             sh("ip", "netns", "exec", ns, "iptables-save", "-t", "nat").stdout, what="floating IP DNAT")
    assert outside.ping(fip["floating_ip_address"]), "floating IP reachable from outside"
    api("DELETE", f"/floatingips/{fip['id']}", expect=204)
    # extra routes land in the namespace's routing table
    api("PUT", f"/routers/{router['id']}", json={"router": {"routes": [
        {"destination": "10.250.0.0/24", "nexthop": "10.231.0.50"}]}}, expect=200)
    wait_for(lambda: "10.250.0.0/24 via 10.231.0.50" in sh("ip", "netns", "exec", ns, "ip", "route").stdout,
             what="extra route")
    api("PUT", f"/routers/{router['id']}", json={"router": {"routes": []}}, expect=200)
    wait_for(lambda: "10.250.0.0/24" not in sh("ip", "netns", "exec", ns, "ip", "route").stdout,
             what="extra route removed")
    wait_for(lambda: not outside.ping(fip["floating_ip_address"], count=1), what="floating IP gone")
    api("PUT", f"/routers/{router['id']}/remove_router_interface", json={"subnet_id": topo["sub_a"]["id"]},
        expect=200)
    api("PUT", f"/routers/{router['id']}", json={"router": {"external_gateway_info": {}}}, expect=200)
    api("DELETE", f"/routers/{router['id']}", expect=204)
    wait_for(lambda: not Path("/run/netns", ns).exists(), what="router namespace removed")
    outside.remove()
    env["made"]["instances"].remove(outside)
    api("DELETE", f"/subnets/{ext_sub['id']}", expect=204)
    api("DELETE", f"/networks/{ext['id']}", expect=204)
    wait_for(lambda: not link_exists(ext_bridge), what="external bridge removed")


@needs_root
def test_everything_removed_on_delete(env, topo):
    api = env["api"]
    for tag in ("a1", "a2", "b1"):
        api("DELETE", f"/ports/{topo[tag]['id']}", expect=204)
    for inst in list(env["made"]["instances"]):
        inst.remove()
        env["made"]["instances"].remove(inst)
    for net in (topo["net_a"], topo["net_b"]):
        folder = env["run_dir"] / "dhcp" / net["id"]
        pid = int((folder / "pid").read_text())
        api("DELETE", f"/networks/{net['id']}", expect=204)
        wait_for(lambda: not Path("/run/netns", f"qdhcp-{net['id']}").exists(), what="qdhcp namespace removed")
        wait_for(lambda: not link_exists("brq" + net["id"][:11]), what="bridge removed")
        from pocketstack.network.backends.linuxbridge import running

        wait_for(lambda: not running(pid), what="dnsmasq stopped")
        assert not folder.exists()
    leftovers = sh("ip", "-o", "link", "show").stdout
    assert PREFIX not in leftovers


# ---------------------------------------------------------------------------- the backend alone
@needs_root
def test_backend_plug_tap_and_segments():
    """plug_port makes the tap QEMU opens (on the bridge, network MTU); flat/VLAN/VXLAN
    segments put a mapped interface, a VLAN sub-interface or a VXLAN device on the bridge."""
    from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend

    phys = f"{PREFIX}d"
    sh("ip", "link", "add", phys, "type", "veth", "peer", "name", f"{PREFIX}e")  # a stand-in host NIC
    vlan_ok = subprocess.run(["ip", "link", "add", "link", phys, "name", f"{PREFIX}v", "type", "vlan", "id", "9"],
                             capture_output=True).returncode == 0  # no 8021q module in some containers
    subprocess.run(["ip", "link", "delete", f"{PREFIX}v"], capture_output=True)
    backend = LinuxBridgeBackend(physical_interface_mappings={"physnet1": phys}, local_ip="127.0.0.1",
                                 vxlan_group="", run_dir=f"/run/{PREFIX}-unit")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    nets = [{"id": ids[0], "mtu": 1450, "segments": [{"network_type": "vxlan", "physical_network": None,
                                                      "segmentation_id": 4000 + int(PREFIX[3:5], 16)}]},
            {"id": ids[1], "mtu": 1500, "segments": [{"network_type": "vlan", "physical_network": "physnet1",
                                                      "segmentation_id": 101}]},
            {"id": ids[2], "mtu": 1500, "segments": [{"network_type": "flat", "physical_network": "physnet1",
                                                      "segmentation_id": None}]}]
    port_id = str(uuid.uuid4())
    try:
        backend.start()
        info = backend.plug_port({"id": port_id, "mac_address": "fa:16:3e:12:34:56"}, nets[0])
        assert info == {"tap": "tap" + port_id[:11], "bridge": "brq" + ids[0][:11], "mtu": 1450}
        show = sh("ip", "-d", "link", "show", "dev", info["tap"]).stdout
        assert f"master {info['bridge']}" in show and "mtu 1450" in show and "fe:16:3e:12:34:56" in show
        assert "tun" in show  # a tap QEMU opens with ifname=..., script=no
        vx = sh("ip", "-d", "link", "show", "master", info["bridge"]).stdout
        assert "vxlan-" in vx
        assert backend.ensure_network(nets[0]) == info["bridge"]  # idempotent
        if vlan_ok:
            backend.ensure_network(nets[1])
            assert f"{phys}.101" in sh("ip", "link", "show", "master", "brq" + ids[1][:11]).stdout
        backend.ensure_network(nets[2])
        assert phys in sh("ip", "link", "show", "master", "brq" + ids[2][:11]).stdout
        backend.unplug_port(port_id)
        assert not link_exists(info["tap"])
        for net in nets:
            backend.delete_network(net["id"])
            assert not link_exists("brq" + net["id"][:11])
        assert not link_exists(f"{phys}.101") and link_exists(phys)
        assert "master" not in sh("ip", "link", "show", "dev", phys).stdout
    finally:
        backend.stop(cleanup=True)
        subprocess.run(["ip", "link", "delete", "tap" + port_id[:11]], capture_output=True)
        for i in ids:
            subprocess.run(["ip", "link", "delete", "brq" + i[:11]], capture_output=True)
        subprocess.run(["ip", "link", "delete", phys], capture_output=True)
        shutil.rmtree(f"/run/{PREFIX}-unit", ignore_errors=True)


# ---------------------------------------------------------------------------- selection (no root needed)
def test_backend_selection_and_clear_errors(tmp_path, monkeypatch):
    from pocketstack.common.config import Config
    from pocketstack.network.backends import BackendError, load_backend
    from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend
    from pocketstack.network.backends.noop import NoopBackend

    cfg = Config.load(tmp_path)
    assert isinstance(load_backend(cfg), NoopBackend)  # the default
    cfg.override("network", "backend", "linuxbridge")
    cfg.override("linux_bridge", "physical_interface_mappings", "provider:eth9, physnet2:eth8")
    cfg.override("vxlan", "local_ip", "192.0.2.10")
    lb = load_backend(cfg)
    assert isinstance(lb, LinuxBridgeBackend)
    assert lb.mappings == {"provider": "eth9", "physnet2": "eth8"} and lb.local_ip == "192.0.2.10"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(BackendError, match="needs root"):
        lb.check()
    cfg.override("linux_bridge", "physical_interface_mappings", "eth9")
    with pytest.raises(BackendError, match="physnet:interface"):
        load_backend(cfg)
    cfg.override("network", "backend", "ovs")
    with pytest.raises(BackendError, match="noop or linuxbridge"):
        load_backend(cfg)


def test_noop_backend_reports_bridge_and_tap():
    from pocketstack.network.backends.noop import NoopBackend

    port_id, net_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert NoopBackend().plug_port({"id": port_id}, {"id": net_id, "mtu": 1450}) == \
        {"tap": "tap" + port_id[:11], "bridge": "brq" + net_id[:11], "mtu": 1450}


def test_up_flag():
    from pocketstack.cli import build_parser

    args = build_parser().parse_args(["up", "--network-backend", "linuxbridge"])
    assert args.network_backend == "linuxbridge"


# ---------------------------------------------------------------------------- compute's calls, in-process
@needs_root
def test_compute_plugs_and_unplugs_through_the_dataplane(tmp_path):
    """What the QEMU driver does: allocate ports (the compute contract), `plug` each vif
    (tap on the network's bridge), deallocate; the deleted ports' taps are then removed."""
    from pocketstack import server
    from pocketstack.common.config import Config
    from pocketstack.common.context import AuthContext
    from pocketstack.common.runtime import set_current
    from pocketstack.network import core, networks, subnets
    from pocketstack.network.backends import base

    run_dir = f"/run/{PREFIX}-inproc"
    cfg = Config.load(tmp_path)
    cfg.override("pocketstack", "enabled_services", "identity,network")
    cfg.override("network", "backend", "linuxbridge")
    cfg.override("linux_bridge", "run_dir", run_dir)
    rt = server.build_runtime(cfg)
    dp = base.get_dataplane()
    net_id = None
    try:
        server.initialise(rt, "secret-pw")
        project = uuid.uuid4().hex
        with rt.db.session() as sess:
            net = networks.create(sess, None, networks.RESOURCE.parse_create(
                {"network": {"name": "inproc", "project_id": project}}, None))
            net_id = net.id
            subnets.create(sess, None, subnets.RESOURCE.parse_create(
                {"subnet": {"network_id": net.id, "ip_version": 4, "cidr": "10.233.0.0/24",
                            "project_id": project}}, None))
        ctx = AuthContext(user_id="u-compute", project_id=project, roles=["member", "reader"])
        instance_id = str(uuid.uuid4())
        vifs = core.allocate_for_instance(ctx, instance_id=instance_id, project_id=project, host="h1",
                                          requested=[{"uuid": net_id}])
        info = dp.plug(vifs[0]["id"])
        assert info == {"tap": vifs[0]["devname"], "bridge": "brq" + net_id[:11], "mtu": vifs[0]["network"]["mtu"]}
        assert f"master {info['bridge']}" in sh("ip", "link", "show", "dev", info["tap"]).stdout
        core.deallocate_for_instance(ctx, instance_id)
        assert dp.flush(20)
        wait_for(lambda: not link_exists(info["tap"]), what="tap removed after the port is deleted")
    finally:
        dp.stop(cleanup=True)
        base.set_dataplane(None)
        rt.db.dispose()
        set_current(None)
        if net_id:
            subprocess.run(["ip", "link", "delete", "brq" + net_id[:11]], capture_output=True)
            subprocess.run(["ip", "netns", "delete", f"qdhcp-{net_id}"], capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)
