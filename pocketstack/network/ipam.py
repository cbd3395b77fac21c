"""IP address management: allocation pools, address and MAC allocation, EUI-64 addresses.

Race freedom comes from the database, not from locks: an address is taken by inserting an
`IPAllocation` row whose primary key is (network, address). Concurrent creates that pick
the same address cannot both commit; the loser's insert fails inside a savepoint and it
tries another candidate. Candidates are drawn at random from the first free addresses of
the pools, so fifty simultaneous creates rarely collide at all. (On SQLite the port row
is written first, which takes the database's write lock, so the read of used addresses is
already serialised; the constraint is the guard everywhere.)

Addresses never handed out automatically: the subnet's gateway, the network and broadcast
addresses (IPv4), anything outside the allocation pools, and whatever another port (the
DHCP port included) holds. A port may still ask for a specific address inside the CIDR but
outside the pools, as upstream allows.
"""
from __future__ import annotations

import ipaddress
import random
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pocketstack.network import models as m
from pocketstack.network.api import resource as r

AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")
MAC_PREFIX = "fa:16:3e"
ROUTER_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                 "network:ha_router_replicated_interface", "network:router_gateway",
                 "network:router_centralized_snat")


# ---------------------------------------------------------------------------- errors
def ip_generation_failure(net_id: str):
    return r.neutron_error(409, "IpAddressGenerationFailure", f"No more IP addresses available on network {net_id}.")


def ip_already_allocated(ip: str, subnet_id: str):
    return r.neutron_error(409, "IpAddressAlreadyAllocated",
                           f"IP address {ip} already allocated in subnet {subnet_id}")


def invalid_ip_for_subnet(ip: str):
    return r.neutron_error(400, "InvalidIpForSubnet", f"IP address {ip} is not a valid IP for the specified subnet.")


def invalid_ip_for_network(ip: str):
    return r.neutron_error(400, "InvalidIpForNetwork",
                           f"IP address {ip} is not a valid IP for any of the subnets on the specified network.")


def mac_in_use(net_id: str, mac: str):
    return r.neutron_error(409, "MacAddressInUse",
                           f"Unable to complete operation for network {net_id}. The mac address {mac} is in use.")


# ---------------------------------------------------------------------------- pools
def is_auto_address(subnet) -> bool:
    return subnet.ip_version == 6 and subnet.ipv6_address_mode in AUTO_ADDRESS_MODES


def default_pools(cidr: str, gateway: str | None) -> list[dict]:
    """The whole CIDR minus the network address (and broadcast for IPv4) and the gateway."""
    net = ipaddress.ip_network(cidr)
    if net.version == 4:
        if net.prefixlen >= 31:
            return []
        first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
    else:
        if net.prefixlen >= 127:
            return []
        first, last = int(net.network_address) + 1, int(net.broadcast_address)
    ranges = [(first, last)]
    if gateway:
        g = int(ipaddress.ip_address(gateway))
        if first <= g <= last:
            ranges = [(a, b) for a, b in ((first, g - 1), (g + 1, last)) if a <= b]
    ver = ipaddress.ip_address
    return [{"start": str(ver(a) if net.version == 4 else ipaddress.IPv6Address(a)),
             "end": str(ver(b) if net.version == 4 else ipaddress.IPv6Address(b))} for a, b in ranges]


def _addr(value: str, version: int):
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def validate_pools(pools: list, cidr: str, gateway: str | None) -> list[dict]:
    """Neutron's checks: valid addresses of the subnet's family, start <= end, inside the
    CIDR, no two pools overlapping, the gateway in none of them."""
    net = ipaddress.ip_network(cidr)
    parsed = []
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise r.BadRequest(f"Invalid input for allocation_pools. Reason: Invalid data format for IP pool: '{pool}'.")
        try:
            start = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
        except (ValueError, TypeError):
            raise r.BadRequest(f"Invalid input for allocation_pools. Reason: Invalid data format for IP pool: "
                               f"'{pool}'.") from None
        text = f"{pool['start']}-{pool['end']}"
        if start.version != net.version or end.version != net.version or start > end:
            raise r.neutron_error(400, "InvalidAllocationPool", f"The allocation pool {text} is not valid.")
        if start not in net or end not in net:
            raise r.neutron_error(400, "OutOfBoundsAllocationPool",
                                  f"The allocation pool {text} spans beyond the subnet cidr {cidr}.")
        if net.version == 4 and net.prefixlen < 31 and (start == net.network_address or end == net.broadcast_address):
            raise r.neutron_error(400, "InvalidAllocationPool", f"The allocation pool {text} is not valid.")
        parsed.append((start, end, text))
    parsed.sort()
    for (s1, e1, t1), (s2, e2, t2) in zip(parsed, parsed[1:]):
        if s2 <= e1:
            raise r.neutron_error(400, "OverlappingAllocationPools",
                                  f"Found overlapping allocation pools: {t1} {t2} for subnet {cidr}.")
    if gateway:
        g = ipaddress.ip_address(gateway)
        for s, e, t in parsed:
            if s <= g <= e:
                raise r.neutron_error(409, "GatewayConflictWithAllocationPools",
                                      f"Gateway ip {gateway} conflicts with allocation pool {t}")
    return [{"start": str(s), "end": str(e)} for s, e, _ in parsed]


