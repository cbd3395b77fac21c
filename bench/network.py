#!/usr/bin/env python3
"""Networking: port create latency and throughput, and listing 10,000 ports.

    make bench-network                   # full run, rewrites its section of docs/benchmarks.md
    make bench-network ARGS=--quick      # fewer ports, one round, no doc update unless --doc

One pocketstack (`pocketstack up`, SQLite, no-op dataplane, admin quotas unlimited) per
round, driven over plain HTTP (httpx, one connection per client thread), the shape of
Rally's `NeutronNetworks.create_and_list_ports`:

  a. latency: ports created one at a time on one /16 subnet (each one runs IPAM: an
     address and a MAC allocated race-free); p50/p90/p99;
  b. throughput: 16 concurrent clients creating ports on the same subnet for a fixed
     time (every create contends for the same allocation pool); ports/s, and a check
     that every address handed out is distinct;
  c. listing: N ports (10,000 by default) then `GET /v2.0/ports` unpaged (`fields=id`, and
     full detail), and paged with limit/marker (1,000 per page, full detail); seconds per
     full walk.

Medians of --rounds rounds, with the load average (a shared 2-core machine).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, Cloud, loadavg, log, pct, write_section

SECTION = "## Networking: port create latency and throughput, 10,000-port listing"


def setup(cloud: Cloud) -> str:
    c = cloud.client()
    net = c.post(f"{cloud.url}/network/v2.0/networks", json={"network": {"name": "bench"}})
    net.raise_for_status()
    net_id = net.json()["network"]["id"]
    sub = c.post(f"{cloud.url}/network/v2.0/subnets", json={"subnet": {
        "network_id": net_id, "cidr": "10.128.0.0/16", "ip_version": 4, "enable_dhcp": False}})
    sub.raise_for_status()
    c.put(f"{cloud.url}/network/v2.0/quotas/{cloud.project_id}", json={"quota": {"port": -1}}).raise_for_status()
    return net_id


def create_port(cloud: Cloud, net_id: str) -> str:
    r = cloud.client().post(f"{cloud.url}/network/v2.0/ports", json={"port": {"network_id": net_id}})
    if r.status_code != 201:
        raise RuntimeError(f"port create failed: {r.status_code} {r.text[:300]}")
    return r.json()["port"]["fixed_ips"][0]["ip_address"]


def latency(cloud: Cloud, net_id: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        create_port(cloud, net_id)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def throughput(cloud: Cloud, net_id: str, clients: int, seconds: float) -> tuple[float, int, int]:
    stop_at = time.monotonic() + seconds

    def loop(_):
        got = []
        while time.monotonic() < stop_at:
            got.append(create_port(cloud, net_id))
        return got

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        addresses = [a for batch in pool.map(loop, range(clients)) for a in batch]
    rate = len(addresses) / (time.perf_counter() - t0)
    return rate, len(addresses), len(set(addresses))


def fill(cloud: Cloud, net_id: str, total: int) -> None:
    """Top up to `total` ports with bulk creates (setup, not measured)."""
    missing = max(0, total - len(list_ports(cloud, None)))
    for start in range(0, missing, 250):
        batch = [{"network_id": net_id} for _ in range(min(250, missing - start))]
        r = cloud.client().post(f"{cloud.url}/network/v2.0/ports", json={"ports": batch})
        if r.status_code != 201:
            raise RuntimeError(f"bulk port create failed: {r.status_code} {r.text[:300]}")


def list_ports(cloud: Cloud, limit: int | None, detail: bool = False) -> list[dict]:
    out, marker = [], None
    while True:
        params = ({} if detail else {"fields": "id"}) if limit is None else {"limit": limit}
        if marker:
            params["marker"] = marker
        r = cloud.client().get(f"{cloud.url}/network/v2.0/ports", params=params)
        r.raise_for_status()
        page = r.json()["ports"]
        out += page
        if limit is None or not any(link.get("rel") == "next" for link in r.json().get("ports_links", [])):
            return out
        marker = page[-1]["id"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-ports", type=int, default=200)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--list-ports", type=int, default=10000)
    ap.add_argument("--quick", action="store_true", help="one round, 50 ports, 5 s, 2,000-port listing")
    ap.add_argument("--doc", type=Path, default=None)
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.latency_ports, a.seconds, a.list_ports = 1, 50, 5, 2000
    if a.doc is None and not a.quick:
        a.doc = REPO / "docs" / "benchmarks.md"
    exe = str(REPO / ".venv" / "bin" / "pocketstack")
    started = dt.datetime.now(dt.timezone.utc)
    loads = [loadavg()]
    rows: dict[str, list] = {k: [] for k in ("p50", "p90", "p99", "rate", "list_all", "list_detail",
                                              "list_paged")}
    distinct_ok = True
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        for rnd in range(1, a.rounds + 1):
            work = Path(tmp) / f"r{rnd}"
            work.mkdir()
            cloud = Cloud(work, exe)
            try:
                net_id = setup(cloud)
                lat = latency(cloud, net_id, a.latency_ports)
                for key, p in (("p50", 50), ("p90", 90), ("p99", 99)):
                    rows[key].append(pct(lat, p))
                rate, made, distinct = throughput(cloud, net_id, a.clients, a.seconds)
                distinct_ok &= made == distinct
                rows["rate"].append(rate)
                log(f"round {rnd}: create p50 {pct(lat, 50):.1f} ms; {a.clients} clients {rate:.1f} ports/s "
                    f"({made} made, {distinct} distinct addresses)")
                fill(cloud, net_id, a.list_ports)
                t0 = time.perf_counter()
                n = len(list_ports(cloud, None))
                rows["list_all"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                list_ports(cloud, None, detail=True)
                rows["list_detail"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                list_ports(cloud, 1000)
                rows["list_paged"].append(time.perf_counter() - t0)
                log(f"round {rnd}: {n} ports listed in {rows['list_all'][-1]:.2f} s (ids), "
                    f"{rows['list_detail'][-1]:.2f} s (detail), paged detail {rows['list_paged'][-1]:.2f} s")
            finally:
                cloud.stop()
            loads.append(loadavg())
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    summary = [
        ("port create, one client: p50 / p90 / p99", f"{med['p50']:.1f} / {med['p90']:.1f} / {med['p99']:.1f} ms"),
        (f"port create, {a.clients} concurrent clients, one subnet", f"{med['rate']:.1f} ports/s "
         f"({'all addresses distinct' if distinct_ok else 'DUPLICATE ADDRESSES'})"),
        (f"list {a.list_ports:,} ports (`fields=id`, one request)", f"{med['list_all']:.2f} s"),
        (f"list {a.list_ports:,} ports, full detail, one request", f"{med['list_detail']:.2f} s"),
        (f"list {a.list_ports:,} ports, full detail, pages of 1,000", f"{med['list_paged']:.2f} s"),
    ]
    for name, value in summary:
        print(f"{name:60s} {value}")
    if a.doc:
        table = "\n".join(f"| {n} | {v} |" for n, v in summary)
        write_section(a.doc, SECTION, f"""{SECTION}

Measured {started:%Y-%m-%d %H:%M} UTC by `make bench-network` ({platform.node()}, {os.cpu_count()} CPUs,
Python {platform.python_version()}): one `pocketstack up` per round (SQLite, in-process bus, no-op
dataplane), plain HTTP, ports on one /16 subnet (every create allocates an address and a MAC);
medians of {a.rounds} rounds. No upstream side: the issue asks for these numbers, not a ratio.
The machine is shared: other sessions' test runs used the same 2 cores meanwhile (see the load
average below), so absolute numbers are noisy. Until 2026-11-27 every page of a paged port list
rendered all ports and then sliced (the 1,000-per-page walk of 10,000 took 11.1 s at load ~1);
now a page is a keyset query and only it is rendered (docs/network.md, API conventions).

| measurement | median |
|---|---:|
{table}

**Load average** (1/5/15 min) at start and after each round: {' -> '.join(loads)}. Rerun:
`make bench-network` (`ARGS=--quick` for a short run).
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
