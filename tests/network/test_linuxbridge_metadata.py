"""The metadata proxy and the demo outside world of the Linux-bridge dataplane, with real peers.

A cloud with compute (fake virt driver), `[network] backend = linuxbridge` and `[network]
external_network = demo`. Servers are booted on ports the test made; their "instances" are
namespaces on the ports' taps (adopted and filtered by the dataplane). Each instance
fetches http://169.254.169.254/openstack/latest/meta_data.json and sees its own server:
on an isolated network through the DHCP namespace (the host route comes from DHCP), behind
a router through the router namespace; a port without a server gets 404, forged identity
headers are ignored. The `public` network exists once (also after a restart) and its
outside namespace reaches a floating IP. The backend alone: stop(cleanup) removes chains,
proxies, namespaces and bridges. Needs root, dnsmasq, iptables and busybox; skipped otherwise.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import Cloud
from tests.network.netlib import NeutronHTTP
from tests.network.test_linuxbridge import (PREFIX, REASON, leftovers, link_exists, sh, teardown, wait_for,
                                            workdir)
from tests.network.test_linuxbridge_firewall import add_instance, create_sg, ip_of

needs_root = pytest.mark.skipif(REASON is not None, reason=REASON or "")
OUTSIDE = f"{PREFIX}-out"
URL = "http://169.254.169.254/openstack/latest/meta_data.json"


@pytest.fixture(scope="module")
def md(tmp_path_factory):
    work = workdir(tmp_path_factory, "md")
    run_dir = Path(f"/run/{PREFIX}-md")
    cloud = Cloud(work / "cloud", config={("pocketstack", "enabled_services"): "identity,image,compute,network",
                                          ("network", "backend"): "linuxbridge",
                                          ("network", "external_network"): "demo",
                                          ("linux_bridge", "outside_namespace"): OUTSIDE,
                                          ("linux_bridge", "run_dir"): str(run_dir)})
    made: dict = {"instances": [], "networks": [], "routers": [], "namespaces": [OUTSIDE]}
    try:
        cloud.start()
        img = work / "tiny.raw"
        img.write_bytes(b"\0" * 65536)
        cloud.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(img),
                        "md-img")
        yield {"cloud": cloud, "api": NeutronHTTP(cloud, cloud.token()), "work": work, "run_dir": run_dir,
               "made": made}
    finally:
        teardown(cloud, made, run_dir)


def network(md, name: str, cidr: str) -> tuple[dict, dict]:
    net = md["api"].create("network", {"name": name})
    md["made"]["networks"].append(net["id"])
    sub = md["api"].create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": cidr})
    return net, sub


def server_on(md, name: str, port: dict) -> str:
    return md["cloud"].os_json("server", "create", "--flavor", "m1.tiny", "--image", "md-img", "--port", port["id"],
                               "--wait", name)["id"]


def fetch(inst, *extra) -> subprocess.CompletedProcess:
    return inst.sh("busybox", "wget", "-q", "-O", "-", *extra, URL, timeout=20)  # (its -T crashes busybox 1.35)


def own_uuid(inst) -> str | None:
    res = fetch(inst)
    return json.loads(res.stdout)["uuid"] if res.returncode == 0 else None


@needs_root
def test_public_network_and_outside_namespace(md):
    nets = md["api"].get("/networks?name=public", expect=200).json()["networks"]
    assert len(nets) == 1
    pub = nets[0]
    assert pub["router:external"] is True and pub["shared"] is False
    admin_project = md["cloud"].os_json("project", "show", "admin")["id"]
    assert pub["project_id"] == admin_project
    sub = md["api"].get(f"/subnets?network_id={pub['id']}", expect=200).json()["subnets"][0]
    assert (sub["cidr"], sub["gateway_ip"]) == ("172.24.4.0/24", "172.24.4.1")
    assert sub["allocation_pools"] == [{"start": "172.24.4.2", "end": "172.24.4.254"}]
    wait_for(lambda: Path("/run/netns", OUTSIDE).exists() and "172.24.4.1/24" in
             sh("ip", "netns", "exec", OUTSIDE, "ip", "-o", "addr").stdout, what="outside namespace")
    assert "172.24.4.1" not in sh("ip", "-o", "addr").stdout, "never on the host's own stack"


@needs_root
def test_isolated_network_metadata_per_instance(md):
    api = md["api"]
    net, _ = network(md, "md-iso", "10.235.0.0/24")
    p1, p2, p3 = (api.create("port", {"network_id": net["id"]}) for _ in range(3))
    s1, s2 = server_on(md, "md1", p1), server_on(md, "md2", p2)
    i1, i2, i3 = (add_instance(md, tag, port, routes=True) for tag, port in (("m1", p1), ("m2", p2), ("m3", p3)))
    dhcp_ip = api.get(f"/ports?network_id={net['id']}&device_owner=network:dhcp").json()["ports"][0]
    assert f"169.254.169.254 via {ip_of(dhcp_ip)}" in i1.sh("ip", "route").stdout, "host route from DHCP"
    wait_for(lambda: own_uuid(i1) == s1, what="instance 1 sees its own metadata")
    assert own_uuid(i2) == s2
    res = fetch(i3)
    assert res.returncode != 0 and "404" in res.stderr, res
    forged = fetch(i3, "--header", f"X-Instance-ID: {s1}")  # a guest cannot claim another identity
    assert forged.returncode != 0 and "404" in forged.stderr
    listing = i1.sh("busybox", "wget", "-q", "-O", "-", "http://169.254.169.254/openstack/latest/").stdout
    assert "meta_data.json" in listing


@needs_root
def test_router_metadata_floating_ip_from_outside_and_restart(md):
    api, cloud = md["api"], md["cloud"]
    pub = api.get("/networks?name=public", expect=200).json()["networks"][0]
    net, sub = network(md, "md-routed", "10.236.0.0/24")
    router = api.create("router", {"name": "md-r", "external_gateway_info": {"network_id": pub["id"]}})
    md["made"]["routers"].append(router["id"])
    api("PUT", f"/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]}, expect=200)
    p4 = api.create("port", {"network_id": net["id"]})
    s4 = server_on(md, "md4", p4)
    i4 = add_instance(md, "m4", p4, routes=True)
    assert "169.254.169.254" not in i4.sh("ip", "route").stdout, "not isolated: no host route"
    wait_for(lambda: own_uuid(i4) == s4, what="metadata through the router namespace")
    qdhcp = f"qdhcp-{net['id']}"
    assert "169.254.169.254" not in sh("ip", "netns", "exec", qdhcp, "ip", "-o", "addr").stdout
    # a floating IP, reached from the outside namespace once the group lets ICMP in
    fip = api.create("floatingip", {"floating_network_id": pub["id"], "port_id": p4["id"]})
    assert fip["floating_ip_address"].startswith("172.24.4.")
    ping = ["ip", "netns", "exec", OUTSIDE, "busybox", "ping", "-c", "1", "-W", "1", fip["floating_ip_address"]]
    gw = api.get(f"/routers/{router['id']}").json()["router"]["external_gateway_info"]["external_fixed_ips"][0]
    assert subprocess.run([*ping[:-1], gw["ip_address"]], capture_output=True).returncode == 0, "router gateway"
    wait_for(lambda: f"--to-destination {ip_of(p4)}" in
             sh("ip", "netns", "exec", f"qrouter-{router['id']}", "iptables-save", "-t", "nat").stdout,
             what="floating IP NAT")
    assert subprocess.run(ping, capture_output=True).returncode != 0, "the default group drops ICMP from outside"
    default = api.get(f"/security-groups?name=default&project_id={p4['project_id']}").json()["security_groups"][0]
    create_sg(api, "security_group_rule", {"security_group_id": default["id"], "direction": "ingress",
                                           "ethertype": "IPv4", "protocol": "icmp"})
    wait_for(lambda: subprocess.run(ping, capture_output=True).returncode == 0, what="floating IP from outside")
    # a restart: the same public network, the outside namespace and metadata still there
    cloud.stop()
    cloud.start()
    api.token = cloud.token()
    assert len(api.get("/networks?name=public", expect=200).json()["networks"]) == 1
    assert subprocess.run(ping, capture_output=True).returncode == 0
    wait_for(lambda: own_uuid(i4) == s4, what="metadata after a restart")
    assert own_uuid(i4) == s4


def test_external_network_needs_linuxbridge(tmp_path):
    from pocketstack.common.config import Config
    from pocketstack.network.backends import BackendError, base

    cfg = Config.load(tmp_path)
    cfg.override("network", "external_network", "demo")

    class Rt:
        config = cfg

    with pytest.raises(BackendError, match="needs the linuxbridge network backend"):
        base.configure(Rt())
    cfg.override("network", "external_network", "lab")
    with pytest.raises(BackendError, match="must be demo"):
        base.configure(Rt())
    base.set_dataplane(None)


def test_up_external_network_flag():
    from pocketstack.cli import build_parser

    assert build_parser().parse_args(["up", "--external-network", "demo"]).external_network == "demo"


# ---------------------------------------------------------------------------- the backend alone
@needs_root
def test_backend_cleanup_removes_chains_proxies_outside():
    from pocketstack.network.backends import firewall
    from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend, netns_exists, running

    run_dir = Path(f"/run/{PREFIX}-clean")
    outside = f"{PREFIX}-co"
    backend = LinuxBridgeBackend(run_dir=run_dir, outside_namespace=outside)
    tag = firewall.chain_tag(run_dir)
    net_id, ext_id, port_id, router_id = (str(uuid.uuid4()) for _ in range(4))
    ext = {"id": ext_id, "mtu": 1500, "segments": [], "subnets": [
        {"id": "s", "ip_version": 4, "cidr": "172.24.9.0/24", "gateway_ip": "172.24.9.1", "enable_dhcp": False}]}
    net = {"id": net_id, "mtu": 1500, "segments": []}
    port = {"id": port_id, "mac_address": "fa:16:3e:00:12:34", "fixed_ips": [{"ip_address": "10.237.0.5"}],
            "security_group_rules": [], "remote_group_members": {}, "allowed_address_pairs": []}
    iface = {"id": str(uuid.uuid4()), "network_id": net_id, "mac_address": "fa:16:3e:00:12:35", "mtu": 1500,
             "fixed_ips": [{"ip_address": "10.237.0.1", "prefixlen": 24}]}
    try:
        backend.start()
        backend.plug_port(port, net)
        backend.apply_security_groups(port)
        backend.sync_router({"id": router_id, "interfaces": [iface], "gateway": None, "routes": []})
        backend.ensure_outside(ext)
        assert f"-N psq{tag}i{port_id[:10]}" in sh("iptables", "-w", "-S").stdout
        assert f"-j psq{tag}-f" in sh("iptables", "-w", "-S", "FORWARD").stdout
        assert f"-j psq{tag}-r" in sh("iptables", "-w", "-t", "raw", "-S", "PREROUTING").stdout
        assert f"-j psq{tag}-e" in sh("ebtables", "-L", "FORWARD").stdout
        pid = int((run_dir / "router" / router_id / "metadata.pid").read_text())
        assert running(pid)
        assert "REDIRECT" in sh("ip", "netns", "exec", f"qrouter-{router_id}", "iptables-save", "-t", "nat").stdout
        assert netns_exists(outside)
        backend.stop(cleanup=True)
        assert f"psq{tag}" not in sh("iptables", "-w", "-S").stdout
        assert f"psq{tag}" not in sh("ip6tables", "-w", "-S").stdout
        assert f"psq{tag}" not in sh("iptables", "-w", "-t", "raw", "-S").stdout
        assert f"psq{tag}" not in sh("ebtables", "-L").stdout
        wait_for(lambda: not running(pid), what="proxy stopped")
        assert not netns_exists(outside) and not netns_exists(f"qrouter-{router_id}")
        assert not link_exists("brq" + net_id[:11]) and not link_exists("tap" + port_id[:11])
    finally:
        backend.stop(cleanup=True)
        for dev in ("brq" + net_id[:11], "brq" + ext_id[:11], "tap" + port_id[:11]):
            subprocess.run(["ip", "link", "delete", dev], capture_output=True)
        for ns in (outside, f"qrouter-{router_id}"):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        leftovers(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
