"""`/v2.0/ports`, with the `fixed_ips` filter (`fixed_ips=ip_address=...`,
`fixed_ips=subnet_id=...`, `fixed_ips=ip_address_substr=...`: values of one key OR'd, keys AND'd)."""
from __future__ import annotations

from pocketstack.network import models as m
from pocketstack.network import ports
from pocketstack.network.api import crud
from pocketstack.network.api import resource as r


def _fixed_ips_filter(item: dict, wanted: list[str]) -> bool:
    wants: dict[str, list[str]] = {}
    for w in wanted:
        key, _, value = w.partition("=")
        if key not in ("ip_address", "subnet_id", "ip_address_substr"):
            raise r.BadRequest(f"Invalid input for fixed_ips. Reason: '{key}' is not a valid fixed_ips filter.")
        wants.setdefault(key, []).append(value)
    fixed = item.get("fixed_ips") or []

    def any_match(pred):
        return any(pred(f) for f in fixed)

    for key, values in wants.items():
        if key == "ip_address_substr":
            if not any_match(lambda f: any(v in f["ip_address"] for v in values)):
                return False
        elif not any_match(lambda f: f[key] in values):
            return False
    return True


def _security_groups_filter(item: dict, wanted: list[str]) -> bool:
    return bool(set(item.get("security_groups") or []) & set(wanted))


crud.register(ports, sql_filters={**crud.owner_filters(m.Port), "network_id": m.Port.network_id, "device_id": m.Port.device_id,
                                  "device_owner": m.Port.device_owner, "mac_address": m.Port.mac_address},
              hooks={"fixed_ips": _fixed_ips_filter, "security_groups": _security_groups_filter},
              columns={**crud.standard_columns(m.Port), **{a: (getattr(m.Port, a), lambda v: v) for a in (
                  "network_id", "mac_address", "admin_state_up", "status", "device_id", "device_owner")}})
