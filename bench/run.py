#!/usr/bin/env python3
"""pocketstack vs upstream Keystone, side by side on this machine, in one run.

    make bench                      # default run, ~10-12 minutes, rewrites docs/benchmarks.md
    make bench ARGS=--quick         # ~3 minutes: bcrypt cost 4 only, 1 round, short runs
    .venv/bin/python bench/run.py --help

What it measures (both servers with the same client, the upstream anchors' `loadgen.py`
and `coldstart.py`, found in ../shared/anchors next to the repository or --anchors):

  a. cold start: launch -> first 201 from POST /v3/auth/tokens, on an initialised state
     dir / keystone database (median of --cold-runs launches, the servers alternating);
  b. token issue at c=8 and c=32, at bcrypt cost 4 and 12 (same cost on both sides);
  c. token validation at c=8 and c=32 (upstream with memcached caching: its best setup);
  d. RSS (and PSS) of each server's process tree, idle after start and after the load.

Upstream runs as the anchors run it: Keystone 30.0.0 under gunicorn (4 sync workers),
SQLite, fernet tokens, oslo.cache on memcached (`keystone_setup.sh` / `keystone_serve.sh`
with their own ANCHORS folder inside the work dir, so the shared /tmp/anchors stays
untouched; the Keystone venv is reused from there). pocketstack runs `pocketstack up`
with --workers (default 2, one per core) for the load tests and with its default (1)
and --workers for the cold start. Every throughput cell is run --rounds times, the two
servers alternating in order, and the medians are reported.

Only processes this script started are stopped (by PID).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "secret"
TOKEN_BODY = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {
    "user": {"name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}}},
    "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}).encode()

PS, KS = "pocketstack", "upstream"
# This machine's environment sets PYTHONDONTWRITEBYTECODE=1: pocketstack (an editable
# install) would then recompile its own modules at every start, while pip compiled
# upstream's at install time. Its processes run without it, as on a normal machine.
PS_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------- process trees
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_s(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def tree_mem_mib(pid: int) -> dict:
    rss = pss = 0
    pids = tree(pid)
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return {"rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1), "processes": len(pids)}


def stop_pid(pid: int | None, timeout: float = 15) -> None:
    """TERM one process we started, wait, then KILL."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: poll for existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_port_free(port: int, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.1)


