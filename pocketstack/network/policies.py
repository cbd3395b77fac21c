"""The Networking service's default policy: Neutron's rule names, secure-RBAC defaults.

Rule names are Neutron's (`create_network`, `update_network:shared`,
`create_port:binding:host_id`, `get_port:binding:vif_type`...), so an operator's Neutron
`policy.yaml` entries carry over. Attribute rules (`<action>:<attribute>`) are checked only
when a request sets that attribute (create/update) and hide the attribute from callers who
fail them (get); api/resource.py does both generically.

Targets are the resource's rendered attributes (booleans as 'True'/'False') plus
`network:project_id` (the owner of the network a port or subnet is on), as Neutron builds
them. Visibility (shared and external networks, RBAC grants) is also decided in the
service code: a resource the caller cannot see is a 404, one it sees but may not change a 403.
"""
ADMIN = "role:admin"
SERVICE = "role:service"
ADMIN_OR_SERVICE = f"{ADMIN} or {SERVICE}"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
NET_OWNER_MEMBER = "role:member and project_id:%(network:project_id)s"
NET_OWNER_READER = "role:reader and project_id:%(network:project_id)s"
ADMIN_OR_NET_OWNER_MEMBER = f"{ADMIN} or ({NET_OWNER_MEMBER})"
ADMIN_OR_NET_OWNER_READER = f"{ADMIN} or ({NET_OWNER_READER})"
SHARED = "'True':%(shared)s"
EXTERNAL = "'True':%(router:external)s"

_port_owner_or_net_owner = f"{ADMIN} or ({PROJECT_MEMBER}) or ({NET_OWNER_MEMBER})"
_net_owner_or_service = f"{ADMIN_OR_SERVICE} or ({NET_OWNER_MEMBER})"

