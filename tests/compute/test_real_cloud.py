"""A real cloud end to end: `pocketstack up --virt-driver qemu --network-backend linuxbridge`.

Every step goes through the real `openstack` CLI, as a user of the install guide would
(waits poll the API directly):
a key pair, a tenant network behind a router whose gateway is on the external network
`public`, security group rules, two `pocketstack-tiny` guests (real QEMU processes) that
get their DHCP addresses (the image prints them on its serial console), a floating IP
reached over SSH from the `outside` namespace (the external network's 172.24.4.1 side),
pings between guests and to the outside, a removed ICMP rule that stops the ping, a
guest of another project on another network that cannot reach A, reboot, stop/start,
a snapshot that boots, a volume the guest kernel sees, `hypervisor show` with the real
accelerator, and a restart that finds a killed QEMU as SHUTOFF.

Needs root, qemu-system-x86_64, dnsmasq, iptables, ssh and the tiny image's build tools
(tools/install-system-deps.sh); skipped with the reason otherwise. Under TCG a guest
boots in ~20-25 s; the module boots four guests (plus reboots and a resize): ~3 minutes on
an idle 2-core machine.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import POCKETSTACK, Cloud, free_port

PREFIX = "psr" + uuid.uuid4().hex[:5]  # namespaces/devices the test itself makes
BOOT_TIMEOUT = 150.0
BANNER = re.compile(r"=== pocketstack-tiny ready hostname=(\S*) ip=(\S*) keys=(\d+) metadata=(\S+) ===")
OUTSIDE_IP = "172.24.4.1"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (taps, bridges, namespaces, dnsmasq)"
    for tool in ("qemu-system-x86_64", "qemu-img", "ip", "dnsmasq", "iptables-restore", "ssh",
                 "syslinux", "mcopy", "mkfs.vfat", "busybox", "dropbear"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin") is None:
            return f"needs {tool} (tools/install-system-deps.sh)"
    probe = PREFIX + "probe"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


REASON = _why_not()


def sh(*args, check=True, timeout=60) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: exit {res.returncode}: {res.stderr}{res.stdout}")
    return res


def wait_for(fn, timeout=60.0, what="condition", interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class RealCloud:
    """The module's cloud plus what the test built in it (names -> ids, addresses)."""

    def __init__(self, cloud: Cloud, work: Path):
        self.c = cloud
        self.work = work
        self.key = work / "key.pem"
        self.outside_ns: str | None = None
        self.made_ns: list[str] = []
        self.ids: dict[str, str] = {}
        self._tokens: dict[tuple, str] = {}
        self.ips: dict[str, str] = {}

    # -- CLI helpers --------------------------------------------------------------
    def os(self, *args, env=None) -> str:
        return self.c.openstack(*args, env=env)

    def osj(self, *args, env=None):
        return self.c.os_json(*args, env=env)

    # -- polling goes to the API directly (a CLI run costs seconds on a busy 2-core machine) --
    def _api(self, method: str, path: str, env=None, body=None) -> dict:
        env = env or self.c.admin_env()
        key = (env["OS_USERNAME"], env.get("OS_PROJECT_NAME"))
        if key not in self._tokens:
            self._tokens[key] = self.c.token(env["OS_USERNAME"], env["OS_PASSWORD"], env.get("OS_PROJECT_NAME"))
        r = httpx.request(method, f"{self.c.url}/compute/v2.1{path}", json=body, timeout=30, headers={
            "X-Auth-Token": self._tokens[key], "OpenStack-API-Version": "compute 2.79"})
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def server(self, name: str, env=None) -> dict:
        found = self._api("GET", f"/servers/detail?name=^{name}$", env)["servers"]
        assert len(found) == 1, f"{len(found)} servers named {name}"
        return found[0]

    def wait_status(self, name: str, status: str, env=None, timeout=BOOT_TIMEOUT) -> dict:
        def check():
            s = self.server(name, env)
            assert s["status"] != "ERROR", f"{name} went to ERROR: {s.get('fault')}"
            return s if s["status"] == status and not s.get("OS-EXT-STS:task_state") else None
        return wait_for(check, timeout, f"{name} {status}", interval=1.0)

    def console(self, name: str, env=None) -> str:
        sid = self.server(name, env)["id"]
        return self._api("POST", f"/servers/{sid}/action", env, {"os-getConsoleOutput": {}})["output"]

    def banners(self, name: str, env=None) -> list[tuple]:
        return BANNER.findall(self.console(name, env))

    def wait_banner(self, name: str, count: int = 1, env=None, timeout=BOOT_TIMEOUT) -> tuple:
        """The `count`-th ready banner on the serial console (each boot prints one)."""
        found = wait_for(lambda: len(self.banners(name, env)) >= count and self.banners(name, env),
                         timeout, f"{name}'s boot #{count} banner", interval=2.0)
        return found[count - 1]

    # -- the guest, over SSH ------------------------------------------------------
    def ssh(self, address: str, command: str, check=True, timeout=60) -> subprocess.CompletedProcess:
        assert self.outside_ns, "no outside namespace"
        res = subprocess.run(
            ["ip", "netns", "exec", self.outside_ns, "ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"tiny@{address}", command],
            capture_output=True, text=True, errors="replace", timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"ssh {address} {command!r}: exit {res.returncode}: {res.stderr}")
        return res

    def wait_ssh(self, address: str, timeout=90.0) -> None:
        wait_for(lambda: self.ssh(address, "true", check=False, timeout=20).returncode == 0, timeout,
                 f"ssh to {address}", interval=2.0)

    def guest_ping(self, address: str, target: str, count: int = 2) -> bool:
        res = self.ssh(address, f"ping -c {count} -W 2 {target}", check=False)
        self.last_ping = res.stdout + res.stderr
        assert "permission denied" not in self.last_ping, "pocketstack-tiny's `tiny` cannot ping"
        return res.returncode == 0 and " 0% packet loss" in res.stdout

    def guest_tcp(self, address: str, target: str, port: int = 22) -> bool:
        """From the guest at `address`: does `target`'s port answer (dropbear's banner on 22)?"""
        res = self.ssh(address, f"echo | nc -w 3 {target} {port}", check=False)
        return "SSH-" in res.stdout

    def cleanup(self) -> None:
        for ns in self.made_ns:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def _kill_guests(state_dir: Path) -> None:
    """Whatever the test leaves behind: QEMU processes of this cloud's instances."""
    for pidfile in state_dir.glob("instances/*/*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="module")
def rc(tmp_path_factory):
    if REASON:
        pytest.skip(REASON)
    work = tmp_path_factory.mktemp("realcloud")
    # dnsmasq re-reads its files as `nobody`: the run dir's parents must be searchable (pytest's are not)
    run_dir = Path(tempfile.mkdtemp(prefix=PREFIX + "-run-"))
    run_dir.chmod(0o755)
    cloud = Cloud(work / "state", config={("compute", "compute_driver"): "qemu",
                                          ("network", "backend"): "linuxbridge",
                                          ("linux_bridge", "run_dir"): str(run_dir),
                                          ("compute", "shutdown_timeout"): "20",
                                          # the KVM probe passes on these nested hosts but `-cpu host`
                                          # guests die (MSR 0x10a): TCG, as CI has
                                          ("compute", "qemu_accel"): os.environ.get("POCKETSTACK_QEMU_ACCEL",
                                                                                    "tcg"),
                                          # `public` + its own outside namespace (other clouds may have one)
                                          ("network", "external_network"): "demo",
                                          ("linux_bridge", "outside_namespace"): PREFIX + "out"})
    r = RealCloud(cloud, work)
    r.run_dir = run_dir
    r.made_ns.append(PREFIX + "out")
    try:
        cloud.start(timeout=120)
        yield r
    finally:
        ids: list[str] = []
        try:  # what the dataplane built goes with the API objects (bridges, namespaces, dnsmasq)
            ids += [n["ID"] for n in cloud.os_json("network", "list")]
            ids += [n["ID"] for n in cloud.os_json("router", "list")]
            for srv in cloud.os_json("server", "list", "--all-projects"):
                cloud.openstack("server", "delete", "--wait", srv["ID"], check=False)
            for router in cloud.os_json("router", "list"):
                for port in cloud.os_json("port", "list", "--router", router["ID"]):
                    if port.get("Fixed IP Addresses"):
                        cloud.openstack("router", "remove", "port", router["ID"], port["ID"], check=False)
                cloud.openstack("router", "delete", router["ID"], check=False)
            for fip in cloud.os_json("floating", "ip", "list"):
                cloud.openstack("floating", "ip", "delete", fip["ID"], check=False)
            for net in cloud.os_json("network", "list"):
                cloud.openstack("network", "delete", net["ID"], check=False)
            time.sleep(2)  # the dataplane's pass
        except Exception:  # noqa: BLE001 - the cloud may be down already
            pass
        cloud.stop()
        _kill_guests(cloud.state_dir)
        r.cleanup()
        _remove_leftovers(run_dir, ids)
        try:  # the cloud's firewall chains (the dataplane keeps them across restarts)
            from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend

            LinuxBridgeBackend(run_dir=str(run_dir)).remove_firewall()
        except Exception:  # noqa: BLE001 - an older backend without it
            pass
        shutil.rmtree(run_dir, ignore_errors=True)


def _remove_leftovers(run_dir: Path, ids: list[str]) -> None:
    """Last resort when the API clean-up above could not finish: the dnsmasq and metadata
    proxies of this cloud's run dir and the namespaces/bridges of its networks and routers."""
    ids = set(ids) | {p.name for p in run_dir.glob("dhcp/*")} | {p.name for p in run_dir.glob("router/*")}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(run_dir).encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGTERM)
        except OSError:
            pass
    for ident in ids:
        for ns in (f"qdhcp-{ident}", f"qrouter-{ident}"):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        subprocess.run(["ip", "link", "delete", "brq" + ident[:11]], capture_output=True)


# ---------------------------------------------------------------------------- the tests, in order
def test_up_refuses_an_unusable_qemu_driver_in_one_line(tmp_path):
    state = tmp_path / "state"
    subprocess.run([POCKETSTACK, "config", "set", "--state-dir", str(state), "compute", "qemu_binary",
                    "/nonexistent/qemu-system-x86_64"], check=True, capture_output=True)
    res = subprocess.run([POCKETSTACK, "up", "--state-dir", str(state), "--port", str(free_port()),
                          "--virt-driver", "qemu"], capture_output=True, text=True, timeout=60)
    want = "needs root" if os.geteuid() != 0 else "needs /nonexistent/qemu-system-x86_64"
    assert res.returncode == 2 and res.stderr.startswith("pocketstack: error: ") and want in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run([POCKETSTACK, "up", "--state-dir", str(state), "--virt-driver", "vmware"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "invalid choice: 'vmware'" in res.stderr


def test_fake_cloud_banner_says_how_to_get_real_instances(tmp_path):
    cloud = Cloud(tmp_path / "state")
    try:
        cloud.start()
        banner = wait_for(lambda: "ready in" in (cloud.state_dir / "up.out").read_text()
                          and (cloud.state_dir / "up.out").read_text(), 10, "the banner")
    finally:
        cloud.stop()
    assert "simulated (fake virt driver)" in banner
    assert "--virt-driver qemu --network-backend linuxbridge" in banner


def test_hypervisor_shows_the_real_accelerator(rc):
    name = rc.osj("hypervisor", "list")[0]["Hypervisor Hostname"]
    hyp = rc.osj("--os-compute-api-version", "2.28", "hypervisor", "show", name)
    cpu_info = hyp["cpu_info"] if isinstance(hyp["cpu_info"], dict) else json.loads(hyp["cpu_info"])
    assert cpu_info["accel"] in ("kvm", "tcg") and cpu_info["accel_reason"]
    assert hyp["hypervisor_type"] == ("KVM" if cpu_info["accel"] == "kvm" else "QEMU")
    token = rc.c.token()
    for version, kind in (("2.27", str), ("2.28", dict)):  # a JSON string before 2.28, an object after
        r = httpx.get(f"{rc.c.url}/compute/v2.1/os-hypervisors/detail", headers={
            "X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"})
        info = r.json()["hypervisors"][0]["cpu_info"]
        assert isinstance(info, kind) and (json.loads(info) if kind is str else info)["accel"] == cpu_info["accel"]


def test_tiny_image_is_registered_in_the_background(rc):
    def active():
        images = rc.osj("image", "list", "--public", "--name", "pocketstack-tiny", "--long")
        return images and images[0]["Status"] == "active" and images[0]
    rc.ids["image"] = wait_for(active, 240, "pocketstack-tiny registered", interval=2.0)["ID"]
    assert "pocketstack-tiny" in (rc.c.state_dir / "logs" / "pocketstack.log").read_text()


def test_network_router_and_security_groups(rc):
    rc.key.write_text(rc.os("keypair", "create", "demo-key"))
    rc.key.chmod(0o600)
    rc.os("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "f1.tiny")
    rc.os("network", "create", "private")
    rc.os("subnet", "create", "--network", "private", "--subnet-range", "10.0.0.0/24", "private-subnet")
    rc.os("router", "create", "router1")
    rc.os("router", "set", "--external-gateway", "public", "router1")
    rc.os("router", "add", "subnet", "router1", "private-subnet")
    rc.ids["sg"] = rc.osj("security", "group", "create", "guests")["id"]
    icmp = rc.osj("security", "group", "rule", "create", "--protocol", "icmp", "--ingress", "guests")
    rc.ids["icmp_rule"] = icmp["id"]
    rc.os("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "--ingress", "guests")
    rules = rc.osj("security", "group", "rule", "list", "guests")
    assert {r["IP Protocol"] for r in rules if r["Direction"] == "ingress"} >= {"icmp", "tcp"}
    _outside(rc)


def _outside(rc) -> None:
    """The namespace standing for the world beyond the external network (172.24.4.1)."""
    rc.outside_ns = PREFIX + "out"
    assert OUTSIDE_IP in sh("ip", "netns", "exec", rc.outside_ns, "ip", "-o", "addr").stdout


def test_two_guests_boot_with_their_dhcp_addresses(rc):
    def boot(name, extra):
        rc.os("server", "create", "--flavor", "f1.tiny", "--image", "pocketstack-tiny", "--key-name", "demo-key",
              "--security-group", "guests", "--network", "private", *extra, name)
    with ThreadPoolExecutor(2) as pool:  # both build at once, as the API allows
        list(pool.map(lambda a: boot(*a), [("vm-a", ["--config-drive", "true"]), ("vm-b", [])]))
    for name in ("vm-a", "vm-b"):
        srv = rc.wait_status(name, "ACTIVE")
        rc.ids[name] = srv["id"]
        rc.ips[name] = srv["addresses"]["private"][0]["addr"]
        assert srv["OS-EXT-STS:power_state"] == 1
    for name in ("vm-a", "vm-b"):
        rc.wait_banner(name)
        [(hostname, ip, keys, metadata)] = BANNER.findall(rc.os("console", "log", "show", name))  # the CLI's view
        assert ip == rc.ips[name], (f"{name} got {ip} by DHCP, its port has {rc.ips[name]}:\n"
                                    + _dhcp_diagnostics(rc, name))
        if name == "vm-a":
            assert (hostname, keys, metadata) == ("vm-a", "1", "config-drive")
        rc.ids[f"{name}-metadata"] = metadata
    # a real QEMU runs each, with the port's tap on the network's bridge
    private = rc.osj("network", "show", "private")
    for name in ("vm-a", "vm-b"):
        port = rc.osj("port", "list", "--server", rc.ids[name])[0]
        tap = "tap" + port["ID"][:11]
        assert Path(f"/sys/class/net/{tap}/master").resolve().name == "brq" + private["id"][:11]
        pid = int(next(rc.c.state_dir.glob(f"instances/*/{rc.ids[name]}/qemu.pid")).read_text())
        assert rc.ids[name].encode() in Path(f"/proc/{pid}/cmdline").read_bytes()


def _dhcp_diagnostics(rc, name: str) -> str:
    console = "\n".join(line for line in rc.console(name).splitlines() if "tiny-init" in line or "udhcpc" in line)
    hosts = "".join(p.read_text() for p in rc.run_dir.glob("dhcp/*/host"))
    logs = "".join(p.read_text()[-2000:] for p in rc.run_dir.glob("dhcp/*/log"))
    return f"console:\n{console}\ndhcp hosts:\n{hosts}\ndnsmasq log:\n{logs}"


def test_metadata_service_gives_b_its_key(rc):
    """vm-b has no config drive: its name and key come from 169.254.169.254 through the router."""
    hostname, _ip, keys, metadata = rc.wait_banner("vm-b")
    assert (hostname, keys, metadata) == ("vm-b", "1", "metadata-service"), _dataplane_status()


def _dataplane_status() -> str:
    try:
        return Path("/work/notes/dataplane-status.md").read_text().strip().splitlines()[-1][:200]
    except (OSError, IndexError):
        return ""


def test_floating_ip_ssh_and_pings(rc):
    fip = rc.osj("floating", "ip", "create", "public")["floating_ip_address"]
    rc.ips["fip-a"] = fip
    rc.os("server", "add", "floating", "ip", "vm-a", fip)
    rc.wait_ssh(fip)
    assert rc.ssh(fip, "hostname").stdout.strip() == "vm-a"
    assert rc.ips["vm-a"] in rc.ssh(fip, "ip -4 addr show eth0").stdout
    assert rc.guest_tcp(fip, rc.ips["vm-b"]), "A reaches B's SSH on its fixed IP"
    wait_for(lambda: outside_ping(rc, fip), 20, "the outside pinging A's floating IP (ICMP rule)")
    assert rc.guest_ping(fip, rc.ips["vm-b"]), f"A pings B's fixed IP: {rc.last_ping}"
    assert rc.guest_ping(fip, OUTSIDE_IP), f"A pings the outside through the router: {rc.last_ping}"


def outside_ping(rc, address: str) -> bool:
    """ICMP from the outside namespace (root there: the host's busybox ping)."""
    return sh("ip", "netns", "exec", rc.outside_ns, "busybox", "ping", "-c", "1", "-W", "2", address,
              check=False).returncode == 0


def test_removed_icmp_rule_stops_the_ping(rc):
    fip = rc.ips["fip-a"]
    wait_for(lambda: outside_ping(rc, fip), 30, "the outside pinging A's floating IP")
    rc.os("security", "group", "rule", "delete", rc.ids["icmp_rule"])
    try:
        assert wait_for_false(lambda: outside_ping(rc, fip), 20), "ping passes without the ICMP rule"
        assert rc.ssh(fip, "true").returncode == 0  # SSH (its own rule) is still allowed
        assert wait_for_false(lambda: rc.guest_ping(fip, rc.ips["vm-b"], count=1), 20), "A still pings B"
    finally:
        icmp = rc.osj("security", "group", "rule", "create", "--protocol", "icmp", "--ingress", "guests")
        rc.ids["icmp_rule"] = icmp["id"]
        wait_for(lambda: outside_ping(rc, fip), 30, "ping back with the rule")


def wait_for_false(fn, timeout: float) -> bool:
    """True once `fn()` is false (within `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not fn():
            return True
        time.sleep(1)
    return False


def test_another_project_cannot_reach_a(rc):
    rc.os("project", "create", "other")
    user, password = rc.c.make_user("other")
    env = rc.c.env_for(user, password, "other")
    rc.os("keypair", "create", "--public-key", str(_public_key(rc)), "other-key", env=env)
    rc.os("network", "create", "other-net", env=env)
    rc.os("subnet", "create", "--network", "other-net", "--subnet-range", "10.0.9.0/24", "other-subnet", env=env)
    rc.os("router", "create", "other-router", env=env)
    rc.os("router", "set", "--external-gateway", "public", "other-router", env=env)
    rc.os("router", "add", "subnet", "other-router", "other-subnet", env=env)
    rc.os("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "default", env=env)
    rc.os("security", "group", "rule", "create", "--protocol", "icmp", "default", env=env)
    rc.os("server", "create", "--flavor", "f1.tiny", "--image", "pocketstack-tiny", "--key-name", "other-key",
          "--network", "other-net", "--config-drive", "true", "vm-c", env=env)
    rc.wait_status("vm-c", "ACTIVE", env=env)
    rc.wait_banner("vm-c", env=env)
    fip = rc.osj("floating", "ip", "create", "public", env=env)["floating_ip_address"]
    rc.os("server", "add", "floating", "ip", "vm-c", fip, env=env)
    rc.wait_ssh(fip)
    try:
        assert rc.guest_tcp(fip, rc.ips["fip-a"]), "C reaches A's floating IP (the control)"
        assert not rc.guest_tcp(fip, rc.ips["vm-a"]), "C must not reach A's SSH on its fixed address"
        assert rc.guest_ping(fip, OUTSIDE_IP), "C reaches the outside (the control)"
        assert not rc.guest_ping(fip, rc.ips["vm-a"]), "C must not reach A's fixed address"
        assert not rc.guest_ping(fip, rc.ips["vm-b"]), "C must not reach B's fixed address"
    finally:
        rc.os("server", "delete", "--wait", "vm-c", env=env)


def _public_key(rc) -> Path:
    pub = rc.work / "key.pub"
    if not pub.exists():
        pub.write_text(sh("ssh-keygen", "-y", "-f", rc.key).stdout)
    return pub


def test_reboot_and_stop_start(rc):
    fip = rc.ips["fip-a"]
    boots = len(rc.banners("vm-a"))
    rc.os("server", "reboot", "--wait", "vm-a")
    rc.wait_banner("vm-a", boots + 1)
    rc.wait_ssh(fip)
    rc.os("server", "stop", "vm-a")
    rc.wait_status("vm-a", "SHUTOFF")
    assert rc.ssh(fip, "true", check=False, timeout=20).returncode != 0
    rc.os("server", "start", "vm-a")
    rc.wait_status("vm-a", "ACTIVE")
    rc.wait_banner("vm-a", boots + 2)
    rc.wait_ssh(fip)
    assert rc.guest_tcp(fip, rc.ips["vm-b"]), "networking is back after stop/start"


def test_snapshot_boots(rc):
    rc.os("server", "image", "create", "--name", "vm-a-snap", "--wait", "vm-a")
    snap = rc.osj("image", "show", "vm-a-snap")
    assert snap["status"] == "active" and snap["disk_format"] == "qcow2"
    rc.os("server", "create", "--flavor", "f1.tiny", "--image", "vm-a-snap", "--key-name", "demo-key",
          "--security-group", "guests", "--network", "private", "--config-drive", "true", "vm-d")
    srv = rc.wait_status("vm-d", "ACTIVE")
    hostname, ip, keys, _ = rc.wait_banner("vm-d")
    assert hostname == "vm-d" and ip and ip in json.dumps(srv["addresses"])
    assert rc.guest_tcp(rc.ips["fip-a"], ip), "A reaches the guest booted from its snapshot"
    # deleting it while RESIZED confirms the resize first: the source keeps no `<uuid>_resize`
    rc.os("flavor", "create", "--ram", "320", "--disk", "2", "--vcpus", "1", "f1.small")
    rc.os("server", "resize", "--flavor", "f1.small", "vm-d")
    rc.wait_status("vm-d", "VERIFY_RESIZE")
    assert list(rc.c.state_dir.glob(f"instances/*/{srv['id']}_resize")), "the source keeps the old guest"
    rc.os("server", "delete", "--wait", "vm-d")
    assert not list(rc.c.state_dir.glob(f"instances/*/{srv['id']}*")), "nothing of vm-d is left"


def test_volume_seen_by_the_guest(rc):
    fip = rc.ips["fip-a"]
    before = rc.ssh(fip, "cat /proc/partitions").stdout
    vol = rc.osj("volume", "create", "--size", "1", "data")
    wait_for(lambda: rc.osj("volume", "show", vol["id"])["status"] == "available", 60, "volume available")
    rc.os("server", "add", "volume", "vm-a", vol["id"])
    wait_for(lambda: rc.osj("volume", "show", vol["id"])["status"] == "in-use", 60, "volume in-use")

    def new_disk():
        now = rc.ssh(fip, "cat /proc/partitions").stdout
        extra = [line.split()[-1] for line in now.splitlines()[2:] if line not in before.splitlines()]
        return [d for d in extra if d.startswith("vd")]
    disks = wait_for(new_disk, 30, "the volume in /proc/partitions")
    size_kib = int(next(line.split()[2] for line in rc.ssh(fip, "cat /proc/partitions").stdout.splitlines()
                        if line.split() and line.split()[-1] == disks[0]))
    assert size_kib == 1024 * 1024, f"{disks[0]} is {size_kib} KiB"
    serial = rc.ssh(fip, f"cat /sys/block/{disks[0]}/serial", check=False).stdout.strip()
    assert not serial or vol["id"].startswith(serial)  # virtio-blk serial: the volume id (20 chars)
    rc.os("server", "remove", "volume", "vm-a", vol["id"])
    wait_for(lambda: not new_disk(), 30, "the volume gone from the guest")


def test_restart_finds_a_dead_guest_shutoff(rc):
    """pocketstack restarts while QEMU runs on; a guest whose QEMU died meanwhile is SHUTOFF."""
    pid = int(next(rc.c.state_dir.glob(f"instances/*/{rc.ids['vm-b']}/qemu.pid")).read_text())
    rc.c.stop()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
             10, "QEMU of vm-b gone")
    rc.c.start(timeout=120)
    b = rc.server("vm-b")
    assert b["status"] == "SHUTOFF" and b["OS-EXT-STS:power_state"] == 4, b
    a = rc.server("vm-a")
    assert a["status"] == "ACTIVE"
    rc.wait_ssh(rc.ips["fip-a"])  # A's QEMU and its network survived the restart
    rc.os("server", "start", "vm-b")
    rc.wait_status("vm-b", "ACTIVE")
    wait_for(lambda: rc.guest_tcp(rc.ips["fip-a"], rc.ips["vm-b"]), BOOT_TIMEOUT, "B back on the network")


def test_delete_removes_guests_and_taps(rc):
    taps = {name: "tap" + rc.osj("port", "list", "--server", rc.ids[name])[0]["ID"][:11] for name in ("vm-a", "vm-b")}
    for name in ("vm-a", "vm-b"):
        rc.os("server", "delete", "--wait", name)
    for name, tap in taps.items():
        assert not Path(f"/sys/class/net/{tap}").exists(), f"{name}'s tap {tap} is still there"
        assert not list(rc.c.state_dir.glob(f"instances/*/{rc.ids[name]}")), f"{name}'s directory is left"