def first_token(url: str, timeout: float = 180) -> float:
    """Poll until POST /v3/auth/tokens answers 201; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            req = urllib.request.Request(url + "/v3/auth/tokens", data=TOKEN_BODY,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status == 201:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no token from {url} within {timeout}s")


# ---------------------------------------------------------------------------- servers
class Pocketstack:
    name = PS

    def __init__(self, work: Path, cost: int, workers: int, exe: str):
        self.dir = work / f"ps-bcrypt{cost}"
        self.cost, self.workers, self.exe = cost, workers, exe
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid: int | None = None
        self.log = work / f"ps-bcrypt{cost}.log"

    def _run(self, *args: str) -> None:
        subprocess.run([self.exe, *args], check=True, stdout=subprocess.DEVNULL, env=PS_ENV)

    def setup(self) -> None:
        self._run("config", "set", "--state-dir", str(self.dir), "identity", "password_hash_rounds", str(self.cost))
        self._run("config", "set", "--state-dir", str(self.dir), "pocketstack", "port", str(self.port))
        self._run("init", "--state-dir", str(self.dir), "--admin-password", PASSWORD)

    def up_cmd(self, workers: int) -> list[str]:
        return [self.exe, "up", "--state-dir", str(self.dir), "--port", str(self.port),
                "--admin-password", PASSWORD, "--workers", str(workers)]

    def start(self, workers: int | None = None) -> None:
        with open(self.log, "ab") as out:
            p = subprocess.Popen(self.up_cmd(workers or self.workers), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, env=PS_ENV)
        self.pid = p.pid
        first_token(self.url)

    def cold_cmd(self, workers: int) -> tuple[list[str], Path]:
        pidfile = self.dir.parent / f"ps-{self.cost}.pid"
        sh = 'setsid "$@" >>"$LOG" 2>&1 </dev/null & echo $! > "$PIDFILE"'
        return ["env", f"LOG={self.log}", f"PIDFILE={pidfile}", "sh", "-c", sh, "sh",
                *self.up_cmd(workers)], pidfile

    def stop(self) -> None:
        stop_pid(self.pid)
        self.pid = None
        wait_port_free(self.port)


class Keystone:
    name = KS

    def __init__(self, work: Path, cost: int, anchors: Path, ks_venv: Path | None, mc_port: int, workers: int):
        self.root = work / f"ks-bcrypt{cost}"  # this config's ANCHORS folder
        self.cost, self.anchors = cost, anchors
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, ANCHORS=str(self.root), KS_PORT=str(self.port), KS_CACHE="true",
                        KS_HASH_ROUNDS=str(cost), MEMCACHED_PORT=str(mc_port), KS_WORKERS=str(workers),
                        PY=sys.executable)
        self.ks_venv = ks_venv
        self.pid: int | None = None

    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.ks_venv is not None and not (self.root / "ks-venv").exists():
            (self.root / "ks-venv").symlink_to(self.ks_venv)
        out = subprocess.run(["bash", str(self.anchors / "keystone_setup.sh")], env=self.env,
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"keystone_setup.sh failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

    def serve_cmd(self, action: str) -> list[str]:
        return ["bash", str(self.anchors / "keystone_serve.sh"), action] + (["gunicorn"] if action == "start" else [])

    def start(self, workers: int | None = None) -> None:
        subprocess.run(self.serve_cmd("start"), env=self.env, check=True, stdout=subprocess.DEVNULL)
        self._read_pid()
        first_token(self.url)

    def _read_pid(self) -> None:
        self.pid = int((self.root / "ks" / "server.pid").read_text().strip())

    def stop(self) -> None:
        subprocess.run(self.serve_cmd("stop"), env=self.env, stdout=subprocess.DEVNULL)
        self.pid = None
        wait_port_free(self.port)

    def version(self) -> str:
        venv = self.root / "ks-venv"
        out = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('keystone'), m.version('gunicorn'))"],
                             capture_output=True, text=True)
        return out.stdout.strip() or "?"


class Memcached:
    def __init__(self, port: int):
        self.port, self.proc = port, None

    def start(self) -> None:
        exe = shutil.which("memcached")
        if not exe:
            raise SystemExit("memcached is not installed (apt-get install memcached); upstream's best "
                             "configuration needs it")
        self.proc = subprocess.Popen([exe, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64",
                                      "-u", os.environ.get("USER") or _user()],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            stop_pid(self.proc.pid)
            self.proc = None


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


# ---------------------------------------------------------------------------- measurements
class Bench:
    def __init__(self, args, anchors: Path):
        self.a, self.anchors = args, anchors
        self.results: list[dict] = []  # loadgen runs
        self.cold: list[dict] = []
        self.mem: list[dict] = []
        self.loads: list[float] = []
        self.mc: Memcached | None = None

    def loadgen(self, server, mode: str, conc: int, cost: int, rnd: int) -> dict:
        la = loadavg()
        self.loads.append(la)
        cpu0 = tree_cpu_s(server.pid)
        cmd = [sys.executable, str(self.anchors / "loadgen.py"), "--url", server.url, "--mode", mode,
               "-c", str(conc), "-d", str(self.a.duration), "--warmup", str(self.a.warmup),
               "--label", f"{server.name}/bcrypt{cost}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=self.a.duration + 600)
        cpu1 = tree_cpu_s(server.pid)
        if out.returncode:
            raise RuntimeError(f"loadgen failed: {out.stderr[-1500:]}")
        r = json.loads(out.stdout)
        ok = r.get("ok") or 0
        row = {"server": server.name, "mode": mode, "c": conc, "bcrypt": cost, "round": rnd,
               "req_per_s": r["req_per_s"], "p50_ms": r["lat_ms"]["p50"], "p99_ms": r["lat_ms"]["p99"],
               "ok": ok, "errors": r["errors"], "error_samples": r.get("error_samples"),
               "server_cpu_ms_per_req": round(1000 * (cpu1 - cpu0) / ok, 3) if ok else None,
               "loadgen_cpu_s": r.get("loadgen_cpu_s"), "load_before": la, "load_after": loadavg()}
        self.results.append(row)
        log(f"  {server.name:11s} {mode:14s} c={conc:<2d} bcrypt {cost:2d}: {r['req_per_s']:8.1f} req/s  "
            f"p50 {r['lat_ms']['p50']} ms  p99 {r['lat_ms']['p99']} ms  errors {r['errors']}  "
            f"(server CPU {row['server_cpu_ms_per_req']} ms/req, load {la:.2f})")
        return row

    def cold_starts(self, ps: Pocketstack, ks: Keystone) -> None:
        """Alternate the launches; each server is stopped before the other starts."""
        variants = [("pocketstack up (1 worker, default)", ps, 1)]
        if self.a.workers != 1:
            variants.append((f"pocketstack up --workers {self.a.workers}", ps, self.a.workers))
        variants.append(("upstream (gunicorn, 4 workers, memcached)", ks, None))
        for i in range(self.a.cold_runs):
            order = variants if i % 2 == 0 else list(reversed(variants))
            for label, srv, workers in order:
                time.sleep(1)
                la = loadavg()
                if srv is ps:
                    cmd, pidfile = ps.cold_cmd(workers)
                    pidfile.unlink(missing_ok=True)  # never signal a stale (maybe reused) PID
                else:
                    cmd, pidfile = ks.serve_cmd("start"), None
                out = subprocess.run([sys.executable, str(self.anchors / "coldstart.py"), "--url", srv.url,
                                      "--password", PASSWORD, "--", *cmd],
                                     env=ks.env if srv is ks else PS_ENV, capture_output=True, text=True)
                try:
                    secs = json.loads(out.stdout.strip().splitlines()[-1])["cold_start_s"]
                except (ValueError, IndexError, KeyError):
                    secs = None
                if srv is ps:
                    srv.pid = int(pidfile.read_text().strip()) if pidfile.exists() else None
                else:
                    srv._read_pid()
                if i == self.a.cold_runs - 1 and srv.pid:
                    time.sleep(1)
                    self.memory(srv, "idle after cold start", srv.cost, self.mc if srv is ks else None, label)
                srv.stop()
                self.cold.append({"variant": label, "server": srv.name, "bcrypt": srv.cost, "run": i,
                                  "seconds": secs, "load_before": la})
                log(f"  cold start {label}: {secs} s (load {la:.2f})")

    def memory(self, server, when: str, cost: int, mc: Memcached | None = None, variant: str = "") -> None:
        m = tree_mem_mib(server.pid)
        m.update(server=server.name, when=when, bcrypt=cost, variant=variant)
        if mc is not None and mc.proc is not None:
            m["memcached_rss_mib"] = tree_mem_mib(mc.proc.pid)["rss_mib"]
        self.mem.append(m)
        log(f"  RSS {variant or server.name} {when}: {m['rss_mib']} MiB (PSS {m['pss_mib']}, {m['processes']} processes)"
            + (f" + memcached {m['memcached_rss_mib']} MiB" if "memcached_rss_mib" in m else ""))

    def throughput(self, ps, ks, cost: int, cells: list[tuple[str, int]], mc: Memcached) -> None:
        for srv in (ps, ks):
            srv.start()
        time.sleep(1)
        for srv in (ps, ks):
            self.memory(srv, "idle", cost, mc if srv is ks else None)
        for rnd in range(self.a.rounds):
            for k, (mode, conc) in enumerate(cells):
                order = (ps, ks) if (rnd + k) % 2 == 0 else (ks, ps)
                for srv in order:
                    self.loadgen(srv, mode, conc, cost, rnd)
        for srv in (ps, ks):
            self.memory(srv, "after load", cost, mc if srv is ks else None)
        for srv in (ps, ks):
            srv.stop()


# ---------------------------------------------------------------------------- report
def summarise(b: Bench) -> dict:
    cells = {}
    for r in b.results:
        cells.setdefault((r["mode"], r["bcrypt"], r["c"], r["server"]), []).append(r)
    summary = {}
    for (mode, cost, conc, server), rows in cells.items():
        summary[(mode, cost, conc, server)] = {
            "req_per_s": median(r["req_per_s"] for r in rows),
            "p50_ms": median(r["p50_ms"] for r in rows), "p99_ms": median(r["p99_ms"] for r in rows),
            "cpu_ms": median(r["server_cpu_ms_per_req"] for r in rows),
            "errors": sum(r["errors"] for r in rows), "runs": [r["req_per_s"] for r in rows]}
    cold = {}
    for c in b.cold:
        cold.setdefault(c["variant"], []).append(c["seconds"])
    return {"cells": summary, "cold": {k: {"median": median(v), "runs": v} for k, v in cold.items()}}


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def build_tables(b: Bench, s: dict) -> tuple[str, list[tuple[str, bool]], str]:
    cells, checks = s["cells"], []
    lines = ["| metric | pocketstack | upstream Keystone | pocketstack / upstream | target |",
             "|---|---|---|---|---|"]
    cold = s["cold"]
    ks_cold = next((v["median"] for k, v in cold.items() if k.startswith("upstream")), None)
    for label, v in cold.items():
        if label.startswith("upstream"):
            continue
        default = "default" in label
        ok = v["median"] is not None and v["median"] < 1.5
        if default:
            checks.append(("cold start < 1.5 s", ok))
        lines.append(f"| a. cold start -> first 201 token, s (median of {len(v['runs'])}): {label.replace('pocketstack ', '')} "
                     f"| **{fmt(v['median'], 2)}** | {fmt(ks_cold, 2)} | {fmt(ratio(v['median'], ks_cold), 2)} "
                     f"| {'< 1.5 s ' + ('PASS' if ok else 'MISS') if default else ''} |")
    order = sorted({(m, cost, c) for (m, cost, c, _) in cells},
                   key=lambda t: (t[0] != "token-issue", t[1], t[2]))
    for mode, cost, conc in order:
        p, k = cells.get((mode, cost, conc, PS)), cells.get((mode, cost, conc, KS))
        if not p or not k:
            continue
        rr = ratio(p["req_per_s"], k["req_per_s"])
        if mode == "token-issue":
            need, name = 1.0, f"b. token issue, bcrypt {cost}, c={conc}"
        else:
            need, name = 10.0, f"c. token validate, c={conc} (bcrypt {cost} setup)"
        ok = rr is not None and rr >= need
        checks.append((f"{name}: >= {need:g}x", ok))
        lines.append(f"| {name}: req/s (p50 / p99 ms) | **{fmt(p['req_per_s'])}** ({fmt(p['p50_ms'])} / "
                     f"{fmt(p['p99_ms'])}) | {fmt(k['req_per_s'])} ({fmt(k['p50_ms'])} / {fmt(k['p99_ms'])}) "
                     f"| **{fmt(rr, 2)}x** | >= {need:g}x {'PASS' if ok else 'MISS'} |")
    for m in b.mem:
        if m["when"] == "idle after cold start" and m["server"] == PS and "default" in m["variant"]:
            k = next((x for x in b.mem if x["when"] == "idle after cold start" and x["server"] == KS), None)
            lines.append(f"| d. RSS idle, default `pocketstack up` (1 process), MiB (PSS) | {fmt(m['rss_mib'])} "
                         f"({fmt(m['pss_mib'])}), {m['processes']} process | "
                         + (f"{fmt(k['rss_mib'])} ({fmt(k['pss_mib'])}), {k['processes']} processes + memcached "
                            f"{fmt(k.get('memcached_rss_mib'))} | {fmt(ratio(m['rss_mib'], k['rss_mib']), 2)} | |"
                            if k else "n/a | | |"))
    for when in ("idle", "after load"):
        ms = [m for m in b.mem if m["when"] == when]
        costs = sorted({m["bcrypt"] for m in ms})
        if not costs:
            continue
        cost = 4 if 4 in costs else costs[0]
        p = next((m for m in ms if m["server"] == PS and m["bcrypt"] == cost), None)
        k = next((m for m in ms if m["server"] == KS and m["bcrypt"] == cost), None)
        if p and k:
            lines.append(f"| d. RSS {when}, MiB (PSS), whole process tree | {fmt(p['rss_mib'])} ({fmt(p['pss_mib'])}), "
                         f"{p['processes']} processes | {fmt(k['rss_mib'])} ({fmt(k['pss_mib'])}), {k['processes']} "
                         f"processes + memcached {fmt(k.get('memcached_rss_mib'))} | "
                         f"{fmt(ratio(p['rss_mib'], k['rss_mib']), 2)} | |")
    table = "\n".join(lines)

    det = ["| cell | server | req/s per round | median req/s | p50 ms | p99 ms | server CPU ms/req | errors |",
           "|---|---|---|---|---|---|---|---|"]
    for mode, cost, conc in order:
        for srv in (PS, KS):
            c = cells.get((mode, cost, conc, srv))
            if c:
                det.append(f"| {mode} bcrypt {cost} c={conc} | {srv} | {', '.join(fmt(x) for x in c['runs'])} | "
                           f"{fmt(c['req_per_s'])} | {fmt(c['p50_ms'])} | {fmt(c['p99_ms'])} | {fmt(c['cpu_ms'], 2)} "
                           f"| {c['errors']} |")
    det.append("")
    det.append("| cold start variant | runs (s) | median (s) |")
    det.append("|---|---|---|")
    for label, v in cold.items():
        det.append(f"| {label} | {', '.join(fmt(x, 2) for x in v['runs'])} | {fmt(v['median'], 2)} |")
    det.append("")
    det.append("| memory | server | bcrypt setup | RSS MiB | PSS MiB | processes | memcached RSS MiB |")
    det.append("|---|---|---|---|---|---|---|")
    for m in b.mem:
        det.append(f"| {m['when']} | {m.get('variant') or m['server']} | {m['bcrypt']} | {fmt(m['rss_mib'])} | {fmt(m['pss_mib'])} | "
                   f"{m['processes']} | {fmt(m.get('memcached_rss_mib'))} |")
    return table, checks, "\n".join(det)


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    osname = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": osname,
            "kernel": platform.release(), "python": platform.python_version()}


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except OSError:
        return "?"


def write_doc(path: Path, b: Bench, s: dict, meta: dict) -> None:
    table, checks, details = build_tables(b, s)
    loads = sorted(b.loads)
    la = (f"{loads[0]:.2f} / {statistics.median(loads):.2f} / {loads[-1]:.2f}" if loads else "n/a")
    m = meta["machine"]
    passed = sum(ok for _, ok in checks)
    text = f"""# Benchmarks: pocketstack vs upstream Keystone

