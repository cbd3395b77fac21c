#!/usr/bin/env python3
"""Compute with the fake virt driver: boot latency, burst boots, boot-and-delete, big listings.

    make bench-compute                   # full run, rewrites its section of docs/benchmarks.md
    make bench-compute ARGS=--quick      # fewer servers (no doc update unless --doc is given)
    .venv/bin/python bench/compute.py --help

One pocketstack (`pocketstack up`, SQLite, the fake driver with `--fake-hosts` hosts made
large enough that capacity never limits the run, admin quotas unlimited) is driven over
plain HTTP (httpx, one connection per client thread), the way Rally's `NovaServers`
scenarios drive Nova:

  a. boot-to-ACTIVE latency: servers booted one at a time (`networks: none`, so only
     compute is measured), each polled every 2 ms until ACTIVE; p50/p90/p99;
  b. burst: 100 servers created by 100 concurrent clients, time until every one is
     ACTIVE (the issue's target: under 10 s);
  c. boot_and_delete_server (Rally's scenario shape): C concurrent clients each loop
     create -> wait ACTIVE -> delete -> wait gone, for a fixed time; servers/s and the
     per-iteration latency;
  d. listing: N servers (10,000 by default) in the project, then `GET /servers/detail`
     paged with limit/marker (1,000 per page) and `GET /servers` unpaged-by-client
     (the API's own max_limit paging); total seconds per full walk.

Targets from issue 4: p50 boot-to-ACTIVE < 100 ms; 100 concurrent boots ACTIVE < 10 s.
Every measurement is repeated --rounds times and medians are reported, with the load
average, since this is a shared 2-core machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, Cloud, loadavg, log, pct, write_section

SECTION = "## Compute (fake driver): boot latency, burst boots, boot-and-delete, listing"
MV = {"OpenStack-API-Version": "compute 2.37"}


# ---------------------------------------------------------------------------- operations
def create(cloud: Cloud, name: str, image: str, count: int = 1) -> list[str]:
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    if count > 1:
        body["server"].update(min_count=count, max_count=count, return_reservation_id=True)
    r = cloud.client().post(f"{cloud.compute}/servers", json=body)
    if r.status_code != 202:
        raise RuntimeError(f"create failed: {r.status_code} {r.text[:300]}")
    data = r.json()
    return [data["server"]["id"]] if "server" in data else [data["reservation_id"]]


def wait_status(cloud: Cloud, server_id: str, want: str = "ACTIVE", poll: float = 0.002,
                timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = cloud.client().get(f"{cloud.compute}/servers/{server_id}")
        if want == "GONE" and r.status_code == 404:
            return
        if r.status_code == 200:
            status = r.json()["server"]["status"]
            if status == want:
                return
            if status == "ERROR":
                raise RuntimeError(f"server {server_id} went to ERROR: {r.text[:300]}")
        time.sleep(poll)
    raise RuntimeError(f"server {server_id} not {want} within {timeout}s")


def delete(cloud: Cloud, server_id: str) -> None:
    r = cloud.client().delete(f"{cloud.compute}/servers/{server_id}")
    if r.status_code not in (204, 404):
        raise RuntimeError(f"delete failed: {r.status_code} {r.text[:200]}")


def delete_all(cloud: Cloud, workers: int = 8) -> None:
    ids = [s["id"] for s in list_all(cloud, "/servers", 1000)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: delete(cloud, i), ids))
    for i in ids:
        wait_status(cloud, i, "GONE", poll=0.02)


def list_all(cloud: Cloud, path: str, limit: int | None) -> list[dict]:
    out, marker = [], None
    while True:
        params = {}
        if limit:
            params["limit"] = limit
        if marker:
            params["marker"] = marker
        r = cloud.client().get(cloud.compute + path, params=params)
        r.raise_for_status()
        page = r.json()["servers"]
        out += page
        links = r.json().get("servers_links") or []
        if not page or not any(link.get("rel") == "next" for link in links):
            return out
        marker = page[-1]["id"]


def cpu_seconds(pid: int) -> float:
    """user + system CPU of the server process so far: less sensitive to a busy machine than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def image_id(cloud: Cloud) -> str:
    c = cloud.client()
    r = c.post(f"{cloud.url}/image/v2/images", json={"name": "bench", "disk_format": "raw",
                                                      "container_format": "bare"})
    r.raise_for_status()
    iid = r.json()["id"]
    c.put(f"{cloud.url}/image/v2/images/{iid}/file", content=b"\0" * 65536,
          headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    c.put(f"{cloud.compute}/os-quota-sets/{cloud.project_id}",
          json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}}).raise_for_status()
    return iid


