#!/usr/bin/env python3
"""Run Tempest (the upstream OpenStack test suite) against pocketstack.

    tools/tempest.py LIST_FILE          # lines "tempest.api...test_x[id-...,smoke]"
    tools/tempest.py --regex '^tempest\\.api\\.identity'
    tools/tempest.py LIST --url http://host:5000 --admin-password PW   # a cloud that already runs

What it does:

1. Tempest lives in its own venv, `.tempest/venv` (tempest==47.0.0 from PyPI). When
   that venv is missing and a ready one exists at `$TEMPEST_SEED_VENV` (default
   /tmp/tempest/venv) with the same Python and Tempest version, it is copied instead
   of installed, which only saves time.
2. Unless `--url` is given, it starts pocketstack itself (`pocketstack up`) on a free
   port with a fresh state dir in a temp directory, cheap password hashing and
   security compliance switched on (lockout after 2 failures for 5 s, the last 2
   passwords unique), which is what Tempest's lockout/password-history tests expect.
3. It writes a Tempest workspace under `.tempest/` (default `.tempest/ws`) with a
   tempest.conf that uses dynamic credentials from the admin account and marks as
   available only the services the catalog actually has.
4. A list file becomes one anchored, escaped regex per line pinned on the
   idempotent id (`^name\\[id-...[],]`), so that inherited test classes sharing a
   name prefix are not picked up by accident.
5. It runs `tempest run --concurrency N`, then prints each failed test with the end
   of its traceback and a closing line `N passed, N failed, N skipped`.

Exit status: 0 when every selected test passed or was skipped (with a list file,
skips count as misses unless --allow-skips, as in RefStack), 1 when a test failed
or did not run, 2 for usage or setup errors. The full Tempest output is kept in
`<workspace>/run.log`, per-test results in `<workspace>/results.json`.
"""
from __future__ import annotations

import argparse
import configparser
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPEST_VERSION = "47.0.0"
DEFAULT_SEED = "/tmp/tempest/venv"

# Catalog service type -> Tempest's [service_available] flag.
SERVICE_FLAGS = {
    "compute": "nova",
    "image": "glance",
    "network": "neutron",
    "volumev3": "cinder",
    "block-storage": "cinder",
    "volume": "cinder",
    "object-store": "swift",
    "orchestration": "heat",
    "placement": "placement",
    "dns": "designate",
    "shared-file-system": "manila",
    "sharev2": "manila",
    "load-balancer": "octavia",
    "key-manager": "barbican",
    "metric": "gnocchi",
}
ALL_FLAGS = sorted(set(SERVICE_FLAGS.values()) | {"horizon", "ironic", "aodh", "panko", "sahara"})