Measured **{meta['date']}** on this project's machine: {m['cpu']}, {m['cores']} cores, {m['memory']},
{m['os']} (kernel {m['kernel']}), CPython {m['python']}. Both servers ran **in the same run, side by
side**, alternating, driven by the same client (the upstream anchors' `loadgen.py` and
`coldstart.py`). Run time {meta['runtime_min']:.1f} min, `bench/run.py {meta['argv']}`.

**Load average** (1 min) sampled before every load run: min / median / max = {la}
(start {meta['load_start']:.2f}, end {meta['load_end']:.2f}). This is a shared 2-core machine: other
work (test suites of other sessions) was running at times, so single numbers are noisy; every
throughput cell is the median of {meta['rounds']} rounds with the two servers alternating, so the
noise hits both. Treat differences under ~15 % as noise. Targets met: {passed} of {len(checks)}.

## Results

{table}

Ratios are pocketstack / upstream: higher is better for req/s, lower is better for
seconds and MiB. p50/p99 are per-run latency percentiles, medianed across rounds.

## Reading the numbers

- **Validation** in pocketstack is answered from a per-process cache after one indexed
  read (the identity generation counter, bumped by every identity write and revocation),
  on the event loop without a thread hop; revocations, role changes and disabled users
  or projects still take effect at once in every process. Upstream, with memcached, still
  spends several ms of CPU per request in Flask, oslo.policy and cache round trips, and
  opens a new TCP connection per request.
