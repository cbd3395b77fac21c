#!/usr/bin/env python3
"""Object Storage: pocketstack vs upstream Swift, side by side on this machine, in one run.

    make bench-object                   # 3 rounds x 10 s cells, ~15 min, updates docs/benchmarks.md
    make bench-object ARGS=--quick      # 1 round, 4 s cells, 2,000-object listing (~4 min)
    .venv/bin/python bench/object.py --no-upstream --cells put16m,get16m --no-doc   # pocketstack only
    .venv/bin/python bench/object.py --help

Both servers are driven by the same client, the upstream anchors' `loadgen.py` (in
../shared/anchors next to the repository, or --anchors), with the anchors' cells:

  a. 4 KiB PUT and GET, 16 concurrent clients (GET: 1000 objects, read at random): req/s;
  b. 16 MiB PUT and GET, 8 concurrent clients (GET: 16 objects, page-cache hot): MB/s;
  c. a 10,000-object container: the fill time (zero-byte PUTs, c=16) and one full
     `GET ?format=json` of it (limit 10000 = the whole container), timed to the last byte;
  d. the baseline for (b): `cp` of a 16 MiB file of the same random data on the same disk
     followed by an fsync of the copy (what a durable write costs), and a plain `cp`;
  e. server CPU per request and RSS of each server's whole process tree.

Upstream is Swift 2.38.3 as the anchors run it: `swift_setup.sh` (1 node, 1 replica, one
directory as the device, tempauth + memcached, workers = auto) in its own ANCHORS folder
inside the work dir (fresh ports; its venv is reused from --swift-venv, $SWIFT_VENV or
${TMPDIR:-/tmp}/anchors/swift-venv when there is one, else installed in the work dir), served by
`swift_serve.sh`. pocketstack runs `pocketstack up --workers 2` with identity + object only,
as the same shape: 1 replica on 1 device (`[object] replicas = 1`); a third column runs the
default 3 replicas on 3 devices (every PUT writes and fsyncs three copies). Background
replication and expiry are off on every side (upstream's bench runs no replicator/auditor/expirer either).

Every cell runs --rounds times with the servers alternating (the order rotates each round);
medians are reported. Only processes this script started are stopped (by PID).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (bench/run.py: process-tree helpers)

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Object storage: pocketstack vs upstream Swift"
PASSWORD = "secret"
PS_ENV = common.PS_ENV
MB = 1e6
SMALL, LARGE = 4096, 16 << 20
TARGET_SMALL, TARGET_LARGE = 2.0, 0.90
log, free_port, median = common.log, common.free_port, common.median


# ---------------------------------------------------------------------------- servers
class Pocketstack:
    def __init__(self, work: Path, replicas: int, workers: int):
        self.name = "pocketstack" if replicas == 1 else f"pocketstack-{replicas}r"
        self.replicas, self.workers = replicas, workers
        self.state = work / f"ps-{replicas}r"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.exe = str(Path(sys.executable).parent / "pocketstack")
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def setup(self) -> None:
        for section, key, value in [("pocketstack", "enabled_services", "identity,object"),
                                    ("object", "replicas", str(self.replicas)),
                                    ("object", "devices", str(self.replicas)),
                                    ("object", "replicator_interval", "0"),
                                    ("object", "expirer_interval", "0"),
                                    ("identity", "password_hash_rounds", "4")]:
            subprocess.run([self.exe, "config", "set", "--state-dir", str(self.state), section, key, value],
                           check=True, stdout=subprocess.DEVNULL, env=PS_ENV)

    def start(self) -> None:
        self.log = open(self.state.parent / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen([self.exe, "up", "--state-dir", str(self.state), "--port", str(self.port),
                                      "--admin-password", PASSWORD, "--workers", str(self.workers)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=PS_ENV)
        common.first_token(self.url)

    def loadgen_auth(self) -> list[str]:
        return ["--url", self.url, "--swift-auth", "v3", "--user", "admin", "--password", PASSWORD]

    def storage_and_token(self) -> tuple[str, str]:
        body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}).encode()
        req = urllib.request.Request(self.url + "/v3/auth/tokens", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            token, data = r.headers["X-Subject-Token"], json.load(r)
        for svc in data["token"]["catalog"]:
            if svc["type"] == "object-store":
                return next(e["url"] for e in svc["endpoints"] if e["interface"] == "public"), token
        raise RuntimeError("no object-store endpoint")

    def version(self) -> str:
        from pocketstack import __version__

        return __version__

    def stop(self) -> None:
        if self.proc:
            common.stop_pid(self.proc.pid)
            self.proc = None
            self.log.close()
        common.wait_port_free(self.port)


class Swift:
    name = "upstream"

    def __init__(self, work: Path, anchors: Path, venv: Path | None):
        self.root = work / "swift-anchors"
        self.anchors, self.venv = anchors, venv
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/auth/v1.0"
        self.env = dict(os.environ, ANCHORS=str(self.root), SWIFT_PROXY_PORT=str(self.port),
                        SWIFT_OBJECT_PORT=str(free_port()), SWIFT_CONTAINER_PORT=str(free_port()),
                        SWIFT_ACCOUNT_PORT=str(free_port()), SWIFT_MEMCACHED_PORT=str(free_port()),
                        PY=sys.executable)

    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.venv is not None and not (self.root / "swift-venv").exists():
            (self.root / "swift-venv").symlink_to(self.venv)
        out = subprocess.run(["bash", str(self.anchors / "swift_setup.sh")], env=self.env, capture_output=True,
                             text=True)
        if out.returncode:
            raise RuntimeError(f"swift_setup.sh failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

    def _serve(self, action: str) -> str:
        return subprocess.run(["bash", str(self.anchors / "swift_serve.sh"), action], env=self.env,
                              capture_output=True, text=True).stdout

    def start(self) -> None:
        self._serve("start")
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                url, token = self.storage_and_token()
                req = urllib.request.Request(url + "/warmup", method="PUT", headers={"X-Auth-Token": token})
                with urllib.request.urlopen(req, timeout=5):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise RuntimeError("upstream Swift did not start")

    @property
    def pids(self) -> list[int]:
        return [int(p) for p in self._serve("pids").split()]

    @property
    def pid(self):  # for CPU/RSS: every server tree (memcached reported apart)
        return None

    def loadgen_auth(self) -> list[str]:
        return ["--url", self.url, "--swift-auth", "v1", "--user", "test:tester", "--password", "testing"]

    def storage_and_token(self) -> tuple[str, str]:
        req = urllib.request.Request(self.url, headers={"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]

    def version(self) -> str:
        py = self.root / "swift-venv" / "bin" / "python"
        out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('swift'))"],
                             capture_output=True, text=True)
        return out.stdout.strip() or "?"

    def stop(self) -> None:
        self._serve("stop")


def server_pids(server) -> list[int]:
    """The process trees that serve requests (upstream: the 4 Swift servers, without memcached)."""
    if isinstance(server, Swift):
        run = server.root / "swift" / "run"
        return [int((run / f"{s}.pid").read_text()) for s in ("proxy", "object", "container", "account")
                if (run / f"{s}.pid").exists()]
    return [server.pid] if server.pid else []


def cpu_s(server) -> float:
    return sum(common.tree_cpu_s(p) for p in server_pids(server))


def mem(server) -> dict:
    out = {"rss_mib": 0.0, "pss_mib": 0.0, "processes": 0}
    for p in server_pids(server):
        m = common.tree_mem_mib(p)
        for k in out:
            out[k] += m[k]
    return {k: round(v, 1) for k, v in out.items()}


# ---------------------------------------------------------------------------- measurements
CELLS = [  # key, loadgen mode, size, concurrency, extra args
    ("put4k", "swift-put", SMALL, 16, []),
    ("get4k", "swift-get", SMALL, 16, ["--objects", "1000"]),
    ("put16m", "swift-put", LARGE, 8, []),
    ("get16m", "swift-get", LARGE, 8, ["--objects", "16"]),
]


class Bench:
    def __init__(self, a, anchors: Path):
        self.a, self.anchors = a, anchors
        self.rows: list[dict] = []
        self.listing: list[dict] = []
        self.fills: list[dict] = []
        self.copies: list[dict] = []
        self.mem: list[dict] = []
        self.loads: list[str] = []

    def loadgen(self, server, key, mode, size, conc, extra, rnd) -> dict:
        la = common.loadavg()
        cpu0 = cpu_s(server)
        cmd = [sys.executable, str(self.anchors / "loadgen.py"), *server.loadgen_auth(), "--mode", mode,
               "--size", str(size), "-c", str(conc), "-d", str(self.a.duration), "--warmup", str(self.a.warmup),
               "--container", f"{key}-r{rnd}", "--label", f"{server.name}/{key}", *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=self.a.duration + 900)
        cpu1 = cpu_s(server)
        if out.returncode:
            raise RuntimeError(f"loadgen failed: {out.stderr[-1500:]}")
        r = json.loads(out.stdout)
        ok = r.get("ok") or 0
        row = {"server": server.name, "cell": key, "round": rnd, "req_per_s": r["req_per_s"],
               "mb_per_s": r["mb_per_s"], "p50_ms": r["lat_ms"]["p50"], "p99_ms": r["lat_ms"]["p99"], "ok": ok,
               "errors": r["errors"], "error_samples": r.get("error_samples"),
               "server_cpu_ms_per_req": round(1000 * (cpu1 - cpu0) / ok, 3) if ok else None,
               "loadgen_cpu_s": r.get("loadgen_cpu_s"), "load_before": la}
        self.rows.append(row)
        log(f"  {server.name:15s} {key:7s} {r['req_per_s']:8.1f} req/s {r['mb_per_s']:8.1f} MB/s  p50 "
            f"{r['lat_ms']['p50']} ms  errors {r['errors']}  (server CPU {row['server_cpu_ms_per_req']} ms/req, "
            f"load {la:.2f})")
        return row

    def copy_baseline(self, work: Path, rnd: int) -> None:
        src = work / "random-16MiB"
        if not src.exists():
            src.write_bytes(os.urandom(LARGE))
        for variant in ("cp+fsync", "cp"):
            times = []
            for _ in range(5):
                dst = work / "copy-16MiB"
                dst.unlink(missing_ok=True)
                t0 = time.perf_counter()
                subprocess.run(["cp", str(src), str(dst)], check=True)
                if variant == "cp+fsync":
                    fd = os.open(dst, os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)
                times.append(time.perf_counter() - t0)
            mbs = LARGE / statistics.median(times) / MB
            self.copies.append({"variant": variant, "round": rnd, "mb_per_s": round(mbs, 1)})
            log(f"  {variant:15s} 16 MiB: {mbs:.1f} MB/s (median of 5)")
        (work / "copy-16MiB").unlink(missing_ok=True)
        # The same data volume at the same concurrency: 8 loops of `cp` + fsync for one cell's time.
        deadline = time.monotonic() + self.a.duration
        copied = [0] * 8

        def loop(i):
            n = 0
            while time.monotonic() < deadline:
                dst = work / f"copy-{i}-{n % 2}"
                dst.unlink(missing_ok=True)
                subprocess.run(["cp", str(src), str(dst)], check=True)
                fd = os.open(dst, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                copied[i] += LARGE
                n += 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        mbs = sum(copied) / (time.monotonic() - t0) / MB
        self.copies.append({"variant": "cp+fsync x8", "round": rnd, "mb_per_s": round(mbs, 1)})
        log(f"  {'cp+fsync x8':15s} 16 MiB files, 8 loops for {self.a.duration:g} s: {mbs:.1f} MB/s")
        for f in work.glob("copy-*"):
            f.unlink()

    def fill(self, server, n: int) -> None:
        t0 = time.monotonic()
        cmd = [sys.executable, str(self.anchors / "loadgen.py"), *server.loadgen_auth(), "--mode", "swift-put",
               "--size", "0", "-c", "16", "-d", "600", "--warmup", "0", "--max-requests", str(n),
               "--container", "list10k"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        if out.returncode:
            raise RuntimeError(f"loadgen fill failed: {out.stderr[-1500:]}")
        r = json.loads(out.stdout)
        secs = time.monotonic() - t0
        self.fills.append({"server": server.name, "objects": r["ok"], "errors": r["errors"], "seconds": round(secs, 2)})
        log(f"  {server.name:15s} filled list10k with {r['ok']} objects in {secs:.1f} s ({r['errors']} errors)")

    def list_once(self, server, rnd: int) -> None:
        url, token = server.storage_and_token()
        times, count, size = [], 0, 0
        for _ in range(5):
            req = urllib.request.Request(url + "/list10k?format=json", headers={"X-Auth-Token": token})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=120) as r:
                body = r.read()
            times.append(time.perf_counter() - t0)
            count, size = len(json.loads(body)), len(body)
        self.listing.append({"server": server.name, "round": rnd, "seconds": round(statistics.median(times), 4),
                             "objects": count, "bytes": size})
        log(f"  {server.name:15s} listing of {count} objects: {statistics.median(times) * 1000:.1f} ms "
            f"(median of 5, {size} bytes)")


def summarise(b: Bench, servers) -> dict:
    s: dict = {"cells": {}, "listing": {}, "fill": {}, "copy": {}, "duration": b.a.duration}
    for srv in servers:
        for key, *_ in CELLS:
            rows = [r for r in b.rows if r["server"] == srv.name and r["cell"] == key]
            s["cells"][(srv.name, key)] = {f: median([r[f] for r in rows]) for f in
                                           ("req_per_s", "mb_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_req")}
            s["cells"][(srv.name, key)]["errors"] = sum(r["errors"] for r in rows)
        rows = [r for r in b.listing if r["server"] == srv.name]
        s["listing"][srv.name] = {"seconds": median([r["seconds"] for r in rows]),
                                  "objects": rows[-1]["objects"] if rows else None,
                                  "bytes": rows[-1]["bytes"] if rows else None}
        s["fill"][srv.name] = next((f for f in b.fills if f["server"] == srv.name), None)
    for variant in ("cp+fsync", "cp", "cp+fsync x8"):
        s["copy"][variant] = median([c["mb_per_s"] for c in b.copies if c["variant"] == variant])
    return s


def fmt(v, nd=1):
    return "n/a" if v is None else f"{v:.{nd}f}"


def build_table(s: dict, servers) -> tuple[list[str], list[tuple[str, bool]]]:
    names = [srv.name for srv in servers]
    ps, up = "pocketstack", "upstream"
    extra = [n for n in names if n not in (ps, up)]
    head = "| metric | pocketstack (1 replica) | upstream Swift (1 replica) | pocketstack / upstream | target |"
    if extra:
        head = head[:-len(" target |")] + " pocketstack, 3 replicas | target |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    checks: list[tuple[str, bool]] = []
    cp = s["copy"]["cp+fsync x8"]

    def cell(name, key, field):
        return s["cells"].get((name, key), {}).get(field)

    for key, label, field, unit in [("put4k", "a. PUT 4 KiB, 16 clients", "req_per_s", "req/s"),
                                    ("get4k", "a. GET 4 KiB, 16 clients", "req_per_s", "req/s"),
                                    ("put16m", "b. PUT 16 MiB, 8 clients", "mb_per_s", "MB/s"),
                                    ("get16m", "b. GET 16 MiB, 8 clients", "mb_per_s", "MB/s")]:
        a, u = cell(ps, key, field), cell(up, key, field)
        ratio = a / u if a and u else None
        if field == "req_per_s":
            ok = ratio is not None and ratio >= TARGET_SMALL
            target = f">= {TARGET_SMALL:.0f}x upstream {'PASS' if ok else 'MISS'}"
        else:
            ok = a is not None and cp and a >= TARGET_LARGE * cp
            target = (f">= {TARGET_LARGE:.0%} of the copy baseline ({TARGET_LARGE * cp:.0f}): "
                      f"{a / cp:.0%} {'PASS' if ok else 'MISS'}" if a and cp else "n/a")
        checks.append((key, bool(ok)))
        def show(n):
            v = cell(n, key, field)
            return (f"{fmt(v)} (p50 {fmt(cell(n, key, 'p50_ms'))} ms, {fmt(cell(n, key, 'server_cpu_ms_per_req'), 2)} "
                    f"ms CPU/req)") if v is not None else "n/a"
        row = f"| {label}: {unit} | **{show(ps)}** | {show(up)} | **{fmt(ratio, 2)}x** |"
        for n in extra:
            row += f" {show(n)} |"
        lines.append(row + f" {target} |")
    la, lu = s["listing"].get(ps, {}).get("seconds"), s["listing"].get(up, {}).get("seconds")
    row = (f"| c. full JSON listing of {s['listing'].get(ps, {}).get('objects')} objects, one GET, s | "
           f"**{fmt(la, 3)}** | {fmt(lu, 3)} | {fmt(la / lu if la and lu else None, 2)} (lower is better) |")
    for n in extra:
        row += f" {fmt(s['listing'].get(n, {}).get('seconds'), 3)} |"
    lines.append(row + " |")
    fills = {n: (s["fill"].get(n) or {}).get("seconds") for n in names}
    row = (f"| c. fill the container (zero-byte PUTs, 16 clients), s | {fmt(fills.get(ps))} | {fmt(fills.get(up))} | "
           f"{fmt(fills[ps] / fills[up] if fills.get(ps) and fills.get(up) else None, 2)} (lower is better) |")
    for n in extra:
        row += f" {fmt(fills.get(n))} |"
    lines.append(row + " |")
    lines.append(f"| d. copy baseline: 8 loops of `cp` 16 MiB + fsync for {fmt(s.get('duration'), 0)} s (the PUT cell's "
                 f"volume and concurrency), MB/s | {fmt(cp)} | | |" + " |" * len(extra) + " |")
    lines.append(f"| d. one `cp` of the 16 MiB file + fsync, MB/s (plain `cp`, page cache only: {fmt(s['copy']['cp'])}) | "
                 f"{fmt(s['copy']['cp+fsync'])} | | |" + " |" * len(extra) + " |")
    return lines, checks


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.platform(terse=True)}, CPython {platform.python_version()}"


def write_doc(path: Path, a, s, table, checks, b: Bench, versions, started, ended) -> None:
    when = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    loads = [float(x.split()[0]) for x in b.loads]
    la = f"{min(loads):.2f} / {statistics.median(loads):.2f} / {max(loads):.2f}" if loads else "n/a"
    met = sum(ok for _, ok in checks)
    mems = "; ".join(f"{m['server']} {m['when']}: {m['rss_mib']} MiB RSS ({m['pss_mib']} PSS), "
                     f"{m['processes']} processes" for m in b.mem)
    args = " ".join(sys.argv[1:])
    text = f"""{SECTION}

