"""Security groups and anti-spoofing for Linux-bridge ports, as iptables rules.

Why this shape (neutron's iptables firewall driver, the idea, not its code): bridged frames
cross the host's `filter FORWARD` chain when `bridge-nf-call-iptables` is 1, and
`-m physdev --physdev-out/--physdev-in tap...` tells which instance port a frame goes to
or leaves from. Per port three chains:

- `psq<tag>i<port>` (to the instance): replies (conntrack ESTABLISHED/RELATED), DHCP
  replies, ICMPv6 neighbour discovery, then the ingress rules of the port's groups; drop.
- `psq<tag>o<port>` (from the instance): a DHCP request from 0.0.0.0, then the spoof chain;
  no DHCP/RA server; replies; the egress rules; drop.
- `psq<tag>s<port>`: only the port's MAC with its fixed IPs (and allowed address pairs)
  may leave; drop.

Allowed traffic RETURNs, so both ends of a frame between two filtered ports are checked,
then the top chain `psq<tag>-f` accepts what is on our bridges. ARP (which iptables never
sees) and other non-IP frames are checked by ebtables: `psq<tag>a<port>` (from `FORWARD -i
tap...` via `psq<tag>-e`) lets ARP leave only with the port's MAC and addresses, and any
frame only with one of its MACs. Each of our bridges gets its own conntrack zone (`raw`
chain `psq<tag>-r`: `-i brq... -j CT --zone N`), so two networks with the same CIDR never
share connection state. `<tag>` is derived from the
backend's run dir, so two clouds on one host keep separate chains. Everything is written
with one `iptables-restore --noflush` naming only our chains (declaring a chain flushes
it; removed ports' chains are deleted in the same transaction): the host's own rules are
never flushed. A port with `port_security_enabled` false gets no chains (unfiltered).
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
from pathlib import Path

log = logging.getLogger("pocketstack.network.firewall")

# neutron-lib's protocol names (as the API accepts them) -> number
PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
             "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
             "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46,
             "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112}
PORT_PROTOCOLS = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}
NDP_IN = (130, 131, 132, 134, 135, 136)  # MLD, router advertisement, neighbour solicitation/advert
NDP_OUT = (130, 131, 132, 133, 135, 136, 143)  # MLD(v2), router/neighbour solicitation, advert


def chain_tag(run_dir: str | Path) -> str:
    return hashlib.sha1(str(run_dir).encode()).hexdigest()[:4]


FAMILIES = ("iptables", "ip6tables", "ebtables")


def top_chain(tag: str, family: str = "iptables") -> str:
    return f"psq{tag}-e" if family == "ebtables" else f"psq{tag}-f"


def port_chains(tag: str, port_id: str, family: str = "iptables") -> tuple[str, ...]:
    short = port_id[:10]
    if family == "ebtables":
        return (f"psq{tag}a{short}",)
    return f"psq{tag}i{short}", f"psq{tag}o{short}", f"psq{tag}s{short}"


def raw_chain(tag: str) -> str:
    return f"psq{tag}-r"


def zone(bridge: str) -> int:
    """The conntrack zone of a bridge (stable across restarts; a clash only shares state)."""
    return 1 + int(hashlib.sha1(bridge.encode()).hexdigest()[:4], 16) % 65000


def wanted_chains(tag: str, port_ids, family: str) -> set[str]:
    out = {top_chain(tag, family)}
    for port_id in port_ids:
        out |= set(port_chains(tag, port_id, family))
    return out


def restore_command(family: str) -> list[str]:
    return ["ebtables-restore", "--noflush"] if family == "ebtables" else [family + "-restore", "-w", "-n"]


def _declare(family: str, chain: str) -> str:
    return f":{chain} RETURN" if family == "ebtables" else f":{chain} - [0:0]"


def removal(family: str, chains: list[str]) -> str:
    """Restore input that empties and deletes `chains` (nothing references them any more)."""
    return "\n".join(["*filter"] + [_declare(family, c) for c in chains] + [f"-X {c}" for c in chains]
                     + ["COMMIT", ""])


def _family(value: str) -> int | None:
    try:
        return ipaddress.ip_network(value, strict=False).version
    except ValueError:
        return None


def _net(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False))


def _link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of a MAC."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


def _proto_match(rule: dict, version: int) -> list[str] | None:
    """`-p ... [--dports | --icmp-type]` for a rule, or None when it never matches `version`."""
    proto = rule.get("protocol")
    if proto in (None, "", "any"):
        return []
    number = PROTOCOLS.get(str(proto).lower())
    if number is None:
        try:
            number = int(proto)
        except ValueError:
            return None
    if number == 0:  # "ip"/"hopopt" as neutron treats them: any protocol
        return []
    if number in (1, 58):  # ICMP is per family: icmp in an IPv6 rule means ICMPv6
        number = 1 if version == 4 else 58
        lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
        args = ["-p", "icmp" if version == 4 else "ipv6-icmp"]
        if lo is not None:
            kind = "--icmp-type" if version == 4 else "--icmpv6-type"
            args += ["-m", "icmp" if version == 4 else "icmp6", kind, f"{lo}/{hi}" if hi is not None else str(lo)]
        return args
    if version == 4 and number in (41, 43, 44, 59, 60):
        return None
    if number in PORT_PROTOCOLS:
        args = ["-p", PORT_PROTOCOLS[number]]
        lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
        if lo is not None:
            hi = hi if hi is not None else lo
            args += ["-m", "multiport", "--dports", str(lo) if lo == hi else f"{lo}:{hi}"]
        return args
    return ["-p", str(number)]


def _rule_lines(port: dict, direction: str, version: int, chain: str) -> list[str]:
    ethertype = "IPv4" if version == 4 else "IPv6"
    peer = "-s" if direction == "ingress" else "-d"
    members = port.get("remote_group_members") or {}
    lines = []
    for rule in port.get("security_group_rules") or []:
        if rule.get("direction") != direction or rule.get("ethertype") != ethertype:
            continue
        proto = _proto_match(rule, version)
        if proto is None:
            continue
        if rule.get("remote_group_id"):
            peers = [_net(ip) for ip in members.get(rule["remote_group_id"], []) if _family(ip) == version]
            if not peers:
                continue  # an empty group matches nobody
        elif rule.get("remote_ip_prefix") and ipaddress.ip_network(rule["remote_ip_prefix"], strict=False).prefixlen:
            if _family(rule["remote_ip_prefix"]) != version:
                continue
            peers = [_net(rule["remote_ip_prefix"])]
        else:
            peers = [None]
        for addr in peers:
            line = " ".join(["-A", chain] + ([peer, addr] if addr else []) + proto + ["-j", "RETURN"])
            if line not in lines:
                lines.append(line)
    return lines


def _allowed_pairs(port: dict, version: int) -> list[tuple[str, str]]:
    mac = port["mac_address"].lower()
    pairs = [(mac, ip["ip_address"]) for ip in port.get("fixed_ips") or []]
    pairs += [((a.get("mac_address") or mac).lower(), a["ip_address"]) for a in port.get("allowed_address_pairs") or []]
    if version == 6:
        pairs.append((mac, _link_local(mac)))
    out = []
    for m, ip in pairs:
        if _family(ip) == version and (m, _net(ip)) not in out:
            out.append((m, _net(ip)))
    return out


def port_rules(tag: str, port: dict, version: int) -> tuple[list[str], list[str]]:
    """(top-chain jumps, chain bodies) for one filtered port."""
    tap = "tap" + port["id"][:11]
    chain_in, chain_out, chain_spoof = port_chains(tag, port["id"])
    top = top_chain(tag)
    jumps = [f"-A {top} -m physdev --physdev-out {tap} --physdev-is-bridged -j {chain_in}",
             f"-A {top} -m physdev --physdev-in {tap} --physdev-is-bridged -j {chain_out}"]
    est = "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    inv = "-m conntrack --ctstate INVALID -j DROP"
    body = [f"-A {chain_in} {est}", f"-A {chain_in} {inv}"]
    if version == 4:
        body.append(f"-A {chain_in} -p udp -m udp --sport 67 --dport 68 -j RETURN")
    else:
        body += [f"-A {chain_in} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN" for t in NDP_IN]
        body.append(f"-A {chain_in} -p udp -m udp --sport 547 --dport 546 -j RETURN")
    body += _rule_lines(port, "ingress", version, chain_in)
    body.append(f"-A {chain_in} -j DROP")
    # egress: DHCP before it has an address, then only its own addresses leave
    if version == 4:
        body.append(f"-A {chain_out} -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 "
                    "-j RETURN")
    else:
        body += [f"-A {chain_out} -s ::/128 -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
                 for t in (131, 135, 143)]
    body.append(f"-A {chain_out} -j {chain_spoof}")
    for mac, addr in _allowed_pairs(port, version):
        body.append(f"-A {chain_spoof} -s {addr} -m mac --mac-source {mac} -j RETURN")
    body.append(f"-A {chain_spoof} -j DROP")
    if version == 4:
        body += [f"-A {chain_out} -p udp -m udp --sport 68 --dport 67 -j RETURN",
                 f"-A {chain_out} -p udp -m udp --sport 67 --dport 68 -j DROP"]
    else:
        body.append(f"-A {chain_out} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP")
        body += [f"-A {chain_out} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN" for t in NDP_OUT]
        body += [f"-A {chain_out} -p udp -m udp --sport 546 --dport 547 -j RETURN",
                 f"-A {chain_out} -p udp -m udp --sport 547 --dport 546 -j DROP"]
    body += [f"-A {chain_out} {est}", f"-A {chain_out} {inv}"]
    body += _rule_lines(port, "egress", version, chain_out)
    body.append(f"-A {chain_out} -j DROP")
    return jumps, body


def ebtables_rules(tag: str, port: dict) -> tuple[list[str], list[str]]:
    """(top-chain jump, chain body): ARP only with the port's MAC/IPv4 addresses (or a
    probe from 0.0.0.0), any frame only from one of its MACs."""
    (chain,) = port_chains(tag, port["id"], "ebtables")
    jumps = [f"-A {top_chain(tag, 'ebtables')} -i tap{port['id'][:11]} -j {chain}"]
    pairs = _allowed_pairs(port, 4)
    macs = list(dict.fromkeys([port["mac_address"].lower()] + [m for m, _ in pairs]))
    body = [f"-A {chain} -p ARP -s {m} --arp-mac-src {m} --arp-ip-src {ip} -j RETURN"
            for m, ip in pairs + [(mac, "0.0.0.0") for mac in macs[:1]]]
    body.append(f"-A {chain} -p ARP -j DROP")
    body += [f"-A {chain} -s {m} -j RETURN" for m in macs]
    body.append(f"-A {chain} -j DROP")
    return jumps, body


def render(tag: str, ports: list[dict], bridges: list[str], removed: list[str], family: str | int) -> str:
    """The `*-restore --noflush` input of one family (iptables, ip6tables, ebtables): our top
    chain, each filtered port's chains, `-X` for the chains of ports no longer filtered."""
    family = {4: "iptables", 6: "ip6tables"}.get(family, family)
    if family == "ebtables":
        chains, jumps, bodies = [top_chain(tag, family)], [], []
        for port in sorted(ports, key=lambda p: p["id"]):
            chains += list(port_chains(tag, port["id"], family))
            j, b = ebtables_rules(tag, port)
            jumps += j
            bodies += b
        gone = [c for c in removed if c not in chains]
        return "\n".join(["*filter"] + [_declare(family, c) for c in chains + gone] + jumps + bodies
                         + [f"-X {c}" for c in gone] + ["COMMIT", ""])
    version = 4 if family == "iptables" else 6
    top = top_chain(tag)
    chains, jumps, bodies = [top], [], []
    for port in sorted(ports, key=lambda p: p["id"]):
        chains += list(port_chains(tag, port["id"]))
        j, b = port_rules(tag, port, version)
        jumps += j
        bodies += b
    accept = [f"-A {top} -o {br} -m physdev --physdev-is-bridged -j ACCEPT" for br in sorted(set(bridges))]
    gone = [c for c in removed if c not in chains]
    lines = ["*filter"] + [f":{c} - [0:0]" for c in chains + gone] + jumps + accept + bodies
    lines += [f"-X {c}" for c in gone] + ["COMMIT"]
    raw = raw_chain(tag)
    lines += ["*raw", f":{raw} - [0:0]"] + [f"-A {raw} -i {br} -j CT --zone {zone(br)}" for br in sorted(set(bridges))]
    return "\n".join(lines + ["COMMIT", ""])