DEFAULTS = {
    "context_is_admin": "role:admin",
    "admin_only": ADMIN,
    "admin_or_owner": f"{ADMIN} or project_id:%(project_id)s",
    "network_owner": "project_id:%(network:project_id)s",
    "shared": SHARED,
    "external": EXTERNAL,
    # networks
    "create_network": ADMIN_OR_PROJECT_MEMBER,
    "create_network:shared": ADMIN,
    "create_network:router:external": ADMIN,
    "create_network:is_default": ADMIN,
    "create_network:port_security_enabled": ADMIN_OR_PROJECT_MEMBER,
    "create_network:segments": ADMIN,
    "create_network:provider:network_type": ADMIN,
    "create_network:provider:physical_network": ADMIN,
    "create_network:provider:segmentation_id": ADMIN,
    "get_network": f"{ADMIN_OR_PROJECT_READER} or {SHARED} or {EXTERNAL}",
    "get_network:segments": ADMIN,
    "get_network:provider:network_type": ADMIN,
    "get_network:provider:physical_network": ADMIN,
    "get_network:provider:segmentation_id": ADMIN,
    "update_network": ADMIN_OR_PROJECT_MEMBER,
    "update_network:segments": ADMIN,
    "update_network:shared": ADMIN,
    "update_network:provider:network_type": ADMIN,
    "update_network:provider:physical_network": ADMIN,
    "update_network:provider:segmentation_id": ADMIN,
    "update_network:router:external": ADMIN,
    "update_network:is_default": ADMIN,
    "update_network:port_security_enabled": ADMIN_OR_PROJECT_MEMBER,
    "delete_network": ADMIN_OR_PROJECT_MEMBER,
    # subnets
    "create_subnet": ADMIN_OR_NET_OWNER_MEMBER,
    "create_subnet:segment_id": ADMIN,
    "create_subnet:service_types": ADMIN,
    "get_subnet": f"{ADMIN_OR_PROJECT_READER} or rule:shared",
    "get_subnet:segment_id": ADMIN,
    "update_subnet": ADMIN_OR_NET_OWNER_MEMBER + f" or ({PROJECT_MEMBER})",
    "update_subnet:segment_id": ADMIN,
    "update_subnet:service_types": ADMIN,
    "delete_subnet": ADMIN_OR_NET_OWNER_MEMBER + f" or ({PROJECT_MEMBER})",
    # subnet pools
    "create_subnetpool": ADMIN_OR_PROJECT_MEMBER,
    "create_subnetpool:shared": ADMIN,
    "create_subnetpool:is_default": ADMIN,
    "get_subnetpool": f"{ADMIN_OR_PROJECT_READER} or rule:shared_subnetpools",
    "shared_subnetpools": SHARED,
    "update_subnetpool": ADMIN_OR_PROJECT_MEMBER,
    "update_subnetpool:is_default": ADMIN,
    "delete_subnetpool": ADMIN_OR_PROJECT_MEMBER,
    # ports
    "create_port": f"{_port_owner_or_net_owner} or role:member",
    "create_port:device_id": f"{_port_owner_or_net_owner} or role:member",
    "create_port:device_owner": f"not rule:network_device or {_net_owner_or_service}",
    "network_device": "'network:':%(device_owner_prefix)s",
    "create_port:mac_address": _net_owner_or_service,
    "create_port:fixed_ips": f"{_net_owner_or_service} or 'True':%(shared)s",
    "create_port:fixed_ips:ip_address": _net_owner_or_service,
    "create_port:fixed_ips:subnet_id": f"{_net_owner_or_service} or 'True':%(shared)s",
    "create_port:port_security_enabled": f"{_net_owner_or_service} or ({PROJECT_MEMBER})",
    "create_port:binding:host_id": ADMIN_OR_SERVICE,
    "create_port:binding:profile": ADMIN_OR_SERVICE,
    "create_port:binding:vnic_type": f"{ADMIN_OR_PROJECT_MEMBER} or {SERVICE}",
    "create_port:allowed_address_pairs": f"{_net_owner_or_service} or ({PROJECT_MEMBER})",
    "get_port": f"{ADMIN_OR_SERVICE} or ({PROJECT_READER}) or ({NET_OWNER_READER})",
    "get_port:binding:vif_type": ADMIN_OR_SERVICE,
    "get_port:binding:vif_details": ADMIN_OR_SERVICE,
    "get_port:binding:host_id": ADMIN_OR_SERVICE,
    "get_port:binding:profile": ADMIN_OR_SERVICE,
    "update_port": f"{ADMIN_OR_SERVICE} or ({PROJECT_MEMBER}) or ({NET_OWNER_MEMBER})",
    "update_port:device_id": f"{ADMIN_OR_SERVICE} or ({PROJECT_MEMBER}) or ({NET_OWNER_MEMBER})",
    "update_port:device_owner": f"not rule:network_device or {_net_owner_or_service}",
    "update_port:mac_address": ADMIN_OR_SERVICE,
    "update_port:fixed_ips": f"{_net_owner_or_service}",
    "update_port:port_security_enabled": f"{_net_owner_or_service} or ({PROJECT_MEMBER})",
    "update_port:binding:host_id": ADMIN_OR_SERVICE,
    "update_port:binding:profile": ADMIN_OR_SERVICE,
    "update_port:binding:vnic_type": f"{ADMIN_OR_PROJECT_MEMBER} or {SERVICE}",
    "update_port:allowed_address_pairs": f"{_net_owner_or_service} or ({PROJECT_MEMBER})",
    "delete_port": f"{ADMIN_OR_SERVICE} or ({PROJECT_MEMBER}) or ({NET_OWNER_MEMBER})",
    # network IP availability, quotas, extensions
    "get_network_ip_availability": ADMIN,
    "get_quota": ADMIN_OR_PROJECT_READER,
    "update_quota": ADMIN,
    "delete_quota": ADMIN,
    "get_extension": "",
    # tags API (`/v2.0/<collection>/<id>/tags`): upstream's `<verb>_<resource>:tags` names
    "get_network:tags": f"{ADMIN_OR_PROJECT_READER} or {SHARED} or {EXTERNAL}",
    **{f"get_{singular}:tags": ADMIN_OR_PROJECT_READER for singular in ("subnet", "port", "subnetpool")},
    **{f"{verb}_{singular}:tags": ADMIN_OR_PROJECT_MEMBER for singular in ("network", "subnet", "port", "subnetpool")
       for verb in ("create", "update", "delete")},
}

