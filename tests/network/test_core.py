"""The network <-> compute contract (`pocketstack.network.core`), called in-process as Compute
calls it: validate, allocate (networks, ports, fixed IPs, "auto", "none"), nw info with
floating IPs, attach/detach, deallocate (created ports deleted, user ports unbound)."""
from __future__ import annotations

import uuid

import pytest

from pocketstack import server
from pocketstack.common.config import Config
from pocketstack.common.context import AuthContext
from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import set_current
from pocketstack.network import core
from pocketstack.network import models as m
from pocketstack.network.api import resource as r


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    cfg = Config.load(tmp_path_factory.mktemp("core"))
    cfg.override("pocketstack", "enabled_services", "identity,network")
    runtime = server.build_runtime(cfg)
    server.initialise(runtime, "secret-pw")
    yield runtime
    runtime.db.dispose()
    set_current(None)


def member(project_id: str) -> AuthContext:
    return AuthContext(user_id="u-" + project_id[:6], project_id=project_id, roles=["member", "reader"])


def make_net(rt, project_id: str, cidr: str, **net_extra) -> tuple[str, str]:
    from pocketstack.network import networks, subnets

    with rt.db.session() as sess:
        net = networks.create(sess, None, networks.RESOURCE.parse_create(
            {"network": {"name": "n-" + cidr, "project_id": project_id, **net_extra}}, None))
        sub = subnets.create(sess, None, subnets.RESOURCE.parse_create(
            {"subnet": {"network_id": net.id, "ip_version": 4, "cidr": cidr, "project_id": project_id,
                        "dns_nameservers": ["10.0.0.53"]}}, None))
        return net.id, sub.id


def code_of(fn, *args, **kw) -> tuple[int, str]:
    with pytest.raises(ApiError) as exc:
        fn(*args, **kw)
    return exc.value.code, exc.value.extra.get("type") or getattr(exc.value, "type", "")


