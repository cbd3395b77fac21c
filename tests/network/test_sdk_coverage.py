"""Every resource the Networking API serves, through openstacksdk's `conn.network.*` proxy.

One cloud for the module. For each resource: create, get, update, delete and list with
filters, sorting and pagination (the SDK follows `<collection>_links`; a request counter
on the proxy proves it asked for several pages), plus the resource's own actions (router
gateway/interfaces/extra routes, floating IP associate/disassociate, tags, quotas, agents'
DHCP hosting, auto-allocation). openstacksdk is the real client: anything it cannot do
against us is a bug in the API.
"""
from __future__ import annotations

import contextlib
import uuid

import pytest
from openstack import exceptions as sdk_exc

PHYSNET = "physnet-sdk"


@pytest.fixture(scope="module")
def conn(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def member(cloud):
    """A member of a second project (for RBAC grants and quota targets)."""
    name = "sdk-" + uuid.uuid4().hex[:6]
    cloud.openstack("project", "create", "--domain", "default", name)
    user, password = cloud.make_user(name, "member")
    return cloud.sdk(user, password, name)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def count_gets(proxy, path: str):
    """Counts the proxy's GET requests to a collection (to see that the SDK paged)."""
    calls = []
    original = proxy.get

    def get(url, *args, **kwargs):
        if url.split("?")[0].rstrip("/").endswith(path):
            calls.append(url)
        return original(url, *args, **kwargs)

    proxy.get = get
    try:
        yield calls
    finally:
        del proxy.get


def check_listing(conn, list_fn, path: str, made: list, name_prefix: str, **filters):
    """Filter by name prefix's items, sort by name both ways, walk pages of 2."""
    names = sorted(x.name for x in made)
    by_name = [x.name for x in list_fn(**filters) if x.name.startswith(name_prefix)]
    assert sorted(by_name) == names
    with count_gets(conn.network, path) as calls:
        paged = [x.name for x in list_fn(limit=2, sort_key="name", sort_dir="desc", paginated=True, **filters)
                 if x.name.startswith(name_prefix)]
    assert paged == sorted(names, reverse=True)
    assert len(calls) >= 2, calls
    asc = [x.name for x in list_fn(sort_key="name", sort_dir="asc", **filters) if x.name.startswith(name_prefix)]
    assert asc == names
    one = list(list_fn(name=names[0], **filters))
    assert [x.name for x in one] == [names[0]]


# ---------------------------------------------------------------------------- networks
def test_networks_with_provider_attributes(conn):
    prefix = uniq("net")
    made = [conn.network.create_network(name=f"{prefix}-{i}", description="d") for i in range(3)]
    assert all(n.status == "ACTIVE" and n.provider_network_type for n in made)
    check_listing(conn, conn.network.networks, "/networks", made, prefix, is_admin_state_up=True)
    flat = conn.network.create_network(name=uniq("flat"), provider_network_type="flat",
                                       provider_physical_network=PHYSNET, is_router_external=True)
    got = conn.network.get_network(flat.id)
    assert (got.provider_network_type, got.provider_physical_network, got.provider_segmentation_id) == \
        ("flat", PHYSNET, None)
    assert got.is_router_external is True
    vlan = conn.network.create_network(name=uniq("vlan"), provider_network_type="vlan",
                                       provider_physical_network=PHYSNET, provider_segmentation_id=123)
    assert (vlan.provider_network_type, vlan.provider_segmentation_id) == ("vlan", 123)
    assert [n.id for n in conn.network.networks(provider_network_type="vlan", provider_segmentation_id=123)] \
        == [vlan.id]
    assert conn.network.find_network(vlan.name).id == vlan.id
    revision = made[0].revision_number
    upd = conn.network.update_network(made[0].id, description="changed", mtu=1400, is_shared=True)
    assert (upd.description, upd.mtu, upd.is_shared) == ("changed", 1400, True)
    assert upd.revision_number > revision
    for n in made + [flat, vlan]:
        conn.network.delete_network(n, ignore_missing=False)
    with pytest.raises(sdk_exc.ResourceNotFound):
        conn.network.get_network(vlan.id)
    assert conn.network.find_network(vlan.id) is None


# ---------------------------------------------------------------------------- subnets
def test_subnets_ipv4_and_ipv6_modes(conn):
    net = conn.network.create_network(name=uniq("subnet-net"))
    prefix = uniq("sub")
    made = [conn.network.create_subnet(network_id=net.id, name=f"{prefix}-{i}", ip_version=4,
                                       cidr=f"10.{60 + i}.0.0/24", dns_nameservers=["10.0.0.53"],
                                       host_routes=[{"destination": "10.99.0.0/16", "nexthop": f"10.{60 + i}.0.9"}])
            for i in range(3)]
    assert made[0].gateway_ip == "10.60.0.1"
    assert made[0].allocation_pools == [{"start": "10.60.0.2", "end": "10.60.0.254"}]
    check_listing(conn, conn.network.subnets, "/subnets", made, prefix, network_id=net.id)
    assert [s.id for s in conn.network.subnets(cidr="10.61.0.0/24")] == [made[1].id]
    modes = {}
    for i, mode in enumerate(("slaac", "dhcpv6-stateless", "dhcpv6-stateful")):
        s = conn.network.create_subnet(network_id=net.id, name=uniq("v6"), ip_version=6, cidr=f"fd00:{i + 1}::/64",
                                       ipv6_ra_mode=mode, ipv6_address_mode=mode)
        modes[mode] = s
        assert (s.ipv6_ra_mode, s.ipv6_address_mode, s.ip_version) == (mode, mode, 6)
    assert [s.id for s in conn.network.subnets(ipv6_address_mode="slaac", network_id=net.id)] == [modes["slaac"].id]
    upd = conn.network.update_subnet(made[0], name=f"{prefix}-renamed", is_dhcp_enabled=False,
                                     gateway_ip="10.60.0.254", allocation_pools=[
                                         {"start": "10.60.0.10", "end": "10.60.0.20"}])
    assert (upd.is_dhcp_enabled, upd.gateway_ip) == (False, "10.60.0.254")
    assert upd.allocation_pools == [{"start": "10.60.0.10", "end": "10.60.0.20"}]
    port = conn.network.create_port(network_id=net.id)
    v6 = {ip["subnet_id"]: ip["ip_address"] for ip in port.fixed_ips}
    assert set(v6) >= {modes["slaac"].id, modes["dhcpv6-stateful"].id}
    conn.network.delete_port(port)
    for s in made:
        conn.network.delete_subnet(s, ignore_missing=False)
    assert conn.network.get_subnet(modes["slaac"].id).cidr == "fd00:1::/64"
    conn.network.delete_network(net)
    assert conn.network.find_subnet(modes["slaac"].id) is None


# ---------------------------------------------------------------------------- subnet pools
def test_subnet_pools(conn):
    prefix = uniq("pool")
    made = [conn.network.create_subnet_pool(name=f"{prefix}-{i}", prefixes=[f"10.{100 + i}.0.0/16"],
                                            default_prefix_length=24, minimum_prefix_length=20, maximum_prefix_length=28)
            for i in range(3)]
    assert made[0].prefixes == ["10.100.0.0/16"] and made[0].ip_version == 4
    check_listing(conn, conn.network.subnet_pools, "/subnetpools", made, prefix)
    upd = conn.network.update_subnet_pool(made[0], prefixes=["10.100.0.0/16", "10.110.0.0/16"],
                                          description="grown", default_prefix_length=26)
    assert sorted(upd.prefixes) == ["10.100.0.0/16", "10.110.0.0/16"]
    assert (upd.description, upd.default_prefix_length) == ("grown", 26)
    net = conn.network.create_network(name=uniq("pool-net"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, subnet_pool_id=made[0].id, prefixlen=27)
    assert sub.cidr == "10.100.0.0/27" and sub.subnet_pool_id == made[0].id
    assert [p.id for p in conn.network.subnet_pools(default_prefix_length=26)] == [made[0].id]
    with pytest.raises(sdk_exc.ConflictException):
        conn.network.delete_subnet_pool(made[0])
    conn.network.delete_network(net)
    for p in made:
        conn.network.delete_subnet_pool(p, ignore_missing=False)
    assert conn.network.find_subnet_pool(made[0].id) is None


# ---------------------------------------------------------------------------- ports
def test_ports_binding_pairs_port_security(conn):
    net = conn.network.create_network(name=uniq("port-net"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.70.0.0/24")
    prefix = uniq("port")
    made = [conn.network.create_port(network_id=net.id, name=f"{prefix}-{i}", device_owner="compute:nova",
                                     device_id=f"dev-{prefix}") for i in range(3)]
    assert all(p.status == "DOWN" and p.binding_vif_type == "unbound" for p in made)
    check_listing(conn, conn.network.ports, "/ports", made, prefix, network_id=net.id)
    assert len(list(conn.network.ports(device_id=f"dev-{prefix}"))) == 3
    ip = made[1].fixed_ips[0]["ip_address"]
    assert [p.id for p in conn.network.ports(fixed_ips=[f"ip_address={ip}"])] == [made[1].id]
    bound = conn.network.update_port(made[0], binding_host_id="host-a", binding_vnic_type="normal",
                                     binding_profile={"k": "v"},
                                     allowed_address_pairs=[{"ip_address": "10.70.0.200"}])
    assert (bound.binding_host_id, bound.status, bound.binding_vif_type) == ("host-a", "ACTIVE", "bridge")
    assert bound.binding_profile == {"k": "v"}
    assert bound.allowed_address_pairs == [{"ip_address": "10.70.0.200", "mac_address": made[0].mac_address}]
    fixed = conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": sub.id, "ip_address": "10.70.0.77"}],
                                     mac_address="fa:16:3e:00:11:22")
    assert fixed.fixed_ips == [{"subnet_id": sub.id, "ip_address": "10.70.0.77"}]
    assert fixed.mac_address == "fa:16:3e:00:11:22"
    # port security: off needs no groups and no pairs
    with pytest.raises(sdk_exc.ConflictException):
        conn.network.update_port(bound, is_port_security_enabled=False)
    off = conn.network.update_port(fixed, is_port_security_enabled=False, security_group_ids=[])
    assert off.is_port_security_enabled is False and off.security_group_ids == []
    again = conn.network.get_port(fixed.id)
    assert again.is_port_security_enabled is False
    bulk = conn.network.create_ports([{"network_id": net.id, "name": f"bulk-{prefix}-{i}"} for i in range(2)])
    assert len(list(bulk)) == 2
    for p in conn.network.ports(network_id=net.id, device_owner=""):
        conn.network.delete_port(p, ignore_missing=False)
    for p in made:
        conn.network.delete_port(p)
    assert conn.network.find_port(made[0].id) is None
    conn.network.delete_network(net)


# ---------------------------------------------------------------------------- routers, floating IPs
@pytest.fixture(scope="module")
def external(conn):
    net = conn.network.create_network(name=uniq("public"), is_router_external=True,
                                      provider_network_type="flat", provider_physical_network="sdk-public")
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="172.30.0.0/24", is_dhcp_enabled=False)
    return net, sub


def test_routers_gateway_interfaces_extra_routes(conn, external):
    ext, ext_sub = external
    prefix = uniq("router")
    made = [conn.network.create_router(name=f"{prefix}-{i}") for i in range(3)]
    check_listing(conn, conn.network.routers, "/routers", made, prefix)
    # the SDK's add_gateway_to_router() PUTs `/add_gateway_router`, which Neutron does not
    # serve (404 there as here); setting `external_gateway_info` is how clients do it
    router = conn.network.update_router(made[0], external_gateway_info={"network_id": ext.id})
    assert router.external_gateway_info["network_id"] == ext.id
    assert router.external_gateway_info["external_fixed_ips"][0]["subnet_id"] == ext_sub.id
    net = conn.network.create_network(name=uniq("rnet"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.80.0.0/24")
    iface = conn.network.add_interface_to_router(made[0], subnet_id=sub.id)
    assert iface["subnet_id"] == sub.id and iface["port_id"]
    port = conn.network.get_port(iface["port_id"])
    assert port.device_owner == "network:router_interface" and port.fixed_ips[0]["ip_address"] == "10.80.0.1"
    routes = [{"destination": "10.200.0.0/16", "nexthop": "10.80.0.50"}]
    router = conn.network.add_extra_routes_to_router(made[0], body={"router": {"routes": routes}})
    assert router.routes == routes
    router = conn.network.update_router(made[0], description="with routes", routes=routes + [
        {"destination": "10.201.0.0/16", "nexthop": "10.80.0.51"}])
    assert len(router.routes) == 2 and router.description == "with routes"
    router = conn.network.remove_extra_routes_from_router(made[0], body={"router": {"routes": routes}})
    assert router.routes == [{"destination": "10.201.0.0/16", "nexthop": "10.80.0.51"}]
    with pytest.raises(sdk_exc.ConflictException):
        conn.network.delete_router(made[0])
    conn.network.update_router(made[0], routes=[])
    conn.network.remove_interface_from_router(made[0], subnet_id=sub.id)
    router = conn.network.update_router(made[0], external_gateway_info={})
    assert not router.external_gateway_info
    assert [r.name for r in conn.network.routers(description="with routes")] == [made[0].name]
    agents = list(conn.network.routers_hosting_l3_agents(made[0]))
    assert [a.agent_type for a in agents] == ["L3 agent"]
    for r in made:
        conn.network.delete_router(r, ignore_missing=False)
    assert conn.network.find_router(made[0].id) is None
    conn.network.delete_network(net)


def test_floating_ips_associate_disassociate(conn, external):
    ext, _ = external
    net = conn.network.create_network(name=uniq("fnet"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.90.0.0/24")
    router = conn.network.create_router(name=uniq("frouter"), external_gateway_info={"network_id": ext.id})
    conn.network.add_interface_to_router(router, subnet_id=sub.id)
    port = conn.network.create_port(network_id=net.id)
    made = [conn.network.create_ip(floating_network_id=ext.id, description=f"fip-{i}") for i in range(3)]
    assert all(f.status == "DOWN" and f.floating_ip_address.startswith("172.30.0.") for f in made)
    ids = {f.id for f in made}
    with count_gets(conn.network, "/floatingips") as calls:
        paged = [f.id for f in conn.network.ips(limit=2, sort_key="floating_ip_address", sort_dir="asc",
                                                floating_network_id=ext.id)]
    assert set(paged) >= ids and len(calls) >= 2
    addrs = [f.floating_ip_address for f in conn.network.ips(floating_network_id=ext.id, sort_key="floating_ip_address")]
    assert addrs == sorted(addrs, key=lambda a: tuple(int(x) for x in a.split(".")))
    assoc = conn.network.update_ip(made[0], port_id=port.id)
    assert (assoc.port_id, assoc.fixed_ip_address, assoc.status) == (port.id, port.fixed_ips[0]["ip_address"],
                                                                     "ACTIVE")
    assert assoc.router_id == router.id
    assert [f.id for f in conn.network.ips(port_id=port.id)] == [made[0].id]
    assert conn.network.get_ip(made[0].id).port_details["network_id"] == net.id
    found = conn.network.find_available_ip()
    assert found is not None and found.port_id is None
    dis = conn.network.update_ip(made[0], port_id=None)
    assert (dis.port_id, dis.fixed_ip_address, dis.status) == (None, None, "DOWN")
    upd = conn.network.update_ip(made[1], description="renamed")
    assert upd.description == "renamed"
    with_addr = conn.network.create_ip(floating_network_id=ext.id, floating_ip_address="172.30.0.99")
    assert conn.network.find_ip("172.30.0.99").id == with_addr.id
    for f in made + [with_addr]:
        conn.network.delete_ip(f, ignore_missing=False)
    assert conn.network.find_ip(made[0].id) is None
    conn.network.delete_port(port)
    conn.network.remove_interface_from_router(router, subnet_id=sub.id)
    conn.network.delete_router(router)
    conn.network.delete_network(net)


# ---------------------------------------------------------------------------- security groups
def test_security_groups_and_rules(conn):
    prefix = uniq("sg")
    made = [conn.network.create_security_group(name=f"{prefix}-{i}", description="d") for i in range(3)]
    assert {r["direction"] for r in made[0].security_group_rules} == {"egress"}
    check_listing(conn, conn.network.security_groups, "/security-groups", made, prefix)
    upd = conn.network.update_security_group(made[0], description="web")
    assert upd.description == "web"
    assert [g.id for g in conn.network.security_groups(description="web")] == [made[0].id]
    rules = [conn.network.create_security_group_rule(security_group_id=made[0].id, direction="ingress",
                                                     ethertype="IPv4", protocol="tcp", port_range_min=p,
                                                     port_range_max=p, remote_ip_prefix="10.0.0.0/8")
             for p in (22, 80, 443)]
    assert (rules[0].protocol, rules[0].port_range_min, rules[0].remote_ip_prefix) == ("tcp", 22, "10.0.0.0/8")
    with count_gets(conn.network, "/security-group-rules") as calls:
        got = [r.port_range_min for r in conn.network.security_group_rules(
            security_group_id=made[0].id, direction="ingress", limit=2, sort_key="port_range_min", sort_dir="desc")]
    assert got == [443, 80, 22] and len(calls) >= 2
    assert conn.network.get_security_group_rule(rules[1].id).port_range_max == 80
    with pytest.raises(sdk_exc.ConflictException):
        conn.network.create_security_group_rule(security_group_id=made[0].id, direction="ingress", ethertype="IPv4",
                                                protocol="tcp", port_range_min=22, port_range_max=22,
                                                remote_ip_prefix="10.0.0.0/8")
    bulk = conn.network.create_security_group_rules([
        {"security_group_id": made[1].id, "direction": "ingress", "protocol": "icmp", "ethertype": "IPv4"},
        {"security_group_id": made[1].id, "direction": "ingress", "protocol": "udp", "port_range_min": 53,
         "port_range_max": 53, "ethertype": "IPv6"}])
    assert len(list(bulk)) == 2
    conn.network.delete_security_group_rule(rules[0], ignore_missing=False)
    assert conn.network.find_security_group_rule(rules[0].id) is None
    default = conn.network.find_security_group("default", project_id=conn.current_project_id)
    assert default is not None
    for g in made:
        conn.network.delete_security_group(g, ignore_missing=False)
    assert conn.network.find_security_group(made[0].id) is None


# ---------------------------------------------------------------------------- quotas
def test_quotas_show_update_defaults_details(conn, member):
    project = member.current_project_id
    quota = conn.network.get_quota(project)
    assert quota.networks == 100 and quota.ports == 500
    default = conn.network.get_quota_default(project)
    assert default.routers == 10 and default.security_groups == 10
    upd = conn.network.update_quota(project, networks=7, ports=-1, floating_ips=3)
    assert (upd.networks, upd.ports, upd.floating_ips) == (7, -1, 3)
    member.network.create_network(name=uniq("quota-net"))
    details = conn.network.get_quota(project, details=True)
    assert details.networks == {"used": 1, "limit": 7, "reserved": 0}
    assert project in [q.project_id for q in conn.network.quotas()]
    assert conn.network.get_quota_default(project).networks == 100
    conn.network.delete_quota(project)
    assert conn.network.get_quota(project).networks == 100
    assert project not in [q.project_id for q in conn.network.quotas()]


# ---------------------------------------------------------------------------- RBAC policies
def test_rbac_policies(conn, member):
    target = member.current_project_id
    nets = [conn.network.create_network(name=uniq("rbac")) for _ in range(3)]
    made = [conn.network.create_rbac_policy(object_type="network", object_id=n.id, action="access_as_shared",
                                            target_project_id=target) for n in nets]
    assert made[0].target_project_id == target and made[0].action == "access_as_shared"
    assert nets[0].id in {n.id for n in member.network.networks()}
    mine = {p.id for p in conn.network.rbac_policies(target_project_id=target, object_type="network")}
    assert mine == {p.id for p in made}
    with count_gets(conn.network, "/rbac-policies") as calls:
        # (the SDK's RBAC policy passes no sort_key: its query mapping lacks it)
        paged = [p.id for p in conn.network.rbac_policies(target_project_id=target, limit=2)]
    assert sorted(paged) == sorted(p.id for p in made) and len(calls) >= 2
    other = conn.network.create_network(name=uniq("rbac-other"))
    moved = conn.network.update_rbac_policy(made[0], target_project_id=conn.current_project_id)
    assert moved.target_project_id == conn.current_project_id
    assert conn.network.get_rbac_policy(made[1].id).object_id == nets[1].id
    for p in made:
        conn.network.delete_rbac_policy(p, ignore_missing=False)
    assert conn.network.find_rbac_policy(made[0].id) is None
    for n in nets + [other]:
        conn.network.delete_network(n)


# ---------------------------------------------------------------------------- IP availability
def test_network_ip_availabilities(conn):
    net = conn.network.create_network(name=uniq("avail"))
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.95.0.0/28", is_dhcp_enabled=False)
    conn.network.create_port(network_id=net.id)
    got = conn.network.get_network_ip_availability(net.id)
    assert (got.network_name, got.total_ips, got.used_ips) == (net.name, 13, 1)
    assert got.subnet_ip_availability[0]["cidr"] == "10.95.0.0/28"
    listed = {a.network_id: a for a in conn.network.network_ip_availabilities(network_name=net.name)}
    assert list(listed) == [net.id]
    assert conn.network.find_network_ip_availability(net.id).used_ips == 1
    for p in conn.network.ports(network_id=net.id):
        conn.network.delete_port(p)
    conn.network.delete_network(net)


# ---------------------------------------------------------------------------- auto-allocation
def test_auto_allocated_topology(conn, cloud):
    ext = conn.network.create_network(name=uniq("auto-ext"), is_router_external=True, is_default=True,
                                      provider_network_type="flat", provider_physical_network="sdk-auto")
    conn.network.create_subnet(network_id=ext.id, ip_version=4, cidr="172.31.0.0/24", is_dhcp_enabled=False)
    pool = conn.network.create_subnet_pool(name=uniq("auto-pool"), prefixes=["10.240.0.0/16"],
                                           default_prefix_length=24, is_default=True, shared=True)
    project = conn.current_project_id
    assert conn.network.validate_auto_allocated_topology(project).id == "dry-run=pass"
    topo = conn.network.get_auto_allocated_topology(project)
    assert conn.network.get_network(topo.id).name == "auto_allocated_network"
    assert conn.network.get_auto_allocated_topology(project).id == topo.id
    conn.network.delete_auto_allocated_topology(project)
    assert conn.network.find_network(topo.id) is None
    conn.network.delete_subnet_pool(pool)
    conn.network.delete_network(ext)


# ---------------------------------------------------------------------------- agents, AZs, extensions
def test_agents_and_dhcp_hosting(conn):
    agents = list(conn.network.agents())
    types = {a.agent_type for a in agents}
    assert {"DHCP agent", "L3 agent", "Metadata agent"} <= types
    assert all(a.is_alive for a in agents)
    dhcp = next(conn.network.agents(agent_type="DHCP agent"))
    assert dhcp.binary == "neutron-dhcp-agent" and dhcp.availability_zone == "nova"
    with count_gets(conn.network, "/agents") as calls:
        paged = [a.id for a in conn.network.agents(limit=1)]
    assert sorted(paged) == sorted(a.id for a in agents) and len(calls) >= len(agents)
    upd = conn.network.update_agent(dhcp, description="sdk", is_admin_state_up=False)
    assert (upd.description, upd.is_admin_state_up) == ("sdk", False)
    conn.network.update_agent(dhcp, is_admin_state_up=True)
    assert conn.network.get_agent(dhcp.id).description == "sdk"
    net = conn.network.create_network(name=uniq("dhcp-net"))
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.96.0.0/24")
    assert [a.id for a in conn.network.network_hosting_dhcp_agents(net)] == [dhcp.id]
    conn.network.remove_dhcp_agent_from_network(dhcp, net)
    assert list(conn.network.network_hosting_dhcp_agents(net)) == []
    conn.network.add_dhcp_agent_to_network(dhcp, net)
    assert net.id in {n.id for n in conn.network.dhcp_agent_hosting_networks(dhcp)}
    l3 = next(conn.network.agents(agent_type="L3 agent"))
    router = conn.network.create_router(name=uniq("l3"))
    assert router.id in {r.id for r in conn.network.agent_hosted_routers(l3)}
    conn.network.delete_router(router)
    conn.network.delete_network(net)
    meta = next(conn.network.agents(binary="neutron-metadata-agent"))
    conn.network.delete_agent(meta, ignore_missing=False)
    assert "neutron-metadata-agent" in {a.binary for a in conn.network.agents()}  # re-registers, as a restart


def test_availability_zones_extensions_service_providers(conn):
    zones = {(z.name, z.resource, z.state) for z in conn.network.availability_zones()}
    assert zones == {("nova", "network", "available"), ("nova", "router", "available")}
    # (the SDK's availability_zones() passes no filters on; the API filters by `resource`)
    assert [z["resource"] for z in conn.network.get("/availability_zones?resource=router").json()[
        "availability_zones"]] == ["router"]
    aliases = {e.alias for e in conn.network.extensions()}
    assert {"router", "security-group", "quotas", "rbac-policies", "agent", "availability_zone",
            "auto-allocated-topology", "network-ip-availability", "standard-attr-tag"} <= aliases
    ext = conn.network.find_extension("router")
    assert ext.alias == "router" and ext.name
    assert conn.network.find_extension("no-such-extension") is None
    assert list(conn.network.service_providers()) == []


# ---------------------------------------------------------------------------- tags
@pytest.mark.parametrize("kind", ["network", "subnet", "port", "router", "subnet_pool", "security_group",
                                  "floating_ip"])
def test_tags_on_every_taggable_resource(conn, external, kind):
    ext, _ = external
    net = conn.network.create_network(name=uniq("tag-net"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.97.0.0/24")
    makers = {
        "network": lambda: net,
        "subnet": lambda: sub,
        "port": lambda: conn.network.create_port(network_id=net.id),
        "router": lambda: conn.network.create_router(name=uniq("tag-router")),
        "subnet_pool": lambda: conn.network.create_subnet_pool(name=uniq("tag-pool"), prefixes=["10.250.0.0/16"]),
        "security_group": lambda: conn.network.create_security_group(name=uniq("tag-sg")),
        "floating_ip": lambda: conn.network.create_ip(floating_network_id=ext.id),
    }
    listers = {"network": conn.network.networks, "subnet": conn.network.subnets, "port": conn.network.ports,
               "router": conn.network.routers, "subnet_pool": conn.network.subnet_pools,
               "security_group": conn.network.security_groups, "floating_ip": conn.network.ips}
    res = makers[kind]()
    tag = uniq("t")
    conn.network.set_tags(res, [tag, "red"])
    assert sorted(conn.network.get_tags(res)) == sorted([tag, "red"])
    conn.network.add_tag(res, "blue")
    conn.network.check_tag(res, "blue")
    conn.network.remove_tag(res, "red")
    with pytest.raises(sdk_exc.NotFoundException):
        conn.network.check_tag(res, "red")
    assert [x.id for x in listers[kind](tags=[tag, "blue"])] == [res.id]
    assert [x.id for x in listers[kind](any_tags=[tag, "nope"])] == [res.id]
    assert res.id not in {x.id for x in listers[kind](not_tags=[tag])}
    conn.network.remove_all_tags(res)
    assert conn.network.get_tags(res) == []
    cleanup = {"port": conn.network.delete_port, "router": conn.network.delete_router,
               "subnet_pool": conn.network.delete_subnet_pool, "security_group": conn.network.delete_security_group,
               "floating_ip": conn.network.delete_ip}
    if kind in cleanup:
        cleanup[kind](res)
    conn.network.delete_network(net)
