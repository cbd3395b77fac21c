"""Subnet pools: prefixes subnets are carved from (`--subnet-pool`, `--use-default-subnet-pool`).

A pool has prefixes of one IP version and prefix-length bounds (min <= default <= max).
Allocation takes the first free block of the asked (or default) length inside the pool's
prefixes, not overlapping any subnet already allocated from the pool; a given CIDR must lie
inside the prefixes and be free. At most one default pool per IP version. Prefixes may
only grow on update; a pool with subnets cannot be deleted.
"""
from __future__ import annotations

import ipaddress

from sqlalchemy import func, or_, select

from pocketstack.network import models as m
from pocketstack.network.api import resource as r


def _prefixes(value):
    if not isinstance(value, list) or not value:
        raise r.Invalid(f"'{value}' is not a list" if not isinstance(value, list) else "No prefixes given")
    return [r.v_cidr(p) for p in value]


RESOURCE = r.Resource("subnetpool", "subnetpools", [
    r.Attr("prefixes", put=True, required=True, validate=_prefixes),
    r.Attr("default_prefixlen", put=True, validate=r.v_int(0, 128)),
    r.Attr("min_prefixlen", put=True, validate=r.v_int(0, 128)),
    r.Attr("max_prefixlen", put=True, validate=r.v_int(0, 128)),
    r.Attr("shared", default=False, validate=r.v_bool),
    r.Attr("is_default", put=True, default=False, validate=r.v_bool),
    r.Attr("default_quota", put=True, validate=r.v_int(0, nullable=True)),
    r.Attr("address_scope_id", put=True, validate=r.v_uuid_or_none),
])


def pool_not_found(pid: str):
    return r.not_found("SubnetPoolNotFound", f"Subnet pool {pid} could not be found.")


def visible_query(ctx):
    q = select(m.SubnetPool)
    if ctx is None or r.is_admin(ctx):
        return q
    return q.where(or_(m.SubnetPool.project_id == ctx.project_id, m.SubnetPool.shared.is_(True)))


def get_visible(sess, ctx, pid: str) -> m.SubnetPool:
    pool = sess.scalars(visible_query(ctx).where(m.SubnetPool.id == pid)).first()
    if pool is None:
        raise pool_not_found(pid)
    return pool


def policy_target(pool: m.SubnetPool) -> dict:
    return r.policy_target({"id": pool.id, "project_id": pool.project_id, "shared": pool.shared})


def render(p: m.SubnetPool, tags) -> dict:
    return {**r.standard_attrs(p, tags), "ip_version": p.ip_version, "prefixes": list(p.prefixes),
            "default_prefixlen": p.default_prefixlen, "min_prefixlen": p.min_prefixlen,
            "max_prefixlen": p.max_prefixlen, "shared": p.shared, "is_default": p.is_default,
            "default_quota": p.default_quota, "address_scope_id": p.address_scope_id}


def render_many(sess, pools, ctx=None) -> list[dict]:
    tags = r.load_tags(sess, "subnetpool", [p.id for p in pools])
    return [render(p, tags[p.id]) for p in pools]


def _collapse(prefixes: list[str]) -> list[str]:
    return [str(n) for n in ipaddress.collapse_addresses(ipaddress.ip_network(p) for p in prefixes)]


def _bounds(version: int, data: dict, pool: m.SubnetPool | None = None) -> tuple[int, int, int]:
    top = 32 if version == 4 else 128
    lo = data.get("min_prefixlen", pool.min_prefixlen if pool else (8 if version == 4 else 64))
    hi = data.get("max_prefixlen", pool.max_prefixlen if pool else top)
    default = data.get("default_prefixlen", pool.default_prefixlen if pool else lo)
    if hi > top or lo > top or default > top:
        raise r.neutron_error(400, "IllegalSubnetPoolPrefixBounds",
                              f"Illegal prefix bounds: max_prefixlen={hi}, min_prefixlen={lo}, "
                              f"default_prefixlen={default}.")
    if not lo <= default <= hi:
        raise r.neutron_error(400, "IllegalSubnetPoolPrefixBounds",
                              f"Illegal prefix bounds: min_prefixlen={lo}, default_prefixlen={default}, "
                              f"max_prefixlen={hi}.")
    return lo, default, hi


def _check_default(sess, version: int, exclude: str | None) -> None:
    q = select(m.SubnetPool.id).where(m.SubnetPool.is_default.is_(True), m.SubnetPool.ip_version == version)
    for other in sess.scalars(q):
        if other != exclude:
            raise r.InvalidInput("A default subnetpool for this IP family has already been set. Only one default "
                                 "may exist per IP family")