def pool_size(subnet) -> int:
    return sum(int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1
               for p in subnet.allocation_pools)


def in_pools(subnet, ip: str) -> bool:
    a = ipaddress.ip_address(ip)
    return any(ipaddress.ip_address(p["start"]) <= a <= ipaddress.ip_address(p["end"])
               for p in subnet.allocation_pools)


# ---------------------------------------------------------------------------- EUI-64 and MACs
def eui64(cidr: str, mac: str) -> str:
    """The SLAAC address of `mac` in a /64: the prefix plus the modified EUI-64 interface id."""
    net = ipaddress.ip_network(cidr)
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = octets[:3] + [0xFF, 0xFE] + octets[3:]
    value = int(net.network_address) | int.from_bytes(bytes(iid), "big")
    return str(ipaddress.IPv6Address(value))


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + ":" + ":".join(f"{b:02x}" for b in tail)


# ---------------------------------------------------------------------------- allocation
def try_insert(sess, row, exists) -> bool:
    """Insert `row` unless the unique key it needs is taken; False when it is.

    PostgreSQL/MySQL: a savepoint around the insert, so losing a race to a concurrent
    transaction (the constraint fires) costs only that savepoint. SQLite: no savepoint
    (pysqlite turns an outermost SAVEPOINT's RELEASE into a COMMIT); there every caller has
    already written in this transaction, so it holds SQLite's single write lock and the
    `exists()` check cannot race."""
    if sess.get_bind().dialect.name == "sqlite":
        if exists():
            return False
        sess.add(row)
        sess.flush()
        return True
    try:
        with sess.begin_nested():
            sess.add(row)
            sess.flush()
        return True
    except IntegrityError:
        return False


def _insert(sess, net_id: str, subnet_id: str, port_id: str, ip: str) -> bool:
    """Try to take `ip`; False when somebody else holds it (the constraint said no)."""
    row = m.IPAllocation(network_id=net_id, ip_address=ip, subnet_id=subnet_id, port_id=port_id)
    return try_insert(sess, row, lambda: sess.get(m.IPAllocation, (net_id, ip)) is not None)


def _used(sess, net_id: str, subnet_id: str) -> set[int]:
    rows = sess.scalars(select(m.IPAllocation.ip_address).where(
        m.IPAllocation.network_id == net_id, m.IPAllocation.subnet_id == subnet_id))
    return {int(ipaddress.ip_address(x)) for x in rows}


def _free_candidates(subnet, used: set[int], want: int = 16) -> list[int]:
    out = []
    gw = int(ipaddress.ip_address(subnet.gateway_ip)) if subnet.gateway_ip else None
    for pool in subnet.allocation_pools:
        a = int(ipaddress.ip_address(pool["start"]))
        b = int(ipaddress.ip_address(pool["end"]))
        while a <= b and len(out) < want:
            if a not in used and a != gw:
                out.append(a)
            a += 1
        if len(out) >= want:
            break
    return out


SCAN_LIMIT = 256  # up to this many addresses in use, scan for the lowest free one


def _random_in_pools(subnet) -> int:
    ranges = [(int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"])))
              for p in subnet.allocation_pools]
    pick = random.randrange(sum(b - a + 1 for a, b in ranges))
    for a, b in ranges:
        if pick <= b - a:
            return a + pick
        pick -= b - a + 1
    raise AssertionError("unreachable")


def allocate_any(sess, subnet, port_id: str) -> str | None:
    """Take one free pool address of `subnet` for the port; None when the pools are full.

    Small subnets: the lowest free address first (predictable, like the DHCP agent's .2);
    after losing a race, a random one of the next few, so concurrent creates spread out.
    Busy subnets (more than SCAN_LIMIT addresses used): random addresses of the pools first,
    so a create costs the same with ten thousand ports as with ten."""
    version = subnet.ip_version

    def text(value: int) -> str:
        return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))

    used_count = sess.scalar(select(func.count()).select_from(m.IPAllocation).where(
        m.IPAllocation.subnet_id == subnet.id))
    size = pool_size(subnet)
    if used_count > SCAN_LIMIT and size > 2 * used_count:
        gw = subnet.gateway_ip
        for _ in range(16):
            ip = text(_random_in_pools(subnet))
            if ip != gw and _insert(sess, subnet.network_id, subnet.id, port_id, ip):
                return ip
    for attempt in range(12):
        candidates = _free_candidates(subnet, _used(sess, subnet.network_id, subnet.id))
        if not candidates:
            return None
        if attempt:
            random.shuffle(candidates)
        for value in candidates[:4]:
            if _insert(sess, subnet.network_id, subnet.id, port_id, text(value)):
                return text(value)
    return None


