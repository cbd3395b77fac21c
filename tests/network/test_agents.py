"""`openstack network agent list/show` report the configured dataplane's agents with
upstream's agent types, heartbeats and liveness: the no-op set (DHCP, L3, metadata), the
Linux-bridge set (plus the Linux bridge agent, with the backend's configurations; needs
root), and agents of a backend no longer configured going dead after `agent_down_time`.

One cloud (one state dir), restarted with another backend between the tests."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import Cloud

DOWN_TIME = 4
NOOP_SET = {("DHCP agent", "neutron-dhcp-agent"), ("L3 agent", "neutron-l3-agent"),
            ("Metadata agent", "neutron-metadata-agent")}
LB_SET = NOOP_SET | {("Linux bridge agent", "neutron-linuxbridge-agent")}


def _why_no_linuxbridge() -> str | None:
    if os.geteuid() != 0:
        return "the linuxbridge backend needs root"
    for tool in ("ip", "dnsmasq", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"the linuxbridge backend needs {tool} (tools/install-system-deps.sh)"
    return None


@pytest.fixture(scope="module")
def agent_cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("agents"), config={
        ("pocketstack", "enabled_services"): "identity,network",
        ("DEFAULT", "agent_down_time"): str(DOWN_TIME), ("agent", "report_interval"): "1",
        ("linux_bridge", "run_dir"): f"/run/psqagents-{uuid.uuid4().hex[:6]}"})
    c.start()
    yield c
    c.stop()
    shutil.rmtree(c.config[("linux_bridge", "run_dir")], ignore_errors=True)


def agents(cloud) -> dict[str, dict]:
    return {a["Binary"]: a for a in cloud.os_json("network", "agent", "list", "--long")}


def restart(cloud, backend: str) -> None:
    cloud.stop()
    cloud.config[("network", "backend")] = backend
    cloud.start()


def test_noop_backend_agents(agent_cloud):
    listed = agents(agent_cloud)
    assert {(a["Agent Type"], b) for b, a in listed.items()} == NOOP_SET
    assert all(a["Alive"] is True and a["State"] is True for a in listed.values())
    assert listed["neutron-dhcp-agent"]["Availability Zone"] == "nova"
    dhcp = agent_cloud.os_json("network", "agent", "show", listed["neutron-dhcp-agent"]["ID"])
    assert dhcp["configuration"]["dhcp_driver"] == "noop"
    assert dhcp["topic"] == "dhcp_agent" and dhcp["alive"] is True
    l3 = agent_cloud.os_json("network", "agent", "show", listed["neutron-l3-agent"]["ID"])
    assert l3["configuration"]["agent_mode"] == "legacy"
    assert l3["alive"] is True and l3["topic"] == "l3_agent"
    assert l3["last_heartbeat_at"][:4].isdigit() and l3["started_at"] <= l3["last_heartbeat_at"]
    # non-admins see no agents (upstream's list filtering)
    name = "agents-" + uuid.uuid4().hex[:6]
    agent_cloud.openstack("project", "create", "--domain", "default", name)
    user, password = agent_cloud.make_user(name)
    assert agent_cloud.os_json("network", "agent", "list", env=agent_cloud.env_for(user, password, name)) == []


@pytest.mark.skipif(_why_no_linuxbridge() is not None, reason=_why_no_linuxbridge() or "")
def test_linuxbridge_agents_then_dead_after_backend_change(agent_cloud):
    restart(agent_cloud, "linuxbridge")
    listed = agents(agent_cloud)
    assert {(a["Agent Type"], b) for b, a in listed.items()} == LB_SET
    assert all(a["Alive"] is True for a in listed.values())
    lb = agent_cloud.os_json("network", "agent", "show", listed["neutron-linuxbridge-agent"]["ID"])
    assert lb["availability_zone"] is None
    assert set(lb["configuration"]) >= {"interface_mappings", "tunnel_types", "devices", "bridge_mappings"}
    dhcp = agent_cloud.os_json("network", "agent", "show", listed["neutron-dhcp-agent"]["ID"])
    assert dhcp["configuration"]["dhcp_driver"] == "dnsmasq"
    l3 = agent_cloud.os_json("network", "agent", "show", listed["neutron-l3-agent"]["ID"])
    assert l3["configuration"]["interface_driver"] == "linuxbridge"
    # back to the no-op dataplane: the Linux bridge agent no longer reports and goes dead
    restart(agent_cloud, "noop")
    time.sleep(DOWN_TIME + 1)
    listed = agents(agent_cloud)
    assert listed["neutron-linuxbridge-agent"]["Alive"] is False
    assert all(a["Alive"] is True for b, a in listed.items() if b != "neutron-linuxbridge-agent")
    dhcp = agent_cloud.os_json("network", "agent", "show", listed["neutron-dhcp-agent"]["ID"])
    assert dhcp["configuration"]["dhcp_driver"] == "noop"
    # an admin removes the dead agent; it does not come back
    agent_cloud.openstack("network", "agent", "delete", listed["neutron-linuxbridge-agent"]["ID"])
    assert "neutron-linuxbridge-agent" not in agents(agent_cloud)
