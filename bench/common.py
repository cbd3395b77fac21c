"""What the side-by-side benchmarks share: a pocketstack started in a temp state dir and
driven over HTTP (one httpx connection per client thread), percentiles, the load average,
and rewriting one section of docs/benchmarks.md."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "secret"
_local = threading.local()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Cloud:
    """One `pocketstack up` in `work/state` with extra `settings` [(section, key, value)]."""

    def __init__(self, work: Path, exe: str, settings: list[tuple[str, str, str]] = (), headers: dict | None = None):
        self.dir = work / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "pocketstack.log"
        self.headers = headers or {}
        settings = [("identity", "password_hash_rounds", "4"), *settings]
        for section, key, value in settings:
            subprocess.run([exe, "config", "set", "--state-dir", str(self.dir), section, key, value],
                           check=True, stdout=subprocess.DEVNULL)
        with open(self.log, "ab") as out:
            p = subprocess.Popen([exe, "up", "--state-dir", str(self.dir), "--port", str(self.port),
                                  "--admin-password", PASSWORD], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = p.pid
        self.proc = p
        self.token, self.project_id = self._token()
        self.compute = f"{self.url}/compute/v2.1"

    def _token(self, timeout: float = 120) -> tuple[str, str]:
        body = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": "admin", "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                r = httpx.post(self.url + "/v3/auth/tokens", json=body, timeout=10)
                if r.status_code == 201:
                    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"pocketstack up exited; see {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"no token from {self.url} within {timeout}s")

    def client(self) -> httpx.Client:
        c = getattr(_local, "client", None)
        if c is None or getattr(_local, "owner", None) is not self:
            c = httpx.Client(headers={"X-Auth-Token": self.token, **self.headers}, timeout=120)
            _local.client, _local.owner = c, self
        return c

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)


def write_section(doc: Path, section: str, text: str) -> None:
    """Replace our own section of the benchmarks doc (or append it)."""
    body = doc.read_text() if doc.exists() else ""
    start = body.find(section)
    if start >= 0:
        nxt = body.find("\n## ", start + len(section))
        body = body[:start] + text + ("\n" + body[nxt + 1:] if nxt >= 0 else "")
    else:
        body = body.rstrip("\n") + "\n\n" + text
    doc.write_text(body)