def allocate_specific(sess, subnet, port_id: str, ip: str, device_owner: str = "") -> str:
    """Take exactly `ip` (inside the CIDR; the gateway only for router ports)."""
    a = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(subnet.cidr)
    if a.version != net.version or a not in net:
        raise invalid_ip_for_subnet(ip)
    if net.version == 4 and net.prefixlen < 31 and a in (net.network_address, net.broadcast_address):
        raise invalid_ip_for_subnet(ip)
    ip = str(a)
    if subnet.gateway_ip == ip and device_owner not in ROUTER_OWNERS:
        raise ip_already_allocated(ip, subnet.id)
    if not _insert(sess, subnet.network_id, subnet.id, port_id, ip):
        raise ip_already_allocated(ip, subnet.id)
    return ip


def allocate_auto_address(sess, subnet, port_id: str, mac: str) -> str:
    ip = eui64(subnet.cidr, mac)
    if not _insert(sess, subnet.network_id, subnet.id, port_id, ip):
        raise ip_already_allocated(ip, subnet.id)
    return ip


def allocate_for_port(sess, port, subnets: list, requested: list[dict] | None, *, device_owner: str = "") -> None:
    """Give `port` its addresses.

    `requested` None: one address from the first IPv4 subnet with room, one from the first
    stateful IPv6 subnet with room, and the EUI-64 address on every SLAAC/stateless subnet
    (service_types, when a subnet has them, must list the port's device_owner).
    Otherwise each entry is `{"subnet_id"?, "ip_address"?}`, already resolved to subnets.
    """
    if requested is None:
        eligible = [s for s in subnets if not s.service_types or device_owner in s.service_types]
        done_v4 = done_v6 = False
        tried_v4 = tried_v6 = False
        for sub in eligible:
            if is_auto_address(sub):
                if not device_owner.startswith("network:router"):
                    allocate_auto_address(sess, sub, port.id, port.mac_address)
                continue
            if sub.ip_version == 4 and not done_v4:
                tried_v4 = True
                done_v4 = allocate_any(sess, sub, port.id) is not None
            elif sub.ip_version == 6 and not done_v6:
                tried_v6 = True
                done_v6 = allocate_any(sess, sub, port.id) is not None
        if (tried_v4 and not done_v4) or (tried_v6 and not done_v6):
            raise ip_generation_failure(port.network_id)
        return
    by_id = {s.id: s for s in subnets}
    for entry in requested:
        sub = by_id[entry["subnet_id"]]
        if entry.get("ip_address"):
            if is_auto_address(sub) and not device_owner.startswith("network:router"):
                raise r.InvalidInput(f"IPv6 address {entry['ip_address']} cannot be directly assigned to a port "
                                     f"on subnet {sub.id} as the subnet is configured for automatic addresses")
            allocate_specific(sess, sub, port.id, entry["ip_address"], device_owner)
        elif is_auto_address(sub) and not device_owner.startswith("network:router"):
            allocate_auto_address(sess, sub, port.id, port.mac_address)
        elif allocate_any(sess, sub, port.id) is None:
            raise ip_generation_failure(port.network_id)


def resolve_fixed_ips(sess, net_id: str, subnets: list, fixed_ips: list) -> list[dict]:
    """Validate a port's `fixed_ips` request against the network's subnets: each entry gets
    its `subnet_id` (found from the address when only the address is given)."""
    by_id = {s.id: s for s in subnets}
    out = []
    for entry in fixed_ips:
        if not isinstance(entry, dict):
            raise r.BadRequest(f"Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '{entry}'.")
        unknown = set(entry) - {"subnet_id", "ip_address"}
        if unknown:
            raise r.BadRequest(f"Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '{entry}'.")
        sid, ip = entry.get("subnet_id"), entry.get("ip_address")
        if ip is not None:
            try:
                ip = r.v_ip(ip)
            except r.Invalid as exc:
                raise r.BadRequest(f"Invalid input for fixed_ips. Reason: {exc}.") from None
        if sid is not None:
            try:
                r.v_uuid(sid)
            except r.Invalid as exc:
                raise r.BadRequest(f"Invalid input for fixed_ips. Reason: {exc}.") from None
            if sid not in by_id:
                if sess.get(m.Subnet, sid) is None:
                    raise r.not_found_error("Subnet", sid)
                raise r.InvalidInput(f"Failed to create port on network {net_id}, because fixed_ips included "
                                     f"invalid subnet {sid}")
            if ip is not None and ipaddress.ip_address(ip) not in ipaddress.ip_network(by_id[sid].cidr):
                raise invalid_ip_for_subnet(ip)
        elif ip is not None:
            match = [s for s in subnets if ipaddress.ip_address(ip) in ipaddress.ip_network(s.cidr)]
            if not match:
                raise invalid_ip_for_network(ip)
            sid = match[0].id
        else:
            raise r.BadRequest("Invalid input for fixed_ips. Reason: Exactly one of subnet_id or ip_address must "
                               "be given, or both.")
        out.append({"subnet_id": sid, "ip_address": ip})
    seen = set()
    for e in out:
        if e["ip_address"] and (e["subnet_id"], e["ip_address"]) in seen:
            raise r.InvalidInput(f"Duplicate IP address '{e['ip_address']}'")
        seen.add((e["subnet_id"], e["ip_address"]))
    return out