Measured **{when}** by `bench/object.py{(' ' + args) if args else ''}` in {(ended - started) / 60:.1f} min
({machine()}). Both servers ran **in the same run**, alternating, driven by the anchors'
`loadgen.py` with the anchors' cells; {a.rounds} rounds x {a.duration:g} s per cell (+{a.warmup:g} s warm-up),
medians. Upstream: Swift {versions['upstream']} as `../shared/anchors/swift_setup.sh` sets it up (1 node,
1 replica, tempauth + memcached, `workers = auto`); pocketstack {versions['pocketstack']}: `pocketstack up
--workers {a.workers}`, identity + object, 1 replica on 1 device (the same shape){'' if a.no_3r else
', and its default 3 replicas on 3 devices as a third column'}. Both keep their devices in the same
work dir on the same disk; no replicator/auditor/expirer runs on either side during the run. MB = 10^6 bytes.

**Load average** (1 min) before every cell: min / median / max = {la}. This is a shared 2-core
machine: other sessions' work runs at times, so treat differences under ~15 % as noise.
Targets met: {met} of {len(checks)}.

{chr(10).join(table)}

Memory: {mems}.

**Reading it.**
- Small objects: a PUT is one request through one process (auth from the per-process token
  cache, one fsynced file per replica, one SQLite transaction per listing replica); upstream
  goes proxy -> object server -> container server (three HTTP hops, eventlet) and validates
  tempauth tokens in memcached.
