"""Dataplane agents and availability zones, as Neutron reports them.

The no-op dataplane does the work of a DHCP agent, an L3 agent and a metadata agent on
this host, so `/v2.0/agents` lists those three (registered on first listing, alive while
the service runs, as an agent's heartbeat would say). A real backend registers its own
hosts' agents through `register(host, binary)`. One availability zone, `nova`, serves
networks and routers.
"""
from __future__ import annotations

import socket
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.db import utcnow
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

AZ = "nova"
# binary -> (agent_type, topic, has an availability zone, configurations)
KINDS = {
    "neutron-dhcp-agent": ("DHCP agent", "dhcp_agent", True,
                           {"dhcp_driver": "noop", "networks": 0, "subnets": 0, "ports": 0}),
    "neutron-l3-agent": ("L3 agent", "l3_agent", True, {"agent_mode": "legacy", "routers": 0,
                                                         "interfaces": 0, "floating_ips": 0}),
    "neutron-metadata-agent": ("Metadata agent", "N/A", False, {"metadata_proxy_socket": "noop"}),
}
STARTED = utcnow()


def session():
    return current().db.session()


def host() -> str:
    return socket.gethostname()


def register(host_name: str, binary: str) -> None:
    agent_type, topic, _, _ = KINDS[binary]
    with session() as sess:
        exists = sess.scalars(select(m.Agent).where(m.Agent.host == host_name, m.Agent.binary == binary)).first()
        if exists is None:
            try:
                with sess.begin_nested():
                    sess.add(m.Agent(id=str(uuid.uuid4()), host=host_name, binary=binary, agent_type=agent_type,
                                     topic=topic, created_at=utcnow()))
                    sess.flush()
            except IntegrityError:
                pass


def ensure_local_agents() -> None:
    for binary in KINDS:
        register(host(), binary)


