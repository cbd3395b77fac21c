"""`[network] external_network = demo`: devstack's public network, reachable from a namespace.

Why: floating IPs and router gateways need an "outside" to be useful, and a test machine
must not hand its own network stack to a cloud. So, like devstack's `public` network
(its numbers, not its code), the admin project owns an external, not shared network
`public` with subnet 172.24.4.0/24, gateway 172.24.4.1, pool .2-.254, no DHCP; the
linuxbridge backend puts 172.24.4.1/24 into the namespace `pocketstack-outside`, on a
veth plugged into `public`'s bridge. `ip netns exec pocketstack-outside ping <floating IP>`.
Created once (found again by name after a restart); never changed if an admin edits it.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

log = logging.getLogger("pocketstack.network.outside")

NAME = "public"
CIDR = "172.24.4.0/24"
GATEWAY = "172.24.4.1"
POOL = {"start": "172.24.4.2", "end": "172.24.4.254"}


def ensure_public_network(rt) -> str | None:
    """Create `public` and its subnet unless they exist; returns the network id."""
    from pocketstack.identity import core as identity
    from pocketstack.network import models as m, networks, subnets
    from pocketstack.network.api import resource as r

    with rt.db.session() as sess:
        net = sess.scalar(select(m.Network).where(m.Network.name == NAME, m.Network.external.is_(True)))
        if net is not None:
            return net.id
        project = identity.find_project(sess, {"name": "admin", "domain": {"id": "default"}}).id
        net = networks.create(sess, None, networks.RESOURCE.parse_create(
            {"network": {"name": NAME, "project_id": project, "router:external": True, "shared": False}}, None))
        subnets.create(sess, None, subnets.RESOURCE.parse_create(
            {"subnet": {"network_id": net.id, "name": "public-subnet", "ip_version": 4, "cidr": CIDR,
                        "gateway_ip": GATEWAY, "allocation_pools": [POOL], "enable_dhcp": False,
                        "project_id": project}}, None))
        net_id = net.id
    r.emit("network", "created", {"id": net_id, "project_id": project})
    log.info("created the external network %s (%s) for [network] external_network = demo", NAME, net_id)
    return net_id
