"""Security groups enforced by the Linux-bridge dataplane, with real peers.

A cloud with `[network] backend = linuxbridge`; "instances" are namespaces whose veth is on
the network's bridge under the port's tap name (`tap<port[:11]>`), so the dataplane adopts
and filters them exactly as it does QEMU's taps. Checks, live through the Networking API:
ping denied, then allowed by adding an ICMP rule, denied again when it is deleted; a TCP
port rule (busybox nc); a remote-group rule follows membership; anti-spoofing (another IP
or MAC cannot send, an allowed address pair can); port security off means unfiltered;
deleting a port removes its chains. Needs root, iptables and busybox; skipped otherwise.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Cloud
from tests.network.netlib import NeutronHTTP
from tests.network.test_linuxbridge import (PREFIX, REASON, Instance, dnsmasq_ready, link_exists, sh, teardown,
                                            wait_for, workdir)

needs_root = pytest.mark.skipif(REASON is not None, reason=REASON or "")

CIDR = "10.234.0.0/24"


def chains_of(run_dir: Path, port_id: str) -> list[str]:
    from pocketstack.network.backends import firewall

    tag = firewall.chain_tag(run_dir)
    names = firewall.port_chains(tag, port_id)
    return [n for n in names if f"-N {n}" in sh("iptables", "-w", "-S").stdout]


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    work = workdir(tmp_path_factory, "fw")
    (work / "pong.sh").write_text("#!/bin/sh\necho pong\n")
    (work / "pong.sh").chmod(0o755)
    run_dir = Path(f"/run/{PREFIX}-fw")
    cloud = Cloud(work / "cloud", config={("pocketstack", "enabled_services"): "identity,network",
                                          ("network", "backend"): "linuxbridge",
                                          ("linux_bridge", "run_dir"): str(run_dir)})
    made: dict = {"instances": [], "networks": []}
    try:
        cloud.start()
        api = NeutronHTTP(cloud, cloud.token())
        net = api.create("network", {"name": "fw"})
        made["networks"].append(net["id"])
        api.create("subnet", {"network_id": net["id"], "ip_version": 4, "cidr": CIDR})
        sg = create_sg(api, "security_group", {"name": "fw-a"})  # a new group: egress rules only
        env = {"api": api, "cloud": cloud, "run_dir": run_dir, "work": work, "made": made, "net": net, "sg": sg}
        ports = [api.create("port", {"network_id": net["id"], "security_groups": [sg["id"]]}) for _ in range(2)]
        wait_for(lambda: dnsmasq_ready(env, net["id"], 2), what="dnsmasq")
        env["p1"], env["p2"] = ports
        env["i1"], env["i2"] = add_instance(env, "f1", ports[0]), add_instance(env, "f2", ports[1])
        yield env
    finally:
        teardown(cloud, made, run_dir)


def add_instance(env, tag: str, port: dict, routes: bool = False) -> Instance:
    """A namespace on the port's tap; waits until the dataplane filters it, then leases
    (with `routes`, applying the DHCP host routes too)."""
    tap = "tap" + port["id"][:11]
    if link_exists(tap):  # compute plugged the server's port: the namespace takes the tap's place
        sh("ip", "link", "delete", tap)
    inst = Instance(tag, port["mac_address"], "brq" + port["network_id"][:11], env["work"], host_dev=tap)
    env["made"]["instances"].append(inst)
    if port.get("port_security_enabled", True):
        wait_for(lambda: len(chains_of(env["run_dir"], port["id"])) == 3, what=f"chains of {tag}")
    lease = inst.dhcp(routes=routes)
    assert lease is not None and lease["ip"] == port["fixed_ips"][0]["ip_address"], (tag, lease)
    return inst


def create_sg(api, kind: str, body: dict) -> dict:
    """security_group / security_group_rule (their paths use hyphens)."""
    res = api("POST", "/" + kind.replace("_", "-") + "s", json={kind: body}, expect=201)
    return res.json()[kind]


def ip_of(port: dict) -> str:
    return port["fixed_ips"][0]["ip_address"]


def rule(env, **body) -> dict:
    return create_sg(env["api"], "security_group_rule", {"security_group_id": env["sg"]["id"], "direction": "ingress",
                                                     "ethertype": "IPv4", **body})


def delete_rule(env, rule_id: str) -> None:
    env["api"]("DELETE", f"/security-group-rules/{rule_id}", expect=204)


def settle(env) -> None:
    time.sleep(0.6)  # the dataplane's debounce, then its pass


@needs_root
def test_dhcp_passes_the_filter_and_ping_needs_a_rule(fw):
    from pocketstack.network.backends import firewall

    bridge = "brq" + fw["net"]["id"][:11]
    raw = sh("iptables", "-w", "-t", "raw", "-S").stdout
    assert f"-A {firewall.raw_chain(firewall.chain_tag(fw['run_dir']))} -i {bridge} -j CT --zone " in raw
    assert not fw["i1"].ping(ip_of(fw["p2"]), count=1), "no ingress rule yet: ICMP must be dropped"
    icmp = rule(fw, protocol="icmp")
    wait_for(lambda: fw["i1"].ping(ip_of(fw["p2"]), count=1), what="ping allowed by the new rule")
    assert fw["i2"].ping(ip_of(fw["p1"]), count=1)
    delete_rule(fw, icmp["id"])
    wait_for(lambda: not fw["i1"].ping(ip_of(fw["p2"]), count=1), what="ping denied again")
    # ICMP type/code: echo request only
    echo = rule(fw, protocol="icmp", port_range_min=8, port_range_max=0)
    wait_for(lambda: fw["i1"].ping(ip_of(fw["p2"]), count=1), what="ping allowed by type 8 code 0")
    delete_rule(fw, echo["id"])
    wait_for(lambda: not fw["i1"].ping(ip_of(fw["p2"]), count=1), what="ping denied after the type rule")


def _tcp(env, port: int) -> bool:
    res = env["i1"].sh("busybox", "nc", "-w", "2", ip_of(env["p2"]), port, timeout=10)
    return "pong" in res.stdout


@needs_root
def test_tcp_port_rule(fw):
    servers = [subprocess.Popen(["ip", "netns", "exec", fw["i2"].ns, "busybox", "nc", "-ll", "-p", str(p), "-e",
                                 str(fw["work"] / "pong.sh")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for p in (8080, 8081)]
    try:
        time.sleep(0.3)
        assert fw["i2"].sh("busybox", "nc", "-w", "1", "127.0.0.1", 8080).stdout.strip() == "pong"  # it serves
        assert not _tcp(fw, 8080)
        tcp = rule(fw, protocol="tcp", port_range_min=8080, port_range_max=8080, remote_ip_prefix=CIDR)
        wait_for(lambda: _tcp(fw, 8080), what="TCP 8080 allowed")
        assert not _tcp(fw, 8081), "only the rule's port is open"
        other = rule(fw, protocol="tcp", port_range_min=8080, port_range_max=8090, remote_ip_prefix="10.99.0.0/16")
        settle(fw)
        assert not _tcp(fw, 8081), "a rule for another prefix does not open it"
        delete_rule(fw, other["id"])
        delete_rule(fw, tcp["id"])
        wait_for(lambda: not _tcp(fw, 8080), what="TCP 8080 closed again")
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()


@needs_root
def test_remote_group_follows_membership(fw):
    api = fw["api"]
    peers = create_sg(api, "security_group", {"name": "fw-peers"})
    by_group = rule(fw, protocol="icmp", remote_group_id=peers["id"])
    settle(fw)
    assert not fw["i1"].ping(ip_of(fw["p2"]), count=1), "i1 is not in the remote group"
    api("PUT", f"/ports/{fw['p1']['id']}", json={"port": {"security_groups": [fw["sg"]["id"], peers["id"]]}},
        expect=200)
    wait_for(lambda: fw["i1"].ping(ip_of(fw["p2"]), count=1), what="member of the remote group may ping")
    api("PUT", f"/ports/{fw['p1']['id']}", json={"port": {"security_groups": [fw["sg"]["id"]]}}, expect=200)
    wait_for(lambda: not fw["i1"].ping(ip_of(fw["p2"]), count=1), what="no longer a member")
    delete_rule(fw, by_group["id"])


def arping(inst, target: str) -> bool:
    """An ARP request (ebtables' part: iptables never sees ARP) answered by the target."""
    return inst.sh("busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0", target).returncode == 0


@needs_root
def test_anti_spoofing(fw):
    icmp = rule(fw, protocol="icmp")
    i1, target = fw["i1"], ip_of(fw["p2"])
    wait_for(lambda: i1.ping(target, count=1), what="ping with the port's own address")
    assert arping(i1, target)
    own = ip_of(fw["p1"])
    i1.sh("ip", "addr", "flush", "dev", "eth0")
    i1.sh("ip", "addr", "add", "10.234.0.200/24", "dev", "eth0")
    assert not arping(i1, target), "ARP from another IP must not leave the tap"
    assert not i1.ping(target, count=1), "another IP must not leave the tap"
    fw["api"]("PUT", f"/ports/{fw['p1']['id']}", json={"port": {"allowed_address_pairs": [
        {"ip_address": "10.234.0.200"}]}}, expect=200)
    wait_for(lambda: i1.ping(target, count=1), what="an allowed address pair may send")
    assert arping(i1, target)
    fw["api"]("PUT", f"/ports/{fw['p1']['id']}", json={"port": {"allowed_address_pairs": []}}, expect=200)
    wait_for(lambda: not i1.ping(target, count=1), what="the pair removed")
    i1.sh("ip", "addr", "flush", "dev", "eth0")
    i1.sh("ip", "addr", "add", f"{own}/24", "dev", "eth0")
    assert i1.ping(target, count=1)
    i1.sh("ip", "link", "set", "eth0", "address", "fa:16:3e:66:66:66")
    assert not arping(i1, target), "ARP from another MAC must not leave the tap"
    assert not i1.ping(target, count=1), "another MAC must not leave the tap"
    i1.sh("ip", "link", "set", "eth0", "address", fw["p1"]["mac_address"])
    assert i1.ping(target, count=1) and arping(i1, target)
    delete_rule(fw, icmp["id"])


@needs_root
def test_port_security_disabled_is_unfiltered_and_chains_go_with_the_port(fw):
    api = fw["api"]
    p3 = api.create("port", {"network_id": fw["net"]["id"], "port_security_enabled": False})
    add_instance(fw, "f3", p3)
    assert not chains_of(fw["run_dir"], p3["id"])
    assert fw["i1"].ping(ip_of(p3), count=1), "an unfiltered port accepts anything"
    assert not fw["i1"].ping(ip_of(fw["p2"]), count=1), "while the filtered one still drops ICMP"
    # deleting a filtered port removes its chains (and its tap)
    api("DELETE", f"/ports/{fw['p2']['id']}", expect=204)
    wait_for(lambda: not chains_of(fw["run_dir"], fw["p2"]["id"]), what="chains of the deleted port removed")
    assert chains_of(fw["run_dir"], fw["p1"]["id"])
    assert "tap" + fw["p2"]["id"][:11] not in sh("ip", "-o", "link", "show").stdout


# ---------------------------------------------------------------------------- rule translation (no root needed)
def _rule(**kw) -> dict:
    return {"direction": "ingress", "ethertype": "IPv4", "protocol": None, "port_range_min": None,
            "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None, **kw}


def test_rules_translate_neutron_fields():
    from pocketstack.network.backends import firewall

    port = {"id": "0123456789-abcdef", "mac_address": "FA:16:3E:00:00:01",
            "fixed_ips": [{"ip_address": "10.0.0.5"}, {"ip_address": "fd00::5"}],
            "allowed_address_pairs": [{"ip_address": "10.0.1.0/24", "mac_address": "fa:16:3e:00:00:02"}],
            "remote_group_members": {"g": ["10.0.0.7", "fd00::7"], "empty": []},
            "security_group_rules": [
                _rule(protocol="tcp", port_range_min=22, port_range_max=22, remote_ip_prefix="192.0.2.0/24"),
                _rule(protocol="17", port_range_min=1000, port_range_max=2000),
                _rule(protocol="icmp", port_range_min=8, port_range_max=0),
                _rule(protocol="icmp", ethertype="IPv6", port_range_min=128),
                _rule(remote_group_id="g"), _rule(remote_group_id="g", ethertype="IPv6"),
                _rule(remote_group_id="empty", protocol="tcp"),
                _rule(protocol="ipv6-frag"), _rule(protocol="gre", remote_ip_prefix="0.0.0.0/0"),
                _rule(direction="egress", protocol="udp", port_range_min=53, port_range_max=53,
                      remote_ip_prefix="198.51.100.1/32")]}
    v4 = firewall.render("t", [port], ["brqx"], ["psqtigone"], 4)
    chain_in, chain_out, spoof = firewall.port_chains("t", port["id"])
    assert f"-A {chain_in} -s 192.0.2.0/24 -p tcp -m multiport --dports 22 -j RETURN" in v4
    assert f"-A {chain_in} -p udp -m multiport --dports 1000:2000 -j RETURN" in v4
    assert f"-A {chain_in} -p icmp -m icmp --icmp-type 8/0 -j RETURN" in v4
    assert f"-A {chain_in} -s 10.0.0.7/32 -j RETURN" in v4 and "fd00::7" not in v4
    assert f"-A {chain_in} -p 47 -j RETURN" in v4  # by number; a /0 prefix is "anywhere"
    assert "ipv6-frag" not in v4 and "-p 44" not in v4  # an IPv6-only protocol never matches IPv4
    ingress_tcp = [x for x in v4.splitlines() if x.startswith(f"-A {chain_in} ") and " -p tcp " in x]
    assert len(ingress_tcp) == 1  # the empty remote group's rule matches nobody
    assert f"-A {chain_out} -d 198.51.100.1/32 -p udp -m multiport --dports 53 -j RETURN" in v4
    assert f"-A {spoof} -s 10.0.0.5/32 -m mac --mac-source fa:16:3e:00:00:01 -j RETURN" in v4
    assert f"-A {spoof} -s 10.0.1.0/24 -m mac --mac-source fa:16:3e:00:00:02 -j RETURN" in v4
    assert f"-A t-f" not in v4 and f"-A psqt-f -o brqx -m physdev --physdev-is-bridged -j ACCEPT" in v4
    assert "\n-X psqtigone\nCOMMIT\n*raw\n" in v4
    assert v4.endswith(f"-A psqt-r -i brqx -j CT --zone {firewall.zone('brqx')}\nCOMMIT\n")  # per-network conntrack
    lines = v4.splitlines()  # defaults: established first, a final drop in both directions
    body_in = [x for x in lines if x.startswith(f"-A {chain_in} ")]
    assert "RELATED,ESTABLISHED" in body_in[0] and body_in[-1] == f"-A {chain_in} -j DROP"
    assert [x for x in lines if x.startswith(f"-A {chain_out} ")][-1] == f"-A {chain_out} -j DROP"
    v6 = firewall.render("t", [port], ["brqx"], [], 6)
    assert f"-A {chain_in} -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j RETURN" in v6
    assert f"-A {chain_in} -s fd00::7/128 -j RETURN" in v6
    assert f"-A {spoof} -s fe80::f816:3eff:fe00:1/128 -m mac --mac-source fa:16:3e:00:00:01 -j RETURN" in v6
    eb = firewall.render("t", [port], ["brqx"], [], "ebtables")
    (arp,) = firewall.port_chains("t", port["id"], "ebtables")
    assert f"-A {arp} -p ARP -s fa:16:3e:00:00:01 --arp-mac-src fa:16:3e:00:00:01 --arp-ip-src 10.0.0.5/32 " \
           "-j RETURN" in eb
    assert f"-A {arp} -p ARP -j DROP" in eb and eb.endswith(f"\n-A {arp} -j DROP\nCOMMIT\n")


def test_unfiltered_ports_get_no_chains():
    from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend

    backend = LinuxBridgeBackend(run_dir="/nonexistent")
    written = []
    backend._sync_firewall = lambda: written.append(dict(backend.fw_ports))
    port = {"id": "p1", "mac_address": "fa:16:3e:00:00:01", "fixed_ips": []}
    backend.apply_security_groups({**port, "port_security_enabled": False})
    backend.apply_security_groups({**port, "device_owner": "network:dhcp"})
    assert written == []  # never filtered: nothing to write
    backend.apply_security_groups(port)
    backend.apply_security_groups({**port, "port_security_enabled": False})
    assert written == [{"p1": port}, {}]