def _stamp(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def render(row: m.Agent) -> dict:
    _, _, zoned, config = KINDS.get(row.binary, (row.agent_type, row.topic, False, {}))
    return {"id": row.id, "agent_type": row.agent_type, "binary": row.binary, "topic": row.topic,
            "host": row.host, "admin_state_up": row.admin_state_up, "alive": True,
            "availability_zone": AZ if zoned else None, "description": row.description,
            "configurations": dict(config), "created_at": _stamp(row.created_at),
            "started_at": _stamp(STARTED), "heartbeat_timestamp": _stamp(utcnow()), "resources_synced": None}


def agent_not_found(id_: str):
    return r.not_found("AgentNotFound", f"Agent {id_} could not be found.")


def list_agents(ctx) -> list[dict]:
    """All agents for admins; others see none (upstream filters the list by `get_agent`)."""
    if not r.check(ctx, "get_agent", {}):
        return []
    ensure_local_agents()
    with session() as sess:
        return [render(x) for x in sess.scalars(select(m.Agent).order_by(m.Agent.host, m.Agent.binary))]


def _load(sess, ctx, id_: str) -> m.Agent:
    if ctx is not None and not r.is_admin(ctx):
        raise agent_not_found(id_)
    row = sess.get(m.Agent, id_)
    if row is None:
        raise agent_not_found(id_)
    return row


def get_agent(ctx, id_: str) -> dict:
    with session() as sess:
        row = _load(sess, ctx, id_)
        r.enforce(ctx, "get_agent", {})
        return render(row)


def update_agent(ctx, id_: str, changes: dict) -> dict:
    with session() as sess:
        row = _load(sess, ctx, id_)
        r.enforce(ctx, "update_agent", {})
        for key in ("admin_state_up", "description"):
            if key in changes:
                setattr(row, key, changes[key])
        sess.flush()
        body = render(row)
    r.emit("agent", "updated", {"id": id_, "changes": sorted(changes)}, ctx)
    return body


def delete_agent(ctx, id_: str) -> None:
    with session() as sess:
        row = _load(sess, ctx, id_)
        r.enforce(ctx, "delete_agent", {})
        sess.delete(row)
    r.emit("agent", "deleted", {"id": id_}, ctx)


def availability_zones(ctx) -> list[dict]:
    r.enforce(ctx, "get_availability_zone", {})
    return [{"name": AZ, "resource": kind, "state": "available"} for kind in ("network", "router")]


# ---------------------------------------------------------------------------- what each agent hosts
def _agent(sess, binary: str) -> m.Agent | None:
    ensure_local_agents()
    return sess.scalars(select(m.Agent).where(m.Agent.host == host(), m.Agent.binary == binary)).first()


def _has_dhcp_port(sess, network_id: str) -> bool:
    return sess.scalars(select(m.Port.id).where(m.Port.network_id == network_id,
                                                m.Port.device_owner == "network:dhcp")).first() is not None


def _hosts(sess, agent: m.Agent, network_id: str) -> bool:
    """Whether a DHCP agent serves a network: the admin's choice, else (local agent) DHCP port."""
    choice = sess.get(m.DhcpAgentNetwork, (agent.id, network_id))
    if choice is not None:
        return choice.hosted
    return agent.host == host() and _has_dhcp_port(sess, network_id)


def dhcp_agents_for_network(ctx, network_id: str) -> list[dict]:
    from pocketstack.network import networks

    r.enforce(ctx, "get_dhcp-agents", {})
    ensure_local_agents()
    with session() as sess:
        networks.get_visible(sess, ctx, network_id)
        rows = sess.scalars(select(m.Agent).where(m.Agent.binary == "neutron-dhcp-agent").order_by(m.Agent.host))
        return [render(a) for a in rows if _hosts(sess, a, network_id)]


def l3_agents_for_router(ctx, router_id: str) -> list[dict]:
    """The L3 agent hosting a router: this host's, for every router."""
    from pocketstack.network import routers

    r.enforce(ctx, "get_l3-agents", {})
    with session() as sess:
        routers.load(sess, ctx, router_id)
        agent = _agent(sess, "neutron-l3-agent")
        return [render(agent)] if agent is not None else []


def hosted_by_agent(ctx, agent_id: str) -> tuple[str, list]:
    """("networks", [...]) for a DHCP agent, ("routers", [...]) for an L3 agent."""
    from pocketstack.network import networks, routers

    with session() as sess:
        row = _load(sess, ctx, agent_id)
        if row.binary == "neutron-dhcp-agent":
            r.enforce(ctx, "get_dhcp-networks", {})
            nets = [n for n in sess.scalars(select(m.Network).order_by(m.Network.id)) if _hosts(sess, row, n.id)]
            return "networks", networks.render_many(sess, nets, ctx)
        if row.binary == "neutron-l3-agent":
            r.enforce(ctx, "get_l3-routers", {})
            return "routers", [routers.render_for(sess, ctx, x) for x in
                               sess.scalars(select(m.Router).order_by(m.Router.id))]
        return ("networks", [])


def _dhcp_agent_and_network(sess, ctx, agent_id: str, network_id) -> tuple[m.Agent, m.Network]:
    from pocketstack.network import networks

    agent = _load(sess, ctx, agent_id)
    if agent.binary != "neutron-dhcp-agent":
        raise r.neutron_error(409, "InvalidDHCPAgent", f"Agent {agent_id} is not a valid DHCP Agent or has been "
                                                       "disabled")
    if not isinstance(network_id, str):
        raise r.BadRequest(f"Invalid input for network_id. Reason: '{network_id}' is not a valid UUID.")
    return agent, networks.get_visible(sess, ctx, network_id)


def add_network_to_dhcp_agent(ctx, agent_id: str, network_id) -> None:
    """Schedule a network to a DHCP agent; already there: 409 NetworkHostedByDHCPAgent."""
    with session() as sess:
        agent, net = _dhcp_agent_and_network(sess, ctx, agent_id, network_id)
        r.enforce(ctx, "create_dhcp-network", {})
        if _hosts(sess, agent, net.id):
            raise r.neutron_error(409, "NetworkHostedByDHCPAgent", f"The network {net.id} has been already hosted "
                                                                    f"by the DHCP Agent {agent.id}.")
        sess.merge(m.DhcpAgentNetwork(agent_id=agent.id, network_id=net.id, hosted=True))
    r.emit("agent", "dhcp_network.added", {"id": agent_id, "network_id": network_id}, ctx)


def remove_network_from_dhcp_agent(ctx, agent_id: str, network_id: str) -> None:
    """Unschedule a network; not hosted there: 409 NetworkNotHostedByDhcpAgent."""
    with session() as sess:
        agent, net = _dhcp_agent_and_network(sess, ctx, agent_id, network_id)
        r.enforce(ctx, "delete_dhcp-network", {})
        if not _hosts(sess, agent, net.id):
            raise r.neutron_error(409, "NetworkNotHostedByDhcpAgent", f"The network {net.id} is not hosted by the "
                                                                      f"DHCP agent {agent.id}.")
        sess.merge(m.DhcpAgentNetwork(agent_id=agent.id, network_id=net.id, hosted=False))
    r.emit("agent", "dhcp_network.removed", {"id": agent_id, "network_id": network_id}, ctx)