# ---------------------------------------------------------------------------- security groups, routers, floating
# IPs, RBAC, auto-allocated topology, availability zones, agents (upstream's names and secure-RBAC defaults)
PROJECT_MANAGER = "role:manager and project_id:%(project_id)s"
SG_OWNER_MEMBER = "role:member and rule:sg_owner"
SG_OWNER_READER = "role:reader and rule:sg_owner"
DEFAULTS.update({
    "sg_owner": "project_id:%(security_group:project_id)s",
    "admin_or_sg_owner": "rule:context_is_admin or project_id:%(security_group:project_id)s",
    "create_security_group": ADMIN_OR_PROJECT_MEMBER,
    "get_security_group": ADMIN_OR_PROJECT_READER,
    "update_security_group": ADMIN_OR_PROJECT_MEMBER,
    "delete_security_group": ADMIN_OR_PROJECT_MEMBER,
    "create_security_group_rule": f"{ADMIN} or ({SG_OWNER_MEMBER})",
    "get_security_group_rule": f"{ADMIN} or ({PROJECT_READER}) or ({SG_OWNER_READER})",
    "delete_security_group_rule": f"{ADMIN} or ({PROJECT_MEMBER}) or ({SG_OWNER_MEMBER})",
    # routers
    "create_router": ADMIN_OR_PROJECT_MEMBER,
    "create_router:distributed": ADMIN,
    "create_router:ha": ADMIN,
    "create_router:external_gateway_info": ADMIN_OR_PROJECT_MEMBER,
    "create_router:external_gateway_info:network_id": ADMIN_OR_PROJECT_MEMBER,
    "create_router:external_gateway_info:enable_snat": ADMIN,
    "create_router:external_gateway_info:external_fixed_ips": ADMIN,
    "get_router": ADMIN_OR_PROJECT_READER,
    "get_router:distributed": ADMIN,
    "get_router:ha": ADMIN,
    "update_router": ADMIN_OR_PROJECT_MEMBER,
    "update_router:distributed": ADMIN,
    "update_router:ha": ADMIN,
    "update_router:external_gateway_info": ADMIN_OR_PROJECT_MEMBER,
    "update_router:external_gateway_info:network_id": ADMIN_OR_PROJECT_MEMBER,
    "update_router:external_gateway_info:enable_snat": ADMIN,
    "update_router:external_gateway_info:external_fixed_ips": ADMIN,
    "delete_router": ADMIN_OR_PROJECT_MEMBER,
    "add_router_interface": ADMIN_OR_PROJECT_MEMBER,
    "remove_router_interface": ADMIN_OR_PROJECT_MEMBER,
    "add_extraroutes": ADMIN_OR_PROJECT_MEMBER,
    "remove_extraroutes": ADMIN_OR_PROJECT_MEMBER,
    # floating IPs
    "create_floatingip": ADMIN_OR_PROJECT_MEMBER,
    "create_floatingip:floating_ip_address": f"{ADMIN} or ({PROJECT_MANAGER})",
    "get_floatingip": ADMIN_OR_PROJECT_READER,
    "update_floatingip": ADMIN_OR_PROJECT_MEMBER,
    "delete_floatingip": ADMIN_OR_PROJECT_MEMBER,
    # RBAC policies: only admins may grant to every project ('*')
    "restrict_wildcard": f"(not '*':%(target_tenant)s) or rule:admin_only",
    "create_rbac_policy": ADMIN_OR_PROJECT_MEMBER,
    "create_rbac_policy:target_tenant": f"{ADMIN} or rule:restrict_wildcard",
    "update_rbac_policy": ADMIN_OR_PROJECT_MEMBER,
    "update_rbac_policy:target_tenant": f"{ADMIN} or rule:restrict_wildcard",
    "get_rbac_policy": ADMIN_OR_PROJECT_READER,
    "delete_rbac_policy": ADMIN_OR_PROJECT_MEMBER,
    # auto-allocated topology, availability zones, agents
    "get_auto_allocated_topology": ADMIN_OR_PROJECT_READER,
    "delete_auto_allocated_topology": ADMIN_OR_PROJECT_MEMBER,
    "get_availability_zone": "role:reader",
    "get_agent": ADMIN,
    "update_agent": ADMIN,
    "delete_agent": ADMIN,
    "get_dhcp-agents": ADMIN,
    "get_l3-agents": ADMIN,
    "get_dhcp-networks": ADMIN,
    "create_dhcp-network": ADMIN,
    "delete_dhcp-network": ADMIN,
    "get_l3-routers": ADMIN,
    # tags API: upstream's `<verb>_<resource>:tags` names
    **{f"{verb}_{singular}:tags": rule for singular in ("security_group", "router", "floatingip")
       for verb, rule in (("get", ADMIN_OR_PROJECT_READER), ("create", ADMIN_OR_PROJECT_MEMBER),
                          ("update", ADMIN_OR_PROJECT_MEMBER), ("delete", ADMIN_OR_PROJECT_MEMBER))},
})