# ---------------------------------------------------------------------------- measurements
def boot_latency(cloud: Cloud, image: str, n: int) -> list[float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        (sid,) = create(cloud, f"lat-{i}", image)
        wait_status(cloud, sid)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def burst(cloud: Cloud, image: str, n: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        ids = [i for ids in pool.map(lambda k: create(cloud, f"burst-{k}", image), range(n)) for i in ids]
        list(pool.map(lambda sid: wait_status(cloud, sid, poll=0.01), ids))
    return time.perf_counter() - t0


def boot_and_delete(cloud: Cloud, image: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    stop_at = time.monotonic() + seconds
    lat: list[float] = []
    lock = threading.Lock()

    def loop(k: int) -> int:
        done = 0
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            (sid,) = create(cloud, f"bd-{k}-{done}", image)
            wait_status(cloud, sid, poll=0.005)
            delete(cloud, sid)
            wait_status(cloud, sid, "GONE", poll=0.005)
            with lock:
                lat.append((time.perf_counter() - t0) * 1000)
            done += 1
        return done

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(loop, range(clients)))
    return total / (time.perf_counter() - t0), lat


def fill(cloud: Cloud, image: str, n: int, batch: int = 100) -> float:
    """n servers via multi-create (`min_count`), 4 requests in flight; waits until all are ACTIVE."""
    t0 = time.perf_counter()
    batches = [min(batch, n - i) for i in range(0, n, batch)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda nb: create(cloud, "fill", image, count=nb), batches))
    end = time.monotonic() + 600
    while time.monotonic() < end:
        servers = list_all(cloud, "/servers/detail", 1000)
        if len(servers) >= n and all(s["status"] == "ACTIVE" for s in servers):
            return time.perf_counter() - t0
        time.sleep(1)
    raise RuntimeError("fill did not finish")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-servers", type=int, default=50)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--bd-clients", type=int, default=8)
    ap.add_argument("--bd-seconds", type=float, default=20)
    ap.add_argument("--list-servers", type=int, default=10000)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="a short run: 20 / 50 / 10 s / 2,000 servers, 1 round")
    ap.add_argument("--doc", type=Path, default=None, help="markdown file to update (default: docs/benchmarks.md "
                                                            "unless --quick)")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.latency_servers, a.burst, a.bd_seconds, a.list_servers = 1, 20, 50, 10, 2000
    if a.doc is None and not a.quick:
        a.doc = REPO / "docs" / "benchmarks.md"
    exe = str(REPO / ".venv" / "bin" / "pocketstack")
    started = dt.datetime.now(dt.timezone.utc)
    loads = [loadavg()]
    rows: dict[str, list] = {"p50": [], "p90": [], "p99": [], "burst": [], "bd_rate": [], "bd_p50": [],
                             "fill": [], "list_paged": [], "list_default": [], "cpu_paged": [], "cpu_default": []}
    with tempfile.TemporaryDirectory(prefix="bench-compute-") as tmp:
        for rnd in range(1, a.rounds + 1):
            work = Path(tmp) / f"r{rnd}"
            work.mkdir()
            cloud = Cloud(work, exe, headers=MV, settings=[
                ("compute", "fake_hosts", str(a.hosts)), ("compute", "fake_host_vcpus", "100000"),
                ("compute", "fake_host_memory_mb", str(1 << 30)), ("compute", "fake_host_disk_gb", str(1 << 24))])
            try:
                image = image_id(cloud)
                lat = boot_latency(cloud, image, a.latency_servers)
                rows["p50"].append(pct(lat, 50))
                rows["p90"].append(pct(lat, 90))
                rows["p99"].append(pct(lat, 99))
                log(f"round {rnd}: boot-to-ACTIVE p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms")
                delete_all(cloud)
                rows["burst"].append(burst(cloud, image, a.burst))
                log(f"round {rnd}: {a.burst} concurrent boots ACTIVE in {rows['burst'][-1]:.2f} s")
                delete_all(cloud)
                rate, bd = boot_and_delete(cloud, image, a.bd_clients, a.bd_seconds)
                rows["bd_rate"].append(rate)
                rows["bd_p50"].append(pct(bd, 50) if bd else float("nan"))
                log(f"round {rnd}: boot_and_delete {rate:.1f} servers/s, p50 {rows['bd_p50'][-1]:.0f} ms")
                rows["fill"].append(fill(cloud, image, a.list_servers))
                c0, t0 = cpu_seconds(cloud.pid), time.perf_counter()
                n = len(list_all(cloud, "/servers/detail", 1000))
                rows["list_paged"].append(time.perf_counter() - t0)
                rows["cpu_paged"].append(cpu_seconds(cloud.pid) - c0)
                c0, t0 = cpu_seconds(cloud.pid), time.perf_counter()
                list_all(cloud, "/servers", None)
                rows["list_default"].append(time.perf_counter() - t0)
                rows["cpu_default"].append(cpu_seconds(cloud.pid) - c0)
                log(f"round {rnd}: {n} servers; detail walk {rows['list_paged'][-1]:.2f} s, "
                    f"default walk {rows['list_default'][-1]:.2f} s")
            finally:
                cloud.stop()
            loads.append(loadavg())
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    summary = [
        ("boot-to-ACTIVE p50 (target < 100 ms)", f"{med['p50']:.1f} ms", "met" if med["p50"] < 100 else "MISSED"),
        ("boot-to-ACTIVE p90 / p99", f"{med['p90']:.1f} / {med['p99']:.1f} ms", ""),
        (f"{a.burst} concurrent boots all ACTIVE (target < 10 s)", f"{med['burst']:.2f} s",
         "met" if med["burst"] < 10 else "MISSED"),
        (f"boot_and_delete_server, {a.bd_clients} clients, {a.bd_seconds:.0f} s", f"{med['bd_rate']:.1f} servers/s "
         f"(iteration p50 {med['bd_p50']:.0f} ms)", ""),
        (f"create {a.list_servers:,} servers (multi-create, batches of 100) until all ACTIVE",
         f"{med['fill']:.1f} s", ""),
        (f"list {a.list_servers:,} servers: `/servers/detail` pages of 1,000 (target < 4 s)",
         f"{med['list_paged']:.2f} s (server CPU {med['cpu_paged']:.2f} s)", "met" if med["list_paged"] < 4 else "MISSED"),
        (f"list {a.list_servers:,} servers: `/servers` (default page size)",
         f"{med['list_default']:.2f} s (server CPU {med['cpu_default']:.2f} s)", ""),
    ]
    for name, value, verdict in summary:
        print(f"{name:75s} {value:>28s} {verdict}")
    print("per round:", {k: [round(x, 2) for x in v] for k, v in rows.items()})
    if a.doc:
        write_doc(a, summary, loads, started, rows)
    return 0


