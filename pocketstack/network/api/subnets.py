"""`/v2.0/subnets`."""
from __future__ import annotations

from pocketstack.network import models as m
from pocketstack.network import subnets
from pocketstack.network.api import crud

crud.register(subnets, sql_filters={**crud.owner_filters(m.Subnet), "network_id": m.Subnet.network_id})