- Large-object PUT is bounded by CPU: per 16 MiB object the server spends ~40 ms of CPU
  (`time` of the process, 1 or 8 clients): MD5 ~19 ms (OpenSSL; Swift's ETag needs it and it
  cannot be split across cores: ~850 MB/s on one core here), the kernel ~14 ms (socket
  receive, page-cache write, fsync writeback), uvicorn (httptools + uvloop) and Python ~6 ms.
  The body is taken as the network chunks (no joining copy), 4 MiB per hop to the worker
  thread, the next piece is received while the worker hashes (GIL released) and writes this
  one, and writeback is started every 4 MiB (`sync_file_range`), so the final fsync finds
  little left. The copy baseline does none of the hashing and none of the HTTP; 90 % of it
  (8 `cp` loops) is more than MD5 alone allows on this machine, whatever the server.
- Large-object GET costs ~8 ms of CPU per 16 MiB (~0.5 ms per MB), mostly the kernel's two
  copies (page cache -> process, process -> socket); a hot object is not re-hashed (each
  replica's MD5 is checked once per process and file; an in-place change alters its stat and
  forces a new check; the auditor re-reads everything). `sendfile` would save one copy, but
  ASGI/uvicorn has no zero-copy path. The load generator's receive costs about as much on the
  same 2 cores, which is what keeps GET near the copy baseline. Upstream hashes every
  whole-object read as it streams.