class SetupError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[tempest] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- venv
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def venv_ok(venv: Path) -> bool:
    py = venv_python(venv)
    if not py.exists():
        return False
    try:
        out = subprocess.run([str(py), "-c", "import importlib.metadata as m, tempest, stestr, subunit;"
                                             "print(m.version('tempest'))"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == TEMPEST_VERSION


def _same_python(venv: Path) -> bool:
    try:
        out = subprocess.run([str(venv_python(venv)), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == str(tuple(sys.version_info[:2]))


def _copy_seed(seed: Path, venv: Path) -> None:
    """Copy a ready venv and repoint the paths that name its old location."""
    shutil.copytree(seed, venv, symlinks=True)
    old, new = str(seed).encode(), str(venv).encode()
    for path in list((venv / "bin").iterdir()) + [venv / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data[:4096]:
            path.write_bytes(data.replace(old, new))


def ensure_venv(venv: Path) -> None:
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ok(venv):
            return
        if venv.exists():
            shutil.rmtree(venv)
        seed = Path(os.environ.get("TEMPEST_SEED_VENV", DEFAULT_SEED))
        if seed.is_dir() and seed.resolve() != venv.resolve() and venv_ok(seed) and _same_python(seed):
            log(f"copying the ready Tempest {TEMPEST_VERSION} venv from {seed}")
            _copy_seed(seed, venv)
            if venv_ok(venv):
                return
            shutil.rmtree(venv)
        log(f"creating {venv} and installing tempest=={TEMPEST_VERSION} (takes a minute or two)")
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        pip = [str(venv_python(venv)), "-m", "pip", "--disable-pip-version-check", "-q"]
        for extra in (["--upgrade", "pip"], [f"tempest=={TEMPEST_VERSION}"]):
            out = subprocess.run(pip + ["install", *extra], capture_output=True, text=True)
            if out.returncode != 0:
                noise = "WARNING: Location"
                text = "\n".join(l for l in (out.stdout + out.stderr).splitlines() if not l.startswith(noise))
                raise SetupError(f"pip install {' '.join(extra)} failed in {venv}:\n{text[-3000:]}")
        if not venv_ok(venv):
            raise SetupError(f"tempest {TEMPEST_VERSION} did not install into {venv}")


# ---------------------------------------------------------------------------- the cloud
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: dict | None = None, headers: dict | None = None,
              timeout: float = 10) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else {}), dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        return err.code, parsed, dict(err.headers)


class Cloud:
    """pocketstack started as a child process in a throwaway state dir."""

    SETTINGS = [
        ("identity", "password_hash_rounds", "4"),
        ("security_compliance", "lockout_failure_attempts", "2"),
        ("security_compliance", "lockout_duration", "5"),
        ("security_compliance", "unique_last_password_count", "2"),
        ("security_compliance", "minimum_password_age", "0"),
        # Tempest's image list tests upload random bytes declared as qcow2/vhd/ami...; they only
        # run when the cloud tolerates such mismatches (unsafe images are still refused).
        ("image_format", "require_image_format_match", "false"),
    ]

    def __init__(self, keep: bool = False, extra_settings: list[tuple[str, str, str]] = ()):
        self.keep = keep
        self.extra = list(extra_settings)
        self.proc: subprocess.Popen | None = None
        self.state_dir = Path(tempfile.mkdtemp(prefix="pocketstack-tempest-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = "tempest-" + os.urandom(6).hex()
        self.log_path = self.state_dir / "up.log"

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pocketstack.cli", *args]

    def start(self, timeout: float = 90) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETSTACK_")}
        for section, key, value in self.SETTINGS + self.extra:
            subprocess.run(self._cli("config", "set", "--state-dir", str(self.state_dir), section, key, value),
                           check=True, stdout=subprocess.DEVNULL, env=env)
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self._cli("up", "--state-dir", str(self.state_dir), "--host", "127.0.0.1", "--port", str(self.port),
                      "--admin-password", self.password),
            stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"pocketstack exited with {self.proc.returncode}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            try:
                status, _, _ = http_json("GET", self.url + "/v3", timeout=2)
                if status == 200:
                    log(f"pocketstack is up at {self.url} (state dir {self.state_dir})")
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SetupError(f"pocketstack did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.keep:
            log(f"kept the state dir {self.state_dir}")
        else:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def catalog_types(auth_url: str, user: str, password: str, project: str, domain: str) -> set[str]:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    status, data, _ = http_json("POST", auth_url + "/auth/tokens", body)
    if status != 201:
        raise SetupError(f"cannot authenticate as {user} at {auth_url}: HTTP {status} {data}")
    return {svc.get("type") for svc in data["token"].get("catalog", [])}


def compute_settings(auth_url: str, user: str, password: str, project: str, domain: str) -> dict:
    """What Tempest's compute tests need from the cloud: two distinct bootable images
    (uploaded once, public) and two flavors (the guide's m1.tiny and m1.small), plus the
    compute features the fake driver really supports."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    req = urllib.request.Request(auth_url + "/auth/tokens", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        token = resp.headers["X-Subject-Token"]
        catalog = json.loads(resp.read())["token"]["catalog"]
    image_url = next(ep["url"] for svc in catalog if svc["type"] == "image"
                     for ep in svc["endpoints"] if ep["interface"] == "public").rstrip("/")
    auth = {"X-Auth-Token": token}
    ids = []
    for n in (1, 2):
        name = f"tempest-image-{n}"
        _, found, _ = http_json("GET", f"{image_url}/v2/images?name={name}", headers=auth)
        if found.get("images"):
            ids.append(found["images"][0]["id"])
            continue
        status, image, _ = http_json("POST", f"{image_url}/v2/images", {
            "name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public"}, auth)
        if status != 201:
            raise SetupError(f"cannot create {name}: HTTP {status} {image}")
        data = (b"pocketstack tempest image %d\n" % n).ljust(1 << 16, b"\0")
        upload = urllib.request.Request(f"{image_url}/v2/images/{image['id']}/file", data=data, method="PUT",
                                        headers={**auth, "Content-Type": "application/octet-stream"})
        urllib.request.urlopen(upload, timeout=30).close()
        ids.append(image["id"])
    return {
        "compute": {"image_ref": ids[0], "image_ref_alt": ids[1], "flavor_ref": "1", "flavor_ref_alt": "2",
                    "min_compute_nodes": "1", "build_timeout": "60"},
        "compute-feature-enabled": {"console_output": "true", "pause": "true", "suspend": "true",
                                    "rescue": "true", "resize": "true", "shelve": "true", "snapshot": "true",
                                    "interface_attach": "true", "change_password": "true",
                                    "enable_instance_password": "true", "config_drive": "true",
                                    "metadata_service": "true", "personality": "false",
                                    "live_migration": "false", "cold_migration": "false",
                                    "vnc_console": "false", "serial_console": "false",
                                    "spice_console": "false"},
    }


# Tests under these prefixes need only these services (the cloud started for them runs no more).
SERVICES_FOR_TESTS = {"tempest.api.object_storage": "identity,object"}


def services_for(wanted: list[str] | None, regex: str | None) -> str | None:
    names = wanted if wanted is not None else [(regex or "").lstrip("^").replace("\\.", ".")]
    for prefix, services in SERVICES_FOR_TESTS.items():
        if names and all(n.startswith(prefix) for n in names):
            return services
    return None


def object_settings(auth_url: str, user: str, password: str, project: str, domain: str) -> dict:
    """Tempest's object-storage options from the cloud's own `/info` (the optional middleware
    it announces become `discoverable_apis`, as an operator would write them)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    status, data, _ = http_json("POST", auth_url + "/auth/tokens", body)
    if status != 201:
        raise SetupError(f"cannot authenticate as {user}: HTTP {status}")
    url = next(ep["url"] for svc in data["token"]["catalog"] if svc["type"] == "object-store"
               for ep in svc["endpoints"] if ep["interface"] == "public")
    status, info, _ = http_json("GET", url.split("/v1/")[0] + "/info")
    if status != 200:
        raise SetupError(f"GET /info of the object store answered {status}")
    apis = sorted(k for k in info if k != "swift")
    return {"object-storage": {"operator_role": "member", "reseller_admin_role": "ResellerAdmin"},
            "object-storage-feature-enabled": {
                "discoverable_apis": ",".join(apis) or "none", "discoverability": "true",
                "container_sync": "false",  # (old-style) container sync is not implemented
                "object_versioning": str("versioned_writes" in info).lower(),
                "tempurl_digest_hashlib": "sha256"}}


def network_settings(auth_url: str, user: str, password: str, project: str, domain: str) -> dict:
    """Tempest's network options: devstack's `public` external network (172.24.4.0/24, the
    default for auto-allocation) created once and named as `public_network_id`, and the
    IPv6 subnet attributes the service implements."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    status, data, headers = http_json("POST", auth_url + "/auth/tokens", body)
    if status != 201:
        raise SetupError(f"cannot authenticate as {user}: HTTP {status}")
    token = {k.lower(): v for k, v in headers.items()}["x-subject-token"]
    url = next(ep["url"] for svc in data["token"]["catalog"] if svc["type"] == "network"
               for ep in svc["endpoints"] if ep["interface"] == "public").rstrip("/") + "/v2.0"
    auth = {"X-Auth-Token": token}
    _, found, _ = http_json("GET", f"{url}/networks?name=public&router:external=True", headers=auth)
    if found.get("networks"):
        net_id = found["networks"][0]["id"]
    else:
        status, net, _ = http_json("POST", f"{url}/networks", {"network": {
            "name": "public", "router:external": True, "is_default": True}}, auth)
        if status != 201:
            raise SetupError(f"cannot create the public network: HTTP {status} {net}")
        net_id = net["network"]["id"]
        http_json("POST", f"{url}/subnets", {"subnet": {"network_id": net_id, "ip_version": 4, "name": "public-subnet",
                                                        "cidr": "172.24.4.0/24", "enable_dhcp": False}}, auth)
    # devstack's shared default IPv4 subnet pool: what auto-allocated topologies carve from
    _, pools, _ = http_json("GET", f"{url}/subnetpools?name=shared-default-subnetpool-v4", headers=auth)
    if not pools.get("subnetpools"):
        http_json("POST", f"{url}/subnetpools", {"subnetpool": {
            "name": "shared-default-subnetpool-v4", "prefixes": ["10.0.0.0/22"], "default_prefixlen": 26,
            "shared": True, "is_default": True}}, auth)
    _, exts, _ = http_json("GET", f"{url}/extensions", headers=auth)
    aliases = ",".join(sorted(e["alias"] for e in exts.get("extensions", []))) or "all"
    return {"network": {"public_network_id": net_id, "floating_network_name": "public"},
            "network-feature-enabled": {"ipv6": "true", "ipv6_subnet_attributes": "true",
                                        "api_extensions": aliases}}


def volume_settings(auth_url: str, user: str, password: str, project: str, domain: str, types: set[str]) -> dict:
    """Tempest's volume options: the microversion range of the version document, the vendor
    and protocol the pool reports (Tempest compares them), and the features pocketstack has
    (manage / unmanage of volumes and snapshots, named `volume-<id>` / `snapshot-<id>`).
    Off: multi_backend (one backend per cloud), extend_attached_volume (compute does not
    yet get the `volume-extended` event), encrypted volumes (no key manager)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    status, data, headers = http_json("POST", auth_url + "/auth/tokens", body)
    if status != 201:
        raise SetupError(f"cannot authenticate as {user}: HTTP {status}")
    token = {k.lower(): v for k, v in headers.items()}["x-subject-token"]
    url = next(ep["url"] for svc in data["token"]["catalog"] if svc["type"] in ("block-storage", "volumev3")
               for ep in svc["endpoints"] if ep["interface"] == "public").rstrip("/")
    _, versions, _ = http_json("GET", url.split("/v3")[0] + "/")
    v3 = next(v for v in versions.get("versions", []) if v.get("id") == "v3.0")
    _, pools, _ = http_json("GET", url + "/scheduler-stats/get_pools?detail=True", headers={"X-Auth-Token": token})
    caps = (pools.get("pools") or [{}])[0].get("capabilities", {})
    return {"volume": {"min_microversion": v3["min_version"], "max_microversion": v3["version"],
                       "vendor_name": caps.get("vendor_name", "Open Source"),
                       "storage_protocol": caps.get("storage_protocol", "iSCSI"),
                       "backup_driver": "swift" if "object-store" in types else "posix",
                       "manage_volume_ref": "source-name,volume-%s",
                       "manage_snapshot_ref": "source-name,snapshot-%s"},
            "volume-feature-enabled": {"manage_volume": "true", "manage_snapshot": "true",
                                       "multi_backend": "false", "extend_attached_volume": "false",
                                       "extend_attached_encrypted_volume": "false"}}


# ---------------------------------------------------------------------------- workspace + conf
def ensure_workspace(venv: Path, ws: Path) -> None:
    if (ws / ".stestr.conf").exists() and (ws / "etc").is_dir():
        return
    if ws.exists():
        shutil.rmtree(ws)
    ws.parent.mkdir(parents=True, exist_ok=True)
    empty = ws.parent / ".empty-config-dir"
    empty.mkdir(exist_ok=True)
    out = subprocess.run([str(venv / "bin" / "tempest"), "init", "--name", f"pocketstack-{ws.name}-{os.getpid()}",
                          "--workspace-path", str(ws.parent / "workspace.yaml"), "--config-dir", str(empty),
                          str(ws)], capture_output=True, text=True)
    if out.returncode != 0 or not (ws / ".stestr.conf").exists():
        raise SetupError(f"tempest init failed for {ws}:\n{out.stdout}{out.stderr}")
    (ws / "etc").mkdir(exist_ok=True)


def write_conf(ws: Path, *, auth_url: str, admin_user: str, admin_password: str, admin_project: str,
               admin_domain: str, region: str, types: set[str], security_compliance: bool,
               image_format_enforcement: bool = False, extra_sections: dict | None = None) -> Path:
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str
    available = {SERVICE_FLAGS[t] for t in types if t in SERVICE_FLAGS}
    volume_type = next((t for t in ("block-storage", "volumev3", "volume") if t in types), "block-storage")
    sections = {
        "DEFAULT": {"log_dir": str(ws / "logs"), "log_file": "tempest.log"},
        "oslo_concurrency": {"lock_path": str(ws / "tempest_lock")},
        "auth": {"use_dynamic_credentials": "true", "admin_username": admin_user,
                 "admin_password": admin_password, "admin_project_name": admin_project,
                 "admin_domain_name": admin_domain, "create_isolated_networks": str("neutron" in available).lower()},
        "identity": {"uri_v3": auth_url, "auth_version": "v3", "region": region, "v3_endpoint_type": "public",
                     "user_lockout_failure_attempts": "2", "user_lockout_duration": "5",
                     "user_unique_last_password_count": "2", "user_minimum_password_age": "0"},
        "identity-feature-enabled": {"api_v2": "false", "api_v3": "true", "application_credentials": "true",
                                     "security_compliance": str(security_compliance).lower(),
                                     "trust": "true", "access_rules": "true", "project_tags": "true",
                                     "api_extensions": "all"},
        "validation": {"run_validation": "false"},
        "image-feature-enabled": {"image_format_enforcement": str(image_format_enforcement).lower()},
        "compute": {"min_microversion": "2.1", "max_microversion": "latest"},
        "volume": {"catalog_type": volume_type},
        "object-storage": {"operator_role": "member", "reseller_admin_role": "ResellerAdmin"},
        "service_available": {flag: str(flag in available).lower() for flag in ALL_FLAGS},
    }
    for name, values in (extra_sections or {}).items():
        sections.setdefault(name, {}).update(values)
    for name, values in sections.items():
        if name != "DEFAULT":
            conf.add_section(name)
        for key, value in values.items():
            conf.set(name, key, value)
    path = ws / "etc" / "tempest.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the admin password
    with os.fdopen(fd, "w") as fh:
        conf.write(fh)
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------------------- test selection
_LINE = re.compile(r"^([^\[\s]+)(?:\[([^\]]*)\])?$")


def read_list(path: Path) -> list[str]:
    tests = []
    for line in path.read_text().splitlines():
        line = line.split("\t")[0].split("#")[0].strip()
        if line:
            tests.append(line)
    return tests


def split_name(test: str) -> tuple[str, str | None]:
    """`pkg.Class.test_x[id-abc,smoke]` -> (`pkg.Class.test_x`, `id-abc`)."""
    m = _LINE.match(test)
    if not m:
        return test, None
    ids = [a for a in (m.group(2) or "").split(",") if a.startswith("id-")]
    return m.group(1), ids[0] if ids else None


def list_regex(test: str) -> str:
    name, test_id = split_name(test)
    if test_id:
        return "^%s\\[%s[],]" % (re.escape(name), re.escape(test_id))
    return "^%s(\\[|$)" % re.escape(name)


def list_tests(venv: Path, ws: Path, selector: list[str]) -> list[str]:
    out = subprocess.run([str(venv / "bin" / "tempest"), "run", "--list-tests", *selector],
                         cwd=ws, capture_output=True, text=True)
    if out.returncode != 0:
        raise SetupError(f"tempest run --list-tests failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return [l.strip() for l in out.stdout.splitlines() if re.match(r"^[a-z_]+\.[\w.]+", l.strip())]


# ---------------------------------------------------------------------------- results
# Runs inside Tempest's venv: subunit v2 stream on stdin -> one JSON object per test.
READ_SUBUNIT = r"""
import json, sys
import subunit, testtools
out = []
def on_test(t):
    details = {}
    for name, content in (t.get("details") or {}).items():
        try:
            details[name] = content.as_text()
        except Exception:
            pass
    out.append({"id": t["id"], "status": t["status"], "details": details})
stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
result = testtools.StreamToDict(on_test)
result.startTestRun()
try:
    stream.run(result)
finally:
    result.stopTestRun()
json.dump(out, sys.stdout)
"""

FAILED = {"fail", "uxsuccess"}


def read_results(venv: Path, ws: Path) -> list[dict]:
    sub = subprocess.run([str(venv / "bin" / "stestr"), "last", "--subunit"], cwd=ws, capture_output=True)
    if sub.returncode != 0 or not sub.stdout:
        return []
    (ws / "results.subunit").write_bytes(sub.stdout)
    parsed = subprocess.run([str(venv_python(venv)), "-c", READ_SUBUNIT], input=sub.stdout,
                            capture_output=True)
    if parsed.returncode != 0:
        raise SetupError("cannot read the subunit results:\n" + parsed.stderr.decode(errors="replace")[-2000:])
    return json.loads(parsed.stdout)


def test_key(test_id: str) -> tuple[str, str | None]:
    return split_name(test_id)


def classify(expected: list[str], results: list[dict]) -> dict[str, list[tuple[str, dict | None]]]:
    """Bucket every expected test: passed, failed, skipped or not_run."""
    by_key: dict[tuple, list[dict]] = {}
    class_level: dict[str, list[dict]] = {}   # "setUpClass (pkg.mod.Class)" fixtures
    for r in results:
        m = re.match(r"^(\w+) \(([\w.]+)\)$", r["id"])
        if m:
            class_level.setdefault(m.group(2), []).append(r)
        else:
            by_key.setdefault(test_key(r["id"]), []).append(r)
    buckets: dict[str, list] = {"passed": [], "failed": [], "skipped": [], "not_run": []}
    for test in expected:
        rs = by_key.get(test_key(test))
        if not rs:
            cls = split_name(test)[0].rsplit(".", 1)[0]
            fixtures = class_level.get(cls, [])
            if fixtures and all(f["status"] == "skip" for f in fixtures):
                buckets["skipped"].append((test, fixtures[0]))
            elif fixtures and any(f["status"] in FAILED for f in fixtures):
                buckets["failed"].append((test, next(f for f in fixtures if f["status"] in FAILED)))
            else:
                buckets["not_run"].append((test, None))
        elif any(r["status"] in FAILED for r in rs):
            buckets["failed"].append((test, next(r for r in rs if r["status"] in FAILED)))
        elif all(r["status"] in ("success", "xfail") for r in rs):
            buckets["passed"].append((test, rs[0]))
        elif any(r["status"] == "skip" for r in rs):
            buckets["skipped"].append((test, next(r for r in rs if r["status"] == "skip")))
        else:
            buckets["not_run"].append((test, rs[0]))
    return buckets


def short_reason(result: dict | None, lines: int = 12) -> str:
    if not result:
        return "    (no result recorded: the test did not run)"
    details = result.get("details") or {}
    text = details.get("traceback") or details.get("reason") or ""
    if not text:
        text = next((v for v in details.values() if v.strip()), "")
    tail = [l for l in text.rstrip().splitlines() if l.strip()][-lines:]
    return "\n".join("    " + l for l in tail) if tail else "    (no details)"


def report(buckets: dict, ws: Path, strict_skips: bool) -> None:
    for title, key in (("FAILED", "failed"), ("DID NOT RUN", "not_run")):
        for test, result in buckets[key]:
            print(f"{title}: {test}")
            print(short_reason(result))
    if strict_skips and buckets["skipped"]:
        for test, result in buckets["skipped"]:
            reason = ((result or {}).get("details") or {}).get("reason", "").strip()
            print(f"SKIPPED: {test}" + (f" ({reason})" if reason else ""))
    with open(ws / "results.json", "w") as fh:
        json.dump({k: [t for t, _ in v] for k, v in buckets.items()}, fh, indent=1)


# ---------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run Tempest against pocketstack.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("list", nargs="?", help="file of tests, one per line (name[id-...,tags])")
    p.add_argument("--regex", help="a stestr selection regex instead of a list file")
    p.add_argument("--exclude-regex", help="leave out tests that match this regex")
    p.add_argument("--concurrency", type=int, default=2, help="parallel Tempest workers (default 2)")
    p.add_argument("--url", help="a running cloud's base URL (http://host:port); default: start pocketstack")
    p.add_argument("--admin-password", help="admin password of the running cloud given with --url")
    p.add_argument("--admin-user", default="admin")
    p.add_argument("--admin-project", default="admin")
    p.add_argument("--admin-domain", default="Default")
    p.add_argument("--region", default="RegionOne")
    p.add_argument("--no-security-compliance", action="store_true",
                   help="with --url: the cloud does not lock users out / check password history")
    p.add_argument("--image-format-enforcement", action="store_true",
                   help="with --url: the cloud refuses image data that does not match its disk_format "
                        "(Tempest then skips the tests that upload random bytes)")
    p.add_argument("--allow-skips", action="store_true", help="with a list file, skips do not fail the run")
    p.add_argument("--workspace", default=str(REPO / ".tempest" / "ws"),
                   help="Tempest workspace directory (default .tempest/ws)")
    p.add_argument("--venv", default=str(REPO / ".tempest" / "venv"), help="Tempest's venv (default .tempest/venv)")
    p.add_argument("--keep-state", action="store_true", help="keep the started cloud's state dir")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="extra pocketstack.conf setting for the started cloud (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="stream Tempest's own output")
    p.add_argument("--validation", action="store_true",
                   help="real instances: start the cloud with the qemu driver and the linuxbridge backend "
                        "(root) and run Tempest's SSH validation on pocketstack-tiny (tools/tempest_validation.py)")
    args = p.parse_args(argv)
    if bool(args.list) == bool(args.regex):
        p.error("give either a list file or --regex")
    if args.url and not args.admin_password:
        p.error("--url needs --admin-password")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    venv, ws = Path(args.venv).resolve(), Path(args.workspace).resolve()
    wanted: list[str] | None = None
    if args.list:
        path = Path(args.list)
        if not path.is_file():
            print(f"tempest.py: list file not found: {path}", file=sys.stderr)
            return 2
        wanted = read_list(path)
        if not wanted:
            print(f"tempest.py: no tests in {path}", file=sys.stderr)
            return 2
    extra = []
    for item in args.set:
        m = re.match(r"^([^.=]+)\.([^=]+)=(.*)$", item)
        if not m:
            print(f"tempest.py: --set wants SECTION.KEY=VALUE, not {item!r}", file=sys.stderr)
            return 2
        extra.append(m.groups())
    validation = None
    if args.validation:
        from tempest_validation import ValidationCloud

        if args.url or ValidationCloud.check():
            print(f"tempest.py: {ValidationCloud.check() or '--validation starts its own cloud (no --url)'}",
                  file=sys.stderr)
            return 2
        validation = ValidationCloud()
        extra += validation.settings()

    cloud = None
    try:
        ensure_venv(venv)
        ensure_workspace(venv, ws)
        if args.url:
            base, password = args.url.rstrip("/"), args.admin_password
            if base.endswith("/v3"):
                base = base[:-3]
        else:
            services = services_for(wanted, args.regex)
            if services and not any(k[:2] == ("pocketstack", "enabled_services") for k in extra):
                # Only what the selected tests need (e.g. no network service creating isolated
                # networks for the object tests' dynamic credentials).
                extra.append(("pocketstack", "enabled_services", services))
            cloud = Cloud(keep=args.keep_state, extra_settings=extra)
            cloud.start()
            base, password = cloud.url, cloud.password
            if validation is not None:
                validation.route_host()
        auth_url = base + "/v3"
        types = catalog_types(auth_url, args.admin_user, password, args.admin_project, args.admin_domain)
        extra_sections = {}
        if "image" in types:  # compute and volume tests boot from / copy these images
            extra_sections = compute_settings(auth_url, args.admin_user, password, args.admin_project,
                                              args.admin_domain)
        if "network" in types:
            extra_sections.update(network_settings(auth_url, args.admin_user, password, args.admin_project,
                                                   args.admin_domain))
        if types & {"block-storage", "volumev3"}:
            extra_sections.update(volume_settings(auth_url, args.admin_user, password, args.admin_project,
                                                  args.admin_domain, types))
        if "object-store" in types:
            extra_sections.update(object_settings(auth_url, args.admin_user, password, args.admin_project,
                                                  args.admin_domain))
        if validation is not None:  # after network_settings: its sections win
            for name, values in validation.tempest_sections(auth_url, args.admin_user, password,
                                                            args.admin_project, args.admin_domain).items():
                extra_sections.setdefault(name, {}).update(values)
        write_conf(ws, auth_url=auth_url, admin_user=args.admin_user, admin_password=password,
                   admin_project=args.admin_project, admin_domain=args.admin_domain, region=args.region,
                   types=types, security_compliance=not (args.url and args.no_security_compliance),
                   image_format_enforcement=bool(args.url and args.image_format_enforcement),
                   extra_sections=extra_sections)

        selector: list[str]
        if wanted is not None:
            regex_file = ws / "include.regex"
            regex_file.write_text("".join(list_regex(t) + "\n" for t in wanted))
            selector = ["--include-list", str(regex_file)]
        else:
            selector = ["--regex", args.regex]
        if args.exclude_regex:
            selector += ["--exclude-regex", args.exclude_regex]
        selected = list_tests(venv, ws, selector)
        expected = wanted if wanted is not None else selected
        if not selected:
            print("tempest.py: the selection matches no Tempest test", file=sys.stderr)
            return 2
        if wanted is not None:
            found = {test_key(t) for t in selected}
            missing = [t for t in wanted if test_key(t) not in found]
            if missing:
                log(f"{len(missing)} listed tests do not exist in tempest {TEMPEST_VERSION}")
        log(f"running {len(selected)} tests with concurrency {args.concurrency} (log: {ws / 'run.log'})")

        started = time.monotonic()
        with open(ws / "run.log", "wb") as logf:
            cmd = [str(venv / "bin" / "tempest"), "run", *selector, "--concurrency", str(args.concurrency)]
            proc = subprocess.Popen(cmd, cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for chunk in iter(lambda: proc.stdout.readline(), b""):
                logf.write(chunk)
                if args.verbose:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            proc.wait()
        log(f"tempest finished in {time.monotonic() - started:.0f}s (exit {proc.returncode})")
        results = read_results(venv, ws)
        if not results:
            tail = (ws / "run.log").read_text(errors="replace").splitlines()[-40:]
            print("tempest.py: Tempest recorded no results; the end of its output:\n  "
                  + "\n  ".join(tail), file=sys.stderr)
    except SetupError as exc:
        print(f"tempest.py: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"tempest.py: command failed: {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        return 2
    finally:
        if cloud is not None:
            cloud.stop()
        if validation is not None:
            validation.cleanup(cloud.state_dir if cloud is not None else None)

    buckets = classify(expected, results)
    strict = wanted is not None and not args.allow_skips
    report(buckets, ws, strict)
    passed, skipped = len(buckets["passed"]), len(buckets["skipped"])
    failed = len(buckets["failed"]) + len(buckets["not_run"])
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    if failed or (strict and skipped):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