- pocketstack's workers share one listening socket and loadgen keeps its connections
  open, so whichever worker accepts first gets them: with 8 connections the split is
  sometimes 8:0 (one core serves everything), hence the spread between rounds at c=8.
  Upstream's clients reconnect for every request, which balances its workers.
- **Issue at bcrypt 12** is bound by bcrypt on both sides (~0.25 s of CPU per check on this
  CPU, so ~8/s on 2 cores at best): expect a ratio near 1. bcrypt 4 shows the rest of the
  issue path.
- **Cold start** includes the first token's bcrypt check at the setup's cost. pocketstack
  with `--workers N` spawns N fresh worker processes after the parent initialised (uvicorn's
  multiprocess mode), hence its longer start.
- **Memory**: pocketstack's tree with `--workers N` is the parent (initialisation, then
  supervision), multiprocessing's resource tracker and the N workers; the default
  `pocketstack up` is one process. Upstream's is the gunicorn master and its 4 workers,
  plus memcached.

## Configurations

- **pocketstack** {meta['ps_version']} (git {meta['git']}): `pocketstack up --workers {meta['workers']}`
  for the load tests (uvicorn + uvloop + httptools, {meta['workers']} processes, one per core),
  SQLite (WAL) in the state dir, Fernet tokens, per-process validation cache checked against
  the database's identity generation counter (no cache server). Cold start is measured for
  the default `pocketstack up` (1 process) and for `--workers {meta['workers']}`.