def create(sess, ctx, data: dict) -> m.SubnetPool:
    explicit = data.pop("_explicit", set())
    target = r.policy_target({"project_id": data["project_id"], "shared": data["shared"]})
    r.enforce(ctx, "create_subnetpool", target)
    r.enforce_attrs(ctx, "create_subnetpool", target, explicit, data)
    r.check_quota(sess, data["project_id"], "subnetpool", 1)
    versions = {ipaddress.ip_network(p).version for p in data["prefixes"]}
    if len(versions) != 1:
        raise r.neutron_error(400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
    version = versions.pop()
    lo, default, hi = _bounds(version, data)
    if data["is_default"]:
        _check_default(sess, version, None)
    pool = m.SubnetPool(id=r.new_uuid(), project_id=data["project_id"], name=data["name"],
                        description=data["description"], ip_version=version, prefixes=_collapse(data["prefixes"]),
                        default_prefixlen=default, min_prefixlen=lo, max_prefixlen=hi, shared=data["shared"],
                        is_default=data["is_default"], default_quota=data.get("default_quota"),
                        address_scope_id=data.get("address_scope_id"))
    sess.add(pool)
    sess.flush()
    return pool


def update(sess, ctx, pid: str, data: dict, req=None) -> m.SubnetPool:
    pool = get_visible(sess, ctx, pid)
    target = policy_target(pool)
    r.enforce(ctx, "update_subnetpool", target)
    r.enforce_attrs(ctx, "update_subnetpool", target, set(data), data)
    r.check_if_match(req, pool)
    if "prefixes" in data:
        new = _collapse(data["prefixes"] + list(pool.prefixes))
        if any(ipaddress.ip_network(p).version != pool.ip_version for p in new):
            raise r.neutron_error(400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
        old = [ipaddress.ip_network(p) for p in pool.prefixes]
        kept = [ipaddress.ip_network(p) for p in _collapse(data["prefixes"])]
        if not all(any(o.subnet_of(k) for k in kept) for o in old):
            raise r.neutron_error(400, "IllegalSubnetPoolPrefixUpdate",
                                  "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes")
        pool.prefixes = _collapse(data["prefixes"])
    lo, default, hi = _bounds(pool.ip_version, data, pool)
    pool.min_prefixlen, pool.default_prefixlen, pool.max_prefixlen = lo, default, hi
    if data.get("is_default"):
        _check_default(sess, pool.ip_version, pool.id)
    for key in ("name", "description", "is_default", "default_quota", "address_scope_id"):
        if key in data:
            setattr(pool, key, data[key])
    r.bump_revision(pool)
    sess.flush()
    return pool


def delete(sess, ctx, pid: str, req=None) -> m.SubnetPool:
    pool = get_visible(sess, ctx, pid)
    r.enforce(ctx, "delete_subnetpool", policy_target(pool))
    r.check_if_match(req, pool)
    used = sess.scalar(select(func.count()).select_from(m.Subnet).where(m.Subnet.subnetpool_id == pool.id))
    if used:
        raise r.neutron_error(409, "SubnetPoolInUse", f"Subnet pool {pool.id} cannot be deleted because it is in "
                                                      "use by one or more subnets.")
    r.delete_tags(sess, "subnetpool", pool.id)
    sess.delete(pool)
    sess.flush()
    return pool


def default_pool_id(sess, version: int) -> str | None:
    return sess.scalar(select(m.SubnetPool.id).where(m.SubnetPool.is_default.is_(True),
                                                     m.SubnetPool.ip_version == version))


def allocate(sess, ctx, pid: str, version: int, cidr: str | None, prefixlen: int | None) -> str:
    """A CIDR for a new subnet from the pool (the given one, checked, or the first free block)."""
    pool = get_visible(sess, ctx, pid)
    if pool.ip_version != version:
        raise r.InvalidInput(f"Bad subnets request: Cannot allocate IPv{version} subnet from IPv{pool.ip_version} "
                             "subnet pool")
    taken = [ipaddress.ip_network(c) for c in sess.scalars(select(m.Subnet.cidr).where(m.Subnet.subnetpool_id == pid))]
    prefixes = [ipaddress.ip_network(p) for p in pool.prefixes]
    if cidr is not None:
        net = ipaddress.ip_network(cidr)
        if not pool.min_prefixlen <= net.prefixlen <= pool.max_prefixlen:
            raise _alloc_error(f"Unable to allocate subnet with prefix length {net.prefixlen}, "
                               f"minimum allowed prefix is {pool.min_prefixlen}, maximum {pool.max_prefixlen}.")
        if not any(net.version == p.version and net.subnet_of(p) for p in prefixes):
            raise _alloc_error(f"Cidr {cidr} is not within the subnet pool's prefixes.")
        if any(net.overlaps(t) for t in taken):
            raise _alloc_error(f"Cidr {cidr} overlaps with another subnet allocated from the pool.")
        return str(net)
    length = prefixlen if prefixlen is not None else pool.default_prefixlen
    if length < pool.min_prefixlen:
        raise _alloc_error(f"Unable to allocate subnet with prefix length {length}, minimum allowed prefix is "
                           f"{pool.min_prefixlen}.")
    if length > pool.max_prefixlen:
        raise _alloc_error(f"Unable to allocate subnet with prefix length {length}, maximum allowed prefix is "
                           f"{pool.max_prefixlen}.")
    for prefix in prefixes:
        if length < prefix.prefixlen:
            continue
        for candidate in _blocks(prefix, length, taken):
            return str(candidate)
    raise _alloc_error("Insufficient prefix space to allocate subnet size /%d" % length)


def _blocks(prefix, length: int, taken):
    """Free blocks of `length` in `prefix`, lowest first, skipping over taken ranges fast."""
    size = 1 << ((32 if prefix.version == 4 else 128) - length)
    start = int(prefix.network_address)
    end = int(prefix.broadcast_address)
    cls = ipaddress.IPv4Network if prefix.version == 4 else ipaddress.IPv6Network
    spans = sorted((int(t.network_address), int(t.broadcast_address)) for t in taken if t.overlaps(prefix))
    addr = start
    while addr + size - 1 <= end:
        clash = next(((a, b) for a, b in spans if a <= addr + size - 1 and b >= addr), None)
        if clash is None:
            yield cls((addr, length))
            return
        nxt = clash[1] + 1
        addr = ((nxt + size - 1) // size) * size


def _alloc_error(reason: str):
    return r.neutron_error(400, "SubnetAllocationError", f"Failed to allocate subnet: {reason}")


def count(sess, project_id: str) -> int:
    return sess.scalar(select(func.count()).select_from(m.SubnetPool).where(m.SubnetPool.project_id == project_id))
