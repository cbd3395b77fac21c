"""Shared fixtures: a real pocketstack cloud per test module, driven by real clients.

`cloud` starts `pocketstack up` as a subprocess on a free port in a temporary state
dir (SQLite by default; PostgreSQL with the `pg_cloud` fixture) and offers helpers to
run the real `openstack` CLI and openstacksdk against it.
"""
from __future__ import annotations

import json
import re
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POCKETSTACK = str(BIN / "pocketstack")
OPENSTACK = str(BIN / "openstack")
PG_URL = os.environ.get("POCKETSTACK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CommandFailed(AssertionError):
    pass


class Cloud:
    """One running pocketstack and the credentials to drive it."""

    def __init__(self, state_dir: Path, db_url: str | None = None, config: dict | None = None):
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_url = self.url + "/v3"
        self.admin_password = "adm-" + secrets.token_hex(8)
        self.db_url = db_url
        self.proc: subprocess.Popen | None = None
        self.config = {("identity", "password_hash_rounds"): "4", **(config or {})}

    # -- lifecycle ------------------------------------------------------------
    def pocketstack(self, *args, check=True, env=None) -> subprocess.CompletedProcess:
        res = subprocess.run([POCKETSTACK, *args], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **(env or {})})
        if check and res.returncode != 0:
            raise CommandFailed(f"pocketstack {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def start(self, timeout: float = 60) -> "Cloud":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for (section, key), value in self.config.items():
            self.pocketstack("config", "set", "--state-dir", str(self.state_dir), section, key, value)
        args = [POCKETSTACK, "up", "--state-dir", str(self.state_dir), "--port", str(self.port),
                "--admin-password", self.admin_password]
        if self.db_url:
            args += ["--db-url", self.db_url]
        self.log = open(self.state_dir / "up.out", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pocketstack up exited: {(self.state_dir / 'up.out').read_text()}")
            try:
                if httpx.get(self.url + "/v3", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("pocketstack did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    # -- credentials ----------------------------------------------------------
    def admin_env(self) -> dict:
        return self.env_for("admin", self.admin_password, "admin")

    def env_for(self, user: str, password: str, project: str | None = None, domain: str | None = None,
                system: bool = False) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_AUTH_URL=self.auth_url, OS_USERNAME=user, OS_PASSWORD=password,
                   OS_USER_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3", OS_REGION_NAME="RegionOne",
                   OS_INTERFACE="public")
        if project:
            env.update(OS_PROJECT_NAME=project, OS_PROJECT_DOMAIN_NAME="Default")
        if domain:
            env.update(OS_DOMAIN_NAME=domain)
        if system:
            env.update(OS_SYSTEM_SCOPE="all")
        return env

    def openstack(self, *args, env: dict | None = None, check: bool = True) -> str:
        """Run the real `openstack` CLI; returns stdout (raises on failure when `check`)."""
        res = subprocess.run([OPENSTACK, *args], capture_output=True, text=True, timeout=120,
                             env=env or self.admin_env())
        if check and res.returncode != 0:
            raise CommandFailed(f"openstack {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
        self.last = res
        return res.stdout

    def openstack_fails(self, *args, env: dict | None = None) -> str:
        """Run a command that must fail; returns its stderr."""
        res = subprocess.run([OPENSTACK, *args], capture_output=True, text=True, timeout=120,
                             env=env or self.admin_env())
        if res.returncode == 0:
            raise CommandFailed(f"openstack {' '.join(args)} unexpectedly succeeded:\n{res.stdout}")
        return res.stderr

    def os_json(self, *args, env: dict | None = None):
        """Run the real `openstack` CLI with `-f json` and parse its output."""
        return json.loads(self.openstack(*args, "-f", "json", env=env))

    def sdk(self, username="admin", password=None, project_name="admin", **kwargs):
        import openstack

        return openstack.connect(auth_url=self.auth_url, username=username,
                                 password=password or self.admin_password, project_name=project_name,
                                 user_domain_name="Default", project_domain_name="Default",
                                 region_name="RegionOne", identity_api_version="3", **kwargs)

    def token(self, user="admin", password=None, project="admin") -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password or self.admin_password}}}}}
        if project:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        r = httpx.post(self.auth_url + "/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]

    def make_user(self, project: str, role: str = "member", password: str | None = None) -> tuple[str, str]:
        """A fresh user with `role` on `project` (created if needed); returns (name, password)."""
        name = "u-" + uuid.uuid4().hex[:10]
        password = password or "pw-" + secrets.token_hex(6)
        self.openstack("user", "create", "--domain", "default", "--password", password, name)
        self.openstack("role", "add", "--user", name, "--project", project, role)
        return name, password


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("cloud"))
    c.start()
    yield c
    c.stop()


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def pg_cloud(tmp_path_factory):
    """The same cloud on a fresh PostgreSQL database (dropped afterwards)."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required in CI")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import psycopg

    name = "pocketstack_test_" + uuid.uuid4().hex[:8]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    c = Cloud(tmp_path_factory.mktemp("pgcloud"), db_url=f"{base}/{name}")
    try:
        c.start()
        yield c
    finally:
        c.stop()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def unique():
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------- interop (tests/interop)
# Tempest's interop (RefStack) lists of guideline 2022.11, one test module per service:
# `tools/tempest.py` installs Tempest 47.0.0 in `.tempest/venv` once, starts its own cloud
# (security compliance on; the object run's cloud has only identity and object) and runs
# `../shared/interop/platform-required-<service>.txt`; every listed test must pass.
INTEROP = Path(__file__).resolve().parent.parent.parent / "shared" / "interop"


@pytest.fixture
def interop(tmp_path):
    """`interop("compute")` runs that service's list and asserts every test passed."""

    def run(service: str, timeout: float = 1800, allowed_skips: int = 0, skip_reason: str = "") -> None:
        """`allowed_skips` tests may skip, each with `skip_reason` in Tempest's reason (compute's
        two SSH validation tests while instances are simulated); every other one must pass."""
        interop_list = INTEROP / f"platform-required-{service}.txt"
        if not interop_list.is_file():
            if os.environ.get("CI"):
                pytest.fail(f"interop list missing: {interop_list}")
            pytest.skip(f"no interop list at {interop_list}")
        want = sum(1 for line in interop_list.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
        res = subprocess.run(
            [sys.executable, str(Path(__file__).resolve().parent.parent / "tools" / "tempest.py"), str(interop_list),
             "--workspace", str(tmp_path / "ws"), "--concurrency", "2"],
            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=timeout)
        output = res.stdout + res.stderr
        summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", res.stdout, re.M)
        assert summary, f"no summary line from tools/tempest.py (exit {res.returncode}):\n{output[-6000:]}"
        passed, failed, skipped = map(int, summary.groups())
        assert failed == 0 and skipped <= allowed_skips and passed + skipped == want, output[-8000:]
        skips = [line for line in output.splitlines() if line.startswith("SKIPPED: ")]
        assert all(skip_reason and skip_reason in line for line in skips), output[-8000:]
        assert res.returncode == 0 or (skipped and not failed), output[-8000:]

    return run
