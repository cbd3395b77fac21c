"""`/v2.0/subnetpools`."""
from __future__ import annotations

from pocketstack.network import models as m
from pocketstack.network import subnetpools
from pocketstack.network.api import crud

crud.register(subnetpools, sql_filters={**crud.owner_filters(m.SubnetPool)})
