"""The security-group half of the network <-> compute contract, called in-process as Compute
calls it (`pocketstack.network.core` re-exports): groups by name or id, a server's groups via
its ports, add/remove, in-use and default-group rules, and a race-free default group."""
from __future__ import annotations

import threading
import uuid

import pytest

from pocketstack import server
from pocketstack.common.config import Config
from pocketstack.common.context import AuthContext
from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import set_current
from pocketstack.network import core
from pocketstack.network import models as m


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    cfg = Config.load(tmp_path_factory.mktemp("sgc"))
    cfg.override("pocketstack", "enabled_services", "identity,network")
    runtime = server.build_runtime(cfg)
    server.initialise(runtime, "secret-pw")
    yield runtime
    runtime.db.dispose()
    set_current(None)


def member(project_id: str) -> AuthContext:
    return AuthContext(user_id="u-" + project_id[:6], project_id=project_id, roles=["member", "reader"])


def failure(fn, *args, **kw) -> tuple[int, str]:
    with pytest.raises(ApiError) as exc:
        fn(*args, **kw)
    return exc.value.code, exc.value.extra.get("type") or getattr(exc.value, "type", "")


def server_with_port(rt, project_id: str) -> str:
    from pocketstack.network import networks, subnets

    with rt.db.session() as sess:
        net = networks.create(sess, None, networks.RESOURCE.parse_create(
            {"network": {"name": "n", "project_id": project_id}}, None))
        subnets.create(sess, None, subnets.RESOURCE.parse_create(
            {"subnet": {"network_id": net.id, "ip_version": 4, "cidr": "10.0.0.0/24", "project_id": project_id}},
            None))
    inst = str(uuid.uuid4())
    core.allocate_for_instance(member(project_id), instance_id=inst, project_id=project_id, host="h",
                               requested=[{"uuid": net.id}], security_groups=["default"])
    return inst


def test_default_group_is_created_once_under_concurrency(rt):
    pid = uuid.uuid4().hex
    results, errors = [], []

    def ensure():
        try:
            results.append(core.ensure_default_security_group(pid))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    with rt.db.session() as sess:
        groups = sess.query(m.SecurityGroup).filter_by(project_id=pid).all()
        assert [g.name for g in groups] == ["default"]
        assert sess.query(m.SecurityGroupRule).filter_by(security_group_id=groups[0].id).count() == 4