def test_validate_requested_networks(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    net_id, _ = make_net(rt, pid, "10.10.0.0/24")
    core.validate_requested_networks(ctx, pid, [{"uuid": net_id}])
    core.validate_requested_networks(ctx, pid, "none")
    assert code_of(core.validate_requested_networks, ctx, pid, [{"uuid": str(uuid.uuid4())}]) == \
        (404, "NetworkNotFound")
    assert code_of(core.validate_requested_networks, ctx, pid, [{"port": str(uuid.uuid4())}]) == \
        (404, "PortNotFound")
    assert code_of(core.validate_requested_networks, ctx, pid, [{"uuid": net_id, "fixed_ip": "10.10.0.1"}]) == \
        (409, "IpAddressAlreadyAllocated")
    assert code_of(core.validate_requested_networks, ctx, pid, [{"uuid": net_id, "fixed_ip": "nope"}]) == \
        (400, "InvalidIpAddress")
    assert code_of(core.validate_requested_networks, ctx, pid, [{"uuid": net_id, "fixed_ip": "10.99.0.1"}]) == \
        (400, "InvalidIpForNetwork")
    from pocketstack.network import networks
    with rt.db.session() as sess:
        bare = networks.create(sess, None, networks.RESOURCE.parse_create(
            {"network": {"name": "bare", "project_id": pid}}, None)).id
    assert code_of(core.validate_requested_networks, ctx, pid, [{"uuid": bare}]) == (400, "NetworkRequiresSubnet")
    # another project's private network is invisible
    other = uuid.uuid4().hex
    assert code_of(core.validate_requested_networks, member(other), other, [{"uuid": net_id}]) == \
        (404, "NetworkNotFound")


def test_allocate_nw_info_and_deallocate(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    net_id, sub_id = make_net(rt, pid, "10.20.0.0/24")
    from pocketstack.network import ports
    with rt.db.session() as sess:
        user_port = ports.create(sess, ctx, ports.RESOURCE.parse_create({"port": {"network_id": net_id}}, ctx)).id
    inst = str(uuid.uuid4())
    vifs = core.allocate_for_instance(ctx, instance_id=inst, project_id=pid, host="compute-1",
                                      requested=[{"uuid": net_id, "fixed_ip": "10.20.0.40", "tag": "eth-a"},
                                                 {"port": user_port}])
    assert len(vifs) == 2
    first = vifs[0]
    assert first["tag"] == "eth-a" and first["address"].startswith("fa:16:3e:")
    assert first["network"]["id"] == net_id and first["network"]["label"] == "n-10.20.0.0/24"
    subnet = first["network"]["subnets"][0]
    assert subnet["cidr"] == "10.20.0.0/24" and subnet["gateway"] == "10.20.0.1" and subnet["version"] == 4
    assert subnet["ips"] == [{"address": "10.20.0.40", "type": "fixed", "version": 4, "floating_ips": []}]
    assert subnet["dns_nameservers"] == ["10.0.0.53"]
    assert vifs[1]["id"] == user_port
    with rt.db.session() as sess:
        for vif in vifs:
            port = sess.get(m.Port, vif["id"])
            assert port.device_id == inst and port.device_owner == "compute:nova"
            assert port.status == "ACTIVE" and port.binding_host_id == "compute-1"
        # a floating IP on the first port shows up in nw info
        sess.add(m.FloatingIP(id=str(uuid.uuid4()), project_id=pid, floating_ip_address="203.0.113.9",
                              floating_network_id=net_id, floating_port_id=str(uuid.uuid4()),
                              fixed_port_id=first["id"], fixed_ip_address="10.20.0.40", status="ACTIVE"))
    info = core.get_instance_nw_info(inst)
    assert {v["id"] for v in info} == {v["id"] for v in vifs}  # ports in creation order
    info = {v["id"]: v for v in info}
    assert info[first["id"]]["network"]["subnets"][0]["ips"][0]["floating_ips"] == [
        {"address": "203.0.113.9", "type": "floating", "version": 4}]
    # the bound user port cannot be given to another server
    assert code_of(core.validate_requested_networks, ctx, pid, [{"port": user_port}]) == (409, "PortInUse")
    with rt.db.session() as sess:
        sess.query(m.FloatingIP).filter(m.FloatingIP.fixed_port_id == first["id"]).delete()
    core.deallocate_for_instance(ctx, inst)
    assert core.get_instance_nw_info(inst) == []
    with rt.db.session() as sess:
        assert sess.get(m.Port, first["id"]) is None
        kept = sess.get(m.Port, user_port)
        assert kept.device_id == "" and kept.device_owner == "" and kept.status == "DOWN"
        assert sess.get(m.IPAllocation, (net_id, "10.20.0.40")) is None  # back in the pool


def test_allocate_is_all_or_nothing(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    net_id, _ = make_net(rt, pid, "10.30.0.0/24")
    inst = str(uuid.uuid4())
    with pytest.raises(ApiError):
        core.allocate_for_instance(ctx, instance_id=inst, project_id=pid, host="h",
                                   requested=[{"uuid": net_id}, {"uuid": str(uuid.uuid4())}])
    assert core.get_instance_nw_info(inst) == []


def test_auto_none_attach_detach(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    inst = str(uuid.uuid4())
    assert core.allocate_for_instance(ctx, instance_id=inst, project_id=pid, host="h", requested="none") == []
    # "get me a network" needs a default external network and a default subnet pool
    from pocketstack.network import subnetpools
    make_net(rt, "admin-project", "203.0.113.0/24", **{"router:external": True, "is_default": True})
    with rt.db.session() as sess:
        subnetpools.create(sess, None, subnetpools.RESOURCE.parse_create({"subnetpool": {
            "name": "default-v4", "prefixes": ["10.128.0.0/16"], "default_prefixlen": 26, "is_default": True,
            "shared": True, "project_id": "admin-project"}}, None))
    # no network at all: "auto" gets the project one (auto-allocated topology)
    vifs = core.allocate_for_instance(ctx, instance_id=inst, project_id=pid, host="h", requested="auto")
    assert len(vifs) == 1 and vifs[0]["network"]["subnets"][0]["ips"]
    auto_net = vifs[0]["network"]["id"]
    # the next "auto" server reuses it
    inst2 = str(uuid.uuid4())
    again = core.allocate_for_instance(ctx, instance_id=inst2, project_id=pid, host="h", requested="auto")
    assert again[0]["network"]["id"] == auto_net
    vif = core.attach_interface(ctx, inst2, pid, "h", net_id=auto_net)
    assert len(core.get_instance_nw_info(inst2)) == 2
    assert code_of(core.detach_interface, ctx, inst, vif["id"]) == (404, "PortNotFound")
    core.detach_interface(ctx, inst2, vif["id"])
    assert [v["id"] for v in core.get_instance_nw_info(inst2)] == [again[0]["id"]]
    core.deallocate_for_instance(ctx, inst)
    core.deallocate_for_instance(ctx, inst2)


def test_security_groups_applied_to_created_ports(rt):
    if not hasattr(core, "ensure_default_security_group"):
        pytest.skip("security groups module not present")
    pid = uuid.uuid4().hex
    ctx = member(pid)
    net_id, _ = make_net(rt, pid, "10.40.0.0/24")
    inst = str(uuid.uuid4())
    vifs = core.allocate_for_instance(ctx, instance_id=inst, project_id=pid, host="h",
                                      requested=[{"uuid": net_id}], security_groups=["default"])
    default = core.ensure_default_security_group(pid)
    with rt.db.session() as sess:
        groups = [b.security_group_id for b in sess.query(m.SecurityGroupPortBinding).filter_by(port_id=vifs[0]["id"])]
    assert groups == [default]
    assert [g["id"] for g in core.instance_security_groups(inst)] == [default]
    core.deallocate_for_instance(ctx, inst)


def test_quota_blocks_allocation(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    net_id, _ = make_net(rt, pid, "10.50.0.0/24")
    with rt.db.session() as sess:
        sess.add(m.Quota(project_id=pid, resource="port", limit=1))  # the DHCP port is the network owner's: 1 used
    err = code_of(core.allocate_for_instance, ctx, instance_id=str(uuid.uuid4()), project_id=pid, host="h",
                  requested=[{"uuid": net_id}])
    assert err == (409, "OverQuota")
    assert r.QUOTA_RESOURCES["port"].default == 500


def test_dataplane_views(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    net_id, sub_id = make_net(rt, pid, "10.60.0.0/24")
    inst = str(uuid.uuid4())
    vif = core.allocate_for_instance(ctx, instance_id=inst, project_id=pid, host="compute-9",
                                     requested=[{"uuid": net_id}])[0]
    view = core.network_sync_data(net_id)
    assert view["segments"][0]["network_type"] in ("vxlan", "local") and view["mtu"] in (1450, 1500)
    assert view["subnets"][0]["cidr"] == "10.60.0.0/24" and view["subnets"][0]["enable_dhcp"] is True
    macs = {h["mac_address"]: h["ip_address"] for h in view["dhcp_hosts"]}
    assert macs[vif["address"]] == vif["network"]["subnets"][0]["ips"][0]["address"]
    assert any(h["device_owner"] == "network:dhcp" for h in view["dhcp_hosts"])
    port = core.port_sync_data(vif["id"])
    assert port["host"] == "compute-9" and port["status"] == "ACTIVE" and port["devname"] == vif["devname"]
    assert port["fixed_ips"][0]["subnet_id"] == sub_id
    core.deallocate_for_instance(ctx, inst)
    assert core.port_sync_data(vif["id"]) is None and core.network_sync_data(str(uuid.uuid4())) is None