- **upstream**: Keystone {meta['ks_version'].split()[0]} under gunicorn {meta['ks_version'].split()[-1]} (4 sync workers,
  as the anchors), SQLite, fernet, `[cache] enabled = true` with memcached (oslo.cache,
  pymemcache): its best configuration. Set up by the anchors' `keystone_setup.sh`, served by
  `keystone_serve.sh`.
- **bcrypt cost** `[identity] password_hash_rounds` = {', '.join(str(c) for c in meta['costs'])} on both sides (12 is
  the default of both). Cold starts ran on the bcrypt {meta['cold_cost']} setups: the first token pays one bcrypt check
  (`up --admin-password` checks the password with bcrypt only when it has not verified that
  password against the stored hash before).
- pocketstack's processes run without this machine's `PYTHONDONTWRITEBYTECODE=1`, so its
  modules are byte-compiled once as on any normal install (upstream's were compiled by pip
  at install time); with it set, every start recompiles ~60 modules (+0.3-0.5 s).
- Load: `loadgen.py -d {meta['duration']} --warmup {meta['warmup']}` per cell, c=8 and c=32; token-validate sends
  one project-scoped admin token as both `X-Auth-Token` and `X-Subject-Token` and gets the
  catalog back. Upstream closes the connection after every response (gunicorn sync);
  pocketstack keeps connections alive.