def write_doc(a, summary, loads, started, rows) -> None:
    table = "\n".join(f"| {n} | {v} | {t} |" for n, v, t in summary)
    units = {"p50": " ms", "p99": " ms", "burst": " s", "bd_rate": " servers/s", "fill": " s",
             "list_paged": " s", "cpu_paged": " s", "list_default": " s", "cpu_default": " s"}
    per_round = "; ".join(f"{k} " + ", ".join(f"{x:.2f}" for x in rows[k]) + u for k, u in units.items() if rows[k])
    text = f"""{SECTION}

Measured {started:%Y-%m-%d %H:%M} UTC by `make bench-compute` ({platform.node()}, {os.cpu_count()} CPUs,
Python {platform.python_version()}): one `pocketstack up` per round (SQLite, in-process bus, the
fake virt driver with {a.hosts} hosts sized so capacity never limits the run, admin quotas
unlimited), driven over HTTP at microversion 2.37 with `networks: none`; medians of {a.rounds} rounds.
There is no upstream side here: the issue's targets are absolute.

| measurement | median | target |
|---|---:|---|
{table}

Per round: {per_round}.

**Load average** (1/5/15 min) at start and after each round: {' -> '.join(loads)}. The
machine is shared with other sessions' work (test suites, Tempest runs, other benchmarks)
running at the same time, so single numbers are noisy; hence medians of rounds. Rerun:
`make bench-compute` (`ARGS=--quick` for a short run).

Listing: a page is one SQL query (filters, sort keys and `limit + 1` in SQL; the `marker`
becomes a keyset condition on the sort keys, which always end in the id) that reads plain
rows, not ORM objects; what a detail page shows of other tables comes in one query or one
batched call per page (faults, attached volumes, host states, ports/addresses through
`network.core.get_instances_nw_info`, security groups through
`network.core.instances_security_group_names`). Filters SQL cannot apply portably (name,
description and hostname regexes, flavor, IPs, tags) still filter the full list in Python.
"""
    write_section(a.doc, SECTION, text)


if __name__ == "__main__":
    sys.exit(main())
