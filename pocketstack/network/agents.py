"""Dataplane agents and availability zones, as Neutron reports them.

This process does the work of the configured dataplane's agents on this host, so it
reports for them as upstream's agents do over RPC: the backend (`get_dataplane()`) names
the agent set, `noop` a DHCP, an L3 and a metadata agent, `linuxbridge` also the Linux
bridge (L2) agent, each with upstream's `agent_type`, `binary`, `topic` and
`configurations` (the backend's `agent_configurations()` plus what the agent serves).
Reports happen when agents are read and write the heartbeat at most every `[agent]
report_interval` (30 s); an agent is alive while its last heartbeat is younger than
`[DEFAULT] agent_down_time` (75 s), so the agents of a backend no longer configured (or of
another host) go dead as upstream's do, until an admin deletes them. One availability
zone, `nova`, serves networks and routers.
"""
from __future__ import annotations

import datetime as dt
import socket
import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.db import utcnow
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

AZ = "nova"
DHCP, L3, METADATA, LINUXBRIDGE = ("neutron-dhcp-agent", "neutron-l3-agent", "neutron-metadata-agent",
                                   "neutron-linuxbridge-agent")
# binary -> (agent_type, topic, has an availability zone), upstream's values
KINDS = {
    DHCP: ("DHCP agent", "dhcp_agent", True),
    L3: ("L3 agent", "l3_agent", True),
    METADATA: ("Metadata agent", "N/A", False),
    LINUXBRIDGE: ("Linux bridge agent", "N/A", False),
}
# backend name -> the agents it stands for (any other backend: the no-op set)
AGENT_SETS = {"noop": (DHCP, L3, METADATA), "linuxbridge": (LINUXBRIDGE, DHCP, L3, METADATA)}
STARTED = utcnow().replace(microsecond=0)


def session():
    return current().db.session()


def host() -> str:
    return socket.gethostname()


def _seconds(section: str, key: str, default: int) -> int:
    try:
        return int(current().config.get(section, key, str(default)))
    except (TypeError, ValueError):
        return default


def _backend():
    from pocketstack.network.backends.base import get_dataplane

    return get_dataplane().backend


def _counts(sess) -> dict:
    """What this host's agents serve (reported in their configurations, as upstream's)."""
    me = host()
    dhcp_nets = select(m.Port.network_id).where(m.Port.device_owner == "network:dhcp")
    return {
        "dhcp_networks": sess.scalar(select(func.count()).select_from(m.Network).where(m.Network.id.in_(dhcp_nets))),
        "dhcp_subnets": sess.scalar(select(func.count()).select_from(m.Subnet).where(m.Subnet.enable_dhcp.is_(True))),
        "ports": sess.scalar(select(func.count()).select_from(m.Port).where(m.Port.network_id.in_(dhcp_nets))),
        "devices": sess.scalar(select(func.count()).select_from(m.Port).where(m.Port.binding_host_id == me)),
        "routers": sess.scalar(select(func.count()).select_from(m.Router)),
        "interfaces": sess.scalar(select(func.count()).select_from(m.RouterPort)
                                  .where(m.RouterPort.port_type == "network:router_interface")),
        "gateways": sess.scalar(select(func.count()).select_from(m.RouterPort)
                                .where(m.RouterPort.port_type == "network:router_gateway")),
        "floating_ips": sess.scalar(select(func.count()).select_from(m.FloatingIP)
                                    .where(m.FloatingIP.fixed_port_id.is_not(None))),
    }


def _configurations(backend, binary: str, n: dict) -> dict:
    """One agent's `configurations`, upstream's keys with this backend's values."""
    reported = dict(backend.agent_configurations() or {})
    driver = reported.pop("dhcp_driver", None) or backend.name
    if binary == LINUXBRIDGE:
        return {"interface_mappings": reported.get("interface_mappings", {}), "bridge_mappings": {},
                "tunnel_types": reported.get("tunnel_types", []), "l2_population": False,
                "devices": n["devices"], "extensions": [], **reported}
    if binary == DHCP:
        return {"dhcp_driver": driver, "dhcp_lease_duration": _seconds("linux_bridge", "dhcp_lease_duration", 86400),
                "networks": n["dhcp_networks"], "subnets": n["dhcp_subnets"], "ports": n["ports"],
                "log_agent_heartbeats": False}
    if binary == L3:
        return {"agent_mode": "legacy", "interface_driver": backend.name, "handle_internal_only_routers": True,
                "routers": n["routers"], "ex_gw_ports": n["gateways"], "interfaces": n["interfaces"],
                "floating_ips": n["floating_ips"], "log_agent_heartbeats": False}
    socket_of = getattr(backend, "metadata_socket", None)  # where the namespaces' proxies forward to
    path = socket_of() if callable(socket_of) else None
    return {"metadata_proxy_socket": path or backend.name, "log_agent_heartbeats": False}


def report_local_agents() -> None:
    """This host's agents for the configured backend report: registered when missing,
    heartbeat and configurations written when changed or older than the report interval."""
    backend = _backend()
    binaries = AGENT_SETS.get(backend.name, AGENT_SETS["noop"])
    interval = dt.timedelta(seconds=_seconds("agent", "report_interval", 30))
    now = utcnow().replace(microsecond=0)
    me = host()
    with session() as sess:
        counts = _counts(sess)
        rows = {a.binary: a for a in sess.scalars(select(m.Agent).where(m.Agent.host == me))}
        for binary in binaries:
            config = _configurations(backend, binary, counts)
            row = rows.get(binary)
            if row is None:
                agent_type, topic, _ = KINDS[binary]
                try:
                    with sess.begin_nested():
                        sess.add(m.Agent(id=str(uuid.uuid4()), host=me, binary=binary, agent_type=agent_type,
                                         topic=topic, created_at=now, started_at=STARTED, heartbeat_timestamp=now,
                                         configurations=config))
                        sess.flush()
                except IntegrityError:
                    pass  # another request registered it first
                continue
            stale = row.heartbeat_timestamp is None or now - _aware(row.heartbeat_timestamp) >= interval
            if stale or row.configurations != config or row.started_at is None or _aware(row.started_at) < STARTED:
                row.heartbeat_timestamp = now
                row.configurations = config
                if row.started_at is None or _aware(row.started_at) < STARTED:
                    row.started_at = STARTED


ensure_local_agents = report_local_agents


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _stamp(value) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None


def render(row: m.Agent) -> dict:
    _, _, zoned = KINDS.get(row.binary, (row.agent_type, row.topic, False))
    beat = row.heartbeat_timestamp
    down_time = dt.timedelta(seconds=_seconds("DEFAULT", "agent_down_time", 75))
    alive = beat is not None and utcnow() - _aware(beat) < down_time
    return {"id": row.id, "agent_type": row.agent_type, "binary": row.binary, "topic": row.topic,
            "host": row.host, "admin_state_up": row.admin_state_up, "alive": alive,
            "availability_zone": AZ if zoned else None, "description": row.description,
            "configurations": dict(row.configurations or {}), "created_at": _stamp(row.created_at),
            "started_at": _stamp(row.started_at or row.created_at), "heartbeat_timestamp": _stamp(beat),
            "resources_synced": None}


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
    if ctx is None or r.is_admin(ctx):
        report_local_agents()
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