def test_groups_by_name_and_id(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    web = core.create_security_group(ctx, pid, "web", "web servers")
    assert web["name"] == "web" and len(web["security_group_rules"]) == 2
    assert core.get_security_group(ctx, "web")["id"] == web["id"]
    assert core.get_security_group(ctx, web["id"])["description"] == "web servers"
    assert {g["name"] for g in core.list_security_groups(ctx, pid)} == {"default", "web"}
    rule = core.create_security_group_rule(ctx, web["id"], direction="ingress", protocol="tcp", port_range_min=80,
                                           port_range_max=80, remote_ip_prefix="0.0.0.0/0")
    assert failure(core.create_security_group_rule, ctx, web["id"], direction="ingress", protocol="6",
                   port_range_min=80, port_range_max=80) == (409, "SecurityGroupRuleExists")
    core.delete_security_group_rule(ctx, rule["id"])
    assert core.update_security_group(ctx, web["id"], name="www")["name"] == "www"
    assert failure(core.create_security_group, ctx, pid, "default") == (409, "SecurityGroupDefaultAlreadyExists")
    other = member(uuid.uuid4().hex)
    assert failure(core.get_security_group, other, web["id"]) == (404, "SecurityGroupNotFound")
    assert failure(core.delete_security_group, other, web["id"]) == (404, "SecurityGroupNotFound")
    core.delete_security_group(ctx, web["id"])
    assert failure(core.get_security_group, ctx, "www") == (404, "SecurityGroupNotFound")


def test_server_groups_follow_its_ports(rt):
    pid = uuid.uuid4().hex
    ctx = member(pid)
    inst = server_with_port(rt, pid)
    default = core.ensure_default_security_group(pid)
    assert [g["id"] for g in core.instance_security_groups(inst)] == [default]
    extra = core.create_security_group(ctx, pid, "extra", "")
    core.add_security_group_to_instance(ctx, inst, "extra")
    assert [g["name"] for g in core.instance_security_groups(inst)] == ["default", "extra"]
    code, _ = failure(core.add_security_group_to_instance, ctx, inst, extra["id"])
    assert code == 409
    # a group on a port is in use: no delete, no statefulness flip
    assert failure(core.delete_security_group, ctx, extra["id"]) == (409, "SecurityGroupInUse")
    assert failure(core.update_security_group, ctx, extra["id"], stateful=False) == (409, "SecurityGroupInUse")
    core.remove_security_group_from_instance(ctx, inst, "extra")
    assert [g["name"] for g in core.instance_security_groups(inst)] == ["default"]
    assert failure(core.remove_security_group_from_instance, ctx, inst, "extra")[0] == 404
    assert failure(core.add_security_group_to_instance, ctx, inst, "nope") == (404, "SecurityGroupNotFound")
    core.deallocate_for_instance(ctx, inst)
    assert core.instance_security_groups(inst) == []
    core.delete_security_group(ctx, extra["id"])
    # the default group: members may not delete it
    assert failure(core.delete_security_group, ctx, default) == (409, "SecurityGroupCannotRemoveDefault")


def test_router_sync_data_for_the_dataplane(rt):
    """What an L3 backend reads for a router namespace: gateway, interfaces, routes, NAT."""
    from pocketstack.network import floating_ips, networks, routers, subnets

    pid = uuid.uuid4().hex
    ctx = member(pid)
    with rt.db.session() as sess:
        ext = networks.create(sess, None, networks.RESOURCE.parse_create(
            {"network": {"name": "ext", "project_id": "admin-project", "router:external": True}}, None))
        subnets.create(sess, None, subnets.RESOURCE.parse_create({"subnet": {
            "network_id": ext.id, "ip_version": 4, "cidr": "198.18.0.0/24", "project_id": "admin-project",
            "enable_dhcp": False}}, None))
        ext_id = ext.id
    inst = server_with_port(rt, pid)
    (vif,) = core.get_instance_nw_info(inst)
    subnet_id = None
    with rt.db.session() as sess:
        subnet_id = sess.query(m.Subnet).filter_by(network_id=vif["network"]["id"]).one().id
    router = routers.create_router(ctx, {"name": "r", "project_id": pid, "_explicit": {"name"},
                                         "external_gateway_info": {"network_id": ext_id}})
    routers.add_interface(ctx, router["id"], {"subnet_id": subnet_id})
    routers.update_router(ctx, router["id"], {"routes": [{"destination": "10.99.0.0/24", "nexthop": "10.0.0.50"}]})
    fip = floating_ips.create_floating_ip(ctx, {"project_id": pid, "floating_network_id": ext_id,
                                                "port_id": vif["id"], "_explicit": set()})
    data = routers.router_sync_data(router["id"])
    assert data["enable_snat"] is True and data["gateway"]["network_id"] == ext_id
    assert data["gateway"]["fixed_ips"][0]["cidr"] == "198.18.0.0/24"
    (iface,) = data["interfaces"]
    assert iface["fixed_ips"][0]["ip_address"] == "10.0.0.1" and iface["fixed_ips"][0]["prefixlen"] == 24
    assert data["routes"] == [{"destination": "10.99.0.0/24", "nexthop": "10.0.0.50"}]
    assert data["floating_ips"] == [{"id": fip["id"], "floating_ip_address": fip["floating_ip_address"],
                                     "fixed_ip_address": vif["network"]["subnets"][0]["ips"][0]["address"],
                                     "port_id": vif["id"]}]
    # compute's view shows the floating address next to the fixed one
    (vif,) = core.get_instance_nw_info(inst)
    assert vif["network"]["subnets"][0]["ips"][0]["floating_ips"][0]["address"] == fip["floating_ip_address"]
    assert routers.router_sync_data("no-such-router") is None
