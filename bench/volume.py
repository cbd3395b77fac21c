#!/usr/bin/env python3
"""Block Storage: create-to-available latency and create-from-image throughput.

    make bench-volume                   # 50 volumes, 1 GiB image, 3 rounds; updates docs/benchmarks.md
    make bench-volume ARGS=--quick      # 20 volumes, 256 MiB image, 2 rounds
    .venv/bin/python bench/volume.py --help

One run, one disk (the work dir holds the test image, its copies and the cloud's state dir,
so the image store and the volume files share the filesystem):

  a. latency: --volumes blank 1 GiB volumes created one after the other through
     `POST /volume/v3/{project}/volumes`, each timed from the request until a
     `GET` shows `available` (polled every 5 ms) -> p50 / p99 / max;
  b. baseline: `cp` of the raw test image + fsync of the copy (the same bytes, same disk);
  c. create-from-image: `POST /volumes {"imageRef": ...}` timed until `available` (the
     server reads the image from the image store and writes the volume file, fsynced and
     renamed) -> MB/s and the ratio to (b).

(b) and (c) alternate for --rounds rounds, medians reported. The image is random data,
uploaded once. Only processes this script started are stopped (by PID).
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
SECTION = "## Block Storage: volume create latency and create-from-image throughput"
PS_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
MB = 1e6
GiB = 1 << 30


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Cloud:
    def __init__(self, work: Path, exe: str):
        self.dir = work / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "pocketstack.log"
        subprocess.run([exe, "config", "set", "--state-dir", str(self.dir), "pocketstack", "enabled_services",
                        "identity,image,volume"], check=True, capture_output=True, env=PS_ENV)
        with open(self.log, "ab") as out:
            p = subprocess.Popen([exe, "up", "--state-dir", str(self.dir), "--port", str(self.port),
                                  "--admin-password", PASSWORD], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, env=PS_ENV)
        self.pid = p.pid
        self.token, self.project = self._token()

    def _token(self, timeout: float = 180) -> tuple[str, str]:
        body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}).encode()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                req = urllib.request.Request(self.url + "/v3/auth/tokens", data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    if r.status == 201:
                        return r.headers["X-Subject-Token"], json.loads(r.read())["token"]["project"]["id"]
            except OSError:
                pass
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                raise RuntimeError(f"pocketstack up exited; see {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"no token from {self.url} within {timeout}s")

    def call(self, method: str, path: str, body=None, data=None, headers=None):
        hdrs = {"X-Auth-Token": self.token, "Content-Type": "application/json", **(headers or {})}
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, method=method, data=payload, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None
        return json.loads(raw) if raw else None

    def volume(self, path: str = "", **kw):
        return self.call(kw.pop("method", "GET"), f"/volume/v3/{self.project}/volumes{path}", **kw)

    def wait_available(self, volume_id: str, every: float = 0.005, timeout: float = 600) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status = self.volume(f"/{volume_id}")["volume"]["status"]
            if status == "available":
                return
            if status.startswith("error"):
                raise RuntimeError(f"volume {volume_id} went to {status}")
            time.sleep(every)
        raise RuntimeError(f"volume {volume_id} not available in {timeout}s")

    def stop(self) -> None:
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                self.pid = None
                return
            time.sleep(0.05)
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.pid = None


def make_image_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 << 20)
            fh.write(os.urandom(n))
            left -= n
        fh.flush()
        os.fsync(fh.fileno())


def run_cp(src: Path, dst: Path) -> float:
    dst.unlink(missing_ok=True)
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    took = time.perf_counter() - t0
    dst.unlink()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--volumes", type=int, default=50, help="volumes for the latency run (default 50)")
    ap.add_argument("--image-mib", type=int, default=1024, help="image size in MiB (default 1024)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20 volumes, 256 MiB, 2 rounds")
    ap.add_argument("--workdir", type=Path, default=None, help="where to put the image and the cloud (one disk)")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-doc", action="store_true", help="print only, do not touch docs/benchmarks.md")
    a = ap.parse_args()
    if a.quick:
        a.volumes, a.image_mib, a.rounds = 20, 256, 2
    exe = shutil.which("pocketstack", path=str(Path(sys.executable).parent)) or "pocketstack"
    work = Path(tempfile.mkdtemp(prefix="bench-volume-", dir=a.workdir))
    started = time.time()
    load = [loadavg()]
    log(f"work dir {work}; load {load[0]}")
    cloud = Cloud(work, exe)
    try:
        cloud.call("PUT", f"/volume/v3/{cloud.project}/os-quota-sets/{cloud.project}",
                   {"quota_set": {"volumes": -1, "gigabytes": -1}})
        # a. latency
        latencies = []
        created = []
        for i in range(a.volumes):
            t0 = time.perf_counter()
            vol = cloud.volume(method="POST", body={"volume": {"size": 1, "name": f"lat-{i}"}})["volume"]
            cloud.wait_available(vol["id"])
            latencies.append(time.perf_counter() - t0)
            created.append(vol["id"])
        for vid in created:
            cloud.volume(f"/{vid}", method="DELETE")
        log(f"latency p50 {percentile(latencies, .5) * 1000:.1f} ms, p99 {percentile(latencies, .99) * 1000:.1f} ms")
        load.append(loadavg())

        # b/c. throughput
        size = a.image_mib << 20
        src = work / "image.raw"
        make_image_file(src, size)
        image = cloud.call("POST", "/image/v2/images", {"name": "bench", "disk_format": "raw",
                                                         "container_format": "bare"})
        with open(src, "rb") as fh:
            req = urllib.request.Request(f"{cloud.url}/image/v2/images/{image['id']}/file", method="PUT", data=fh,
                                         headers={"X-Auth-Token": cloud.token, "Content-Length": str(size),
                                                  "Content-Type": "application/octet-stream"})
            urllib.request.urlopen(req, timeout=600).read()
        size_gb = max(1, -(-size // GiB))
        cp_times, vol_times = [], []
        for r in range(a.rounds):
            order = ["cp", "volume"] if r % 2 == 0 else ["volume", "cp"]
            for kind in order:
                if kind == "cp":
                    cp_times.append(run_cp(src, work / "copy.raw"))
                else:
                    os.sync()
                    t0 = time.perf_counter()
                    vol = cloud.volume(method="POST", body={"volume": {"size": size_gb, "imageRef": image["id"]}})
                    cloud.wait_available(vol["volume"]["id"], every=0.02)
                    vol_times.append(time.perf_counter() - t0)
                    cloud.volume(f"/{vol['volume']['id']}", method="DELETE")
            load.append(loadavg())
            log(f"round {r + 1}: cp {size / MB / cp_times[-1]:.0f} MB/s, "
                f"from-image {size / MB / vol_times[-1]:.0f} MB/s; load {load[-1]}")
    finally:
        cloud.stop()
        if sys.exc_info()[0] is not None:
            shutil.rmtree(work, ignore_errors=True)
    cp_mb = size / MB / statistics.median(cp_times)
    vol_mb = size / MB / statistics.median(vol_times)
    summary = {"latency_ms": {"p50": percentile(latencies, .5) * 1000, "p99": percentile(latencies, .99) * 1000,
                              "max": max(latencies) * 1000, "n": len(latencies)},
               "mb_s": {"cp": cp_mb, "from_image": vol_mb}, "ratio": vol_mb / cp_mb, "load": load}
    print(json.dumps(summary, indent=2))
    if not a.no_doc:
        write_doc(a, summary, started)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def write_doc(a, s, started) -> None:
    when = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lat, mbs = s["latency_ms"], s["mb_s"]
    args = " ".join(sys.argv[1:])
    text = f"""{SECTION}

