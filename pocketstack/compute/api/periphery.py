"""Registers the periphery's route modules (flavors, keypairs, quotas and limits, AZs,
hypervisors, services, aggregates, server groups, usage, extensions, legacy proxies, the usage
audit log, the volume proxies) on compute's Api, so `service.app()` needs one import for all of them."""
from pocketstack.compute.api import (aggregates, extensions, flavors, floating_ips_proxy,  # noqa: F401
                                     host_admin, keypairs, networks_proxy, os_hosts, quotas,
                                     removed, security_groups, server_groups, usage, usage_audit,
                                     volumes_proxy)