- The 3-replica column is pocketstack's default durability: every PUT writes and fsyncs three
  copies.

Rerun: `make bench-object` (`ARGS=--quick`; `ARGS="--rounds 5 --duration 20"`; `--no-3r` leaves the
3-replica column out). Needs memcached and the anchors folder; upstream Swift's venv is reused
from `--swift-venv`, `$SWIFT_VENV` or `${{TMPDIR:-/tmp}}/anchors/swift-venv`, else installed into the work dir (~30 s).
Raw per-run numbers: `--json FILE`.
"""
    doc = path.read_text() if path.exists() else ""
    start = doc.find(SECTION)
    if start >= 0:
        nxt = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + ("\n" + doc[nxt + 1:] if nxt >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def find_swift_venv(arg: str | None) -> Path | None:
    cands = [Path(arg)] if arg else []
    if os.environ.get("SWIFT_VENV"):
        cands.append(Path(os.environ["SWIFT_VENV"]))
    cands.append(Path(os.environ.get("TMPDIR", "/tmp")) / "anchors" / "swift-venv")
    for c in cands:
        if (c / "bin" / "swift-proxy-server").exists():
            return c.resolve()
    return None


def find_anchors(arg: str | None) -> Path:
    cands = [Path(arg)] if arg else []
    cands += [REPO.parent / "shared" / "anchors"]
    for c in cands:
        if (c / "loadgen.py").exists() and (c / "swift_setup.sh").exists():
            return c.resolve()
    raise SystemExit("cannot find the anchors folder (loadgen.py, swift_setup.sh); pass --anchors DIR")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, 4 s cells, 2,000-object listing")
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=float)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--list-objects", type=int)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-3r", action="store_true", help="leave out the 3-replica pocketstack column")
    p.add_argument("--no-upstream", action="store_true",
                   help="pocketstack only (no Swift setup, no memcached needed; the table shows n/a for upstream)")
    p.add_argument("--cells", help="comma-separated subset of " + ",".join(c[0] for c in CELLS)
                   + " (e.g. put16m,get16m); with it the listing cells are skipped too")
    p.add_argument("--anchors")
    p.add_argument("--swift-venv", help="an installed upstream Swift venv to reuse")
    p.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    p.add_argument("--no-doc", action="store_true")
    p.add_argument("--json", help="write the raw results here")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (4 if a.quick else 10)
    a.list_objects = a.list_objects or (2000 if a.quick else 10000)
    if a.cells:
        wanted = set(a.cells.split(","))
        CELLS[:] = [c for c in CELLS if c[0] in wanted]
    if not shutil.which("memcached") and not a.no_upstream:
        raise SystemExit("memcached is not installed (apt-get install memcached): upstream's tempauth needs it")
    anchors = find_anchors(a.anchors)
    work = Path(tempfile.mkdtemp(prefix="bench-object-"))
    started = time.time()
    b = Bench(a, anchors)
    servers = [Pocketstack(work, 1, a.workers)]
    if not a.no_upstream:
        servers.append(Swift(work, anchors, find_swift_venv(a.swift_venv)))
    if not a.no_3r:
        servers.append(Pocketstack(work, 3, a.workers))
    log(f"work dir {work}; load {common.loadavg():.2f}")
    try:
        for srv in servers:
            log(f"setting up {srv.name}")
            srv.setup()
        versions = {"pocketstack": servers[0].version(),
                    "upstream": servers[1].version() if not a.no_upstream else "n/a"}
        for rnd in range(1, a.rounds + 1):
            order = servers[rnd - 1:] + servers[:rnd - 1]
            log(f"round {rnd}: {' -> '.join(s.name for s in order)}")
            b.copy_baseline(work, rnd)
            for srv in order:
                b.loads.append(Path("/proc/loadavg").read_text().strip())
                srv.start()
                try:
                    if rnd == 1:
                        b.mem.append({"server": srv.name, "when": "idle", **mem(srv)})
                    for key, mode, size, conc, extra in CELLS:
                        b.loadgen(srv, key, mode, size, conc, extra, rnd)
                    if rnd == 1 and not a.cells:
                        b.fill(srv, a.list_objects)
                    if rnd == 1:
                        b.mem.append({"server": srv.name, "when": "after load", **mem(srv)})
                    if not a.cells:
                        b.list_once(srv, rnd)
                finally:
                    srv.stop()
        ended = time.time()
        s = summarise(b, servers)
        table, checks = build_table(s, servers)
        print("\n".join(table))
        if a.json:
            Path(a.json).write_text(json.dumps({"rows": b.rows, "listing": b.listing, "fills": b.fills,
                                                "copies": b.copies, "mem": b.mem, "loads": b.loads,
                                                "versions": versions}, indent=1))
        if not a.no_doc:
            write_doc(Path(a.doc), a, s, table, checks, b, versions, started, ended)
            log(f"wrote {a.doc}")
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception:
                pass
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