Measured **{when}** by `bench/volume.py{(' ' + args) if args else ''}` ({os.cpu_count()} cores,
{platform.platform(terse=True)}, CPython {platform.python_version()}; the `file` backend, SQLite,
one `pocketstack up` process; the image, its copies and the state dir on one disk).

| measurement | result |
|---|---|
| create-to-available, blank 1 GiB volume ({lat['n']} in a row, polled every 5 ms) | p50 **{lat['p50']:.1f} ms**, p99 **{lat['p99']:.1f} ms**, max {lat['max']:.1f} ms |
| `cp` of the {a.image_mib} MiB raw image + fsync (median of {a.rounds}) | {mbs['cp']:.0f} MB/s |
| volume from that image, POST to `available` (median of {a.rounds}) | **{mbs['from_image']:.0f} MB/s** ({s['ratio']:.0%} of `cp`) |

A blank volume is a sparse file created, fsynced and renamed by a task; the latency is
dominated by the API round trips (create, then polls) and the task hand-off. A volume from an
image streams the image file through the image service's Python interface into the volume
file (zero runs kept sparse), then fsyncs and renames it, so it does the same work as `cp`
plus the API and the state changes. MB = 10^6 bytes.

**Load average** (1/5/15 min) at start, after the latency run and after each round:
{' -> '.join(s['load'])}. This is a shared 2-core machine: treat differences under ~15 % as
noise. Rerun: `make bench-volume` (`ARGS=--quick` for 20 volumes and a 256 MiB image).
"""
    doc = a.doc.read_text() if a.doc.exists() else ""
    start = doc.find(SECTION)
    if start >= 0:  # replace our own section only
        nxt = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + ("\n" + doc[nxt + 1:] if nxt >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    a.doc.write_text(doc)


if __name__ == "__main__":
    sys.exit(main())