- "server CPU ms/req" is user+system CPU of the server's whole process tree during the run
  (upstream: gunicorn master + workers, memcached not included) divided by the requests: it
  is less sensitive to machine noise than req/s.

## Details

{details}

## Rerun

```sh
make bench                  # default: bcrypt 4 and 12, {meta['rounds']} rounds x {meta['duration']} s per cell, ~10-12 min
make bench ARGS=--quick     # bcrypt 4 only, 1 round, 5 s cells (~3 min)
make bench ARGS="--rounds 5 --duration 20 --no-doc --json /tmp/bench.json"
```

Needs the anchors folder (`../shared/anchors` next to the repository, or `--anchors DIR`),
memcached installed, and upstream Keystone's venv (reused from `${{TMPDIR:-/tmp}}/anchors/ks-venv`,
else created once by `keystone_setup.sh` in the work dir, ~2 min). Everything else lives in
a temporary work dir that is removed afterwards (`--keep` keeps it). Ports are picked free
at start. Run it on an otherwise idle machine when you can; the load average is recorded
above either way.
"""
    # Keep the sections other benchmarks own (e.g. bench/image.py's "## Image service ...").
    old = path.read_text() if path.exists() else ""
    keep = old.find("\n## Image service")
    if keep >= 0:
        text = text.rstrip("\n") + "\n" + old[keep:]
    path.write_text(text)


# ---------------------------------------------------------------------------- main
def find_anchors(arg: str | None) -> Path:
    cands = [Path(arg)] if arg else []
    if os.environ.get("POCKETSTACK_ANCHORS"):
        cands.append(Path(os.environ["POCKETSTACK_ANCHORS"]))
    cands += [REPO.parent / "shared" / "anchors", REPO / ".." / "shared" / "anchors"]
    for c in cands:
        if (c / "loadgen.py").exists() and (c / "keystone_setup.sh").exists():
            return c.resolve()
    raise SystemExit("cannot find the anchors folder (loadgen.py, keystone_setup.sh); pass --anchors DIR")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="bcrypt 4 only, 1 round, 5 s runs, 3 cold starts")
    p.add_argument("--rounds", type=int, help="rounds per throughput cell (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per loadgen run (default 10, quick 5)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up per run (default 2)")
    p.add_argument("--cold-runs", type=int, help="cold start launches per server (default 5, quick 3)")
    p.add_argument("--costs", help="bcrypt costs, comma-separated (default 4,12; quick 4)")
    p.add_argument("--workers", type=int, default=2, help="pocketstack processes for the load tests (default 2)")
    p.add_argument("--ks-workers", type=int, default=4, help="upstream gunicorn workers (default 4, as the anchors)")
    p.add_argument("--anchors", help="the upstream anchors folder (default ../shared/anchors)")
    p.add_argument("--ks-venv", help="existing upstream Keystone venv (default ${TMPDIR:-/tmp}/anchors/ks-venv)")
    p.add_argument("--work-dir", help="work folder (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report to write")
    p.add_argument("--no-doc", action="store_true", help="do not write the markdown report")
    p.add_argument("--json", help="also write every raw number to this JSON file")
    p.add_argument("--skip-cold", action="store_true", help="skip the cold-start measurements")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (5.0 if a.quick else 10.0)
    a.cold_runs = a.cold_runs or (3 if a.quick else 5)
    costs = [int(x) for x in (a.costs or ("4" if a.quick else "4,12")).split(",") if x.strip()]

    anchors = find_anchors(a.anchors)
    exe = str(Path(sys.executable).parent / "pocketstack")
    if not os.path.exists(exe):
        exe = shutil.which("pocketstack") or sys.exit("cannot find the pocketstack command")
    ks_venv = Path(a.ks_venv) if a.ks_venv else Path(os.environ.get("TMPDIR", "/tmp")) / "anchors" / "ks-venv"
    if not (ks_venv / "bin" / "python").exists():
        log(f"no Keystone venv at {ks_venv}: keystone_setup.sh will install one in the work dir (slow)")
        ks_venv = None
    work = Path(a.work_dir) if a.work_dir else Path(tempfile.mkdtemp(prefix="pocketstack-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started, load_start = time.monotonic(), loadavg()
    log(f"anchors {anchors}; work dir {work}; costs {costs}; {a.rounds} rounds x {a.duration} s; "
        f"pocketstack --workers {a.workers}; load average {load_start:.2f}")

    b = Bench(a, anchors)
    mc = Memcached(free_port())
    b.mc = mc
    servers: list = []
    ks_version = "?"
    try:
        pairs = {}
        for cost in costs:
            ps = Pocketstack(work, cost, a.workers, exe)
            ks = Keystone(work, cost, anchors, ks_venv, mc.port, a.ks_workers)
            servers += [ps, ks]
            log(f"setting up bcrypt {cost}: pocketstack init + keystone_setup.sh")
            ps.setup()
            ks.setup()
            if ks_venv is None:  # installed by the first setup: reuse it for the others
                ks_venv = (ks.root / "ks-venv").resolve()
            pairs[cost] = (ps, ks)
        ks_version = pairs[costs[0]][1].version()
        mc.start()
        cold_cost = max(costs)
        if not a.skip_cold:
            log(f"a. cold starts (bcrypt {cold_cost} setups), {a.cold_runs} launches each, alternating")
            b.cold_starts(*pairs[cold_cost])
        # highest cost first: the cost-4 phase ends the run with validation
        for cost in sorted(costs, reverse=True):
            ps, ks = pairs[cost]
            cells = [("token-issue", 8), ("token-issue", 32)]
            if cost == min(costs):
                cells += [("token-validate", 8), ("token-validate", 32)]
            log(f"b/c. throughput, bcrypt {cost}: {', '.join(f'{m} c={c}' for m, c in cells)}")
            mc.stop()  # a fresh (empty) memcached per setup: the two keystone databases share it
            mc.start()
            b.throughput(ps, ks, cost, cells, mc)
    finally:
        for srv in servers:
            if srv.pid:
                try:
                    srv.stop()
                except Exception as exc:  # noqa: BLE001 - cleanup must go on
                    log(f"stopping {srv.name}: {exc}")
        mc.stop()
        if not a.keep and not a.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    s = summarise(b)
    table, checks, details = build_tables(b, s)
    print()
    print(table)
    print()
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    from importlib.metadata import version

    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
            "argv": " ".join(sys.argv[1:]) or "(defaults)", "runtime_min": (time.monotonic() - started) / 60,
            "load_start": load_start, "load_end": loadavg(), "rounds": a.rounds, "duration": a.duration,
            "warmup": a.warmup, "workers": a.workers, "costs": costs, "cold_cost": max(costs),
            "ps_version": version("pocketstack"), "git": git_rev(), "ks_version": ks_version}
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": meta, "loadgen": b.results, "cold": b.cold, "memory": b.mem},
                                           indent=1))
    if not a.no_doc:
        write_doc(Path(a.doc), b, s, meta)
        log(f"wrote {a.doc}")
    log(f"done in {meta['runtime_min']:.1f} min; load average now {meta['load_end']:.2f}")
    return 1 if a.strict and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
